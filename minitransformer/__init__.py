"""minitransformer: a readable Transformer with every forward and backward pass written by hand.

NumPy by default; CuPy with ``minitransformer.use("cupy")``.
"""

from .backend import backend_name, manual_seed, to_numpy, use
from .nn.finite import check_finite, set_check_finite

__version__ = "0.1.0"

__all__ = ["__version__", "backend_name", "check_finite", "manual_seed", "set_check_finite", "to_numpy", "use"]
