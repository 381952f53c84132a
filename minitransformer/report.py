"""The gradient-check report: every op and every module, checked in float64 on hard cases.

Each case below builds a tiny float64 problem that catches the bugs people
actually make (batch > 1, several heads, query length != key length, padding
and causal masks together, random LayerNorm gamma, dropout replayed from the
same seed) and returns a ``CheckResult`` from ``check_op`` (a pure
forward/backward pair) or ``check_module`` (a Module: its inputs and every
parameter); a model's case checks its training loss against every parameter.
``run_report()`` runs them, ops first, then modules, then models, and prints
a row as each one finishes; ``minitransformer gradcheck`` prints the table.

A case whose layer is not importable (not written yet, or an API that moved)
is skipped with a note instead of breaking the report. A case that raises is
a failure, reported with its error.

Names: an op is named after its function without ``_forward`` (``linear``,
``softmax``); a module or model after its class (``Linear``, ``Transformer``).
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import backend
from .gradcheck import CheckResult, check_module, check_op

__all__ = ["CASES", "Case", "Report", "case_names", "find_cases", "missing_requirements", "run_report"]

NN = "minitransformer.nn"


@dataclass(frozen=True)
class Case:
    """One named gradient check.

    ``covers`` lists what the case proves correct (``*_forward`` functions and
    Module classes of ``module``); ``requires`` lists every ``"module:name"``
    the case needs, so a missing one is a skip with a note, not a crash.
    """

    name: str
    group: str  # "ops", "modules" or "models"
    module: str  # dotted module path, e.g. "minitransformer.nn.linear"
    covers: tuple[str, ...]
    requires: tuple[str, ...]
    build: Callable[[], CheckResult]
    what: str  # one line: what makes the case hard


CASES: list[Case] = []


GROUPS = ("ops", "modules", "models")


def _case(group: str, name: str, module: str, covers: tuple[str, ...], also: tuple[str, ...] = ()):
    """Register the decorated function as a case.

    ``module`` is the file in minitransformer/nn (minitransformer/models for
    the models group) without ``.py``; ``also`` lists other names the case
    needs: ``"name"`` in the same module or ``"module:name"``.
    """
    package = "minitransformer.models" if group == "models" else NN

    def register(fn: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        path = f"{package}.{module}"
        requires = tuple(f"{path}:{c}" for c in covers) + tuple(
            f"{package}.{a}" if ":" in a else f"{path}:{a}" for a in also
        )
        what = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        CASES.append(Case(name, group, path, covers, requires, fn, what))
        return fn

    return register


def _op(name, module, covers, also=()):
    return _case("ops", name, module, covers, also)


def _mod(name, module, covers, also=()):
    return _case("modules", name, module, covers, also)


def _model(name, module, covers, also=()):
    return _case("models", name, module, covers, also)


def _get(ref: str):
    """Import ``"package.module:name"`` and return the attribute."""
    path, _, attr = ref.partition(":")
    return getattr(importlib.import_module(path), attr)


def _randn(seed: int, *shape, scale: float = 1.0):
    """A float64 standard-normal array on the active backend (host generator: same on CPU and GPU)."""
    return backend.asarray(scale * backend.host_rng(seed).standard_normal(shape), dtype="float64")


def _keep_mask(lengths, T_q: int, T_k: int, causal: bool):
    """Boolean keep-mask (B, 1, T_q, T_k): key j < lengths[b] (padding) and, if causal, j <= i."""
    xp = backend.xp()
    j = xp.arange(T_k)  # (T_k,)
    keep = j[None, None, None, :] < xp.asarray(lengths)[:, None, None, None]  # (B, 1, 1, T_k)
    if causal:
        i = xp.arange(T_q)  # (T_q,)
        keep = keep & (j[None, :] <= i[:, None])[None, None]  # (B, 1, T_q, T_k)
    return xp.broadcast_to(keep, (len(lengths), 1, T_q, T_k)).copy()  # (B, 1, T_q, T_k)


def _merge(name: str, parts: dict[str, CheckResult]) -> CheckResult:
    """One result from several checks of one layer (e.g. two settings): errors prefixed by the part's label."""
    first = next(iter(parts.values()))
    merged = CheckResult(name, first.shapes, tol=max(r.tol for r in parts.values()),
                         atol=max(r.atol for r in parts.values()))
    for label, r in parts.items():
        merged.errors.update({f"{label}{k}": v for k, v in r.errors.items()})
        merged.abs_errors.update({f"{label}{k}": v for k, v in r.abs_errors.items()})
    return merged


