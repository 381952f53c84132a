"""BERT's task heads: pre-training (masked LM + next sentence), masked LM, classification, question answering.

Each head holds a ``BertModel`` as ``bert`` plus its own layers, with Hugging
Face's attribute names (``cls.predictions.transform.dense``, ``classifier``,
``qa_outputs``) so checkpoints load by name. ``forward(..., labels=...)``
returns an output object whose ``.loss`` is a 0-d array; ``backward()`` then
backpropagates that loss into every parameter, or ``backward(dlogits)`` a given
upstream gradient.

The masked-LM decoder is tied to the word embeddings: ``logits = t @ W_word^T + bias``
uses the very ``Parameter`` of ``bert.embeddings.word_embeddings.W``, so its
gradient adds to the one from the embedding lookup (as the shared output
projection of ``models/transformer.py``).

Ref: Devlin et al. 2019, Section 3.1 (masked LM, next sentence prediction), Section 4 and Figure 4 (fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .. import backend
from ..nn.activations import get_activation
from ..nn.checks import check_array, check_ndim
from ..nn.dropout import Dropout
from ..nn.layernorm import LayerNorm
from ..nn.linear import Linear, linear_backward, linear_forward
from ..nn.losses import cross_entropy_backward, cross_entropy_forward
from ..nn.module import Module, Parameter
from .bert import BertConfig, BertModel, PretrainedMixin, init_bert_weights

__all__ = [
    "BertForMaskedLM", "BertForPreTraining", "BertForPreTrainingOutput", "BertForQuestionAnswering",
    "BertForSequenceClassification", "BertForTokenClassification", "BertLMPredictionHead", "BertOnlyMLMHead",
    "BertPreTrainingHeads", "BertPredictionHeadTransform", "MaskedLMOutput", "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput", "TokenClassifierOutput", "best_span",
]


@dataclass
class SequenceClassifierOutput:
    """A head's outputs (Hugging Face's names); logits (B, num_labels)."""

    loss: object = None  # () when labels were given
    logits: object = None
    hidden_states: tuple | None = None  # as BertModelOutput
    attentions: tuple | None = None


@dataclass
class TokenClassifierOutput(SequenceClassifierOutput):
    """logits (B, T, num_labels)."""


@dataclass
class MaskedLMOutput(SequenceClassifierOutput):
    """logits (B, T, vocab_size)."""


@dataclass
class BertForPreTrainingOutput:
    loss: object = None  # () masked-LM loss + next-sentence loss
    prediction_logits: object = None  # (B, T, vocab_size)
    seq_relationship_logits: object = None  # (B, 2)
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass
class QuestionAnsweringModelOutput:
    loss: object = None  # () (CE(start) + CE(end)) / 2
    start_logits: object = None  # (B, T)
    end_logits: object = None  # (B, T)
    hidden_states: tuple | None = None
    attentions: tuple | None = None


# -- losses besides cross-entropy (sequence classification): pure pairs, private to the heads ---------------


def _mse_forward(logits, labels):
    """Regression loss = mean((logits - labels)^2); logits, labels (B, C). Returns (loss (), diff (B, C))."""
    diff = logits - labels  # (B, C)
    loss = backend.get_array_module(diff).asarray((diff * diff).mean(), dtype=diff.dtype)  # ()
    return loss, diff


def _mse_backward(dloss, diff):
    """dlogits = 2 (logits - labels) / N * dloss, (B, C)."""
    return (2.0 * float(dloss) / diff.size) * diff  # (B, C)  inverts loss = mean(diff^2)


def _bce_forward(logits, labels):
    """Multi-label loss = mean(max(z, 0) - z y + log(1 + exp(-|z|))) (stable BCE with logits), z, y (B, C)."""
    xp = backend.get_array_module(logits)
    per = xp.maximum(logits, 0.0) - logits * labels + xp.log1p(xp.exp(-xp.abs(logits)))  # (B, C)
    return xp.asarray(per.mean(), dtype=logits.dtype), (logits, labels)  # ()


def _bce_backward(dloss, cache):
    """dlogits = (sigmoid(z) - y) / N * dloss, (B, C)."""
    z, y = cache
    sigmoid = 0.5 * (1.0 + backend.get_array_module(z).tanh(0.5 * z))  # (B, C)  stable sigmoid
    return (float(dloss) / z.size) * (sigmoid - y)  # (B, C)  inverts loss = mean(BCE(z, y))


class MeanPoolCache(NamedTuple):
    w: object  # (B, T) weight of each position: mask / (number of real tokens of its row), 0 at padding


def _mean_pool_forward(h, attention_mask=None):
    """Mean of the token states over the real tokens: h (B, T, hidden), attention_mask (B, T) or None.

    Returns (pooled (B, hidden), cache). Padding positions get weight 0, so extra padding changes nothing;
    a row without a real token gives zeros, not 0 / 0. (Sentence-BERT's MEAN pooling: Reimers and
    Gurevych 2019, Section 3; how all-MiniLM-L6-v2 was trained.)

    Math:
        n[b] = max(sum_t mask[b, t], 1),  w[b, t] = mask[b, t] / n[b]
        pooled[b] = sum_t w[b, t] h[b, t]
    """
    xp = backend.get_array_module(h)
    if attention_mask is None:
        m = xp.ones(h.shape[:2], dtype=h.dtype)  # (B, T) every position is a real token
    else:
        m = (attention_mask != 0).astype(h.dtype)  # (B, T) 1.0 = token, 0.0 = padding
    n = xp.maximum(m.sum(axis=1, keepdims=True), 1.0)  # (B, 1) real tokens per row (at least 1)
    w = m / n  # (B, T)
    pooled = (w[:, None, :] @ h)[:, 0, :]  # (B, hidden)  one batched matmul: (B, 1, T) @ (B, T, hidden)
    return pooled, MeanPoolCache(w)


def _mean_pool_backward(dpooled, cache: MeanPoolCache):
    """dh[b, t] = w[b, t] dpooled[b]: (B, hidden) -> (B, T, hidden), zero at padding."""
    return cache.w[:, :, None] * dpooled[:, None, :]  # (B, T, hidden)  inverts pooled[b] = sum_t w[b, t] h[b, t]


def _check_labels(labels, shape, what: str, dims: str) -> None:
    check_array(labels, what)
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(f"{what}: expected shape {dims} = {tuple(shape)}, got {tuple(labels.shape)}")


class _Head(PretrainedMixin, Module):
    """What every head shares: the loss terms kept for ``backward()`` and the upstream-gradient choice."""

    _loss_terms = None  # [(backward function, cache, weight)] of the last forward with labels

    def _upstream(self, given: tuple) -> tuple:
        """The given output gradients, or, when all are None, the gradients of the last loss (one per output)."""
        if any(g is not None for g in given):
            self._loss_terms = None
            return given
        if self._loss_terms is None:
            raise RuntimeError(f"{type(self).__name__}.backward() without output gradients needs a forward "
                               "with labels first")
        grads = tuple(fn(weight, cache) for fn, cache, weight in self._loss_terms)  # dloss/doutput_i
        self._loss_terms = None
        return grads

    def _bert(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions):
        self._cache = ()  # children hold the caches; this marks "forward ran"
        self._loss_terms = None
        return self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)


# -- the masked-LM and next-sentence parts ---------------------------------------------------------------------


class BertPredictionHeadTransform(Module):
    """``t = LayerNorm(activation(h @ W + b))``, the masked-LM head's first layer."""

    def __init__(self, config: BertConfig, dtype="float32"):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, dtype=dtype)
        self.activation = get_activation(config.hidden_act)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)

    def forward(self, h):
        """h: (..., hidden) -> t: (..., hidden)."""
        z = self.dense(h)  # (..., hidden)
        a = self.activation(z)  # (..., hidden)
        return self.LayerNorm(a)  # (..., hidden)

    def backward(self, dt):
        """dt: (..., hidden) -> dh: (..., hidden)."""
        da = self.LayerNorm.backward(dt)  # (..., hidden)   inverts t = LayerNorm(a)
        dz = self.activation.backward(da)  # (..., hidden)  inverts a = activation(z)
        return self.dense.backward(dz)  # (..., hidden)     inverts z = dense(h)


