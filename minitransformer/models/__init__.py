"""Whole models built from the layers in ``minitransformer.nn``."""

from .transformer import Transformer, TransformerConfig

__all__ = ["Transformer", "TransformerConfig"]