def _randomize_norms(module, seed: int = 100):
    """Random (not unit) gamma and (not zero) beta in every LayerNorm of ``module``: unit gamma hides bugs."""
    for i, m in enumerate(module.modules()):
        if type(m).__name__ == "LayerNorm":
            d = m.gamma.data.shape[0]
            m.gamma.data[...] = 1.0 + 0.5 * _randn(seed + 2 * i, d)  # (d_model,)
            m.beta.data[...] = 0.5 * _randn(seed + 2 * i + 1, d)  # (d_model,)
    return module


def _ids(seed: int, high: int, *shape):
    """Integer token ids in [0, high) on the active backend."""
    return backend.asarray(backend.host_rng(seed).integers(0, high, shape))


def _bool(values):
    return backend.asarray(values, dtype=bool)


# ---------------------------------------------------------------------------
# ops: the pure forward/backward pairs (every float argument is checked)
# ---------------------------------------------------------------------------


@_op("linear", "linear", ("linear_forward",))
def _linear():
    """batched (B, T, d_in) input, bias"""
    m = importlib.import_module(f"{NN}.linear")
    x, W, b = _randn(1, 2, 3, 4), _randn(2, 4, 5), _randn(3, 5)
    return check_op(m.linear_forward, m.linear_backward, (x, W, b))


@_op("relu", "activations", ("relu_forward",))
def _relu():
    """inputs kept away from the kink at 0"""
    m = importlib.import_module(f"{NN}.activations")
    x = _randn(4, 2, 3, 5)  # (B, T, d)
    xp = backend.get_array_module(x)
    x = xp.where(xp.abs(x) < 0.05, 0.5, x)  # (B, T, d)  finite differences across the kink are meaningless
    return check_op(m.relu_forward, m.relu_backward, (x,))


@_op("gelu", "activations", ("gelu_forward",))
def _gelu():
    """exact (erf) and tanh forms, negative and positive inputs"""
    m = importlib.import_module(f"{NN}.activations")
    x = _randn(5, 2, 3, 5, scale=2.0)  # (B, T, d)
    return _merge("gelu", {
        "": check_op(m.gelu_forward, m.gelu_backward, (x,)),
        "tanh ": check_op(m.gelu_forward, m.gelu_backward, (x,), kwargs={"approximate": "tanh"}),
    })


@_op("tanh", "tanh", ("tanh_forward",))
def _tanh():
    """saturated and linear regions"""
    m = importlib.import_module(f"{NN}.tanh")
    return check_op(m.tanh_forward, m.tanh_backward, (_randn(56, 2, 3, 5, scale=2.0),))


@_op("softmax", "softmax", ("softmax_forward",))
def _softmax():
    """padding + causal keep-mask, one fully masked row"""
    m = importlib.import_module(f"{NN}.softmax")
    x = _randn(6, 2, 2, 3, 4, scale=2.0)  # (B, n_heads, T_q, T_k) scores
    mask = _keep_mask([4, 2], 3, 4, causal=True)  # (B, 1, T_q, T_k)
    mask[1, :, 2, :] = False  # a fully masked row must give zeros, and zero gradient
    return check_op(m.softmax_forward, m.softmax_backward, (x,), kwargs={"mask": mask})


@_op("log_softmax", "softmax", ("log_softmax_forward",))
def _log_softmax():
    """large logits (stability)"""
    m = importlib.import_module(f"{NN}.softmax")
    x = _randn(7, 2, 3, 6, scale=5.0) + 100.0  # (B, T, vocab_size) shifted: max-subtraction matters
    return check_op(m.log_softmax_forward, m.log_softmax_backward, (x,))


@_op("layernorm", "layernorm", ("layernorm_forward",))
def _layernorm():
    """random gamma and beta, inputs far from zero mean"""
    m = importlib.import_module(f"{NN}.layernorm")
    x = _randn(8, 2, 3, 5, scale=3.0) + 4.0  # (B, T, d_model)
    gamma = 1.0 + 0.5 * _randn(9, 5)  # (d_model,) not ones: unit gamma hides a missing factor
    beta = _randn(10, 5)  # (d_model,)
    return check_op(m.layernorm_forward, m.layernorm_backward, (x, gamma, beta))


@_op("dropout", "dropout", ("dropout_forward",))
def _dropout():
    """p = 0.3, the keep-mask given as data"""
    m = importlib.import_module(f"{NN}.dropout")
    x = _randn(12, 2, 3, 5)  # (B, T, d)
    keep = backend.asarray(backend.host_rng(13).random((2, 3, 5)) >= 0.3)  # (B, T, d) True = keep
    return check_op(m.dropout_forward, m.dropout_backward, (x, keep, 0.3))