class BertLMPredictionHead(Module):
    """Masked-LM scores ``logits = transform(h) @ decoder^T + bias`` over the vocabulary.

    Args:
        config: a BertConfig.
        decoder: the (vocab_size, hidden) Parameter to decode with: the word embeddings' ``W`` when tied
            (the heads pass it); None creates an untied one.
        dtype: parameter dtype.
    """

    def __init__(self, config: BertConfig, decoder: Parameter | None = None, dtype="float32"):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config, dtype=dtype)
        if decoder is None:
            decoder = Parameter(backend.asarray(backend.host_rng().normal(
                0.0, config.initializer_range, (config.vocab_size, config.hidden_size)), dtype=dtype))
        self.decoder = decoder  # (vocab_size, hidden)
        self.bias = Parameter(backend.xp().zeros((config.vocab_size,), dtype=dtype))  # (vocab_size,)

    def forward(self, h):
        """h: (B, T, hidden) -> logits: (B, T, vocab_size)."""
        t = self.transform(h)  # (B, T, hidden)
        logits, self._cache = linear_forward(t, self.decoder.data.T, self.bias.data)  # (B, T, vocab_size)
        return logits

    def backward(self, dlogits):
        """dlogits: (B, T, vocab_size) -> dh: (B, T, hidden); adds into decoder.grad (the tied W) and bias.grad."""
        dt, dWT, dbias = linear_backward(dlogits, self._pop_cache())  # (B, T, hidden)  inverts t @ decoder^T + bias
        self.decoder.grad += dWT.T  # (vocab_size, hidden)   the decoder use of the (tied) matrix
        self.bias.grad += dbias  # (vocab_size,)
        return self.transform.backward(dt)  # (B, T, hidden)  inverts t = transform(h)


