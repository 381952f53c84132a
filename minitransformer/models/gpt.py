"""GPT: a decoder-only Transformer language model (GPT-2's architecture), with a KV cache for generation.

    e      = Dropout(W_emb[ids] + W_pos[0:T])                     token + learned position embeddings
    h_i    = layer_i(h_{i-1}, causal=True),  h_0 = e              pre-LN blocks, causal self-attention
    logits = LayerNorm(h_L) @ W_emb^T                             output projection TIED to W_emb

A pre-LN block (``nn/encoder.py``'s EncoderLayer with ``norm_first=True``) is

    h = x + Dropout(SelfAttention(LayerNorm_1(x), causal))
    y = h + Dropout(FFN(LayerNorm_2(h)))        FFN: GELU (tanh form), no dropout inside

Token t sees only tokens <= t, so one forward pass scores every next-token
prediction of a sequence at once: ``loss(ids, targets)`` with targets = ids
shifted left by one is the language-modelling loss.

Tied head. ``W_emb`` is used twice: as the lookup table and as the output
matrix. Both uses add into the same ``W_emb.grad``: the head's term
(dlogits^T h) right after the head's backward, the lookup's scatter-add last.

Ref: Radford et al. 2018 (GPT), 2019 (GPT-2, "Language Models are Unsupervised Multitask Learners",
section 2.3: pre-LN, final LayerNorm); Press & Wolf 2017 (tied input/output embeddings).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .. import backend
from ..nn.activations import gelu_forward, relu_forward
from ..nn.checks import check_dtype_match, check_ids, check_ndim, check_seq_len
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding
from ..nn.encoder import EncoderLayer
from ..nn.kv_cache import KVCache, cached_self_attention
from ..nn.layernorm import LayerNorm, layernorm_forward
from ..nn.linear import linear_backward, linear_forward
from ..nn.losses import cross_entropy_backward, cross_entropy_forward
from ..nn.module import Module, ModuleList
from ..nn.positional import LearnedPositionalEmbedding

__all__ = ["GPT", "GPTConfig"]

# The feed-forward activations the cached (inference) path knows, as pure functions.
_ACTIVATIONS = {"gelu_tanh": lambda x: gelu_forward(x, "tanh")[0], "gelu": lambda x: gelu_forward(x, "none")[0],
                "relu": lambda x: relu_forward(x)[0]}


@dataclass
class GPTConfig:
    """Sizes of a GPT; ``GPTConfig.gpt2_small()`` is GPT-2 small (124M)."""

    vocab_size: int
    max_len: int = 1024
    d_model: int = 768
    n_heads: int = 12
    n_layers: int = 12
    d_ff: int = 3072
    dropout: float = 0.1
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_tanh"

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "d_model", "n_heads", "n_layers", "d_ff"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"GPTConfig: d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if not self.layer_norm_eps > 0.0:
            raise ValueError(f"GPTConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"GPTConfig.activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")

    @classmethod
    def gpt2_small(cls, **overrides) -> GPTConfig:
        """GPT-2 small: 50257 tokens, 1024 positions, 12 layers of 768 with 12 heads, d_ff 3072."""
        return cls(**{"vocab_size": 50257, **overrides})

    def num_parameters(self) -> int:
        """Parameters of ``GPT(self)`` computed from the shapes alone (tied head counted once)."""
        d, d_ff = self.d_model, self.d_ff
        block = 2 * (2 * d) + 4 * (d * d + d) + (d * d_ff + d_ff) + (d_ff * d + d)  # 2 LayerNorms, attn, FFN
        return self.vocab_size * d + self.max_len * d + self.n_layers * block + 2 * d

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """A config from ``to_dict``'s output; unknown keys are an error naming them."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"GPTConfig.from_dict: unknown keys {unknown}")
        return cls(**d)