@_op("embedding", "embedding", ("embedding_forward",))
def _embedding():
    """repeated ids (their gradients must add up)"""
    m = importlib.import_module(f"{NN}.embedding")
    ids = backend.asarray([[1, 3, 1, 0], [4, 1, 3, 3]])  # (B, T) 1 and 3 repeat
    return check_op(m.embedding_forward, m.embedding_backward, (ids, _randn(14, 6, 3)))


@_op("add_positions", "positional", ("add_positions_forward",))
def _add_positions():
    """one position vector per t, broadcast over the batch"""
    m = importlib.import_module(f"{NN}.positional")
    return check_op(m.add_positions_forward, m.add_positions_backward, (_randn(15, 3, 4, 5), _randn(16, 4, 5)))


@_op("scaled_dot_product_attention", "attention", ("scaled_dot_product_attention_forward",),
    also=("build_attention_mask", "causal_mask"))
def _attention():
    """B=2, 2 heads, Tq=3 != Tk=4, causal + left padding (a fully masked row), dropout"""
    m = importlib.import_module(f"{NN}.attention")
    B, n_heads, Tq, Tk, d_k, d_v = 2, 2, 3, 4, 3, 2
    Q = _randn(17, B, n_heads, Tq, d_k)  # (B, n_heads, Tq, d_k)
    K = _randn(18, B, n_heads, Tk, d_k)  # (B, n_heads, Tk, d_k)
    V = _randn(19, B, n_heads, Tk, d_v)  # (B, n_heads, Tk, d_v)
    padding = _bool([[False, False, False, True], [True, True, False, False]])  # (B, Tk) True = padding
    mask = m.build_attention_mask(B, Tq, Tk, key_padding_mask=padding, causal=True)  # (B, 1, Tq, Tk)
    keep = backend.asarray(backend.host_rng(20).random((B, n_heads, Tq, Tk)) >= 0.25)  # (B, n_heads, Tq, Tk)
    return check_op(m.scaled_dot_product_attention_forward, m.scaled_dot_product_attention_backward, (Q, K, V),
                    kwargs={"mask": mask, "dropout_mask": keep, "dropout_p": 0.25})