class BertOnlyMLMHead(Module):
    """``cls`` of BertForMaskedLM: just ``predictions``."""

    def __init__(self, config: BertConfig, decoder: Parameter | None = None, dtype="float32"):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, decoder, dtype=dtype)

    def forward(self, h):
        """h: (B, T, hidden) -> logits: (B, T, vocab_size)."""
        return self.predictions(h)  # (B, T, vocab_size)

    def backward(self, dlogits):
        """dlogits: (B, T, vocab_size) -> dh: (B, T, hidden)."""
        return self.predictions.backward(dlogits)  # (B, T, hidden)  inverts logits = predictions(h)


class BertPreTrainingHeads(Module):
    """``cls`` of BertForPreTraining: masked-LM ``predictions`` on every token, ``seq_relationship`` on the pooler."""

    def __init__(self, config: BertConfig, decoder: Parameter | None = None, dtype="float32"):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, decoder, dtype=dtype)
        self.seq_relationship = Linear(config.hidden_size, 2, dtype=dtype)

    def forward(self, h, pooled):
        """h: (B, T, hidden), pooled: (B, hidden) -> (prediction logits (B, T, vocab_size), NSP logits (B, 2))."""
        return self.predictions(h), self.seq_relationship(pooled)

    def backward(self, dprediction_logits, dseq_relationship_logits):
        """-> (dh (B, T, hidden), dpooled (B, hidden)); a None gradient skips its branch (and gives None)."""
        dh = dpooled = None
        if dprediction_logits is not None:
            dh = self.predictions.backward(dprediction_logits)  # (B, T, hidden)  inverts predictions(h)
        if dseq_relationship_logits is not None:
            dpooled = self.seq_relationship.backward(dseq_relationship_logits)  # (B, hidden)  inverts seq_rel.(pooled)
        return dh, dpooled


# -- the models ------------------------------------------------------------------------------------------------


