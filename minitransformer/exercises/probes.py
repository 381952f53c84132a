"""Probes: small fixed problems on which a student's functions are compared with the reference.

A probe builds float64 inputs from fixed seeds (the same arrays in every
process), calls the library as a user would (forward, then backward with a
fixed upstream gradient) and returns the arrays to compare, in a fixed order.
The same code runs on both sides: in a subprocess on the student's copy
(``PYTHONPATH=OUT_DIR``), and on the reference package (in the grader's
process, or at make time, stored as ``.npz``). ``grading.py`` adds, per
probe, the arrays that common mistakes would give, and ``hints.py`` names
the mistake a wrong answer matches.

Each exercise has a few probes, from simple to hard: one example before a
batch (``simpler_than``), no mask before masks and dropout, moderate logits
before huge ones. "Correct on the simple one, wrong on the hard one" is
itself a hint ("sum over the batch too").
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

# Absolute, not relative: the grader loads this file by path into the student's subprocess (runner.py),
# where it must use the student's minitransformer.
from minitransformer import backend

__all__ = ["PROBES", "Probe", "ProbeError", "probes_for"]


class ProbeError(Exception):
    """The student's function returned the wrong number of arrays, or wrote into its inputs."""


@dataclass(frozen=True)
class Probe:
    """One fixed problem of one exercise.

    Attributes:
        exercise: the exercise id.
        label: what makes this problem special ("B=2, T=3", "masks, dropout").
        inputs: builds the input dict (arrays from fixed seeds, options).
        run: ``run(inputs, out)``: forward and backward through the library, storing each array in the dict
            ``out`` as soon as it exists (so what ran before an exception can still be graded).
        factors: named constants of the problem (``sqrt(d_k)``), to name a wrong scale.
        simpler_than: the label of a harder probe of the same functions (for "correct for A, wrong for B").
        nonfinite: what a NaN or inf usually means on this problem.
        given: outputs made by code the exercise does not ask for (``y`` of ``linear_forward``): their
            being right says nothing about the student's progress.
    """

    exercise: str
    label: str
    inputs: Callable[[], dict]
    run: Callable[[dict], dict]
    factors: dict = field(default_factory=dict)
    simpler_than: str | None = None
    nonfinite: str = ""
    given: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.exercise}: {self.label}"

    def outputs(self) -> dict:
        """Build the inputs and run: ``{name: array}``."""
        out: dict = {}
        self.run(self.inputs(), out)
        return out


PROBES: list[Probe] = []


def probes_for(exercise_ids) -> list[Probe]:
    """The probes of these exercises, in registration order."""
    wanted = set(exercise_ids)
    return [p for p in PROBES if p.exercise in wanted]


def _probe(exercise, label, run, factors=None, simpler_than=None, nonfinite="", given=()):
    """Register the decorated input builder as a probe."""

    def register(inputs):
        PROBES.append(Probe(exercise, label, inputs, run, dict(factors or {}), simpler_than, nonfinite, given))
        return inputs

    return register


# -- helpers ---------------------------------------------------------------------------------------


def _nn(name: str):
    """``minitransformer.nn.<name>`` of whichever package is importable (the student's or the reference)."""
    return importlib.import_module(f"minitransformer.nn.{name}")


def _randn(seed: int, *shape, scale: float = 1.0, shift: float = 0.0):
    """float64 standard-normal (times scale, plus shift) from a fixed seed."""
    return backend.asarray(scale * backend.host_rng(seed).standard_normal(shape) + shift, dtype="float64")


def _keep(seed: int, shape, p: float):
    """Boolean keep-mask (True with probability 1 - p) from a fixed seed."""
    return backend.asarray(backend.host_rng(seed).random(shape) >= p)


def _ints(values):
    return backend.asarray(values, dtype="int64")


def _arrays(obj) -> list:
    """Every array in a (nested) tuple, e.g. a cache."""
    if backend.is_array(obj):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for o in obj for a in _arrays(o)]
    return []


