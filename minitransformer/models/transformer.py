"""The encoder-decoder Transformer of "Attention Is All You Need", for translation.

    memory = Encoder(Dropout(Embed_src(src) * sqrt(d_model) + PE))
    h      = Decoder(Dropout(Embed_tgt(tgt_in) * sqrt(d_model) + PE), memory)
    logits = h @ W_out + b_out        (or h @ E^T with shared embeddings)

Training uses teacher forcing: the decoder sees the target shifted right
(``tgt_in = <bos> y_1 ... y_n``) and predicts ``tgt_out = y_1 ... y_n <eos>``;
the causal mask keeps position t from peeking at t+1.

With ``share_embeddings=True`` (the paper, section 3.4) one matrix E of shape
(vocab_size, d_model) is the source embedding, the target embedding and the
output projection: ``logits = h @ E^T``. Its gradient is the sum of all three
uses; each Embedding module adds into the same ``Parameter``.

Ref: Vaswani et al. 2017, sections 3 and 5.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..nn.checks import check_size
from ..nn.decoder import Decoder
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding
from ..nn.encoder import Encoder
from ..nn.linear import Linear, linear_backward, linear_forward
from ..nn.losses import cross_entropy_backward, cross_entropy_forward
from ..nn.module import Module
from ..nn.positional import PositionalEncoding

__all__ = ["Transformer", "TransformerConfig"]


@dataclass
class TransformerConfig:
    """Sizes and options of a Transformer; saved as JSON next to the weights."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    dropout: float = 0.1
    max_len: int = 512
    activation: str = "relu"
    norm_first: bool = False
    share_embeddings: bool = False
    label_smoothing: float = 0.1
    pad_id: int = 0

    def __post_init__(self):
        """Refuse an inconsistent configuration here, before any weight is allocated."""
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "d_ff", "n_encoder_layers",
                     "n_decoder_layers", "max_len"):
            check_size(getattr(self, name), f"TransformerConfig {name}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"TransformerConfig: d_model={self.d_model} must be divisible by n_heads={self.n_heads}"
                             " (each head gets d_k = d_model // n_heads features)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TransformerConfig: dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"TransformerConfig: label_smoothing must be in [0, 1], got {self.label_smoothing!r}")
        if not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise ValueError(f"TransformerConfig: pad_id={self.pad_id} is not a token id of both vocabularies "
                             f"(sizes {self.src_vocab_size} and {self.tgt_vocab_size})")

    @classmethod
    def base(cls, vocab_size: int = 37000) -> TransformerConfig:
        """The paper's base model (Table 3): shared 37k BPE vocabulary, ~63M parameters."""
        return cls(vocab_size, vocab_size, share_embeddings=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown TransformerConfig fields {unknown}")
        return cls(**d)


class Transformer(Module):
    """Encoder-decoder Transformer with hand-written backward.

    Args:
        config: a TransformerConfig (or pass its fields as keyword arguments).
        dtype: parameter dtype.
    """

    def __init__(self, config: TransformerConfig | None = None, dtype="float32", **kwargs):
        super().__init__()
        config = config or TransformerConfig(**kwargs)
        c = self.config = config
        if c.share_embeddings and c.src_vocab_size != c.tgt_vocab_size:
            raise ValueError(
                f"share_embeddings needs one vocabulary: src_vocab_size={c.src_vocab_size} != "
                f"tgt_vocab_size={c.tgt_vocab_size}"
            )
        self.scale = math.sqrt(c.d_model)  # Python float: keeps float32 as float32
        self.src_embed = Embedding(c.src_vocab_size, c.d_model, dtype=dtype)
        self.tgt_embed = Embedding(c.tgt_vocab_size, c.d_model, dtype=dtype)
        for emb in (self.src_embed, self.tgt_embed):  # N(0, d_model^-1/2): after * sqrt(d_model), unit scale
            emb.W.data *= 1.0 / self.scale
        if c.share_embeddings:
            self.tgt_embed.W = self.src_embed.W  # one Parameter, three uses
        self.src_pos = PositionalEncoding(c.d_model, c.max_len, dtype=dtype)
        self.tgt_pos = PositionalEncoding(c.d_model, c.max_len, dtype=dtype)
        self.src_dropout = Dropout(c.dropout)
        self.tgt_dropout = Dropout(c.dropout)
        layer_args = dict(d_model=c.d_model, n_heads=c.n_heads, d_ff=c.d_ff, dropout=c.dropout,
                          activation=c.activation, norm_first=c.norm_first, dtype=dtype)
        self.encoder = Encoder(c.n_encoder_layers, **layer_args)
        self.decoder = Decoder(c.n_decoder_layers, **layer_args)
        self.out_proj = None if c.share_embeddings else Linear(c.d_model, c.tgt_vocab_size, dtype=dtype)
        self._loss_cache = None

    # -- forward ------------------------------------------------------------

    def encode(self, src_ids, src_key_padding_mask=None, need_weights=False):
        """src_ids: (B, S) int -> memory: (B, S, d_model)."""
        e = self.src_embed(src_ids)  # (B, S, d_model)
        e = e * self.scale  # (B, S, d_model)
        e = self.src_pos(e)  # (B, S, d_model)
        e = self.src_dropout(e)  # (B, S, d_model)
        return self.encoder(e, key_padding_mask=src_key_padding_mask, need_weights=need_weights)  # (B, S, d_model)

    def decode(self, tgt_in, memory, src_key_padding_mask=None, tgt_key_padding_mask=None, need_weights=False):
        """tgt_in: (B, T) int, memory: (B, S, d_model) -> logits: (B, T, tgt_vocab_size)."""
        t = self.tgt_embed(tgt_in)  # (B, T, d_model)
        t = t * self.scale  # (B, T, d_model)
        t = self.tgt_pos(t)  # (B, T, d_model)
        t = self.tgt_dropout(t)  # (B, T, d_model)
        h = self.decoder(t, memory, tgt_key_padding_mask=tgt_key_padding_mask,
                         memory_key_padding_mask=src_key_padding_mask, need_weights=need_weights)  # (B, T, d_model)
        if self.out_proj is not None:
            return self.out_proj(h)  # (B, T, tgt_vocab_size)
        logits, self._tied_cache = linear_forward(h, self.src_embed.W.data.T)  # (B, T, vocab_size)  h @ E^T
        return logits

    def forward(self, src_ids, tgt_in, src_key_padding_mask=None, tgt_key_padding_mask=None):
        """Teacher-forced logits. src_ids: (B, S), tgt_in: (B, T) -> (B, T, tgt_vocab_size)."""
        memory = self.encode(src_ids, src_key_padding_mask)  # (B, S, d_model)
        logits = self.decode(tgt_in, memory, src_key_padding_mask, tgt_key_padding_mask)  # (B, T, V)
        self._cache = ()  # children hold the caches; this marks "forward ran"
        return logits

    def loss(self, src_ids, tgt_in, tgt_out, src_key_padding_mask=None, tgt_key_padding_mask=None,
             label_smoothing=None):
        """Mean label-smoothed cross-entropy of ``tgt_out`` (B, T), with -100 marking padding.

        Runs forward and keeps what ``backward()`` needs. Returns a 0-d array.
        """
        eps = self.config.label_smoothing if label_smoothing is None else label_smoothing
        logits = self.forward(src_ids, tgt_in, src_key_padding_mask, tgt_key_padding_mask)  # (B, T, V)
        loss, self._loss_cache = cross_entropy_forward(logits, tgt_out, ignore_index=-100, label_smoothing=eps)
        return loss

    # -- backward -----------------------------------------------------------

    def backward(self, dlogits=None):
        """Backpropagate ``dlogits`` (B, T, V), or the loss of the last ``loss()`` call when omitted.

        Accumulates every parameter's ``grad``; returns nothing (token ids
        have no gradient).
        """
        if dlogits is None:
            if self._loss_cache is None:
                raise RuntimeError("Transformer.backward() without dlogits needs a loss() call first")
            dlogits = cross_entropy_backward(1.0, self._loss_cache)  # (B, T, V)  inverts loss = CE(logits)
            self._loss_cache = None
        self._pop_cache()
        if self.out_proj is not None:
            dh = self.out_proj.backward(dlogits)  # (B, T, d_model)      inverts logits = out_proj(h)
        else:
            dh, dET, _ = linear_backward(dlogits, self._tied_cache)  # (B, T, d), (d, V)  inverts h @ E^T
            self.src_embed.W.grad += dET.T  # (V, d_model)                the output use of the shared E
        dt, dmemory = self.decoder.backward(dh)  # (B, T, d), (B, S, d) inverts h = decoder(t, memory)
        dt = self.tgt_dropout.backward(dt)  # (B, T, d_model)           inverts t = tgt_dropout(t)
        dt = self.tgt_pos.backward(dt)  # (B, T, d_model)               inverts t = tgt_pos(t)
        dt = dt * self.scale  # (B, T, d_model)                         inverts t = t * scale
        self.tgt_embed.backward(dt)  # accumulates E_tgt.grad            inverts t = tgt_embed(tgt_in)
        de = self.encoder.backward(dmemory)  # (B, S, d_model)          inverts memory = encoder(e)
        de = self.src_dropout.backward(de)  # (B, S, d_model)           inverts e = src_dropout(e)
        de = self.src_pos.backward(de)  # (B, S, d_model)               inverts e = src_pos(e)
        de = de * self.scale  # (B, S, d_model)                         inverts e = e * scale
        self.src_embed.backward(de)  # accumulates E_src.grad            inverts e = src_embed(src_ids)

    def __repr__(self) -> str:
        c = self.config
        return (f"Transformer(d_model={c.d_model}, n_heads={c.n_heads}, d_ff={c.d_ff}, "
                f"layers={c.n_encoder_layers}+{c.n_decoder_layers}, vocab={c.src_vocab_size}/{c.tgt_vocab_size}, "
                f"params={self.num_parameters():,})")