class BertForPreTraining(_Head):
    """BERT with both pre-training heads. Loss = masked-LM cross-entropy (labels -100 ignored) + next-sentence CE.

    Args:
        config: a BertConfig (or its fields as keyword arguments).
        dtype: parameter dtype.

    Math:
        h, pooled = bert(input_ids)
        prediction_logits = LayerNorm(gelu(h @ W_t + b_t)) @ W_word^T + bias     (B, T, vocab_size)
        seq_relationship_logits = pooled @ W_nsp + b_nsp                          (B, 2)
        loss = CE(prediction_logits, labels) + CE(seq_relationship_logits, next_sentence_label)

    Ref: Devlin et al. 2019, Section 3.1 (Task #1: Masked LM, Task #2: Next Sentence Prediction).
    """

    def __init__(self, config: BertConfig | None = None, dtype="float32", **kwargs):
        super().__init__()
        c = self.config = config or BertConfig(**kwargs)
        self.bert = BertModel(c, dtype=dtype)
        self.cls = BertPreTrainingHeads(c, self.bert.embeddings.word_embeddings.W, dtype=dtype)
        init_bert_weights(self.cls, c)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, next_sentence_label=None,
                output_hidden_states=False, output_attentions=False) -> BertForPreTrainingOutput:
        """labels: (B, T) token ids or -100; next_sentence_label: (B,) 0 = B follows A, 1 = random. Both or neither."""
        if (labels is None) != (next_sentence_label is None):
            raise ValueError("BertForPreTraining: pass both labels (B, T) and next_sentence_label (B,), or neither")
        if labels is not None:
            _check_labels(labels, input_ids.shape, "BertForPreTraining labels", "(B, T)")
            _check_labels(next_sentence_label, input_ids.shape[:1], "BertForPreTraining next_sentence_label", "(B,)")
        out = self._bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        prediction_logits, seq_logits = self.cls(out.last_hidden_state, out.pooler_output)  # (B, T, V), (B, 2)
        loss = None
        if labels is not None:
            mlm, mlm_cache = cross_entropy_forward(prediction_logits, labels)  # ()
            nsp, nsp_cache = cross_entropy_forward(seq_logits, next_sentence_label)  # ()
            loss = backend.get_array_module(mlm).asarray(mlm + nsp)  # ()  a 0-d array, not a NumPy scalar
            self._loss_terms = [(cross_entropy_backward, mlm_cache, 1.0), (cross_entropy_backward, nsp_cache, 1.0)]
        return BertForPreTrainingOutput(loss, prediction_logits, seq_logits, out.hidden_states, out.attentions)

    def backward(self, dprediction_logits=None, dseq_relationship_logits=None):
        """Backpropagate the last loss, or the given logits gradients (None = zero)."""
        self._pop_cache()
        dpred, dseq = self._upstream((dprediction_logits, dseq_relationship_logits))
        dh, dpooled = self.cls.backward(dpred, dseq)  # (B, T, hidden), (B, hidden)  inverts cls(h, pooled)
        self.bert.backward(dh, dpooled)  # every BERT parameter        inverts h, pooled = bert(input_ids)


class BertForMaskedLM(_Head):
    """BERT (no pooler) with the masked-LM head. Loss = cross-entropy over labels != -100.

    Math:
        logits = LayerNorm(gelu(h @ W_t + b_t)) @ W_word^T + bias     (B, T, vocab_size)
        loss = sum over labels != -100 of -log softmax(logits)[label] / (number of such labels)
    """

    def __init__(self, config: BertConfig | None = None, dtype="float32", **kwargs):
        super().__init__()
        c = self.config = config or BertConfig(**kwargs)
        self.bert = BertModel(c, add_pooling_layer=False, dtype=dtype)
        self.cls = BertOnlyMLMHead(c, self.bert.embeddings.word_embeddings.W, dtype=dtype)
        init_bert_weights(self.cls, c)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False) -> MaskedLMOutput:
        """input_ids, labels: (B, T) -> logits (B, T, vocab_size)."""
        if labels is not None:
            _check_labels(labels, input_ids.shape, "BertForMaskedLM labels", "(B, T)")
        out = self._bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        logits = self.cls(out.last_hidden_state)  # (B, T, vocab_size)
        loss = None
        if labels is not None:
            loss, cache = cross_entropy_forward(logits, labels)  # ()
            self._loss_terms = [(cross_entropy_backward, cache, 1.0)]
        return MaskedLMOutput(loss, logits, out.hidden_states, out.attentions)

    def backward(self, dlogits=None):
        """Backpropagate the last loss, or dlogits (B, T, vocab_size)."""
        self._pop_cache()
        (dlogits,) = self._upstream((dlogits,))
        dh = self.cls.backward(dlogits)  # (B, T, hidden)  inverts logits = cls(h)
        self.bert.backward(dh)  # every BERT parameter    inverts h = bert(input_ids)


