"""Layers: one concept per file, each a pure forward/backward pair plus a thin Module."""

from .linear import Linear, linear_backward, linear_forward
from .module import Module, ModuleList, Parameter

__all__ = [
    "Linear",
    "Module",
    "ModuleList",
    "Parameter",
    "linear_backward",
    "linear_forward",
]
