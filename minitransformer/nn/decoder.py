"""The Transformer decoder: masked self-attention, encoder-decoder attention, feed-forward.

Each decoder layer has three sub-layers, each with residual + LayerNorm
(post-LN or pre-LN, as in encoder.py):

    1. masked (causal) self-attention over the target prefix,
    2. cross-attention: queries from the decoder, keys and values from the
       encoder output ``memory``,
    3. the position-wise feed-forward network.

``memory`` feeds the cross-attention of every layer, so its gradient is the
sum of what each layer sends back: the stack adds them up explicitly.

Ref: Vaswani et al. 2017, section 3.1 and Figure 1.
"""

from __future__ import annotations

from .dropout import Dropout
from .feedforward import FeedForward
from .layernorm import LayerNorm
from .module import Module, ModuleList
from .multihead import MultiHeadAttention

__all__ = ["Decoder", "DecoderLayer"]


class DecoderLayer(Module):
    """Causal self-attention, cross-attention to ``memory``, feed-forward.

    Args: as EncoderLayer (d_model, n_heads, d_ff, dropout, activation, norm_first, eps, dtype,
    attention_dropout for both attentions, activation_dropout; None = ``dropout``).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, eps: float = 1e-5, dtype="float32",
                 attention_dropout: float | None = None, activation_dropout: float | None = None):
        super().__init__()
        self.norm_first = norm_first
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        activation_dropout = dropout if activation_dropout is None else activation_dropout
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=attention_dropout, dtype=dtype)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=attention_dropout, dtype=dtype)
        self.ff = FeedForward(d_model, d_ff, activation=activation, dropout=activation_dropout, dtype=dtype)
        self.norm1 = LayerNorm(d_model, eps=eps, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=eps, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=eps, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.self_attn_weights = None  # (B, n_heads, T, T)     after forward(..., need_weights=True)
        self.cross_attn_weights = None  # (B, n_heads, T, S)    ditto; S = source length

    def forward(self, x, memory, tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_attn_mask=None,
                causal=True, need_weights=False):
        """x: (B, T, d_model) target, memory: (B, S, d_model) encoder output -> y: (B, T, d_model).

        ``causal=True`` (default) lets target position t attend only to positions <= t.
        """
        self_masks = dict(key_padding_mask=tgt_key_padding_mask, attn_mask=tgt_attn_mask, causal=causal)
        cross_masks = dict(key_padding_mask=memory_key_padding_mask)
        self._cache = ()  # children hold the caches; this marks "forward ran"
        if self.norm_first:
            n1 = self.norm1(x)  # (B, T, d_model)
            a = self._self(n1, self_masks, need_weights)  # (B, T, d_model)
            a = self.dropout1(a)  # (B, T, d_model)
            h1 = x + a  # (B, T, d_model)  residual
            n2 = self.norm2(h1)  # (B, T, d_model)
            c = self._cross(n2, memory, cross_masks, need_weights)  # (B, T, d_model)
            c = self.dropout2(c)  # (B, T, d_model)
            h2 = h1 + c  # (B, T, d_model)  residual
            n3 = self.norm3(h2)  # (B, T, d_model)
            f = self.ff(n3)  # (B, T, d_model)
            f = self.dropout3(f)  # (B, T, d_model)
            return h2 + f  # (B, T, d_model)  residual
        a = self._self(x, self_masks, need_weights)  # (B, T, d_model)
        a = self.dropout1(a)  # (B, T, d_model)
        h1 = self.norm1(x + a)  # (B, T, d_model)
        c = self._cross(h1, memory, cross_masks, need_weights)  # (B, T, d_model)
        c = self.dropout2(c)  # (B, T, d_model)
        h2 = self.norm2(h1 + c)  # (B, T, d_model)
        f = self.ff(h2)  # (B, T, d_model)
        f = self.dropout3(f)  # (B, T, d_model)
        return self.norm3(h2 + f)  # (B, T, d_model)

    def _self(self, x, masks, need_weights):
        out = self.self_attn(x, need_weights=need_weights, **masks)
        if need_weights:
            out, self.self_attn_weights = out  # (B, T, d_model), (B, n_heads, T, T)
        return out

    def _cross(self, x, memory, masks, need_weights):
        out = self.cross_attn(x, memory, need_weights=need_weights, **masks)
        if need_weights:
            out, self.cross_attn_weights = out  # (B, T, d_model), (B, n_heads, T, S)
        return out

    def backward(self, dy):
        """dy: (B, T, d_model) -> (dx (B, T, d_model), dmemory (B, S, d_model))."""
        self._pop_cache()
        if self.norm_first:
            df = self.dropout3.backward(dy)  # (B, T, d_model)           inverts f = dropout3(f)
            dn3 = self.ff.backward(df)  # (B, T, d_model)                inverts f = ff(n3)
            dh2 = dy + self.norm3.backward(dn3)  # (B, T, d_model)       inverts n3 = norm3(h2); y = h2 + f
            dc = self.dropout2.backward(dh2)  # (B, T, d_model)          inverts c = dropout2(c)
            dn2, dmemory = self.cross_attn.backward(dc)  # (B, T, d), (B, S, d) inverts c = cross_attn(n2, memory)
            dh1 = dh2 + self.norm2.backward(dn2)  # (B, T, d_model)      inverts n2 = norm2(h1); h2 = h1 + c
            da = self.dropout1.backward(dh1)  # (B, T, d_model)          inverts a = dropout1(a)
            dn1 = self.self_attn.backward(da)  # (B, T, d_model)         inverts a = self_attn(n1)
            dx = dh1 + self.norm1.backward(dn1)  # (B, T, d_model)       inverts n1 = norm1(x); h1 = x + a
            return dx, dmemory
        ds3 = self.norm3.backward(dy)  # (B, T, d_model)                 inverts y = norm3(h2 + f)
        df = self.dropout3.backward(ds3)  # (B, T, d_model)              inverts f = dropout3(f)
        dh2 = ds3 + self.ff.backward(df)  # (B, T, d_model)              inverts f = ff(h2); h2 also feeds h2 + f
        ds2 = self.norm2.backward(dh2)  # (B, T, d_model)                inverts h2 = norm2(h1 + c)
        dc = self.dropout2.backward(ds2)  # (B, T, d_model)              inverts c = dropout2(c)
        dh1_cross, dmemory = self.cross_attn.backward(dc)  # (B, T, d), (B, S, d) inverts c = cross_attn(h1, memory)
        dh1 = ds2 + dh1_cross  # (B, T, d_model)                         h1 feeds h1 + c and the queries of c
        ds1 = self.norm1.backward(dh1)  # (B, T, d_model)                inverts h1 = norm1(x + a)
        da = self.dropout1.backward(ds1)  # (B, T, d_model)              inverts a = dropout1(a)
        dx = ds1 + self.self_attn.backward(da)  # (B, T, d_model)        inverts a = self_attn(x); x also feeds x + a
        return dx, dmemory


class Decoder(Module):
    """A stack of ``n_layers`` DecoderLayers, with an optional final LayerNorm.

    Args: as Encoder (``final_norm`` defaults to ``norm_first``).
    """

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, final_norm: bool | None = None,
                 eps: float = 1e-5, dtype="float32", attention_dropout: float | None = None,
                 activation_dropout: float | None = None):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"Decoder needs n_layers >= 1, got {n_layers}")
        self.layers = ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout, activation, norm_first, eps, dtype,
                         attention_dropout=attention_dropout, activation_dropout=activation_dropout)
            for _ in range(n_layers)
        )
        final_norm = norm_first if final_norm is None else final_norm
        self.norm = LayerNorm(d_model, eps=eps, dtype=dtype) if final_norm else None

    def forward(self, x, memory, tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_attn_mask=None,
                causal=True, need_weights=False):
        """x: (B, T, d_model), memory: (B, S, d_model) -> (B, T, d_model)."""
        for layer in self.layers:
            x = layer(x, memory, tgt_key_padding_mask, memory_key_padding_mask, tgt_attn_mask,
                      causal, need_weights)  # (B, T, d_model)
        if self.norm is not None:
            x = self.norm(x)  # (B, T, d_model)
        self._cache = ()
        return x

    def backward(self, dy):
        """dy: (B, T, d_model) -> (dx (B, T, d_model), dmemory (B, S, d_model))."""
        self._pop_cache()
        if self.norm is not None:
            dy = self.norm.backward(dy)  # (B, T, d_model)          inverts x = norm(x)
        dmemory = 0.0
        for layer in reversed(self.layers):
            dy, dmem_layer = layer.backward(dy)  # (B, T, d), (B, S, d)   inverts x = layer(x, memory)
            dmemory = dmemory + dmem_layer  # (B, S, d_model)  memory feeds every layer: gradients add up
        return dy, dmemory