class BertForSequenceClassification(_Head):
    """``logits = classifier(dropout(pooler_output))``, (B, num_labels).

    Loss as Hugging Face: ``config.problem_type``, or inferred: regression (MSE) when num_labels == 1,
    single-label cross-entropy for integer labels (B,), multi-label BCE-with-logits for float labels (B, num_labels).

    ``config.classifier_pooling = "mean"`` (minitransformer's option, not in transformers) classifies the mean of
    the last hidden states over the real tokens instead of the [CLS] pooler (``_mean_pool_forward``), the sentence
    vector a sentence-transformers encoder was trained to produce; the pooler's weights are then kept but unused.

    Math:
        pooled = tanh(h[:, 0] @ W_pool + b_pool)                 "cls" (default)
        pooled = sum_t mask[:, t] h[:, t] / sum_t mask[:, t]     "mean"
        logits = dropout(pooled) @ W_cls + b_cls
        single label: loss = mean_b -log softmax(logits_b)[labels_b]
        regression:   loss = mean (logits - labels)^2
        multi-label:  loss = mean max(z, 0) - z y + log(1 + exp(-|z|)),  z = logits, y = labels

    Ref: Devlin et al. 2019, Section 4.1 (GLUE: a classification layer on the [CLS] representation).
    """

    def __init__(self, config: BertConfig | None = None, dtype="float32", **kwargs):
        super().__init__()
        c = self.config = config or BertConfig(**kwargs)
        self.bert = BertModel(c, dtype=dtype)
        self.mean_pooling = c.classifier_pooling == "mean"
        self._pool_cache = None  # MeanPoolCache of the last forward, with mean pooling
        self.dropout = Dropout(c.hidden_dropout_prob if c.classifier_dropout is None else c.classifier_dropout)
        self.classifier = Linear(c.hidden_size, c.num_labels, dtype=dtype)
        init_bert_weights(self.classifier, c)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False) -> SequenceClassifierOutput:
        """input_ids: (B, T), labels: (B,) int, or float (B,) / (B, num_labels) -> logits (B, num_labels)."""
        out = self._bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        if self.mean_pooling:
            pooled, self._pool_cache = _mean_pool_forward(out.last_hidden_state, attention_mask)  # (B, hidden)
        else:
            pooled = out.pooler_output  # (B, hidden)  tanh(h[:, 0] @ W_pool + b_pool)
        x = self.dropout(pooled)  # (B, hidden)
        logits = self.classifier(x)  # (B, num_labels)
        loss = None
        if labels is not None:
            loss, term = self._loss(logits, labels)  # ()
            self._loss_terms = [term]
        return SequenceClassifierOutput(loss, logits, out.hidden_states, out.attentions)

    def _loss(self, logits, labels):
        B, C = logits.shape
        check_array(labels, "BertForSequenceClassification labels")
        problem = self.config.problem_type or (
            "regression" if C == 1 else "single_label_classification" if labels.dtype.kind in "iu"
            else "multi_label_classification")
        if problem == "single_label_classification":
            _check_labels(labels, (B,), "BertForSequenceClassification labels", "(B,) class ids")
            loss, cache = cross_entropy_forward(logits, labels)  # ()
            return loss, (cross_entropy_backward, cache, 1.0)
        if C == 1 and labels.ndim == 1:
            labels = labels[:, None]  # (B, 1)  as torch's squeeze of both sides
        _check_labels(labels, (B, C), f"BertForSequenceClassification labels ({problem})", "(B, num_labels)")
        labels = labels.astype(logits.dtype)  # (B, C)  the loss stays in the logits' dtype
        if problem == "regression":
            loss, cache = _mse_forward(logits, labels)  # ()
            return loss, (_mse_backward, cache, 1.0)
        loss, cache = _bce_forward(logits, labels)  # ()
        return loss, (_bce_backward, cache, 1.0)

    def backward(self, dlogits=None):
        """Backpropagate the last loss, or dlogits (B, num_labels)."""
        self._pop_cache()
        (dlogits,) = self._upstream((dlogits,))
        dx = self.classifier.backward(dlogits)  # (B, hidden)   inverts logits = classifier(x)
        dpooled = self.dropout.backward(dx)  # (B, hidden)      inverts x = dropout(pooled)
        if self.mean_pooling:
            dh = _mean_pool_backward(dpooled, self._pool_cache)  # (B, T, hidden)  inverts pooled = mean_pool(h)
            self._pool_cache = None
            self.bert.backward(dh, None)  # every BERT parameter but the pooler   inverts h = bert(input_ids)
        else:
            self.bert.backward(None, dpooled)  # every BERT parameter   inverts pooled = bert(input_ids).pooler_output


