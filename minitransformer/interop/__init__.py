"""Bridges to other frameworks. ``minitransformer.interop.torch`` copies weights to and from PyTorch (needs torch)."""
