"""Key/value cache for incremental (token-by-token) decoding with causal self-attention.

Generating text one token at a time with a plain forward pass recomputes the
keys and values of the whole prefix at every step: O(T^2) projections for T
tokens. But in causal self-attention the keys and values of earlier positions
never change when a token is appended (position j only ever sees positions
<= j). So we keep them: each layer stores K and V of every position seen so
far, and a step projects only the t NEW tokens, appends their K and V, and lets
their queries attend over the whole cache.

The new tokens sit at positions ``length .. length + t - 1`` of the sequence,
so new token i may see cache positions j <= length + i: ``causal_mask(t,
length + t)`` from ``attention.py`` gives exactly that offset.

Inference only: nothing here keeps what a backward pass would need, and no
dropout is applied (the step computes what ``forward`` computes in eval mode).
The attention step reuses the ``MultiHeadAttention`` module's own parameters
(``W_q, b_q, ..., W_o, b_o``) and the same pure functions as its forward, so a
cached step and a full recomputation agree to float64 rounding.

Ref: Pope et al. 2022, "Efficiently Scaling Transformer Inference", section 2 (the KV cache).
"""

from __future__ import annotations

from .. import backend
from .attention import causal_mask, scaled_dot_product_attention_forward
from .checks import check_dtype_match, check_last_dim, check_ndim, check_size
from .linear import linear_forward
from .multihead import merge_heads, split_heads

__all__ = ["KVCache", "cached_self_attention"]


class KVCache:
    """Keys and values of every layer for a batch of B sequences, preallocated up to ``max_len`` positions.

    Args:
        n_layers: number of attention layers (one K and one V per layer).
        B: batch size (every sequence advances together).
        n_heads, d_k: heads and per-head size of the attention.
        max_len: the most positions the cache can hold (the model's context window).
        dtype: float32 or float64, the model's dtype.

    Attributes:
        K, V: lists of n_layers arrays (B, n_heads, max_len, d_k); only ``[:, :, :length]`` is filled.
        length: number of positions stored so far (the position of the next token).
    """

    def __init__(self, n_layers: int, B: int, n_heads: int, max_len: int, d_k: int, dtype="float32"):
        for value, what in ((n_layers, "n_layers"), (B, "B"), (n_heads, "n_heads"), (max_len, "max_len"),
                            (d_k, "d_k")):
            check_size(value, f"KVCache {what}")
        xp = backend.xp()
        shape = (B, n_heads, max_len, d_k)
        self.K = [xp.zeros(shape, dtype=dtype) for _ in range(n_layers)]  # n_layers x (B, n_heads, max_len, d_k)
        self.V = [xp.zeros(shape, dtype=dtype) for _ in range(n_layers)]  # n_layers x (B, n_heads, max_len, d_k)
        self.B, self.n_heads, self.max_len, self.d_k = B, n_heads, max_len, d_k
        self.length = 0

    @property
    def n_layers(self) -> int:
        return len(self.K)

    def check_room(self, t: int) -> None:
        """Raise a clear ValueError if ``t`` more positions do not fit."""
        if self.length + t > self.max_len:
            raise ValueError(f"KVCache: {t} new token(s) after {self.length} cached would make "
                             f"{self.length + t} positions, past max_len={self.max_len} (the context window); "
                             "start a new cache or crop the prompt")

    def advance(self, t: int) -> None:
        """Mark ``t`` more positions as filled (after every layer has written them)."""
        self.check_room(t)
        self.length += t

    def reset(self) -> None:
        """Forget every position (the arrays are reused)."""
        self.length = 0

    def __repr__(self) -> str:
        return (f"KVCache(n_layers={self.n_layers}, B={self.B}, n_heads={self.n_heads}, length={self.length}, "
                f"max_len={self.max_len}, d_k={self.d_k})")


def cached_self_attention(attn, x, cache: KVCache, layer: int):
    """One incremental step of causal multi-head self-attention, reading and extending ``cache``.

    Writes the new keys and values of layer ``layer`` at positions ``cache.length ..
    cache.length + t - 1``; does NOT advance ``cache.length`` (the model does that once,
    after all layers, with ``cache.advance(t)``).

    Args:
        attn: a ``MultiHeadAttention`` module (its W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o are used).
        x: (B, t, d_model) the new tokens' inputs to this attention (t >= 1).
        cache: the KVCache; ``cache.K[layer]``, ``cache.V[layer]`` are (B, n_heads, max_len, d_k).
        layer: which layer's keys and values to use.
    Returns:
        Y: (B, t, d_model), equal to the last t rows of causal self-attention over all
        ``cache.length + t`` positions.

    Math:
        L = cache.length,  n = L + t
        Q = split(x W_q + b_q),  K_new = split(x W_k + b_k),  V_new = split(x W_v + b_v)
        K[:, :, L:n] = K_new,    V[:, :, L:n] = V_new
        head = softmax(Q K[:, :, :n]^T / sqrt(d_k) + causal(t, n)) V[:, :, :n]
               causal(t, n)[i, j] allows j <= L + i
        Y = merge(head) W_o + b_o
    """
    check_ndim(x, 3, "cached_self_attention x", "(B, t, d_model)")
    check_last_dim(x, attn.d_model, "cached_self_attention x")
    check_dtype_match(x, attn.W_q.data, "cached_self_attention x")
    B, t, _ = x.shape
    if B != cache.B or attn.n_heads != cache.n_heads or attn.d_k != cache.d_k:
        raise ValueError(f"cached_self_attention: x has B={B} and the attention has n_heads={attn.n_heads}, "
                         f"d_k={attn.d_k}, but the cache was made for B={cache.B}, n_heads={cache.n_heads}, "
                         f"d_k={cache.d_k}")
    if x.dtype != cache.K[layer].dtype:
        raise TypeError(f"cached_self_attention: x is {x.dtype} but the cache holds {cache.K[layer].dtype}")
    cache.check_room(t)
    L = cache.length
    n = L + t

    def bias(p):
        return None if p is None else p.data

    Q_cat, _ = linear_forward(x, attn.W_q.data, bias(attn.b_q))  # (B, t, d_model)
    K_cat, _ = linear_forward(x, attn.W_k.data, bias(attn.b_k))  # (B, t, d_model)
    V_cat, _ = linear_forward(x, attn.W_v.data, bias(attn.b_v))  # (B, t, d_model)
    cache.K[layer][:, :, L:n] = split_heads(K_cat, attn.n_heads)  # (B, n_heads, t, d_k) appended
    cache.V[layer][:, :, L:n] = split_heads(V_cat, attn.n_heads)  # (B, n_heads, t, d_k) appended
    Q = split_heads(Q_cat, attn.n_heads)  # (B, n_heads, t, d_k)
    K = cache.K[layer][:, :, :n]  # (B, n_heads, n, d_k)  every position so far (a view)
    V = cache.V[layer][:, :, :n]  # (B, n_heads, n, d_k)
    mask = causal_mask(t, n)  # (t, n)  new token i sees j <= L + i
    H, _ = scaled_dot_product_attention_forward(Q, K, V, mask)  # (B, n_heads, t, d_k)  cache dropped: no backward
    Y, _ = linear_forward(merge_heads(H), attn.W_o.data, bias(attn.b_o))  # (B, t, d_model)
    return Y