class BertForTokenClassification(_Head):
    """``logits = classifier(dropout(last_hidden_state))``, (B, T, num_labels); loss = CE over labels != -100.

    Math:
        logits[b, t] = dropout(h[b, t]) @ W_cls + b_cls

    Ref: Devlin et al. 2019, Section 5.3 (named entity recognition: one classifier per token).
    """

    def __init__(self, config: BertConfig | None = None, dtype="float32", **kwargs):
        super().__init__()
        c = self.config = config or BertConfig(**kwargs)
        self.bert = BertModel(c, add_pooling_layer=False, dtype=dtype)
        self.dropout = Dropout(c.hidden_dropout_prob if c.classifier_dropout is None else c.classifier_dropout)
        self.classifier = Linear(c.hidden_size, c.num_labels, dtype=dtype)
        init_bert_weights(self.classifier, c)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False) -> TokenClassifierOutput:
        """input_ids, labels: (B, T) -> logits (B, T, num_labels)."""
        if labels is not None:
            _check_labels(labels, input_ids.shape, "BertForTokenClassification labels", "(B, T)")
        out = self._bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        x = self.dropout(out.last_hidden_state)  # (B, T, hidden)
        logits = self.classifier(x)  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss, cache = cross_entropy_forward(logits, labels)  # ()
            self._loss_terms = [(cross_entropy_backward, cache, 1.0)]
        return TokenClassifierOutput(loss, logits, out.hidden_states, out.attentions)

    def backward(self, dlogits=None):
        """Backpropagate the last loss, or dlogits (B, T, num_labels)."""
        self._pop_cache()
        (dlogits,) = self._upstream((dlogits,))
        dx = self.classifier.backward(dlogits)  # (B, T, hidden)  inverts logits = classifier(x)
        dh = self.dropout.backward(dx)  # (B, T, hidden)          inverts x = dropout(h)
        self.bert.backward(dh)  # every BERT parameter           inverts h = bert(input_ids)


def best_span(start_logits, end_logits, max_answer_len: int = 30, mask=None):
    """The answer span with the highest score start_logits[s] + end_logits[e], s <= e < s + max_answer_len.

    Args:
        start_logits, end_logits: (B, T).
        max_answer_len: longest answer, in tokens.
        mask: (B, T) bool, True = the token may be part of the answer (e.g. the context), or None for all.
    Returns:
        starts (B,), ends (B,) int token positions (inclusive), scores (B,).

    Math:
        S[b, s, e] = start_logits[b, s] + end_logits[b, e]   over allowed (s, e); argmax per example
    """
    check_ndim(start_logits, 2, "best_span start_logits", "(B, T)")
    if tuple(end_logits.shape) != tuple(start_logits.shape):
        raise ValueError(f"best_span: end_logits shape {tuple(end_logits.shape)} != start_logits shape "
                         f"{tuple(start_logits.shape)}")
    if int(max_answer_len) < 1:
        raise ValueError(f"best_span: max_answer_len must be >= 1, got {max_answer_len}")
    xp = backend.get_array_module(start_logits)
    B, T = start_logits.shape
    s, e = xp.arange(T)[:, None], xp.arange(T)[None, :]  # (T, 1), (1, T)
    allowed = ((e >= s) & (e - s < int(max_answer_len)))[None]  # (1, T, T)
    if mask is not None:
        _check_labels(mask, (B, T), "best_span mask", "(B, T)")
        mask = mask.astype(bool)  # (B, T)
        allowed = allowed & mask[:, :, None] & mask[:, None, :]  # (B, T, T)
    allowed = xp.broadcast_to(allowed, (B, T, T))  # (B, T, T)
    empty = ~allowed.reshape(B, -1).any(axis=1)  # (B,)
    if bool(empty.any()):
        raise ValueError(f"best_span: no allowed span in example(s) {backend.to_numpy(xp.nonzero(empty)[0]).tolist()}")
    S = start_logits[:, :, None] + end_logits[:, None, :]  # (B, T, T)  score of the span (s, e)
    S = xp.where(allowed, S, -float("inf")).reshape(B, T * T)  # (B, T*T)
    flat = S.argmax(axis=1)  # (B,)
    return flat // T, flat % T, S[xp.arange(B), flat]  # (B,), (B,), (B,)


