"""Position information added to the token embeddings: fixed sinusoids or a learned table.

Attention by itself ignores order, so each position t gets a vector P[t]
added to its embedding. Both variants share the pure pair
``add_positions_forward/backward`` (y = x + P, broadcast over the batch); they
differ in where P comes from:

- ``PositionalEncoding``: a fixed table of sines and cosines (no parameters,
  a buffer ``pe``). For every frequency pair, PE[pos + k] is PE[pos] rotated
  by an angle that depends only on k, which lets attention read relative
  positions from dot products.
- ``LearnedPositionalEmbedding``: a trained table ``W`` (BERT, GPT-2).

``offset`` shifts the positions, for decoding one token at a time with a KV
cache: the new token at index ``offset`` gets P[offset].

Ref: Vaswani et al. 2017, section 3.5; Radford et al. 2019 (GPT-2); Devlin et al. 2019 (BERT).
"""

from __future__ import annotations

from typing import NamedTuple

from .. import backend
from .checks import check_dtype_match, check_last_dim, check_ndim, check_seq_len, check_size
from .module import Module, Parameter, move_array

__all__ = [
    "AddPositionsCache",
    "LearnedPositionalEmbedding",
    "PositionalEncoding",
    "add_positions_backward",
    "add_positions_forward",
    "sinusoidal_table",
]


