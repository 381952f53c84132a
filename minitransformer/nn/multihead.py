"""Multi-head attention: n_heads scaled dot-product attentions side by side.

Project the inputs to Q, K, V with one (d_model, d_model) matrix each, cut
the last axis into n_heads slices of d_k = d_model // n_heads (one per head),
attend in every head at once (the head axis is just another batch axis),
glue the heads back together and mix them with W_o.

The masks follow ``attention.py``: ``attn_mask`` boolean True = may attend
(or float, additive), ``key_padding_mask`` True = padding.

Ref: Vaswani et al. 2017, "Attention Is All You Need", Section 3.2.2.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .. import backend
from .attention import (
    AttentionCache,
    build_attention_mask,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from .checks import check_dtype_match, check_last_dim, check_ndim, check_size
from .linear import LinearCache, linear_backward, linear_forward
from .module import Module, Parameter

__all__ = ["MultiHeadAttention", "MultiHeadAttentionCache", "merge_heads", "multi_head_attention_backward",
           "multi_head_attention_forward", "split_heads"]


def split_heads(X, n_heads: int):
    """(B, T, d_model) -> (B, n_heads, T, d_k): head i gets features [i*d_k, (i+1)*d_k)."""
    # BEGIN SOLUTION multihead: reshape to (B, T, n_heads, d_k), then transpose to (B, n_heads, T, d_k)
    B, T, d_model = X.shape
    return X.reshape(B, T, n_heads, d_model // n_heads).transpose(0, 2, 1, 3)  # (B, n_heads, T, d_k)  a view
    # END SOLUTION


def merge_heads(H):
    """(B, n_heads, T, d_k) -> (B, T, d_model): the inverse of ``split_heads`` (Concat of the heads)."""
    # BEGIN SOLUTION multihead: inverse of split_heads: transpose to (B, T, n_heads, d_k), reshape to (B, T, d_model)
    B, n_heads, T, d_k = H.shape
    return H.transpose(0, 2, 1, 3).reshape(B, T, n_heads * d_k)  # (B, T, d_model)  one copy
    # END SOLUTION


class MultiHeadAttentionCache(NamedTuple):
    q: LinearCache  # query (B, Tq, d_model), W_q (d_model, d_model)
    k: LinearCache  # key (B, Tk, d_model), W_k
    v: LinearCache  # value (B, Tk, d_model), W_v
    attn: AttentionCache  # per-head Q (B, n_heads, Tq, d_k), K, V (B, n_heads, Tk, d_k), P (B, n_heads, Tq, Tk)
    o: LinearCache  # H_cat (B, Tq, d_model), W_o
    qkv: LinearCache | None = None  # self-attention: x (B, T, d_model), W_qkv = [W_q | W_k | W_v] (d_model, 3 d_model)


def multi_head_attention_forward(query, key, value, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o, n_heads,
                                 mask=None, dropout_mask=None, dropout_p=0.0, fused=False):
    """MultiHead(query, key, value) = Concat(head_1, ..., head_h) W_o + b_o.

    Args:
        query: (B, Tq, d_model); key, value: (B, Tk, d_model) (pass x three
            times for self-attention, memory twice for cross-attention).
        W_q, W_k, W_v, W_o: (d_model, d_model); b_q, b_k, b_v, b_o: (d_model,) or None.
        n_heads: number of heads; d_k = d_model // n_heads.
        mask: broadcastable to (B, n_heads, Tq, Tk), see ``build_attention_mask``.
        dropout_mask: boolean (B, n_heads, Tq, Tk) keep-mask on P, or None.
        dropout_p: its drop probability.
        fused: self-attention, query is key is value (one array x): the three projections as ONE
            matmul, and the backward gives x's whole gradient as dquery (dkey and dvalue None).
    Returns:
        Y: (B, Tq, d_model), and the cache (``cache.attn.P``: (B, n_heads, Tq, Tk)).

    Math:
        Q = split(query W_q + b_q),  K = split(key W_k + b_k),  V = split(value W_v + b_v)
        head_i = softmax(Q_i K_i^T / sqrt(d_k) + mask) V_i      for every head i at once
        Y = merge(head_1, ..., head_h) W_o + b_o
    Fused: [Q_cat | K_cat | V_cat] = x [W_q | W_k | W_v] + [b_q | b_k | b_v], the same numbers in one BLAS call.
    """
    xp = backend.get_array_module(query, W_q)
    if fused and not (query is key is value and (b_q is None) == (b_k is None) == (b_v is None)):
        raise ValueError("fused=True needs one array as query, key and value, and all three biases or none")
    if fused:
        W_qkv = xp.concatenate((W_q, W_k, W_v), axis=1)  # (d_model, 3 d_model)  a copy: 3 d_model^2 entries
        b_qkv = None if b_q is None else xp.concatenate((b_q, b_k, b_v))  # (3 d_model,)
        QKV_cat, cache_qkv = linear_forward(query, W_qkv, b_qkv)  # (B, T, 3 d_model)
        Q_cat, K_cat, V_cat = xp.split(QKV_cat, 3, axis=-1)  # (B, T, d_model) views
        cache_q, cache_k, cache_v = LinearCache(query, W_q), LinearCache(key, W_k), LinearCache(value, W_v)
    else:
        cache_qkv = None
        Q_cat, cache_q = linear_forward(query, W_q, b_q)  # (B, Tq, d_model)  all heads' queries side by side
        K_cat, cache_k = linear_forward(key, W_k, b_k)  # (B, Tk, d_model)
        V_cat, cache_v = linear_forward(value, W_v, b_v)  # (B, Tk, d_model)
    Q = split_heads(Q_cat, n_heads)  # (B, n_heads, Tq, d_k)
    K = split_heads(K_cat, n_heads)  # (B, n_heads, Tk, d_k)
    V = split_heads(V_cat, n_heads)  # (B, n_heads, Tk, d_k)
    H, cache_attn = scaled_dot_product_attention_forward(  # (B, n_heads, Tq, d_k)  every head at once
        Q, K, V, mask, dropout_mask, dropout_p)
    H_cat = merge_heads(H)  # (B, Tq, d_model)  Concat(head_1, ..., head_h)
    Y, cache_o = linear_forward(H_cat, W_o, b_o)  # (B, Tq, d_model)
    return Y, MultiHeadAttentionCache(cache_q, cache_k, cache_v, cache_attn, cache_o, cache_qkv)


def multi_head_attention_backward(dY, cache: MultiHeadAttentionCache):
    """Gradients of ``multi_head_attention_forward``, in its argument order.

    Args:
        dY: (B, Tq, d_model) upstream gradient.
    Returns:
        dquery (B, Tq, d_model), dkey, dvalue (B, Tk, d_model),
        dW_q, db_q, dW_k, db_k, dW_v, db_v, dW_o, db_o ((d_model, d_model) and (d_model,)).
        A bias gradient is returned even when that bias was None (then unused). After a ``fused``
        forward, dquery is the one input's whole gradient and dkey, dvalue are None.

    Math:
        the forward read bottom-up; split and merge are each other's inverse.
        Fused: d[Q_cat | K_cat | V_cat] side by side through the forward's one matmul gives
        dx = dQ_cat W_q^T + dK_cat W_k^T + dV_cat W_v^T (the three paths into x, summed by the matmul)
        and [dW_q | dW_k | dW_v] = x^T [dQ_cat | dK_cat | dV_cat].
    """
    # BEGIN SOLUTION multihead: the forward bottom-up: linear_backward(dY, cache.o), split_heads, attention backward,
    # HINT: merge_heads of dQ, dK and dV, linear_backward of the three projections; return in forward's argument order
    n_heads = cache.attn.Q.shape[1]
    dH_cat, dW_o, db_o = linear_backward(dY, cache.o)  # (B, Tq, d_model)  inverts Y = H_cat W_o + b_o
    dH = split_heads(dH_cat, n_heads)  # (B, n_heads, Tq, d_k)  inverts H_cat = merge_heads(H)
    dQ, dK, dV = scaled_dot_product_attention_backward(dH, cache.attn)  # inverts H = attention(Q, K, V)
    if cache.qkv is not None:  # the forward's one Q/K/V matmul: one backward (optional; the lines below are enough)
        xp, (B, n_heads, T, d_k) = backend.get_array_module(dQ), dQ.shape
        dQKV = xp.empty((B, T, 3, n_heads, d_k), dtype=dQ.dtype)  # (B, T, 3, n_heads, d_k)
        for i, dZ in enumerate((dQ, dK, dV)):
            dQKV[:, :, i] = dZ.transpose(0, 2, 1, 3)  # (B, T, n_heads, d_k)  merge_heads, into its third of each row
        dQKV_cat = dQKV.reshape(B, T, 3 * n_heads * d_k)  # (B, T, 3 d_model)  [dQ_cat | dK_cat | dV_cat], a view
        dx, dW_qkv, db_qkv = linear_backward(dQKV_cat, cache.qkv)  # inverts [Q|K|V]_cat = x W_qkv + b_qkv
        dW_q, dW_k, dW_v = xp.split(dW_qkv, 3, axis=1)  # (d_model, d_model) views
        db_q, db_k, db_v = xp.split(db_qkv, 3)  # (d_model,) views
        return dx, None, None, dW_q, db_q, dW_k, db_k, dW_v, db_v, dW_o, db_o
    dV_cat = merge_heads(dV)  # (B, Tk, d_model)  inverts V = split_heads(V_cat)
    dK_cat = merge_heads(dK)  # (B, Tk, d_model)  inverts K = split_heads(K_cat)
    dQ_cat = merge_heads(dQ)  # (B, Tq, d_model)  inverts Q = split_heads(Q_cat)
    dvalue, dW_v, db_v = linear_backward(dV_cat, cache.v)  # (B, Tk, d_model)  inverts V_cat = value W_v + b_v
    dkey, dW_k, db_k = linear_backward(dK_cat, cache.k)  # (B, Tk, d_model)  inverts K_cat = key W_k + b_k
    dquery, dW_q, db_q = linear_backward(dQ_cat, cache.q)  # (B, Tq, d_model)  inverts Q_cat = query W_q + b_q
    return dquery, dkey, dvalue, dW_q, db_q, dW_k, db_k, dW_v, db_v, dW_o, db_o
    # END SOLUTION


class MultiHeadAttention(Module):
    """Multi-head attention with parameters named as in the paper (W_q, b_q, ..., W_o, b_o).

    Each W is (d_model, d_model), used as ``x @ W + b``. torch's
    ``nn.MultiheadAttention`` packs W_q, W_k, W_v transposed into one
    ``in_proj_weight`` (3 * d_model, d_model); copy with ``W_q = in_proj_weight[:d_model].T``.
    b_k never learns (its gradient is exactly 0): it adds q_i . b_k to every
    score of row i, and softmax ignores a constant added to a whole row.

    Args:
        d_model: model width; must be divisible by n_heads.
        n_heads: number of heads.
        dropout: drop probability on the attention weights P (training mode only).
        bias: whether the four projections have biases.
        dtype: parameter dtype (float32 default).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, dtype="float32"):
        super().__init__()
        check_size(d_model, "MultiHeadAttention d_model")
        check_size(n_heads, "MultiHeadAttention n_heads")
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads} (each head gets d_k = "
                             "d_model // n_heads features)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.n_heads, self.d_k, self.dropout = d_model, n_heads, d_model // n_heads, dropout
        rng = backend.host_rng()  # host init: same weights on CPU and GPU for one seed

        def weight(bound):  # (d_model, d_model) uniform in +-bound
            return Parameter(backend.asarray(rng.uniform(-bound, bound, (d_model, d_model)), dtype=dtype))

        def zeros():  # (d_model,)
            return Parameter(backend.xp().zeros((d_model,), dtype=dtype)) if bias else None

        xavier = math.sqrt(6.0 / (d_model + d_model))  # xavier_uniform of one (d_model, d_model) matrix
        self.W_q, self.b_q = weight(xavier), zeros()
        self.W_k, self.b_k = weight(xavier), zeros()
        self.W_v, self.b_v = weight(xavier), zeros()
        self.W_o, self.b_o = weight(1.0 / math.sqrt(d_model)), zeros()  # torch's Linear init for out_proj

    def _params(self):
        """The eight parameters in the functional order (None for absent biases)."""
        return (self.W_q, self.b_q, self.W_k, self.b_k, self.W_v, self.b_v, self.W_o, self.b_o)

    def forward(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None, causal=False,
                need_weights=False):
        """Attend from ``query`` to ``key`` / ``value``.

        Args:
            query: (B, Tq, d_model).
            key: (B, Tk, d_model); default ``query`` (self-attention: ``forward(x)``).
            value: (B, Tk, d_model); default ``key`` (cross-attention: ``forward(x, memory)``).
            key_padding_mask: bool (B, Tk), True = padding.
            attn_mask: bool (True = may attend) or float (additive): (Tq, Tk), (B, Tq, Tk) or (B, n_heads, Tq, Tk).
            causal: hide key j from query i when j > i + (Tk - Tq).
            need_weights: also return the attention weights.
        Returns:
            Y: (B, Tq, d_model); with need_weights also P: (B, n_heads, Tq, Tk),
            the weights before dropout (a copy). ``backward`` then returns one
            gradient per array given: dx, or (dx, dmemory), or (dquery, dkey, dvalue).
        """
        if key is None and value is not None:
            raise ValueError("MultiHeadAttention: value given without key; pass key too (or neither)")
        n_inputs = 1 if key is None else 2 if value is None else 3
        key = query if key is None else key
        value = key if value is None else value
        for what, x in (("query", query), ("key", key), ("value", value)):
            check_ndim(x, 3, f"MultiHeadAttention {what}", "(B, T, d_model)")
            check_last_dim(x, self.d_model, f"MultiHeadAttention {what}")
            check_dtype_match(x, self.W_q.data, f"MultiHeadAttention {what}")
        (B, Tq, _), Tk = query.shape, key.shape[1]
        if key.shape[0] != B or value.shape[0] != B or value.shape[1] != Tk:
            raise ValueError(f"MultiHeadAttention: expected query (B, Tq, d_model) and key, value (B, Tk, d_model), "
                             f"got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
        mask = build_attention_mask(B, Tq, Tk, attn_mask, key_padding_mask, causal, self.n_heads)  # (B, 1|h, Tq, Tk)
        dropout_mask, p = None, (self.dropout if self.training else 0.0)
        if p > 0.0:
            dropout_mask = backend.dropout_keep_mask((B, self.n_heads, Tq, Tk), p)  # (B, n_heads, Tq, Tk) True = keep
        params = [None if w is None else w.data for w in self._params()]
        Y, cache = multi_head_attention_forward(query, key, value, *params, self.n_heads, mask, dropout_mask, p,
                                                fused=n_inputs == 1)  # x given once: one Q/K/V matmul
        self._cache = (n_inputs, cache)  # backward needs to know how many inputs to return
        return (Y, cache.attn.P.copy()) if need_weights else Y  # (B, Tq, d_model), (B, n_heads, Tq, Tk)

    def backward(self, dY):
        """dY (B, Tq, d_model) -> dx, or (dx, dmemory), or (dquery, dkey, dvalue); accumulates param grads."""
        n_inputs, cache = self._pop_cache()
        dquery, dkey, dvalue, *dparams = multi_head_attention_backward(dY, cache)
        for p, g in zip(self._params(), dparams, strict=True):
            if p is not None:
                p.grad += g
        if n_inputs == 1:
            # x fed Q, K and V: the shared input's gradients add up (the fused backward's matmul already added them)
            return dquery if dkey is None else dquery + dkey + dvalue  # (B, T, d_model)
        if n_inputs == 2:
            # memory fed K and V: its two gradients add up
            return dquery, dkey + dvalue  # (B, Tq, d_model), (B, Tk, d_model)
        return dquery, dkey, dvalue

    def __repr__(self) -> str:
        return f"MultiHeadAttention(d_model={self.d_model}, n_heads={self.n_heads}, dropout={self.dropout})"
