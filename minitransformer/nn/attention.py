"""Scaled dot-product attention (functional) and the masks that steer it.

Each query row of Q asks "which keys match me?": the scores S = Q K^T / sqrt(d_k)
are turned into weights P = softmax(S) (each row sums to 1), and the output
row is the P-weighted average of the value rows, Y = P V.

Masks, two conventions (the same as PyTorch's, named for what True marks):

- ``attn_mask`` / ``mask``, boolean: True = MAY ATTEND (like torch's
  ``F.scaled_dot_product_attention``). Shapes (Tq, Tk), (B, Tq, Tk) or
  (B, n_heads, Tq, Tk). Careful: torch's ``nn.MultiheadAttention`` reads a
  boolean attn_mask the other way round (True = NOT allowed): pass ``~mask``
  there, and its 3-D attn_mask is (B * n_heads, Tq, Tk), not (B, Tq, Tk).
- ``attn_mask`` / ``mask``, float: ADDED to the scores (0 = attend, -inf =
  don't), kept additive all the way, never converted to boolean. With -inf a
  fully masked row gives zeros; with a large negative number (-1e9) such a
  row still sums to 1 (shifting a whole row changes nothing), as in torch.
- ``key_padding_mask``, boolean (B, Tk): True = PADDING, the key is ignored
  (like torch's ``nn.MultiheadAttention``). Hugging Face's ``attention_mask``
  is the opposite (1 = real token): pass ``attention_mask == 0``.

A query row whose keys are all masked gets P = 0 and Y = 0 (not NaN), and a
zero gradient.

Ref: Vaswani et al. 2017, "Attention Is All You Need", Eq. 1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .. import backend
from .batch_split import SplitAttentionCache, split_backward_over_batch, split_forward_over_batch
from .softmax import SoftmaxCache, softmax_backward, softmax_forward

__all__ = ["AttentionCache", "SplitAttentionCache", "build_attention_mask", "causal_mask",
           "scaled_dot_product_attention_backward", "scaled_dot_product_attention_forward"]


def _check_broadcast(mask, shape, what: str) -> None:
    """``mask`` must broadcast to ``shape`` without growing it."""
    ok = mask.ndim <= len(shape) and all(m in (1, s) for m, s in zip(mask.shape[::-1], shape[::-1], strict=False))
    if not ok:
        raise ValueError(f"{what}: expected a shape broadcastable to (..., Tq, Tk) = {tuple(shape)}, "
                         f"got {tuple(mask.shape)}")


class AttentionCache(NamedTuple):
    Q: object  # (..., Tq, d_k)  queries, for dK
    K: object  # (..., Tk, d_k)  keys, for dQ
    V: object  # (..., Tk, d_v)  values, for dP
    P: object  # (..., Tq, Tk)   attention weights before dropout (also for heatmaps)
    dropout_mask: object  # (..., Tq, Tk) boolean keep-mask, or None
    dropout_scale: float  # 1 / (1 - dropout_p)
    scale: float  # 1 / sqrt(d_k)


def _check_inputs(Q, K, V, dropout_mask, dropout_p) -> None:
    """The forward's argument checks, one error naming the whole arrays for each kind of mistake."""
    if Q.shape[:-2] != K.shape[:-2] or K.shape[:-1] != V.shape[:-1] or Q.shape[-1] != K.shape[-1]:
        raise ValueError(f"attention: expected Q (..., Tq, d_k), K (..., Tk, d_k), V (..., Tk, d_v) with the same "
                         f"leading axes, got Q {tuple(Q.shape)}, K {tuple(K.shape)}, V {tuple(V.shape)}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention: dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0.0 and dropout_mask is None:
        raise ValueError("attention: dropout_p > 0 needs dropout_mask (the mask is data, so it can be replayed)")


def _check_all(Q, K, V, mask, dropout_mask, dropout_p) -> None:
    """Every check of the forward's arguments, run on the whole batch before it is split (``batch_split``)."""
    _check_inputs(Q, K, V, dropout_mask, dropout_p)
    scores_shape = (*Q.shape[:-1], K.shape[-2])  # (..., Tq, Tk)
    for m, what in ((mask, "attention mask"), (dropout_mask, "attention dropout_mask")):
        if m is not None:
            _check_broadcast(m, scores_shape, what)


@split_forward_over_batch(_check_all)  # runs of examples on parallel threads, one BLAS thread each (see batch_split)
def scaled_dot_product_attention_forward(Q, K, V, mask=None, dropout_mask=None, dropout_p=0.0):
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, with optional mask and dropout on P.

    Args:
        Q: (..., Tq, d_k) queries; leading axes e.g. (B, n_heads), the same for Q, K, V.
        K: (..., Tk, d_k) keys.
        V: (..., Tk, d_v) values.
        mask: broadcastable to (..., Tq, Tk); boolean (True = may attend) or
            float (added to the scores). None = attend everywhere.
        dropout_mask: boolean (..., Tq, Tk), True = keep; None = no dropout.
        dropout_p: the drop probability the mask was drawn with.
    Returns:
        Y: (..., Tq, d_v), and the cache (``cache.P`` is (..., Tq, Tk)).

    Math:
        S = Q K^T * scale,  scale = 1 / sqrt(d_k)    (+ mask, if float)
        P = softmax(S)      over the keys; boolean mask False -> P = 0
        P_drop = P * dropout_mask / (1 - dropout_p)
        Y = P_drop V
    """
    xp = backend.get_array_module(Q, K, V)
    _check_inputs(Q, K, V, dropout_mask, dropout_p)
    # BEGIN SOLUTION attention: scale = 1 / sqrt(d_k) (a Python float: math.sqrt), S = Q K^T * scale
    # HINT: K^T swaps the last two axes of K; the leading axes (B, n_heads) go through @ as batch axes
    scale = 1.0 / math.sqrt(Q.shape[-1])  # Python float: keeps float32 float32
    S = (Q * scale) @ K.swapaxes(-1, -2)  # (..., Tq, Tk)  scaling Q first: Tq*d_k multiplies, not Tq*Tk
    # END SOLUTION
    if mask is not None:  # S is a fresh array: the mask is applied in place
        _check_broadcast(mask, S.shape, "attention mask")
        if mask.dtype == xp.bool_:
            xp.copyto(S, -xp.inf, where=~mask)  # (..., Tq, Tk)  False -> -inf: softmax gives exactly 0 there
        elif mask.dtype.kind == "f":
            S += mask.astype(S.dtype, copy=False)  # (..., Tq, Tk)  additive mask, in the scores' dtype
        else:
            raise TypeError(f"attention mask: expected bool (True = may attend) or float (additive), got {mask.dtype}")
    P, _ = softmax_forward(S, out=S)  # (..., Tq, Tk)  in S's memory; fully masked rows -> 0
    dropout_scale = 1.0 / (1.0 - dropout_p)
    if dropout_mask is None:
        Y = P @ V  # (..., Tq, d_v)
    else:
        _check_broadcast(dropout_mask, P.shape, "attention dropout_mask")
        Y = (P * dropout_mask) @ V  # (..., Tq, d_v)  P_drop @ V with the scale moved onto Y below:
        Y *= dropout_scale  # (..., Tq, d_v)          Tq*d_v multiplies instead of Tq*Tk
    return Y, AttentionCache(Q, K, V, P, dropout_mask, dropout_scale, scale)


@split_backward_over_batch
def scaled_dot_product_attention_backward(dY, cache: AttentionCache):
    """Gradients of ``scaled_dot_product_attention_forward``.

    Args:
        dY: (..., Tq, d_v) upstream gradient.
        cache: from the forward.
    Returns:
        dQ: (..., Tq, d_k), dK: (..., Tk, d_k), dV: (..., Tk, d_v).

    Math:
        dV = P_drop^T dY
        dP_drop = dY V^T,   dP = dP_drop * dropout_mask / (1 - dropout_p)
        dS = P * (dP - sum_k(dP * P))           (softmax backward, no Jacobian)
        dQ = dS K * scale,   dK = dS^T Q * scale
    P_drop is recomputed from P and the mask rather than cached (one multiply).
    """
    # BEGIN SOLUTION attention: dV = P_drop^T dY, dP_drop = dY V^T, dP = dropout backward, dS = softmax_backward(dP)
    # HINT: dQ = dS K * scale, dK = dS^T Q * scale; P_drop = P * dropout_mask * dropout_scale (P without a mask)
    Q, K, V, P, dropout_mask, dropout_scale, scale = cache
    P_drop = P  # (..., Tq, Tk)
    if dropout_mask is not None:
        P_drop = P * dropout_mask  # (..., Tq, Tk)  as in forward, scaled in place
        P_drop *= dropout_scale
    dV = P_drop.swapaxes(-1, -2) @ dY  # (..., Tk, d_v)   inverts Y = P_drop @ V
    dP = dY @ V.swapaxes(-1, -2)  # (..., Tq, Tk)    dP_drop, inverts Y = P_drop @ V
    if dropout_mask is not None:
        dP *= dropout_mask  # (..., Tq, Tk)  in place (dP is new)     inverts P_drop = P * dropout_mask * scale
        dP *= dropout_scale
    dS = softmax_backward(dP, SoftmaxCache(P))  # (..., Tq, Tk)  inverts P = softmax(S); masked entries get 0
    # an additive mask is a constant: S + mask passes dS through unchanged
    dQ = (dS @ K) * scale  # (..., Tq, d_k)   inverts S = (Q * scale) @ K^T
    dK = (dS.swapaxes(-1, -2) @ Q) * scale  # (..., Tk, d_k)   inverts S = (Q * scale) @ K^T
    return dQ, dK, dV
    # END SOLUTION


def causal_mask(Tq: int, Tk: int):
    """Boolean (Tq, Tk) mask, True = may attend: query i sees keys j <= i + (Tk - Tq).

    With Tq == Tk this is the lower triangle (a token sees itself and the
    past). With Tk > Tq the queries are the LAST Tq positions of a length-Tk
    sequence (cached decoding): the offset lines them up with their keys.

    Returns:
        mask: (Tq, Tk) boolean, on the active backend.
    """
    xp = backend.xp()
    i = xp.arange(Tq)[:, None]  # (Tq, 1)  query positions
    j = xp.arange(Tk)[None, :]  # (1, Tk)  key positions
    return j <= i + (Tk - Tq)  # (Tq, Tk)


def build_attention_mask(B: int, Tq: int, Tk: int, attn_mask=None, key_padding_mask=None, causal=False,
                         n_heads=None):
    """Combine an attention mask, a key padding mask and causality into one mask for the scores.

    Args:
        B, Tq, Tk: batch size, query length, key length.
        attn_mask: None, or bool (True = may attend) or float (additive), of shape
            (Tq, Tk), (B, Tq, Tk) or (B, h, Tq, Tk) with h = n_heads or 1.
        key_padding_mask: None or bool (B, Tk), True = PADDING (ignored key).
        causal: also hide keys j > i + (Tk - Tq) (see ``causal_mask``).
        n_heads: the number of heads, to check a 4-D attn_mask (optional).
    Returns:
        None if there is nothing to mask; else (B, 1, Tq, Tk) (or (B, h, Tq, Tk)
        for a 4-D attn_mask): boolean, True = may attend; or, when attn_mask
        is float, float additive: attn_mask with -inf where padding or causality hide a key.
    """
    if attn_mask is None and key_padding_mask is None and not causal:
        return None
    xp = backend.xp()
    allowed = xp.ones((B, 1, Tq, Tk), dtype=bool)  # (B, 1, Tq, Tk)  True = may attend
    if causal:
        allowed = allowed & causal_mask(Tq, Tk)  # (B, 1, Tq, Tk)
    if key_padding_mask is not None:
        key_padding_mask = backend.asarray(key_padding_mask)
        if key_padding_mask.dtype != xp.bool_:
            raise TypeError(f"key_padding_mask: expected bool with True = padding, got {key_padding_mask.dtype} "
                            "(from a Hugging Face attention_mask, 1 = real token, pass attention_mask == 0)")
        if tuple(key_padding_mask.shape) != (B, Tk):
            raise ValueError(f"key_padding_mask: expected shape (B, Tk) = {(B, Tk)}, "
                             f"got {tuple(key_padding_mask.shape)}")
        allowed = allowed & ~key_padding_mask[:, None, None, :]  # (B, 1, Tq, Tk)  padded keys hidden
    if attn_mask is None:
        return allowed
    attn_mask = backend.asarray(attn_mask)
    if attn_mask.dtype != xp.bool_ and attn_mask.dtype.kind != "f":
        raise TypeError(f"attn_mask: expected bool (True = may attend) or float (additive), got {attn_mask.dtype}")
    if attn_mask.ndim == 2 and tuple(attn_mask.shape) == (Tq, Tk):
        attn_mask = attn_mask[None, None]  # (1, 1, Tq, Tk)
    elif attn_mask.ndim == 3 and tuple(attn_mask.shape) == (B, Tq, Tk):
        attn_mask = attn_mask[:, None]  # (B, 1, Tq, Tk)
    elif not (attn_mask.ndim == 4 and (attn_mask.shape[0], *attn_mask.shape[2:]) == (B, Tq, Tk)
              and (n_heads is None or attn_mask.shape[1] in (1, n_heads))):
        h = "n_heads" if n_heads is None else n_heads
        raise ValueError(f"attn_mask: expected shape (Tq, Tk) = {(Tq, Tk)}, (B, Tq, Tk) = {(B, Tq, Tk)} or "
                         f"(B, n_heads, Tq, Tk) = ({B}, {h}, {Tq}, {Tk}), got {tuple(attn_mask.shape)}")
    if attn_mask.dtype == xp.bool_:
        return allowed & attn_mask  # (B, 1 or h, Tq, Tk)
    return xp.where(allowed, attn_mask, -xp.inf)  # (B, 1 or h, Tq, Tk)  float: stays additive