@_op("multi_head_attention", "multihead", ("multi_head_attention_forward",), also=("attention:build_attention_mask",))
def _multi_head_attention():
    """B=2, 2 heads, Tq=3 != Tk=4, separate query/key/value, causal + padding, dropout"""
    m = importlib.import_module(f"{NN}.multihead")
    attention = importlib.import_module(f"{NN}.attention")
    B, n_heads, Tq, Tk, d_model = 2, 2, 3, 4, 4
    query, key, value = _randn(40, B, Tq, d_model), _randn(41, B, Tk, d_model), _randn(42, B, Tk, d_model)
    W_q, W_k, W_v, W_o = (_randn(43 + i, d_model, d_model, scale=0.5) for i in range(4))  # (d_model, d_model)
    b_q, b_k, b_v, b_o = (_randn(47 + i, d_model) for i in range(4))  # (d_model,)
    padding = _bool([[False, False, False, True], [False, True, True, True]])  # (B, Tk) True = padding
    kwargs = {"mask": attention.build_attention_mask(B, Tq, Tk, key_padding_mask=padding, causal=True),
              "dropout_mask": backend.asarray(backend.host_rng(51).random((B, n_heads, Tq, Tk)) >= 0.2),
              "dropout_p": 0.2}
    args = (query, key, value, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o, n_heads)
    result = check_op(m.multi_head_attention_forward, m.multi_head_attention_backward, args, kwargs=kwargs)
    names = ("query", "key", "value", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o")  # arg i is args[i]
    rename = {f"arg{i}": n for i, n in enumerate(names)}
    result.errors = {rename[k]: v for k, v in result.errors.items()}
    result.abs_errors = {rename[k]: v for k, v in result.abs_errors.items()}
    return result


@_op("cross_entropy", "losses", ("cross_entropy_forward",))
def _cross_entropy():
    """ignored targets, with and without label smoothing"""
    m = importlib.import_module(f"{NN}.losses")
    logits = _randn(21, 2, 3, 5, scale=2.0)  # (B, T, C)
    targets = backend.asarray([[1, 4, -100], [0, -100, 2]])  # (B, T) -100 = ignored
    return _merge("cross_entropy", {
        "": check_op(m.cross_entropy_forward, m.cross_entropy_backward, (logits, targets)),
        "smoothed ": check_op(m.cross_entropy_forward, m.cross_entropy_backward, (logits, targets),
                              kwargs={"label_smoothing": 0.1}),
    })


# ---------------------------------------------------------------------------
# modules: inputs and every parameter
# ---------------------------------------------------------------------------


@_mod("Linear", "linear", ("Linear",))
def _linear_module():
    """input, W and b"""
    m = importlib.import_module(f"{NN}.linear")
    backend.manual_seed(0)
    layer = m.Linear(4, 5).to(dtype="float64")
    return check_module(layer, (_randn(11, 2, 3, 4),))


@_mod("ReLU", "activations", ("ReLU",))
def _relu_module():
    """inputs kept away from the kink at 0"""
    m = importlib.import_module(f"{NN}.activations")
    x = _randn(22, 2, 3, 5)  # (B, T, d)
    xp = backend.get_array_module(x)
    x = xp.where(xp.abs(x) < 0.05, -0.5, x)  # (B, T, d)
    return check_module(m.ReLU(), (x,))


@_mod("GELU", "activations", ("GELU",))
def _gelu_module():
    """exact and tanh forms"""
    m = importlib.import_module(f"{NN}.activations")
    x = _randn(23, 2, 3, 5, scale=2.0)  # (B, T, d)
    return _merge("GELU", {"": check_module(m.GELU(), (x,)), "tanh ": check_module(m.GELU("tanh"), (x,))})


@_mod("Tanh", "tanh", ("Tanh",))
def _tanh_module():
    """saturated and linear regions"""
    m = importlib.import_module(f"{NN}.tanh")
    return check_module(m.Tanh(), (_randn(57, 2, 3, 5, scale=2.0),))


@_mod("LayerNorm", "layernorm", ("LayerNorm",))
def _layernorm_module():
    """random gamma and beta"""
    m = importlib.import_module(f"{NN}.layernorm")
    layer = _randomize_norms(m.LayerNorm(5).to(dtype="float64"))
    return check_module(layer, (_randn(24, 2, 3, 5, scale=2.0),))


@_mod("Dropout", "dropout", ("Dropout",))
def _dropout_module():
    """p = 0.3, the mask replayed from the seed"""
    m = importlib.import_module(f"{NN}.dropout")
    return check_module(m.Dropout(0.3), (_randn(25, 2, 3, 5),))


@_mod("Embedding", "embedding", ("Embedding",))
def _embedding_module():
    """repeated ids; W only (ids have no gradient)"""
    m = importlib.import_module(f"{NN}.embedding")
    backend.manual_seed(0)
    layer = m.Embedding(6, 3).to(dtype="float64")
    result = check_module(layer, (backend.asarray([[1, 3, 1, 0], [4, 1, 3, 3]]),))
    result.shapes = "2x4 (ids)"
    return result


@_mod("PositionalEncoding", "positional", ("PositionalEncoding",))
def _positional_encoding_module():
    """fixed sinusoids from offset 2"""
    m = importlib.import_module(f"{NN}.positional")
    layer = m.PositionalEncoding(5, max_len=8).to(dtype="float64")
    return check_module(layer, (_randn(26, 2, 3, 5),), kwargs={"offset": 2})


@_mod("LearnedPositionalEmbedding", "positional", ("LearnedPositionalEmbedding",))
def _learned_positional_module():
    """from offset 1: only the used rows of W get gradient"""
    m = importlib.import_module(f"{NN}.positional")
    backend.manual_seed(0)
    layer = m.LearnedPositionalEmbedding(6, 5).to(dtype="float64")
    return check_module(layer, (_randn(27, 2, 3, 5),), kwargs={"offset": 1})


@_mod("CrossEntropyLoss", "losses", ("CrossEntropyLoss",))
def _cross_entropy_module():
    """ignored targets, label smoothing 0.1"""
    m = importlib.import_module(f"{NN}.losses")
    logits = _randn(28, 2, 3, 5, scale=2.0)  # (B, T, C)
    targets = backend.asarray([[1, 4, -100], [0, -100, 2]])  # (B, T)
    return check_module(m.CrossEntropyLoss(label_smoothing=0.1), (logits, targets))


@_mod("MultiHeadAttention", "multihead", ("MultiHeadAttention",))
def _multi_head_attention_module():
    """self-attention (causal + padding) and cross-attention (T=3 != S=4), 2 heads, dropout 0.1"""
    m = importlib.import_module(f"{NN}.multihead")
    backend.manual_seed(0)
    attn = m.MultiHeadAttention(4, 2, dropout=0.1).to(dtype="float64")
    for p in (attn.b_q, attn.b_k, attn.b_v, attn.b_o):  # zero-initialised: make them count
        p.data[...] = 0.5 * _randn(53, 4)  # (d_model,)
    x, memory = _randn(54, 2, 3, 4), _randn(55, 2, 4, 4)  # (B, T, d_model), (B, S, d_model)
    self_masks = {"key_padding_mask": _bool([[False, False, True], [False, False, False]]), "causal": True}
    cross_masks = {"key_padding_mask": _bool([[False, False, False, True], [False, True, True, True]])}
    return _merge("MultiHeadAttention", {
        "self ": check_module(attn, (x,), kwargs=self_masks),
        "cross ": check_module(attn, (x, memory), kwargs=cross_masks),
    })


@_mod("FeedForward", "feedforward", ("FeedForward",))
def _feedforward_module():
    """GELU, dropout 0.2 on the hidden layer"""
    m = importlib.import_module(f"{NN}.feedforward")
    backend.manual_seed(0)
    layer = m.FeedForward(4, 8, activation="gelu", dropout=0.2).to(dtype="float64")
    return check_module(layer, (_randn(29, 2, 3, 4),))


@_mod("EncoderLayer", "encoder", ("EncoderLayer",))
def _encoder_layer_module():
    """post-LN, 2 heads, padding + causal, dropout 0.1, random LayerNorm gamma"""
    m = importlib.import_module(f"{NN}.encoder")
    backend.manual_seed(0)
    layer = _randomize_norms(m.EncoderLayer(4, 2, 8, dropout=0.1, activation="gelu").to(dtype="float64"))
    padding = _bool([[False, False, False], [False, False, True]])  # (B, T) True = padding
    return check_module(layer, (_randn(30, 2, 3, 4),), kwargs={"key_padding_mask": padding, "causal": True})


@_mod("Encoder", "encoder", ("Encoder",))
def _encoder_module():
    """pre-LN stack of 2 + final LayerNorm, padding, dropout 0.1"""
    m = importlib.import_module(f"{NN}.encoder")
    backend.manual_seed(0)
    enc = _randomize_norms(m.Encoder(2, 4, 2, 8, dropout=0.1, activation="gelu", norm_first=True)
                           .to(dtype="float64"))
    padding = _bool([[False, False, False], [False, True, True]])  # (B, T)
    return check_module(enc, (_randn(31, 2, 3, 4),), kwargs={"key_padding_mask": padding})


@_mod("DecoderLayer", "decoder", ("DecoderLayer",))
def _decoder_layer_module():
    """post-LN, T=3 != S=4, causal + target and memory padding, dropout 0.1; dx and dmemory"""
    m = importlib.import_module(f"{NN}.decoder")
    backend.manual_seed(0)
    layer = _randomize_norms(m.DecoderLayer(4, 2, 8, dropout=0.1, activation="gelu").to(dtype="float64"))
    x, memory = _randn(32, 2, 3, 4), _randn(33, 2, 4, 4)  # (B, T, d_model), (B, S, d_model)
    masks = {"tgt_key_padding_mask": _bool([[False, False, False], [False, False, True]]),  # (B, T)
             "memory_key_padding_mask": _bool([[False, False, False, False], [False, False, True, True]])}  # (B, S)
    return check_module(layer, (x, memory), kwargs=masks)


@_mod("Decoder", "decoder", ("Decoder",))
def _decoder_module():
    """pre-LN stack of 2 + final LayerNorm: memory feeds both layers, so its gradients add up"""
    m = importlib.import_module(f"{NN}.decoder")
    backend.manual_seed(0)
    dec = _randomize_norms(m.Decoder(2, 4, 2, 8, dropout=0.1, activation="gelu", norm_first=True)
                           .to(dtype="float64"))
    x, memory = _randn(34, 2, 3, 4), _randn(35, 2, 4, 4)  # (B, T, d_model), (B, S, d_model)
    masks = {"memory_key_padding_mask": _bool([[False, False, False, False], [False, True, True, True]])}  # (B, S)
    return check_module(dec, (x, memory), kwargs=masks)


# ---------------------------------------------------------------------------
# models: the training loss against every parameter, end to end
# ---------------------------------------------------------------------------


class _LossOf:
    """A model's scalar training loss seen as a module, for ``check_module``: forward = loss, backward = dloss."""

    def __init__(self, model):
        self.model = model

    def forward(self, *batch):
        return self.model.loss(*batch)  # ()

    def backward(self, dloss):
        self.model.backward()  # the loss is the output: dloss = 1

    def named_parameters(self):
        return self.model.named_parameters()

    def zero_grad(self):
        self.model.zero_grad()

    def modules(self):
        return self.model.modules()


@_model("Transformer", "transformer", ("Transformer",), also=("TransformerConfig",))
def _transformer():
    """loss vs every parameter: tied embeddings, 1+2 layers, padding, label smoothing, dropout 0.1"""
    m = importlib.import_module("minitransformer.models.transformer")
    backend.manual_seed(0)
    config = m.TransformerConfig(src_vocab_size=7, tgt_vocab_size=7, d_model=4, n_heads=2, d_ff=8,
                                 n_encoder_layers=1, n_decoder_layers=2, dropout=0.1, max_len=8,
                                 activation="gelu", share_embeddings=True, label_smoothing=0.1)
    model = _randomize_norms(m.Transformer(config).to(dtype="float64"))
    src = backend.asarray([[3, 4, 5, 6], [4, 5, 0, 0]])  # (B, S) 0 = padding
    tgt_in = backend.asarray([[1, 3, 4], [1, 5, 0]])  # (B, T)
    tgt_out = backend.asarray([[3, 4, 2], [5, 2, -100]])  # (B, T) -100 = ignored
    src_padding, tgt_padding = src == 0, tgt_in == 0  # (B, S), (B, T) True = padding
    result = check_module(_LossOf(model), (src, tgt_in, tgt_out, src_padding, tgt_padding), wrt=())
    result.shapes = "2x4 2x3 (ids)"
    return result


# -- BERT: tiny configs, every parameter random (not BERT's zero biases and unit LayerNorm) --------------


def _bert_config(**overrides):
    m = importlib.import_module("minitransformer.models.bert")
    sizes = dict(vocab_size=11, hidden_size=4, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8,
                 max_position_embeddings=8, type_vocab_size=2, hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, pad_token_id=None, num_labels=3)
    return m.BertConfig(**{**sizes, **overrides})


def _bert_random(module, seed: int = 200):
    """float64, and every parameter redrawn: N(0, 0.5), LayerNorm gamma around 1."""
    module = module.to(dtype="float64")
    for i, (name, p) in enumerate(module.named_parameters()):
        p.data[...] = _randn(seed + i, *p.shape, scale=0.5)  # (*p.shape)
        if name.endswith("gamma"):
            p.data[...] += 1.0
    return module


def _bert_batch():
    """B = 2, T = 4: the second sequence padded (attention_mask 0), two segments."""
    input_ids = backend.asarray([[1, 5, 7, 2], [1, 3, 2, 0]])  # (B, T)
    attention_mask = backend.asarray([[1, 1, 1, 1], [1, 1, 1, 0]])  # (B, T) 1 = token
    token_type_ids = backend.asarray([[0, 0, 1, 1], [0, 1, 1, 1]])  # (B, T)
    return input_ids, attention_mask, token_type_ids


class _OutputsLoss(_LossOf):
    """BertModel's two outputs in one scalar, L = sum(h * G) + sum(pooled * g), for ``check_module``."""

    def forward(self, *batch):
        out = self.model(*batch)
        self.G = _randn(60, *out.last_hidden_state.shape)  # (B, T, hidden)
        self.g = _randn(61, *out.pooler_output.shape)  # (B, hidden)
        xp = backend.get_array_module(self.G)
        return xp.asarray(xp.sum(out.last_hidden_state * self.G) + xp.sum(out.pooler_output * self.g))  # ()

    def backward(self, dloss):
        self.model.backward(self.G, self.g)


class _HeadLoss(_LossOf):
    """A BERT head's ``.loss`` as a module output: forward(batch, labels as keywords), backward() from the loss."""

    def __init__(self, model, **labels):
        super().__init__(model)
        self.labels = labels

    def forward(self, *batch):
        return self.model(*batch, **self.labels).loss  # ()


def _bert_part(name, covers, module="bert"):
    return _model(name, module, covers)


@_bert_part("BertEmbeddings", ("BertEmbeddings",))
def _bert_embeddings():
    """word + position (from offset 1) + token type, LayerNorm, dropout 0.1; repeated ids"""
    m = importlib.import_module("minitransformer.models.bert")
    backend.manual_seed(0)
    emb = _bert_random(m.BertEmbeddings(_bert_config()))
    ids, _, types = _bert_batch()
    result = check_module(emb, (ids, types), kwargs={"position_offset": 1}, wrt=())
    result.shapes = "2x4 2x4 (ids)"
    return result


@_bert_part("BertPooler", ("BertPooler",))
def _bert_pooler():
    """tanh(dense(h[:, 0])): only the first token gets gradient"""
    m = importlib.import_module("minitransformer.models.bert")
    backend.manual_seed(0)
    return check_module(_bert_random(m.BertPooler(4)), (_randn(62, 2, 3, 4),))


@_bert_part("BertModel", ("BertModel",))
def _bert_model():
    """both outputs vs every parameter: 2 layers, padding, token types, dropout 0.1"""
    m = importlib.import_module("minitransformer.models.bert")
    backend.manual_seed(0)
    model = _bert_random(m.BertModel(_bert_config()))
    result = check_module(_OutputsLoss(model), _bert_batch(), wrt=())
    result.shapes = "2x4 (ids)"
    return result


@_bert_part("BertPredictionHeadTransform", ("BertPredictionHeadTransform",), "bert_heads")
def _bert_transform():
    """dense, GELU, LayerNorm"""
    m = importlib.import_module("minitransformer.models.bert_heads")
    backend.manual_seed(0)
    return check_module(_bert_random(m.BertPredictionHeadTransform(_bert_config())), (_randn(63, 2, 3, 4),))


@_bert_part("BertLMPredictionHead", ("BertLMPredictionHead",), "bert_heads")
def _bert_lm_head():
    """transform, then h @ decoder^T + bias"""
    m = importlib.import_module("minitransformer.models.bert_heads")
    backend.manual_seed(0)
    return check_module(_bert_random(m.BertLMPredictionHead(_bert_config())), (_randn(64, 2, 3, 4),))


@_bert_part("BertOnlyMLMHead", ("BertOnlyMLMHead",), "bert_heads")
def _bert_mlm_head():
    """cls of the masked-LM model"""
    m = importlib.import_module("minitransformer.models.bert_heads")
    backend.manual_seed(0)
    return check_module(_bert_random(m.BertOnlyMLMHead(_bert_config())), (_randn(65, 2, 3, 4),))


@_bert_part("BertPreTrainingHeads", ("BertPreTrainingHeads",), "bert_heads")
def _bert_pretraining_heads():
    """masked-LM scores and next-sentence scores, both outputs"""
    m = importlib.import_module("minitransformer.models.bert_heads")
    backend.manual_seed(0)
    heads = _bert_random(m.BertPreTrainingHeads(_bert_config()))
    h, pooled = _randn(66, 2, 3, 4), _randn(67, 2, 4)  # (B, T, hidden), (B, hidden)
    G, g = _randn(68, 2, 3, 11), _randn(69, 2, 2)  # upstream gradients of the two outputs

    class Both(_LossOf):
        def forward(self, h, pooled):
            pred, seq = self.model(h, pooled)
            xp = backend.get_array_module(pred)
            return xp.asarray(xp.sum(pred * G) + xp.sum(seq * g))  # ()

        def backward(self, dloss):
            return self.model.backward(G, g)

    return check_module(Both(heads), (h, pooled))


def _bert_head_case(name, labels):
    m = importlib.import_module("minitransformer.models.bert_heads")
    backend.manual_seed(0)
    model = _bert_random(getattr(m, name)(_bert_config()))
    result = check_module(_HeadLoss(model, **labels), _bert_batch(), wrt=())
    result.shapes = "2x4 (ids)"
    return result


@_bert_part("BertForPreTraining", ("BertForPreTraining",), "bert_heads")
def _bert_for_pretraining():
    """MLM (ignored labels, tied decoder) + NSP loss vs every parameter"""
    return _bert_head_case("BertForPreTraining", {
        "labels": backend.asarray([[-100, 4, -100, 9], [-100, -100, 6, -100]]),
        "next_sentence_label": backend.asarray([0, 1])})


@_bert_part("BertForMaskedLM", ("BertForMaskedLM",), "bert_heads")
def _bert_for_masked_lm():
    """MLM loss through the tied decoder vs every parameter"""
    return _bert_head_case("BertForMaskedLM", {"labels": backend.asarray([[-100, 4, -100, 9], [3, -100, 6, -100]])})


@_bert_part("BertForSequenceClassification", ("BertForSequenceClassification",), "bert_heads")
def _bert_for_sequence_classification():
    """3 classes through the pooler, classifier dropout 0.1"""
    return _bert_head_case("BertForSequenceClassification", {"labels": backend.asarray([2, 0])})


@_bert_part("BertForTokenClassification", ("BertForTokenClassification",), "bert_heads")
def _bert_for_token_classification():
    """per-token labels, the padded one ignored"""
    return _bert_head_case("BertForTokenClassification",
                           {"labels": backend.asarray([[0, 2, 1, 1], [-100, 1, 2, -100]])})


@_bert_part("BertForQuestionAnswering", ("BertForQuestionAnswering",), "bert_heads")
def _bert_for_question_answering():
    """(CE(start) + CE(end)) / 2, one position outside the input (ignored)"""
    return _bert_head_case("BertForQuestionAnswering", {"start_positions": backend.asarray([1, 2]),
                                                        "end_positions": backend.asarray([3, 7])})


# -- GPT: decoder-only language model ------------------------------------------------------------------


@_model("GPT", "gpt", ("GPT",), also=("GPTConfig",))
def _gpt():
    """LM loss vs every parameter: tied head, 2 causal pre-LN layers, 2 heads, ignored target, dropout 0.1"""
    m = importlib.import_module("minitransformer.models.gpt")
    backend.manual_seed(0)
    config = m.GPTConfig(vocab_size=11, max_len=8, d_model=4, n_heads=2, n_layers=2, d_ff=8, dropout=0.1)
    model = _bert_random(m.GPT(config, dtype="float64"), seed=300)  # every parameter random, gamma around 1
    ids = backend.asarray([[1, 5, 7, 2, 5], [3, 3, 0, 9, 10]])  # (B, T) repeated ids
    targets = backend.asarray([[5, 7, 2, 5, -100], [3, 0, 9, 10, 4]])  # (B, T) -100 = ignored
    result = check_module(_LossOf(model), (ids, targets), wrt=())
    result.shapes = "2x5 (ids)"
    return result


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------


def case_names() -> list[str]:
    """Every case name: ops, then modules, then models."""
    return [c.name for c in _ordered(CASES)]


def _ordered(cases):
    return sorted(cases, key=lambda c: GROUPS.index(c.group))  # stable: registration order within a group


def find_cases(only=None) -> list[Case]:
    """The cases named in ``only`` (an iterable of names, case-sensitive), in report order.

    Raises:
        KeyError: listing the unknown names and every valid one.
    """
    cases = _ordered(CASES)
    if only is None:
        return cases
    wanted = list(dict.fromkeys(only))
    known = {c.name for c in cases}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise KeyError(f"unknown check name(s) {', '.join(unknown)}; valid names: {', '.join(c.name for c in cases)}")
    return [c for c in cases if c.name in wanted]


def missing_requirements(case: Case) -> list[str]:
    """The ``"module:name"`` entries of ``case.requires`` that cannot be imported (empty when runnable)."""
    missing = []
    for ref in case.requires:
        try:
            _get(ref)
        except (ImportError, AttributeError):
            missing.append(ref)
    return missing


class Report(list):
    """The results (a list of ``CheckResult``), plus what was skipped and what crashed.

    Attributes:
        skipped: ``(name, note)`` for cases whose layer is not importable.
        crashed: ``(name, "ExceptionType: message")`` for cases that raised;
            each also appears in the list as a failed result.
        seconds: wall time of the whole run.
    """

    def __init__(self):
        super().__init__()
        self.skipped: list[tuple[str, str]] = []
        self.crashed: list[tuple[str, str]] = []
        self.seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self)


