"""The Transformer encoder: a layer (self-attention + feed-forward) and a stack of them.

Each sub-layer is wrapped in a residual connection and a LayerNorm, placed
either after the sum (post-LN, the 2017 paper and BERT) or before the
sub-layer (pre-LN, GPT-2; trains more stably in deep stacks):

    post-LN:  x = LayerNorm(x + Dropout(Sublayer(x)))
    pre-LN:   x = x + Dropout(Sublayer(LayerNorm(x)))

Backward through a residual ``h = x + f(x)``: x reaches h along two paths,
so ``dx = dh + f.backward(dh)``; both terms are written out below.

Ref: Vaswani et al. 2017, section 3.1; Xiong et al. 2020 (pre-LN).
"""

from __future__ import annotations

from .dropout import Dropout
from .feedforward import FeedForward
from .layernorm import LayerNorm
from .module import Module, ModuleList
from .multihead import MultiHeadAttention

__all__ = ["Encoder", "EncoderLayer"]


class EncoderLayer(Module):
    """Self-attention then feed-forward, each with residual + LayerNorm.

    Args:
        d_model, n_heads, d_ff: sizes (512, 8, 2048 in the paper's base model).
        dropout: residual dropout probability (and the default of the two below).
        activation: feed-forward activation (``"relu"``, ``"gelu"``, ``"gelu_tanh"``).
        norm_first: False for post-LN (paper, default), True for pre-LN.
        eps: LayerNorm epsilon.
        attention_dropout: dropout on the attention weights; None = ``dropout`` (as torch).
        activation_dropout: dropout on the feed-forward hidden activations; None = ``dropout``
            (as torch). BERT has none there: it passes 0.0.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, eps: float = 1e-5, dtype="float32",
                 attention_dropout: float | None = None, activation_dropout: float | None = None):
        super().__init__()
        self.norm_first = norm_first
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        activation_dropout = dropout if activation_dropout is None else activation_dropout
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=attention_dropout, dtype=dtype)
        self.ff = FeedForward(d_model, d_ff, activation=activation, dropout=activation_dropout, dtype=dtype)
        self.norm1 = LayerNorm(d_model, eps=eps, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=eps, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.attn_weights = None  # (B, n_heads, T, T) after forward(..., need_weights=True)

    def forward(self, x, key_padding_mask=None, attn_mask=None, causal=False, need_weights=False):
        """x: (B, T, d_model) -> y: (B, T, d_model). Masks as in MultiHeadAttention."""
        masks = dict(key_padding_mask=key_padding_mask, attn_mask=attn_mask, causal=causal)
        self._cache = ()  # children hold the caches; this marks "forward ran"
        if self.norm_first:
            n1 = self.norm1(x)  # (B, T, d_model)
            a = self._attend(n1, masks, need_weights)  # (B, T, d_model)
            a = self.dropout1(a)  # (B, T, d_model)
            h = x + a  # (B, T, d_model)     residual
            n2 = self.norm2(h)  # (B, T, d_model)
            f = self.ff(n2)  # (B, T, d_model)
            f = self.dropout2(f)  # (B, T, d_model)
            return h + f  # (B, T, d_model)  residual
        a = self._attend(x, masks, need_weights)  # (B, T, d_model)
        a = self.dropout1(a)  # (B, T, d_model)
        h = self.norm1(x + a)  # (B, T, d_model)   residual, then LayerNorm
        f = self.ff(h)  # (B, T, d_model)
        f = self.dropout2(f)  # (B, T, d_model)
        return self.norm2(h + f)  # (B, T, d_model)  residual, then LayerNorm

    def _attend(self, x, masks, need_weights):
        out = self.self_attn(x, need_weights=need_weights, **masks)
        if need_weights:
            out, self.attn_weights = out  # (B, T, d_model), (B, n_heads, T, T)
        return out

    def backward(self, dy):
        """dy: (B, T, d_model) -> dx: (B, T, d_model)."""
        self._pop_cache()
        if self.norm_first:
            df = self.dropout2.backward(dy)  # (B, T, d_model)      inverts f = dropout2(f)
            dn2 = self.ff.backward(df)  # (B, T, d_model)           inverts f = ff(n2)
            dh = dy + self.norm2.backward(dn2)  # (B, T, d_model)   inverts n2 = norm2(h); y = h + f: both paths
            da = self.dropout1.backward(dh)  # (B, T, d_model)      inverts a = dropout1(a)
            dn1 = self.self_attn.backward(da)  # (B, T, d_model)    inverts a = self_attn(n1): Q, K, V paths summed
            return dh + self.norm1.backward(dn1)  # (B, T, d_model) inverts n1 = norm1(x); h = x + a: both paths
        ds2 = self.norm2.backward(dy)  # (B, T, d_model)            inverts y = norm2(h + f)
        df = self.dropout2.backward(ds2)  # (B, T, d_model)         inverts f = dropout2(f)
        dh = ds2 + self.ff.backward(df)  # (B, T, d_model)          inverts f = ff(h); h also feeds h + f
        ds1 = self.norm1.backward(dh)  # (B, T, d_model)            inverts h = norm1(x + a)
        da = self.dropout1.backward(ds1)  # (B, T, d_model)         inverts a = dropout1(a)
        return ds1 + self.self_attn.backward(da)  # (B, T, d_model) inverts a = self_attn(x); x also feeds x + a

class Encoder(Module):
    """A stack of ``n_layers`` EncoderLayers, with an optional final LayerNorm.

    Args:
        n_layers: number of layers (6 in the paper).
        final_norm: add a LayerNorm after the last layer. Default: True for
            pre-LN (whose layer outputs are not normalised), False for post-LN.
        Other arguments: as EncoderLayer.
    """

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, final_norm: bool | None = None,
                 eps: float = 1e-5, dtype="float32", attention_dropout: float | None = None,
                 activation_dropout: float | None = None):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"Encoder needs n_layers >= 1, got {n_layers}")
        self.layers = ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, activation, norm_first, eps, dtype,
                         attention_dropout=attention_dropout, activation_dropout=activation_dropout)
            for _ in range(n_layers)
        )
        final_norm = norm_first if final_norm is None else final_norm
        self.norm = LayerNorm(d_model, eps=eps, dtype=dtype) if final_norm else None

    def forward(self, x, key_padding_mask=None, attn_mask=None, causal=False, need_weights=False):
        """x: (B, T, d_model) -> (B, T, d_model); each layer's weights kept if need_weights."""
        for layer in self.layers:
            x = layer(x, key_padding_mask, attn_mask, causal, need_weights)  # (B, T, d_model)
        if self.norm is not None:
            x = self.norm(x)  # (B, T, d_model)
        self._cache = ()
        return x

    def backward(self, dy):
        """dy: (B, T, d_model) -> dx: (B, T, d_model), layers in reverse order."""
        self._pop_cache()
        if self.norm is not None:
            dy = self.norm.backward(dy)  # (B, T, d_model)  inverts x = norm(x)
        for layer in reversed(self.layers):
            dy = layer.backward(dy)  # (B, T, d_model)     inverts x = layer(x)
        return dy