class BertForQuestionAnswering(_Head):
    """Extractive QA: ``qa_outputs`` (Linear(hidden, 2)) gives start and end logits per token.

    Loss (Hugging Face): positions outside [0, T) are clamped to T and ignored;
    loss = (CE(start_logits, start_positions) + CE(end_logits, end_positions)) / 2.

    Math:
        start_logits[b, t], end_logits[b, t] = h[b, t] @ W_qa + b_qa        (W_qa: (hidden, 2))
        P_start = softmax over t of start_logits; likewise P_end

    Ref: Devlin et al. 2019, Section 4.2 (SQuAD: a start vector S and an end vector E).
    """

    best_span = staticmethod(best_span)

    def __init__(self, config: BertConfig | None = None, dtype="float32", **kwargs):
        super().__init__()
        c = self.config = config or BertConfig(**kwargs)
        self.bert = BertModel(c, add_pooling_layer=False, dtype=dtype)
        self.qa_outputs = Linear(c.hidden_size, 2, dtype=dtype)
        init_bert_weights(self.qa_outputs, c)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None, end_positions=None,
                output_hidden_states=False, output_attentions=False) -> QuestionAnsweringModelOutput:
        """input_ids: (B, T), start_positions, end_positions: (B,) -> start_logits, end_logits (B, T)."""
        if (start_positions is None) != (end_positions is None):
            raise ValueError("BertForQuestionAnswering: pass both start_positions and end_positions (B,), or neither")
        positions = {}
        if start_positions is not None:
            for what, p in (("start", start_positions), ("end", end_positions)):
                check_array(p, f"BertForQuestionAnswering {what}_positions")
                p = p.reshape(-1) if p.ndim == 2 and p.shape[1] == 1 else p  # (B,)  accept (B, 1) as HF
                _check_labels(p, input_ids.shape[:1], f"BertForQuestionAnswering {what}_positions", "(B,)")
                positions[what] = p
        out = self._bert(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        logits = self.qa_outputs(out.last_hidden_state)  # (B, T, 2)
        start_logits, end_logits = logits[..., 0], logits[..., 1]  # (B, T), (B, T)
        loss = None
        if positions:
            T = input_ids.shape[1]
            xp = backend.get_array_module(logits)
            start = xp.clip(positions["start"], 0, T)  # (B,)  outside the input -> T, the ignored index
            end = xp.clip(positions["end"], 0, T)  # (B,)
            start_loss, start_cache = cross_entropy_forward(start_logits, start, ignore_index=T)  # ()
            end_loss, end_cache = cross_entropy_forward(end_logits, end, ignore_index=T)  # ()
            loss = xp.asarray((start_loss + end_loss) / 2.0, dtype=logits.dtype)  # ()
            self._loss_terms = [(cross_entropy_backward, start_cache, 0.5), (cross_entropy_backward, end_cache, 0.5)]
        return QuestionAnsweringModelOutput(loss, start_logits, end_logits, out.hidden_states, out.attentions)

    def backward(self, dstart_logits=None, dend_logits=None):
        """Backpropagate the last loss, or the given (B, T) gradients (None = zero)."""
        self._pop_cache()
        dstart, dend = self._upstream((dstart_logits, dend_logits))
        xp = backend.get_array_module(dstart if dstart is not None else dend)
        ref = dstart if dstart is not None else dend
        dstart = xp.zeros_like(ref) if dstart is None else dstart  # (B, T)
        dend = xp.zeros_like(ref) if dend is None else dend  # (B, T)
        dlogits = xp.stack([dstart, dend], axis=-1)  # (B, T, 2)    inverts start, end = logits[..., 0], [..., 1]
        dh = self.qa_outputs.backward(dlogits)  # (B, T, hidden)  inverts logits = qa_outputs(h)
        self.bert.backward(dh)  # every BERT parameter           inverts h = bert(input_ids)