@dataclass
class _Row:
    result: CheckResult | None
    seconds: float
    note: str = field(default="")


def _run_one(case: Case) -> _Row:
    missing = missing_requirements(case)
    if missing:
        return _Row(None, 0.0, "not importable yet: " + ", ".join(missing))
    start = time.perf_counter()
    try:
        result = case.build()
        result.name = case.name
    except Exception as e:  # a crash is a failure, shown with its message
        msg = f"{type(e).__name__}: {e}"
        return _Row(CheckResult(case.name, "-", {"(raised)": float("inf")}), time.perf_counter() - start, msg)
    return _Row(result, time.perf_counter() - start)


def run_report(only=None, progress: bool = True, stream=None) -> Report:
    """Run the gradient checks (all, or those named in ``only``) and return them.

    Args:
        only: iterable of case names, or None for all. Unknown names raise
            ``KeyError`` listing the valid ones.
        progress: print one line per case as it finishes (to ``stream``,
            default stderr), so a long report visibly fills in.
    Returns:
        Report: a list of ``CheckResult`` with ``.skipped``, ``.crashed`` and ``.seconds``.
    """
    cases = find_cases(only)
    stream = sys.stderr if stream is None else stream
    report = Report()
    width = max((len(c.name) for c in cases), default=0)
    n = len(cases)
    start = time.perf_counter()
    try:
        for i, case in enumerate(cases, 1):
            row = _run_one(case)
            if row.result is None:
                report.skipped.append((case.name, row.note))
                line = f"skipped ({row.note})"
            else:
                report.append(row.result)
                r = row.result
                if row.note:
                    report.crashed.append((case.name, row.note))
                    line = f"FAIL  raised {row.note}"
                else:
                    status = "PASS" if r.passed else "FAIL"
                    line = f"{status}  {r.worst:.1e} ({r.worst_name})  {row.seconds:.2f} s"
            if progress:
                print(f"[{i:>{len(str(n))}}/{n}] {case.group:<7} {case.name:<{width}}  {line}", file=stream, flush=True)
    finally:
        backend.manual_seed(0)  # cases reseed the generators; leave them in a known state
    report.seconds = time.perf_counter() - start
    return report