def sinusoidal_table(max_len: int, d_model: int, dtype="float32"):
    """The fixed sinusoidal positional-encoding table, computed on the host in float64.

    Args:
        max_len: number of positions.
        d_model: encoding size (odd works: the last column is a sine).
        dtype: dtype of the result, on the active backend.
    Returns:
        PE: (max_len, d_model).

    Math:
        PE[pos, 2i]     = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))

    Ref: Vaswani et al. 2017, section 3.5.
    """
    xp = backend.get_array_module()  # no device array given: NumPy, so CPU and GPU get the same table
    pos = xp.arange(max_len, dtype="float64")[:, None]  # (max_len, 1)
    two_i = xp.arange(0, d_model, 2, dtype="float64")  # (ceil(d_model / 2),) the even columns 2i
    angle = pos / 10000.0 ** (two_i / float(d_model))  # (max_len, ceil(d_model / 2))
    PE = xp.zeros((max_len, d_model), dtype="float64")  # (max_len, d_model)
    PE[:, 0::2] = xp.sin(angle)  # (max_len, ceil(d_model / 2))
    PE[:, 1::2] = xp.cos(angle[:, : d_model // 2])  # (max_len, d_model // 2)  odd d_model: one cos fewer
    return backend.asarray(PE, dtype=dtype)  # (max_len, d_model) on the active backend


class AddPositionsCache(NamedTuple):
    n_lead: int  # number of leading (batch) axes of x that P was broadcast over


def add_positions_forward(x, P):
    """Add one vector per position, the same for every sequence in the batch.

    Args:
        x: (B, T, d_model) input (any number of leading axes before T).
        P: (T, d_model) position vectors for these T positions.
    Returns:
        y: (B, T, d_model), and the cache.

    Math:
        y[b, t] = x[b, t] + P[t]
    """
    y = x + P  # (B, T, d_model)  P broadcast over the batch
    return y, AddPositionsCache(x.ndim - P.ndim)


def add_positions_backward(dy, cache: AddPositionsCache):
    """Gradients of ``add_positions_forward``.

    Args:
        dy: (B, T, d_model) upstream gradient.
    Returns:
        dx: (B, T, d_model) (``dy`` itself, not a copy), dP: (T, d_model).

    Math:
        dx = dy,   dP[t] = sum_b dy[b, t]
    """
    dx = dy  # inverts y = x + P, w.r.t. x: the identity
    dP = dy.sum(axis=tuple(range(cache.n_lead)))  # (T, d_model)  inverts the broadcast of P over the batch
    return dx, dP


def _check_positions(x, offset: int, d_model: int, max_len: int, table, what: str) -> int:
    """Validate x (B, T, d_model) and offset against the table; return T."""
    check_ndim(x, 3, what, "(B, T, d_model)")
    check_last_dim(x, d_model, what)
    check_dtype_match(x, table, what)
    if int(offset) != offset or offset < 0:
        raise ValueError(f"{what}: offset must be a non-negative integer, got {offset!r}")
    T = x.shape[1]
    check_seq_len(int(offset) + T, max_len, f"{what} (T={T}, offset={offset})")
    return T


class PositionalEncoding(Module):
    """Adds the fixed sinusoidal table: ``y = x + pe[offset:offset+T]``. No parameters.

    Args:
        d_model: encoding size.
        max_len: longest sequence (offset + T) accepted.
        dtype: dtype of the buffer ``pe`` (float32 default).
    """

    def __init__(self, d_model: int, max_len: int = 5000, dtype="float32"):
        super().__init__()
        check_size(d_model, "PositionalEncoding d_model")
        check_size(max_len, "PositionalEncoding max_len")
        self.d_model, self.max_len = d_model, max_len
        self.pe = sinusoidal_table(max_len, d_model, dtype)  # (max_len, d_model) buffer, not a Parameter

    def _on_to(self, device, dtype) -> None:
        """Move the buffer; a new dtype recomputes it (casting float32 up would keep float32 digits)."""
        if device is None:
            device = backend.get_array_module(self.pe).__name__  # stay where it is: "numpy" or "cupy"
        if dtype is not None:
            self.pe = sinusoidal_table(self.max_len, self.d_model, dtype)  # (max_len, d_model)
        self.pe = move_array(self.pe, device)  # (max_len, d_model)

    def forward(self, x, offset: int = 0):
        """x: (B, T, d_model) -> y: (B, T, d_model); positions offset .. offset + T - 1."""
        T = _check_positions(x, offset, self.d_model, self.max_len, self.pe, "PositionalEncoding input")
        y, self._cache = add_positions_forward(x, self.pe[offset : offset + T])
        return y

    def backward(self, dy):
        """dy: (B, T, d_model) -> dx = dy (the table is fixed)."""
        dx, _ = add_positions_backward(dy, self._pop_cache())
        return dx

    def __repr__(self) -> str:
        return f"PositionalEncoding(d_model={self.d_model}, max_len={self.max_len})"


class LearnedPositionalEmbedding(Module):
    """Adds a learned table: ``y = x + W[offset:offset+T]``, ``W`` ~ normal(0, 0.02) as GPT-2.

    Args:
        max_len: number of positions (rows of W).
        d_model: embedding size.
        dtype: parameter dtype (float32 default).
    """

    def __init__(self, max_len: int, d_model: int, dtype="float32"):
        super().__init__()
        check_size(max_len, "LearnedPositionalEmbedding max_len")
        check_size(d_model, "LearnedPositionalEmbedding d_model")
        self.max_len, self.d_model = max_len, d_model
        rng = backend.host_rng()  # host init: same weights on CPU and GPU for one seed
        std = 0.02
        self.W = Parameter(backend.asarray(rng.normal(0.0, std, (max_len, d_model)), dtype=dtype))

    def forward(self, x, offset: int = 0):
        """x: (B, T, d_model) -> y: (B, T, d_model); positions offset .. offset + T - 1."""
        T = _check_positions(x, offset, self.d_model, self.max_len, self.W.data, "LearnedPositionalEmbedding input")
        y, cache = add_positions_forward(x, self.W.data[offset : offset + T])
        self._cache = (cache, int(offset))
        return y

    def backward(self, dy):
        """dy: (B, T, d_model) -> dx = dy; accumulates W.grad[offset:offset+T]."""
        cache, offset = self._pop_cache()
        dx, dP = add_positions_backward(dy, cache)
        self.W.grad[offset : offset + dP.shape[0]] += dP  # only the rows that were used
        return dx

    def __repr__(self) -> str:
        return f"LearnedPositionalEmbedding(max_len={self.max_len}, d_model={self.d_model})"

