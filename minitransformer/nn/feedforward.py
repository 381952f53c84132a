"""Position-wise feed-forward network: two linear maps with an activation between.

The same two-layer MLP is applied to every position independently; it is
where most of a Transformer's parameters live (d_ff = 4 d_model).
"""

from __future__ import annotations

from .activations import get_activation
from .checks import check_size
from .dropout import Dropout
from .linear import Linear
from .module import Module

__all__ = ["FeedForward"]


class FeedForward(Module):
    """``FFN(x) = dropout(activation(x W_1 + b_1)) W_2 + b_2``.

    Args:
        d_model: input and output size.
        d_ff: hidden size (2048 for d_model = 512 in the paper).
        activation: ``"relu"`` (the paper), ``"gelu"`` (BERT) or ``"gelu_tanh"`` (GPT-2).
        dropout: dropout on the hidden activations (as torch's TransformerEncoderLayer).
        dtype: parameter dtype.

    Math:
        h = x @ W_1 + b_1          (B, T, d_ff)
        a = activation(h)          (B, T, d_ff)
        y = dropout(a) @ W_2 + b_2 (B, T, d_model)

    Ref: Vaswani et al. 2017, Eq. 2.
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu", dropout: float = 0.0,
                 dtype="float32"):
        super().__init__()
        check_size(d_model, "FeedForward d_model")
        check_size(d_ff, "FeedForward d_ff")
        self.linear1 = Linear(d_model, d_ff, dtype=dtype)
        self.activation = get_activation(activation)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(d_ff, d_model, dtype=dtype)

    def forward(self, x):
        """x: (B, T, d_model) -> y: (B, T, d_model)."""
        h = self.linear1(x)  # (B, T, d_ff)
        a = self.activation(h)  # (B, T, d_ff)
        a = self.dropout(a)  # (B, T, d_ff)
        y = self.linear2(a)  # (B, T, d_model)
        self._cache = ()  # the children hold the caches; this marks "forward ran"
        return y

    def backward(self, dy):
        """dy: (B, T, d_model) -> dx: (B, T, d_model); children accumulate their grads."""
        self._pop_cache()
        # BEGIN SOLUTION feedforward: the children's backward in reverse order: linear2, dropout, activation, linear1
        da = self.linear2.backward(dy)  # (B, T, d_ff)      inverts y = linear2(a)
        da = self.dropout.backward(da)  # (B, T, d_ff)      inverts a = dropout(a)
        dh = self.activation.backward(da)  # (B, T, d_ff)   inverts a = activation(h)
        dx = self.linear1.backward(dh)  # (B, T, d_model)   inverts h = linear1(x)
        return dx
        # END SOLUTION
