"""BERT: token + position + segment embeddings, a post-LN Transformer encoder, a tanh pooler over [CLS].

    e      = Dropout(LayerNorm(W_word[input_ids] + W_type[token_type_ids] + W_pos[0:T]))
    h      = Encoder(e, key_padding_mask = (attention_mask == 0))   post-LN, exact GELU
    pooled = tanh(h[:, 0] @ W_pool + b_pool)                        the [CLS] token, for sentence-level heads

The module tree and attribute names follow Hugging Face's ``BertModel``
(``embeddings.word_embeddings``, ``encoder.layers.{i}``, ``pooler.dense``), so a
checkpoint maps onto it name by name (``minitransformer/pretrained.py``); the
task heads live in ``bert_heads.py``.

Two details make the numbers equal to Hugging Face's:
- BERT has no dropout on the feed-forward hidden activations (torch's
  TransformerEncoderLayer has one): the encoder is built with ``activation_dropout=0.0``.
- The [PAD] row of the word embeddings gets no gradient from the lookup
  (``torch.nn.Embedding(padding_idx=pad_token_id)``): positions holding
  ``pad_token_id`` send no gradient into ``word_embeddings.W``.

Ref: Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers
for Language Understanding", Section 3 and Figure 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .. import backend
from ..nn.activations import Tanh, get_activation
from ..nn.checks import check_array, check_ids, check_ndim
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding
from ..nn.encoder import Encoder
from ..nn.layernorm import LayerNorm
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.multihead import MultiHeadAttention
from ..nn.positional import LearnedPositionalEmbedding

__all__ = ["BertConfig", "BertEmbeddings", "BertModel", "BertModelOutput", "BertPooler", "init_bert_weights"]

# Keys of a Hugging Face config.json that change the model: we accept only the value we implement.
_FIXED = {"position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False,
          "tie_word_embeddings": True}
_PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")


@dataclass
class BertConfig:
    """Sizes and options of BERT, with Hugging Face's field names; defaults are bert-base-uncased."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    num_labels: int = 2
    classifier_dropout: float | None = None
    problem_type: str | None = None
    # minitransformer's own option (not a transformers field): what BertForSequenceClassification classifies,
    # "cls" = BERT's [CLS] pooler (the paper, Hugging Face), "mean" = the mean of the last hidden states over the
    # real tokens (how sentence-transformers models such as all-MiniLM-L6-v2 were trained); see bert_heads.py.
    classifier_pooling: str = "cls"

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size", "num_labels"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(f"BertConfig: hidden_size={self.hidden_size} must be divisible by "
                             f"num_attention_heads={self.num_attention_heads}")
        get_activation(self.hidden_act)  # raises ValueError naming the known activations
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            p = getattr(self, name)
            if p is not None and not 0.0 <= p < 1.0:
                raise ValueError(f"BertConfig.{name} must be in [0, 1), got {p}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"BertConfig.pad_token_id={self.pad_token_id} is not in [0, vocab_size={self.vocab_size})")
        if self.classifier_pooling not in ("cls", "mean"):
            raise ValueError(f"BertConfig.classifier_pooling must be 'cls' or 'mean', got {self.classifier_pooling!r}")
        if self.problem_type not in _PROBLEM_TYPES:
            raise ValueError(f"BertConfig.problem_type must be one of {_PROBLEM_TYPES}, got {self.problem_type!r}")

    def to_dict(self) -> dict:
        """The fields, plus ``model_type: "bert"`` (what a Hugging Face config.json carries)."""
        return {"model_type": "bert", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> BertConfig:
        """A config from a Hugging Face ``config.json`` dict.

        Bookkeeping keys (architectures, torch_dtype, transformers_version, use_cache, ...) are ignored;
        ``num_labels`` defaults to ``len(id2label)``. Raises ValueError for another ``model_type`` and for
        options this model does not implement (relative positions, decoder mode, untied MLM decoder).
        """
        model_type = d.get("model_type", "bert")
        if model_type != "bert":
            raise ValueError(f"config is for {model_type}, not bert")
        for key, value in _FIXED.items():
            if key in d and d[key] != value:
                raise ValueError(f"config sets {key}={d[key]!r}; this BertModel implements only {key}={value!r}")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if "num_labels" not in kwargs and isinstance(d.get("id2label"), dict):
            kwargs["num_labels"] = len(d["id2label"])
        return cls(**kwargs)


@dataclass
class BertModelOutput:
    """What ``BertModel.forward`` returns (Hugging Face's field names)."""

    last_hidden_state: object  # (B, T, hidden_size)
    pooler_output: object = None  # (B, hidden_size), None without a pooler
    hidden_states: tuple | None = None  # num_hidden_layers + 1 arrays (B, T, hidden_size): embeddings, each layer
    attentions: tuple | None = None  # num_hidden_layers arrays (B, n_heads, T, T)


def init_bert_weights(module: Module, config: BertConfig) -> None:
    """BERT's initialisation (as Hugging Face): weights ~ N(0, initializer_range), biases 0, LayerNorm 1 and 0.

    Draws from ``backend.host_rng()`` (one seed, one model on CPU and GPU), in module order.
    """
    rng, std = backend.host_rng(), config.initializer_range

    def normal(p):  # a Parameter redrawn in place, dtype and device kept
        p.data[...] = backend.asarray(rng.normal(0.0, std, p.shape), dtype=p.dtype)  # (*p.shape)

    for m in module.modules():
        if isinstance(m, (Linear, Embedding, LearnedPositionalEmbedding)):
            normal(m.W)
        if isinstance(m, Linear) and m.b is not None:
            m.b.data[...] = 0.0
        if isinstance(m, MultiHeadAttention):
            for W, b in ((m.W_q, m.b_q), (m.W_k, m.b_k), (m.W_v, m.b_v), (m.W_o, m.b_o)):
                normal(W)
                b.data[...] = 0.0


class BertEmbeddings(Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout.

    Args:
        config: a BertConfig.
        dtype: parameter dtype.

    Math:
        e = W_word[input_ids] + W_type[token_type_ids]     (B, T, hidden)
        e = e + W_pos[offset : offset + T]                 (B, T, hidden)
        y = dropout(LayerNorm(e))                          (B, T, hidden)
    """

    def __init__(self, config: BertConfig, dtype="float32"):
        super().__init__()
        c = config
        self.max_position_embeddings, self.pad_token_id = c.max_position_embeddings, c.pad_token_id
        self.word_embeddings = Embedding(c.vocab_size, c.hidden_size, dtype=dtype)
        self.position_embeddings = LearnedPositionalEmbedding(c.max_position_embeddings, c.hidden_size, dtype=dtype)
        self.token_type_embeddings = Embedding(c.type_vocab_size, c.hidden_size, dtype=dtype)
        self.LayerNorm = LayerNorm(c.hidden_size, eps=c.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None, position_offset: int = 0):
        """input_ids, token_type_ids: (B, T) int (token types default 0) -> (B, T, hidden_size)."""
        check_ndim(input_ids, 2, "BertEmbeddings input_ids", "(B, T)")
        B, T = input_ids.shape
        if position_offset + T > self.max_position_embeddings:
            raise ValueError(f"BertEmbeddings: sequence length {T} (from position {position_offset}) exceeds "
                             f"max_position_embeddings={self.max_position_embeddings}; truncate the input")
        if token_type_ids is None:
            token_type_ids = backend.get_array_module(input_ids).zeros((B, T), dtype=input_ids.dtype)  # (B, T)
        check_array(token_type_ids, "BertEmbeddings token_type_ids")
        if tuple(token_type_ids.shape) != (B, T):
            raise ValueError(f"BertEmbeddings token_type_ids: expected shape (B, T) = {(B, T)}, "
                             f"got {tuple(token_type_ids.shape)}")
        w = self.word_embeddings(input_ids)  # (B, T, hidden)
        t = self.token_type_embeddings(token_type_ids)  # (B, T, hidden)
        e = w + t  # (B, T, hidden)
        e = self.position_embeddings(e, position_offset)  # (B, T, hidden)  e + W_pos[offset : offset + T]
        e = self.LayerNorm(e)  # (B, T, hidden)
        y = self.dropout(e)  # (B, T, hidden)
        not_pad = None if self.pad_token_id is None else input_ids != self.pad_token_id  # (B, T) bool
        self._cache = (not_pad,)  # a tuple: None inside is "no [PAD] id", not "no forward"
        return y

    def backward(self, dy):
        """dy: (B, T, hidden) -> None (ids have no gradient); accumulates the embedding and LayerNorm grads."""
        (not_pad,) = self._pop_cache()
        de = self.dropout.backward(dy)  # (B, T, hidden)             inverts y = dropout(e)
        de = self.LayerNorm.backward(de)  # (B, T, hidden)           inverts e = LayerNorm(e)
        de = self.position_embeddings.backward(de)  # (B, T, hidden) inverts e = e + W_pos[...]: dx = de
        self.token_type_embeddings.backward(de)  # accumulates W_type  inverts t = W_type[token_type_ids]
        if not_pad is not None:
            de = de * not_pad[..., None]  # (B, T, hidden)  [PAD] positions send nothing (torch's padding_idx)
        self.word_embeddings.backward(de)  # accumulates W_word      inverts w = W_word[input_ids]
        return None


class BertPooler(Module):
    """``pooled = tanh(h[:, 0] @ W + b)``: the [CLS] token's final state through a dense layer and tanh.

    Args:
        hidden_size: model width.
        dtype: parameter dtype.
    """

    def __init__(self, hidden_size: int, dtype="float32"):
        super().__init__()
        self.dense = Linear(hidden_size, hidden_size, dtype=dtype)
        self.activation = Tanh()

    def forward(self, h):
        """h: (B, T, hidden) -> pooled: (B, hidden)."""
        check_ndim(h, 3, "BertPooler input", "(B, T, hidden)")
        x = h[:, 0]  # (B, hidden)  the first token, [CLS]
        z = self.dense(x)  # (B, hidden)
        pooled = self.activation(z)  # (B, hidden)
        self._cache = h.shape
        return pooled

    def backward(self, dpooled):
        """dpooled: (B, hidden) -> dh: (B, T, hidden), zero except at t = 0."""
        shape = self._pop_cache()
        dz = self.activation.backward(dpooled)  # (B, hidden)   inverts pooled = tanh(z)
        dx = self.dense.backward(dz)  # (B, hidden)             inverts z = dense(x)
        dh = backend.get_array_module(dx).zeros(shape, dtype=dx.dtype)  # (B, T, hidden)
        dh[:, 0] = dx  # (B, T, hidden)                         inverts x = h[:, 0]
        return dh


class PretrainedMixin:
    """``Model.from_pretrained(folder)`` and ``model.save_pretrained(folder)``, as in Hugging Face.

    Thin doors into ``minitransformer.pretrained`` (imported when called, so
    the models do not depend on the checkpoint code), so that the course
    text's ``BertForSequenceClassification.from_pretrained(...)`` reads the same here.
    """

    @classmethod
    def from_pretrained(cls, folder, **kwargs):
        """Load a Hugging Face-format folder (config.json + model.safetensors) into this class, in eval mode."""
        from ..pretrained import load_pretrained

        return load_pretrained(folder, cls, **kwargs)

    def save_pretrained(self, folder, tokenizer=None):
        """Write config.json + model.safetensors (+ the tokenizer's vocab) that transformers can load."""
        from ..pretrained import save_pretrained

        return save_pretrained(self, folder, tokenizer=tokenizer)


class BertModel(PretrainedMixin, Module):
    """The BERT encoder: embeddings, ``num_hidden_layers`` post-LN encoder layers, and the [CLS] pooler.

    Args:
        config: a BertConfig (or pass its fields as keyword arguments).
        add_pooling_layer: build the pooler (Hugging Face leaves it out of the MLM, token-classification
            and question-answering models).
        dtype: parameter dtype.

    Math:
        e = embeddings(input_ids, token_type_ids)
        h_i = layer_i(h_{i-1}, key_padding_mask = attention_mask == 0),  h_0 = e
        pooled = tanh(h_L[:, 0] @ W_pool + b_pool)

    Ref: Devlin et al. 2019, Section 3.
    """

    def __init__(self, config: BertConfig | None = None, add_pooling_layer: bool = True, dtype="float32", **kwargs):
        super().__init__()
        c = self.config = config or BertConfig(**kwargs)
        self.embeddings = BertEmbeddings(c, dtype=dtype)
        self.encoder = Encoder(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size,
                               dropout=c.hidden_dropout_prob, activation=c.hidden_act, norm_first=False,
                               final_norm=False, eps=c.layer_norm_eps, dtype=dtype,
                               attention_dropout=c.attention_probs_dropout_prob, activation_dropout=0.0)
        self.pooler = BertPooler(c.hidden_size, dtype=dtype) if add_pooling_layer else None
        init_bert_weights(self, c)
        if c.pad_token_id is not None:
            self.embeddings.word_embeddings.W.data[c.pad_token_id] = 0.0  # as torch's padding_idx

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states=False,
                output_attentions=False) -> BertModelOutput:
        """Encode a batch.

        Args:
            input_ids: (B, T) int token ids.
            attention_mask: (B, T), 1 = real token, 0 = padding (Hugging Face convention), or None.
            token_type_ids: (B, T) int segment ids (0 = sentence A, 1 = sentence B), or None for all 0.
            output_hidden_states: also return the embeddings and every layer's output.
            output_attentions: also return every layer's attention weights (B, n_heads, T, T).
        Returns:
            BertModelOutput: last_hidden_state (B, T, hidden), pooler_output (B, hidden) or None, ...
        """
        check_ndim(input_ids, 2, "BertModel input_ids", "(B, T)")
        check_ids(input_ids, self.config.vocab_size, "BertModel input_ids")
        B, T = input_ids.shape
        key_padding_mask = None
        if attention_mask is not None:
            check_array(attention_mask, "BertModel attention_mask")
            if tuple(attention_mask.shape) != (B, T):
                raise ValueError(f"BertModel attention_mask: expected shape (B, T) = {(B, T)} with 1 = token, "
                                 f"0 = padding, got {tuple(attention_mask.shape)}")
            key_padding_mask = attention_mask == 0  # (B, T) bool, True = padding
        h = self.embeddings(input_ids, token_type_ids)  # (B, T, hidden)
        hidden_states = [h]
        # The stack's layers are run one by one (Encoder.forward would hide the intermediate states).
        for layer in self.encoder.layers:
            h = layer(h, key_padding_mask=key_padding_mask, need_weights=output_attentions)  # (B, T, hidden)
            if output_hidden_states:  # kept only when asked for (each is (B, T, hidden))
                hidden_states.append(h)
        pooled = self.pooler(h) if self.pooler is not None else None  # (B, hidden)
        self._cache = h.shape
        attentions = tuple(layer.attn_weights for layer in self.encoder.layers) if output_attentions else None
        return BertModelOutput(h, pooled, tuple(hidden_states) if output_hidden_states else None, attentions)

    def backward(self, d_last_hidden_state=None, d_pooler_output=None):
        """Backpropagate the gradients of both outputs (None = zero); accumulates every parameter's grad.

        Args:
            d_last_hidden_state: (B, T, hidden) or None.
            d_pooler_output: (B, hidden) or None.
        Returns:
            None (token ids have no gradient).
        """
        shape = self._pop_cache()
        if d_pooler_output is not None and self.pooler is None:
            raise ValueError("BertModel.backward: d_pooler_output given, but this model has no pooler")
        if d_last_hidden_state is None and d_pooler_output is None:
            raise ValueError("BertModel.backward needs d_last_hidden_state, d_pooler_output or both")
        if d_last_hidden_state is not None and tuple(d_last_hidden_state.shape) != tuple(shape):
            raise ValueError(f"BertModel.backward: d_last_hidden_state must have shape {tuple(shape)}, "
                             f"got {tuple(d_last_hidden_state.shape)}")
        dh = d_last_hidden_state
        if d_pooler_output is not None:
            dh_pool = self.pooler.backward(d_pooler_output)  # (B, T, hidden)  inverts pooled = pooler(h)
            dh = dh_pool if dh is None else dh + dh_pool  # (B, T, hidden)   h feeds the output and the pooler
        for layer in reversed(self.encoder.layers):
            dh = layer.backward(dh)  # (B, T, hidden)                         inverts h = layer(h)
        self.embeddings.backward(dh)  # accumulates the embedding grads        inverts h = embeddings(input_ids)

    def __repr__(self) -> str:
        c = self.config
        return (f"BertModel(hidden={c.hidden_size}, layers={c.num_hidden_layers}, heads={c.num_attention_heads}, "
                f"vocab={c.vocab_size}, pooler={self.pooler is not None}, params={self.num_parameters():,})")