class GPT(Module):
    """Decoder-only Transformer language model with tied input/output embeddings.

    Args:
        config: a GPTConfig.
        dtype: "float32" (default) or "float64".
        seed: seed of the weight initialisation (GPT-2's: N(0, 0.02), residual projections
            N(0, 0.02 / sqrt(2 n_layers)), biases 0, LayerNorm 1 and 0).

    Math:
        e = dropout(W_emb[ids] + W_pos[0:T])                 (B, T, d_model)
        h = layer_{n_layers - 1}(... layer_0(e))             (B, T, d_model), causal
        logits = LayerNorm(h) @ W_emb^T                      (B, T, vocab_size)
    """

    def __init__(self, config: GPTConfig, dtype="float32", seed: int = 0):
        super().__init__()
        c = self.config = config
        self.token_embedding = Embedding(c.vocab_size, c.d_model, dtype=dtype)
        self.position_embedding = LearnedPositionalEmbedding(c.max_len, c.d_model, dtype=dtype)
        self.dropout = Dropout(c.dropout)
        self.layers = ModuleList(
            EncoderLayer(c.d_model, c.n_heads, c.d_ff, dropout=c.dropout, activation=c.activation, norm_first=True,
                         eps=c.layer_norm_eps, dtype=dtype, attention_dropout=c.dropout, activation_dropout=0.0)
            for _ in range(c.n_layers))
        self.norm = LayerNorm(c.d_model, eps=c.layer_norm_eps, dtype=dtype)
        self._init_weights(seed)

    def _init_weights(self, seed: int) -> None:
        """GPT-2's initialisation, drawn on the host from ``seed`` (same model on CPU and GPU)."""
        rng, std = backend.host_rng(seed), 0.02
        std_residual = std / math.sqrt(2.0 * self.config.n_layers)  # the projections that add into the residual

        def normal(p, s):  # a Parameter redrawn in place, dtype and device kept
            p.data[...] = backend.asarray(rng.normal(0.0, s, p.shape), dtype=p.dtype)  # (*p.shape)

        normal(self.token_embedding.W, std)
        normal(self.position_embedding.W, std)
        for layer in self.layers:
            a, ff = layer.self_attn, layer.ff
            for W, s in ((a.W_q, std), (a.W_k, std), (a.W_v, std), (a.W_o, std_residual),
                         (ff.linear1.W, std), (ff.linear2.W, std_residual)):
                normal(W, s)
            for b in (a.b_q, a.b_k, a.b_v, a.b_o, ff.linear1.b, ff.linear2.b):
                b.data[...] = 0.0

    def _check_ids(self, ids, what: str):
        check_ndim(ids, 2, what, "(B, T)")
        check_ids(ids, self.config.vocab_size, what)

    def forward(self, ids):
        """ids: (B, T) int in [0, vocab_size), T <= max_len -> logits: (B, T, vocab_size)."""
        self._check_ids(ids, "GPT ids")
        check_seq_len(ids.shape[1], self.config.max_len, "GPT ids")
        e = self.token_embedding(ids)  # (B, T, d_model)
        e = self.position_embedding(e)  # (B, T, d_model)   e + W_pos[0:T]
        h = self.dropout(e)  # (B, T, d_model)
        for layer in self.layers:
            h = layer(h, causal=True)  # (B, T, d_model)
        h = self.norm(h)  # (B, T, d_model)
        logits, head = linear_forward(h, self.token_embedding.W.data.T)  # (B, T, vocab_size)  tied: h @ W_emb^T
        self._cache = (head, None)  # (head cache, cross-entropy cache set by loss())
        return logits

    def loss(self, ids, targets, ignore_index: int = -100):
        """Mean next-token cross-entropy; ``backward()`` (no argument) then backpropagates it.

        Args:
            ids: (B, T) input token ids.
            targets: (B, T) the token each position should predict (usually ids shifted left by one),
                or ``ignore_index`` (padding, the last position).
            ignore_index: target value that contributes nothing.
        Returns:
            loss: () 0-d array in the model's dtype.
        """
        logits = self.forward(ids)  # (B, T, vocab_size)
        check_ndim(targets, 2, "GPT targets", "(B, T)")
        loss, ce = cross_entropy_forward(logits, targets, ignore_index)  # ()
        self._cache = (self._cache[0], ce)
        return loss

    def backward(self, dlogits=None):
        """Backpropagate ``dlogits`` (B, T, vocab_size), or the last ``loss()`` when None.

        Returns:
            None (token ids have no gradient); every parameter's grad is accumulated.
        """
        head, ce = self._pop_cache()
        if dlogits is None:
            if ce is None:
                raise RuntimeError("GPT.backward() without dlogits backpropagates loss(ids, targets): call loss() "
                                   "first, or pass dlogits (B, T, vocab_size) after forward()")
            dlogits = cross_entropy_backward(1.0, ce)  # (B, T, vocab_size)         inverts loss = CE(logits)
        expected = (*head.x.shape[:2], self.config.vocab_size)
        if tuple(dlogits.shape) != expected:
            raise ValueError(f"GPT.backward: dlogits must have shape (B, T, vocab_size) = {expected}, "
                             f"got {tuple(dlogits.shape)}")
        check_dtype_match(dlogits, head.W, "GPT.backward dlogits")
        dh, dWT, _ = linear_backward(dlogits, head)  # (B, T, d_model)        inverts logits = h @ W_emb^T
        self.token_embedding.W.grad += dWT.T  # (vocab_size, d_model)          the head's use of the tied W_emb
        dh = self.norm.backward(dh)  # (B, T, d_model)                         inverts h = norm(h)
        for layer in reversed(self.layers):
            dh = layer.backward(dh)  # (B, T, d_model)                         inverts h = layer(h, causal=True)
        de = self.dropout.backward(dh)  # (B, T, d_model)                      inverts h = dropout(e)
        de = self.position_embedding.backward(de)  # (B, T, d_model)           inverts e = e + W_pos[0:T]
        self.token_embedding.backward(de)  # scatter-add into W_emb.grad      inverts e = W_emb[ids]
        return None

    # -- incremental decoding (inference only) -------------------------------------------------------

    def init_cache(self, B: int, max_len: int | None = None) -> KVCache:
        """An empty KV cache for ``B`` sequences of up to ``max_len`` (default: the model's) positions."""
        c = self.config
        max_len = c.max_len if max_len is None else max_len
        if max_len > c.max_len:
            raise ValueError(f"GPT.init_cache: max_len={max_len} exceeds the model's max_len={c.max_len}")
        return KVCache(c.n_layers, B, c.n_heads, max_len, c.d_model // c.n_heads, self.norm.gamma.dtype)

    def forward_cached(self, ids_new, cache: KVCache):
        """Logits of ``t`` new tokens given the cached prefix; appends them to the cache.

        Inference only: nothing is kept for backward and no dropout is applied, so the result equals
        ``forward`` in eval mode on the whole sequence (its last t positions).

        Args:
            ids_new: (B, t) int token ids at positions cache.length .. cache.length + t - 1.
            cache: from ``init_cache(B)``; ``cache.length`` advances by t.
        Returns:
            logits: (B, t, vocab_size).
        """
        self._check_ids(ids_new, "GPT.forward_cached ids_new")
        B, t = ids_new.shape
        if t < 1 or B != cache.B or cache.n_layers != self.config.n_layers:
            raise ValueError(f"GPT.forward_cached: ids_new (B, t) = {(B, t)} needs t >= 1 and B = the cache's "
                             f"{cache.B} (cache for {cache.n_layers} layers, model has {self.config.n_layers})")
        cache.check_room(t)  # past max_len: a clear error before anything is written
        L = cache.length
        W_emb = self.token_embedding.W.data  # (vocab_size, d_model)
        h = W_emb[ids_new] + self.position_embedding.W.data[L:L + t]  # (B, t, d_model)
        ff_act = _ACTIVATIONS[self.config.activation]
        for i, layer in enumerate(self.layers):
            n1 = _layernorm(layer.norm1, h)  # (B, t, d_model)
            h = h + cached_self_attention(layer.self_attn, n1, cache, i)  # (B, t, d_model)
            n2 = _layernorm(layer.norm2, h)  # (B, t, d_model)
            f, _ = linear_forward(n2, layer.ff.linear1.W.data, layer.ff.linear1.b.data)  # (B, t, d_ff)
            f, _ = linear_forward(ff_act(f), layer.ff.linear2.W.data, layer.ff.linear2.b.data)  # (B, t, d_model)
            h = h + f  # (B, t, d_model)
        h = _layernorm(self.norm, h)  # (B, t, d_model)
        cache.advance(t)
        return h @ W_emb.T  # (B, t, vocab_size)

    # -- Hugging Face GPT-2 folders ------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, folder, dtype="float32") -> GPT:
        """Load a Hugging Face GPT-2 folder (config.json + model.safetensors), in eval mode."""
        from ..gpt2_weights import from_pretrained

        return from_pretrained(folder, dtype=dtype)

    def save_pretrained(self, folder, tokenizer=None):
        """Write config.json + model.safetensors in GPT-2's format (transformers' GPT2LMHeadModel loads it)."""
        from ..gpt2_weights import save_pretrained

        return save_pretrained(self, folder, tokenizer=tokenizer)

    def __repr__(self) -> str:
        c = self.config
        return (f"GPT(vocab_size={c.vocab_size}, max_len={c.max_len}, d_model={c.d_model}, n_heads={c.n_heads}, "
                f"n_layers={c.n_layers}, params={self.num_parameters():,})")


def _layernorm(norm: LayerNorm, x):
    """A LayerNorm module applied without keeping a cache (inference)."""
    y, _ = layernorm_forward(x, norm.gamma.data, norm.beta.data, norm.eps)  # (..., d_model)
    return y