def _same(a, b) -> bool:
    xp = backend.get_array_module(a)
    if a.shape != b.shape:
        return False
    return bool(xp.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def _unpack(grads, names, fn_name: str) -> dict:
    """``grads`` as ``{name: array}``, checking that the function returned one array per name."""
    if len(names) == 1:
        if isinstance(grads, (tuple, list)):
            raise ProbeError(f"{fn_name} returned {len(grads)} values; expected one array ({names[0]})")
        grads = (grads,)
    elif not isinstance(grads, (tuple, list)) or len(grads) != len(names):
        got = f"{len(grads)} values" if isinstance(grads, (tuple, list)) else "one value"
        raise ProbeError(f"{fn_name} returned {got}; expected {len(names)} arrays ({', '.join(names)})")
    for n, g in zip(names, grads, strict=True):
        if g is None:
            raise ProbeError(f"{fn_name} returned None for {n}")
    return dict(zip(names, grads, strict=True))


def _backward(fn, dy, cache, names) -> dict:
    """Call ``fn(dy, cache)``; check that it wrote into neither ``dy`` nor the cache; name the results."""
    watched = [("its upstream gradient", dy)] + [("its cache", a) for a in _arrays(cache)]
    before = [a.copy() for _, a in watched]
    grads = fn(dy, cache)
    for (what, a), b in zip(watched, before, strict=True):
        if not _same(a, b):
            raise ProbeError(f"{fn.__name__} wrote into {what} (backward must never change dy or the cache: "
                             "compute a new array instead of using -= or *= on them)")
    return _unpack(grads, names, fn.__name__)


def _forward(fn, *args, **kwargs):
    """Call a forward function and check it returned ``(y, cache)``."""
    out = fn(*args, **kwargs)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ProbeError(f"{fn.__name__} must return (y, cache), got {type(out).__name__}")
    return out


# -- linear ----------------------------------------------------------------------------------------


def _run_linear(inp, out):
    m = _nn("linear")
    y, cache = _forward(m.linear_forward, inp["x"], inp["W"], inp["b"])
    out["y"] = y
    out.update(_backward(m.linear_backward, inp["dy"], cache, ("dx", "dW", "db")))


@_probe("linear", "B=1, T=1", _run_linear, simpler_than="B=2, T=3", given=("y",))
def _linear_one():
    return {"x": _randn(101, 1, 1, 4), "W": _randn(102, 4, 5), "b": _randn(103, 5), "dy": _randn(104, 1, 1, 5)}


@_probe("linear", "B=2, T=3", _run_linear, factors={"B * T": 6.0, "B": 2.0, "T": 3.0}, given=("y",))
def _linear_batch():
    return {"x": _randn(105, 2, 3, 4), "W": _randn(106, 4, 5), "b": _randn(107, 5), "dy": _randn(108, 2, 3, 5)}


# -- activations -----------------------------------------------------------------------------------


def _run_relu(inp, out):
    m = _nn("activations")
    y, cache = _forward(m.relu_forward, inp["x"])
    out["y"] = y
    out.update(_backward(m.relu_backward, inp["dy"], cache, ("dx",)))


@_probe("relu", "B=2, T=3, some x exactly 0", _run_relu, given=("y",))
def _relu_inputs():
    x = _randn(111, 2, 3, 5)  # (B, T, d)
    x[0, 0, :2] = 0.0  # at the kink the gradient is 0, as PyTorch
    return {"x": x, "dy": _randn(112, 2, 3, 5)}


def _run_gelu(inp, out):
    m = _nn("activations")
    y, cache = _forward(m.gelu_forward, inp["x"], approximate=inp["approximate"])
    out["y"] = y
    out.update(_backward(m.gelu_backward, inp["dy"], cache, ("dx",)))


@_probe("gelu", "exact (erf) form", _run_gelu, factors={"1/2": 0.5}, given=("y",))
def _gelu_exact():
    return {"x": _randn(121, 2, 3, 5, scale=2.0), "dy": _randn(122, 2, 3, 5), "approximate": "none"}


@_probe("gelu", "tanh form", _run_gelu, factors={"1/2": 0.5}, given=("y",))
def _gelu_tanh():
    return {"x": _randn(123, 2, 3, 5, scale=2.0), "dy": _randn(124, 2, 3, 5), "approximate": "tanh"}


# -- softmax ---------------------------------------------------------------------------------------


def _run_softmax(inp, out):
    m = _nn("softmax")
    P, cache = _forward(m.softmax_forward, inp["x"], mask=inp["mask"])
    out["P"] = P
    out.update(_backward(m.softmax_backward, inp["dP"], cache, ("dx",)))


@_probe("softmax", "rows of 5", _run_softmax, simpler_than="padding + causal mask")
def _softmax_rows():
    return {"x": _randn(131, 2, 3, 5, scale=2.0), "mask": None, "dP": _randn(132, 2, 3, 5)}


@_probe("softmax", "padding + causal mask", _run_softmax,
        nonfinite="a fully masked row must give P = 0 (divide by 1 where the row sum is 0), not 0/0 = NaN")
def _softmax_masked():
    xp = backend.xp()
    lengths, Tq, Tk = [4, 2], 3, 4
    j = xp.arange(Tk)  # (Tk,)
    keep = (j[None, None, None, :] < xp.asarray(lengths)[:, None, None, None]) & (j[None, :] <= xp.arange(Tq)[:, None])
    keep = xp.broadcast_to(keep, (2, 1, Tq, Tk)).copy()  # (B, 1, Tq, Tk)
    keep[1, :, 2, :] = False  # one fully masked row
    return {"x": _randn(133, 2, 2, Tq, Tk, scale=2.0), "mask": keep, "dP": _randn(134, 2, 2, Tq, Tk)}


@_probe("softmax", "logits near 1000", _run_softmax,
        nonfinite="exp(1000) overflows: subtract the row maximum before exp (softmax does not change)")
def _softmax_large():
    return {"x": _randn(135, 2, 5, scale=3.0, shift=1000.0), "mask": None, "dP": _randn(136, 2, 5)}


# -- cross-entropy ---------------------------------------------------------------------------------


def _run_log_softmax(inp, out):
    m = _nn("softmax")
    y, cache = _forward(m.log_softmax_forward, inp["x"])
    out["y"] = y
    out.update(_backward(m.log_softmax_backward, inp["dy"], cache, ("dx",)))


@_probe("cross_entropy", "log_softmax", _run_log_softmax, given=("y",))
def _log_softmax_inputs():
    return {"x": _randn(141, 2, 3, 6, scale=3.0), "dy": _randn(142, 2, 3, 6)}


def _run_cross_entropy(inp, out):
    m = _nn("losses")
    loss, cache = _forward(m.cross_entropy_forward, inp["logits"], inp["targets"], ignore_index=-100,
                           label_smoothing=inp["label_smoothing"])
    dloss = backend.asarray(inp["dloss"], dtype="float64")  # ()
    out["loss"] = loss
    out.update(_backward(m.cross_entropy_backward, dloss, cache, ("dlogits",)))


@_probe("cross_entropy", "one target", _run_cross_entropy, simpler_than="ignored targets, dloss = 2.5",
        given=("loss",))
def _ce_one():
    return {"logits": _randn(143, 1, 1, 5, scale=2.0), "targets": _ints([[3]]), "label_smoothing": 0.0,
            "dloss": 1.0}


@_probe("cross_entropy", "ignored targets, dloss = 2.5", _run_cross_entropy,
        factors={"n_valid": 4.0, "B * T": 6.0, "dloss": 2.5, "dloss / n_valid": 2.5 / 4.0}, given=("loss",))
def _ce_ignored():
    return {"logits": _randn(144, 2, 3, 5, scale=2.0), "targets": _ints([[1, 4, -100], [0, -100, 2]]),
            "label_smoothing": 0.0, "dloss": 2.5}


@_probe("cross_entropy", "label smoothing 0.1", _run_cross_entropy, factors={"n_valid": 4.0, "B * T": 6.0},
        given=("loss",))
def _ce_smoothed():
    return {"logits": _randn(145, 2, 3, 5, scale=2.0), "targets": _ints([[1, 4, -100], [0, -100, 2]]),
            "label_smoothing": 0.1, "dloss": 1.0}


# -- embedding -------------------------------------------------------------------------------------


def _run_embedding(inp, out):
    m = _nn("embedding")
    y, cache = _forward(m.embedding_forward, inp["ids"], inp["W"])
    out["y"] = y
    out.update(_backward(m.embedding_backward, inp["dy"], cache, ("dW",)))


@_probe("embedding", "one token", _run_embedding, simpler_than="repeated ids", given=("y",))
def _embedding_one():
    return {"ids": _ints([[2]]), "W": _randn(151, 6, 3), "dy": _randn(152, 1, 1, 3)}


@_probe("embedding", "repeated ids", _run_embedding, given=("y",))
def _embedding_repeated():
    return {"ids": _ints([[1, 3, 1, 0], [4, 1, 3, 3]]), "W": _randn(153, 6, 3), "dy": _randn(154, 2, 4, 3)}


# -- dropout ---------------------------------------------------------------------------------------


def _run_dropout(inp, out):
    m = _nn("dropout")
    y, cache = _forward(m.dropout_forward, inp["x"], inp["mask"], inp["p"])
    out["y"] = y
    out.update(_backward(m.dropout_backward, inp["dy"], cache, ("dx",)))


@_probe("dropout", "p = 0.3", _run_dropout, factors={"(1 - p)": 0.7, "p": 0.3})
def _dropout_p():
    return {"x": _randn(161, 2, 3, 5), "mask": _keep(162, (2, 3, 5), 0.3), "p": 0.3, "dy": _randn(163, 2, 3, 5)}


@_probe("dropout", "no mask (evaluation)", _run_dropout, given=("y",))  # y = x: not the exercise
def _dropout_identity():
    return {"x": _randn(164, 2, 3, 5), "mask": None, "p": 0.0, "dy": _randn(165, 2, 3, 5)}


# -- attention -------------------------------------------------------------------------------------

_ATTENTION_FACTORS = {"sqrt(d_k)": math.sqrt(3.0), "d_k": 3.0}


def _run_attention(inp, out):
    m = _nn("attention")
    Y, cache = _forward(m.scaled_dot_product_attention_forward, inp["Q"], inp["K"], inp["V"], mask=inp["mask"],
                        dropout_mask=inp["dropout_mask"], dropout_p=inp["dropout_p"])
    out["Y"] = Y
    out.update(_backward(m.scaled_dot_product_attention_backward, inp["dY"], cache, ("dQ", "dK", "dV")))


def _attention_inputs(seed, B, n_heads, Tq, Tk, masks):
    d_k, d_v = 3, 2
    inp = {"Q": _randn(seed, B, n_heads, Tq, d_k), "K": _randn(seed + 1, B, n_heads, Tk, d_k),
           "V": _randn(seed + 2, B, n_heads, Tk, d_v), "dY": _randn(seed + 3, B, n_heads, Tq, d_v),
           "mask": None, "dropout_mask": None, "dropout_p": 0.0}
    if masks:
        padding = backend.asarray([[False, False, False, True], [True, True, False, False]])  # (B, Tk)
        inp["mask"] = _nn("attention").build_attention_mask(B, Tq, Tk, key_padding_mask=padding, causal=True)
        inp["dropout_mask"] = _keep(seed + 4, (B, n_heads, Tq, Tk), 0.25)
        inp["dropout_p"] = 0.25
    return inp


@_probe("attention", "B=1, 1 head", _run_attention, _ATTENTION_FACTORS, simpler_than="B=2, 2 heads, Tq=3, Tk=4")
def _attention_one():
    return _attention_inputs(171, 1, 1, 3, 3, masks=False)


@_probe("attention", "B=2, 2 heads, Tq=3, Tk=4", _run_attention, _ATTENTION_FACTORS,
        simpler_than="padding + causal mask, dropout 0.25")
def _attention_batch():
    return _attention_inputs(176, 2, 2, 3, 4, masks=False)


@_probe("attention", "padding + causal mask, dropout 0.25", _run_attention,
        {**_ATTENTION_FACTORS, "1 / (1 - p)": 1.0 / 0.75},
        nonfinite="a fully masked row must give zeros, not NaN (that is softmax's job: check the softmax exercise)")
def _attention_masked():
    return _attention_inputs(181, 2, 2, 3, 4, masks=True)


# -- multi-head attention --------------------------------------------------------------------------


def _run_split_merge(inp, out):
    m = _nn("multihead")
    out["split_heads"] = m.split_heads(inp["X"], 2)
    out["merge_heads"] = m.merge_heads(inp["H"])


@_probe("multihead", "split_heads and merge_heads", _run_split_merge)
def _split_merge():
    return {"X": _randn(191, 2, 3, 6), "H": _randn(192, 2, 2, 3, 3)}


_MHA_GRADS = ("dquery", "dkey", "dvalue", "dW_q", "db_q", "dW_k", "db_k", "dW_v", "db_v", "dW_o", "db_o")


def _run_mha(inp, out):
    m = _nn("multihead")
    params = [inp[k] for k in ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o")]
    Y, cache = _forward(m.multi_head_attention_forward, inp["query"], inp["key"], inp["value"], *params, 2,
                        mask=inp["mask"], dropout_mask=inp["dropout_mask"], dropout_p=inp["dropout_p"])
    out["Y"] = Y
    out.update(_backward(m.multi_head_attention_backward, inp["dY"], cache, _MHA_GRADS))


def _mha_inputs(seed, B, Tq, Tk, masks):
    d_model = 4
    inp = {"query": _randn(seed, B, Tq, d_model), "key": _randn(seed + 1, B, Tk, d_model),
           "value": _randn(seed + 2, B, Tk, d_model), "dY": _randn(seed + 3, B, Tq, d_model),
           "mask": None, "dropout_mask": None, "dropout_p": 0.0}
    for i, k in enumerate(("W_q", "W_k", "W_v", "W_o")):
        inp[k] = _randn(seed + 4 + i, d_model, d_model, scale=0.5)  # (d_model, d_model)
        inp["b" + k[1:]] = _randn(seed + 8 + i, d_model)  # (d_model,)
    if masks:
        padding = backend.asarray([[False, False, False, True], [False, True, True, True]])  # (B, Tk)
        inp["mask"] = _nn("attention").build_attention_mask(B, Tq, Tk, key_padding_mask=padding, causal=True)
        inp["dropout_mask"] = _keep(seed + 12, (B, 2, Tq, Tk), 0.2)
        inp["dropout_p"] = 0.2
    return inp


@_probe("multihead", "B=1, T=2", _run_mha, {"sqrt(d_k)": math.sqrt(2.0)},
        simpler_than="B=2, Tq=3, Tk=4, masks, dropout")
def _mha_one():
    return _mha_inputs(201, 1, 2, 2, masks=False)


@_probe("multihead", "B=2, Tq=3, Tk=4, masks, dropout", _run_mha, {"sqrt(d_k)": math.sqrt(2.0), "n_heads": 2.0})
def _mha_main():
    return _mha_inputs(221, 2, 3, 4, masks=True)


# -- layernorm -------------------------------------------------------------------------------------


def _run_layernorm(inp, out):
    m = _nn("layernorm")
    y, cache = _forward(m.layernorm_forward, inp["x"], inp["gamma"], inp["beta"], inp["eps"])
    out["y"] = y
    out.update(_backward(m.layernorm_backward, inp["dy"], cache, ("dx", "dgamma", "dbeta")))


def _layernorm_inputs(seed, B, T, eps, scale=3.0, shift=4.0):
    return {"x": _randn(seed, B, T, 5, scale=scale, shift=shift), "gamma": _randn(seed + 1, 5, scale=0.5, shift=1.0),
            "beta": _randn(seed + 2, 5), "eps": eps, "dy": _randn(seed + 3, B, T, 5)}


@_probe("layernorm", "B=1, T=1", _run_layernorm, {"d_model": 5.0}, simpler_than="B=2, T=3")
def _layernorm_one():
    return _layernorm_inputs(241, 1, 1, 1e-5)


@_probe("layernorm", "B=2, T=3", _run_layernorm, {"d_model": 5.0, "B * T": 6.0})
def _layernorm_batch():
    return _layernorm_inputs(245, 2, 3, 1e-5)


@_probe("layernorm", "eps = 0.5, small variance", _run_layernorm, {"d_model": 5.0, "B * T": 6.0})
def _layernorm_eps():
    return _layernorm_inputs(249, 2, 3, 0.5, scale=0.5, shift=0.0)


# -- feed-forward block ----------------------------------------------------------------------------


def _run_feedforward(inp, out):
    m = _nn("feedforward")
    backend.manual_seed(0)  # the same weights in every process
    ff = m.FeedForward(4, 8, activation=inp["activation"], dropout=inp["dropout"]).to(dtype="float64")
    backend.manual_seed(7)  # the same dropout mask
    out["y"] = ff(inp["x"])
    dx = ff.backward(inp["dy"])
    if dx is None:
        raise ProbeError("FeedForward.backward returned None; it must return dx")
    out.update({"dx": dx, "dW_1": ff.linear1.W.grad, "db_1": ff.linear1.b.grad,
                "dW_2": ff.linear2.W.grad, "db_2": ff.linear2.b.grad})


@_probe("feedforward", "ReLU, no dropout", _run_feedforward, given=("y",))
def _ff_relu():
    return {"x": _randn(261, 2, 3, 4), "dy": _randn(262, 2, 3, 4), "activation": "relu", "dropout": 0.0}


@_probe("feedforward", "GELU, dropout 0.2", _run_feedforward, given=("y",))
def _ff_gelu():
    return {"x": _randn(263, 2, 3, 4), "dy": _randn(264, 2, 3, 4), "activation": "gelu", "dropout": 0.2}
