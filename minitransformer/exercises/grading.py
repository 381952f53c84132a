"""Reference answers and known mistakes, computed from the reference package (the one with the solutions).

For every probe (``probes.py``) this module runs the reference code and also
builds what the usual wrong answers would return on the same inputs: a
missing term, a forgotten mask, the wrong normalisation. ``hints.py`` names
the mistake a student's array matches. Scaled, transposed, sign-flipped and
swapped answers need no entry here: ``hints.py`` finds those from the true
array alone.

This file knows the solutions, so ``exercises make`` leaves it out of the
student copy; there the answers come from ``.exercises/reference.npz``,
written by this module at make time.
"""

from __future__ import annotations

import importlib
import math

from .. import backend
from .hints import matches
from .probes import Probe

__all__ = ["MISTAKES", "is_reference_package", "reference_data"]

# probe exercise -> function(inputs, reference outputs) -> {output name: [(message, array), ...]}
MISTAKES = {}


def _mistakes(exercise):
    def register(fn):
        MISTAKES[exercise] = fn
        return fn

    return register


def _nn(name):
    return importlib.import_module(f"minitransformer.nn.{name}")


def is_reference_package() -> bool:
    """True when the running ``minitransformer`` still has its solution regions (not a student copy)."""
    from pathlib import Path

    from .regions import find_regions

    return bool(find_regions(Path(__file__).resolve().parents[1] / "nn"))


def reference_data(probes: list[Probe]) -> dict:
    """``{probe key: {"outputs": {name: array}, "mistakes": {name: [(message, array)]}}}`` from the reference.

    Raises:
        RuntimeError: when the running package is a student copy (its answers are not the reference).
    """
    if not is_reference_package():
        raise RuntimeError("the running minitransformer has no solution regions: it is a student copy, "
                           "not the reference")
    state = backend.rng_state() if backend.backend_name() == "numpy" else None  # probes reseed: restore after
    try:
        return _reference_data(probes)
    finally:
        if state is not None:
            backend.set_rng_state(state)


def _reference_data(probes):
    data = {}
    for probe in probes:
        outputs = probe.outputs()
        fn = MISTAKES.get(probe.exercise)
        mistakes = fn(probe, probe.inputs(), outputs) if fn else {}
        kept = {}
        for name, items in mistakes.items():  # a "mistake" that gives the right answer here is none
            true = backend.to_numpy(outputs[name])
            kept[name] = [(msg, backend.to_numpy(a)) for msg, a in items if not matches(backend.to_numpy(a), true)]
        host = {name: backend.to_numpy(a) for name, a in outputs.items()}  # graded on the host
        data[probe.key] = {"outputs": host, "mistakes": {k: v for k, v in kept.items() if v}}
    return data


def _xp(a):
    return backend.get_array_module(a)


@_mistakes("linear")
def _linear(probe, inp, ref):
    x, dy = inp["x"], inp["dy"]
    return {
        "dW": [("dW sums x^T dy over every position of every example: reshape x to (B * T, d_in) and dy to "
                "(B * T, d_out) first", x[0].T @ dy[0]),
               ("dW sums over every example, not only the last one", x[-1].T @ dy[-1])],
        "db": [("db sums dy over every leading axis (the batch too): dy.reshape(-1, d_out).sum(axis=0)",
                dy[0].sum(axis=0))],
    }


@_mistakes("relu")
def _relu(probe, inp, ref):
    x, dy = inp["x"], inp["dy"]
    return {"dx": [
        ("at x == 0 the gradient is 0 (as PyTorch): use x > 0, not x >= 0", dy * (x >= 0.0)),
        ("dx = dy * [x > 0]: you returned the step without multiplying by dy", (x > 0.0) * 1.0),
        ("the derivative of max(x, 0) is the step [x > 0], not x itself", dy * ref["y"]),
    ]}


@_mistakes("gelu")
def _gelu(probe, inp, ref):
    x, dy = inp["x"], inp["dy"]
    xp = _xp(x)
    _, cache = _nn("activations").gelu_forward(x, approximate=inp["approximate"])
    t = cache.t
    G = 0.5 * (1.0 + t)  # (...)
    phi = xp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)  # (...)
    if inp["approximate"] == "none":
        dG = phi  # (...)
        own = [("phi(x) = exp(-x^2 / 2) / sqrt(2 pi): the 1 / sqrt(2 pi) is missing",
                dy * (G + x * phi * math.sqrt(2.0 * math.pi)))]
    else:
        du = math.sqrt(2.0 / math.pi) * (1.0 + 3.0 * 0.044715 * x * x)  # (...)
        dG = 0.5 * (1.0 - t * t) * du  # (...)
        own = [
            ("the tanh form needs its own derivative: dG/dx = 0.5 (1 - t^2) du/dx, not the erf form's phi(x)",
             dy * (G + x * phi)),
            ("chain rule: dG/dx = 0.5 (1 - t^2) * du/dx, with du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)",
             dy * (G + x * 0.5 * (1.0 - t * t))),
            ("d tanh(u)/du = 1 - t^2 (t = tanh(u)), not 1 - t", dy * (G + x * 0.5 * (1.0 - t) * du)),
        ]
    return {"dx": [
        ("product rule: dx = dy * (G + x * dG/dx); the x * dG/dx term is missing", dy * G),
        ("product rule: dx = dy * (G + x * dG/dx); the G term is missing", dy * x * dG),
    ] + own}


@_mistakes("softmax")
def _softmax(probe, inp, ref):
    P, dP = ref["P"], inp["dP"]
    inner = (dP * P).sum(axis=-1, keepdims=True)  # (..., 1)
    out = {"dx": [
        ("missing the - sum_k(dP_k P_k) term: dx = P * (dP - sum_k dP_k P_k)", P * dP),
        ("that is only the diagonal of the Jacobian, P (1 - P) dP: the off-diagonal -P_i P_j terms are missing",
         P * (1.0 - P) * dP),
        ("dx = P * (dP - sum_k dP_k P_k): the sum is subtracted inside, then multiplied by P", P * dP - inner),
    ]}
    if P.ndim >= 2:
        out["dx"].append(("sum_k(dP * P) runs over the LAST axis (axis=-1, keepdims=True), not the first",
                          P * (dP - (dP * P).sum(axis=0, keepdims=True))))
    if inp["mask"] is None:
        x = inp["x"]
        xp = _xp(x)
        E = xp.exp(x - x.max(axis=0, keepdims=True))  # (..., n)
        out["P"] = [("softmax normalises over the LAST axis (each row sums to 1), not the first",
                     E / E.sum(axis=0, keepdims=True))]
    return out


@_mistakes("cross_entropy")
def _cross_entropy(probe, inp, ref):
    if "dy" in inp:  # the log_softmax probe
        dy = inp["dy"]
        P = _xp(dy).exp(ref["y"])  # (..., n)
        return {"dx": [
            ("dx = dy - P * sum_k(dy_k): the sum of dy over the last axis is missing", dy - P * dy),
            ("dx = dy - P * sum_k(dy_k): P must be multiplied by the sum of dy (it is not 1 here)", dy - P),
        ]}
    logits, targets, eps, dloss = inp["logits"], inp["targets"], inp["label_smoothing"], inp["dloss"]
    xp = _xp(logits)
    _, cache = _nn("softmax").log_softmax_forward(logits)
    P = cache.P  # (..., C)
    C = P.shape[-1]
    valid = (targets != -100)[..., None]  # (..., 1)
    t = xp.where(targets != -100, targets, 0)  # (...)
    one_hot = (xp.arange(C) == t[..., None]) * 1.0  # (..., C)  only for grading: tiny
    q = (1.0 - eps) * one_hot + eps / C  # (..., C)
    n_valid = int(valid.sum())
    N = int(targets.size)
    out = [
        ("ignored targets (ignore_index) must get a zero gradient: multiply by valid",
         (P - q) / n_valid * dloss),
        ("the mean is over the n_valid non-ignored targets: divide by n_valid, not by every position",
         (P - q) * valid / N * dloss),
        ("multiply by dloss, the upstream gradient of the loss", (P - q) * valid / n_valid),
        ("the gradient of the mean is (P - q) / n_valid: dividing by n_valid is missing",
         (P - q) * valid * dloss),
    ]
    if eps > 0.0:
        out.append(("label smoothing: the target distribution is q = (1 - eps) one_hot + eps / C",
                    (P - one_hot) * valid / n_valid * dloss))
    return {"dlogits": out}


@_mistakes("embedding")
def _embedding(probe, inp, ref):
    ids, dy = inp["ids"], inp["dy"]
    dW = _xp(dy).zeros(ref["dW"].shape, dtype=dy.dtype)  # (vocab_size, d_model)
    dW[ids.reshape(-1)] += dy.reshape(-1, dy.shape[-1])  # the classic bug: repeated ids keep one write
    return {"dW": [("repeated ids must add up: dW[ids] += dy keeps only one of the writes; "
                    "use backend.scatter_add", dW)]}


@_mistakes("dropout")
def _dropout(probe, inp, ref):
    mask, p = inp["mask"], inp["p"]
    if mask is None:
        return {}
    x, dy = inp["x"], inp["dy"]
    scale = 1.0 / (1.0 - p)
    out = {}
    for name, a in (("y", x), ("dx", dy)):
        out[name] = [
            ("inverted dropout scales the kept entries by 1 / (1 - p); that scale is missing", a * mask),
            ("the scale is 1 / (1 - p), the probability of KEEPING an entry, not 1 / p", a * mask / p),
            ("the mask is True where an entry is KEPT; yours keeps the dropped ones", a * ~mask * scale),
        ]
    return out


def _attention_variants(inp):
    """(Y without the scale, Y with 1/d_k, dQ/dK/dV of the usual backward mistakes)."""
    m = _nn("attention")
    smx = _nn("softmax")
    Q, K, V, dY = inp["Q"], inp["K"], inp["V"], inp["dY"]
    kw = {"mask": inp["mask"], "dropout_mask": inp["dropout_mask"], "dropout_p": inp["dropout_p"]}
    d_k = Q.shape[-1]
    Y_unscaled, _ = m.scaled_dot_product_attention_forward(Q * math.sqrt(d_k), K, V, **kw)  # (..., Tq, d_v)
    Y_over_dk, _ = m.scaled_dot_product_attention_forward(Q / math.sqrt(d_k), K, V, **kw)  # (..., Tq, d_v)
    _, cache = m.scaled_dot_product_attention_forward(Q, K, V, **kw)
    P, mask, dscale, scale = cache.P, cache.dropout_mask, cache.dropout_scale, cache.scale
    dP_drop = dY @ V.swapaxes(-1, -2)  # (..., Tq, Tk)
    dP = dP_drop if mask is None else dP_drop * mask * dscale  # (..., Tq, Tk)

    def grads(dS):
        return (dS @ K) * scale, (dS.swapaxes(-1, -2) @ Q) * scale

    no_sum = grads(P * dP)  # dQ (..., Tq, d_k), dK (..., Tk, d_k)
    no_dropout = grads(smx.softmax_backward(dP_drop, smx.SoftmaxCache(P)))  # dQ, dK
    dS = smx.softmax_backward(dP, smx.SoftmaxCache(P))  # (..., Tq, Tk)
    square = P.shape[-1] == P.shape[-2]  # Tq == Tk: the wrong transposes have the right shapes
    untransposed = ((dS.swapaxes(-1, -2) @ K) * scale, (dS @ Q) * scale) if square else None  # dQ, dK
    return Y_unscaled, Y_over_dk, P.swapaxes(-1, -2) @ dY, no_sum, no_dropout, mask is not None, untransposed


@_mistakes("attention")
def _attention(probe, inp, ref):
    Y_unscaled, Y_over_dk, dV_no_dropout, no_sum, no_dropout, has_dropout, untransposed = _attention_variants(inp)
    out = {"Y": [("S = Q K^T / sqrt(d_k): the 1 / sqrt(d_k) scale is missing", Y_unscaled),
                 ("the scale is 1 / sqrt(d_k), not 1 / d_k", Y_over_dk)]}
    for i, name in enumerate(("dQ", "dK")):
        out[name] = [("the softmax backward is missing its - sum_k(dP_k P_k) term (dS = P * (dP - sum))", no_sum[i])]
        if untransposed is not None:
            out[name].append(("dQ = dS K * scale and dK = dS^T Q * scale: dS is (Tq, Tk), so only dK transposes it",
                              untransposed[i]))
        if has_dropout:
            out[name].append(("dP must go back through the dropout: dP = dP_drop * dropout_mask * dropout_scale",
                              no_dropout[i]))
    if has_dropout:
        out["dV"] = [("dV = P_drop^T dY with the weights AFTER dropout (P * dropout_mask * dropout_scale)",
                      dV_no_dropout)]
    return out


@_mistakes("multihead")
def _multihead(probe, inp, ref):
    if "X" not in inp:
        return {}
    X, H = inp["X"], inp["H"]
    B, T, d_model = X.shape
    n_heads = 2
    return {
        "split_heads": [("reshaping straight to (B, n_heads, T, d_k) mixes positions and heads: reshape to "
                         "(B, T, n_heads, d_k), then swap axes 1 and 2",
                         X.reshape(B, n_heads, T, d_model // n_heads))],
        "merge_heads": [("move the head axis back next to d_k before the reshape: transpose(0, 2, 1, 3), "
                         "then reshape to (B, T, d_model)", H.reshape(B, H.shape[2], -1))],
    }


@_mistakes("layernorm")
def _layernorm(probe, inp, ref):
    x, gamma, beta, eps, dy = inp["x"], inp["gamma"], inp["beta"], inp["eps"], inp["dy"]
    xp = _xp(x)
    n = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    rstd = 1.0 / xp.sqrt(var + eps)  # (..., 1)
    x_hat = (x - mu) * rstd  # (..., n)
    unbiased = (x - mu) / xp.sqrt(var * n / (n - 1) + eps)  # (..., n)
    eps_outside = (x - mu) / (xp.sqrt(var) + eps)  # (..., n)
    g = dy * gamma  # (..., n)
    mean_g = g.mean(axis=-1, keepdims=True)  # (..., 1)
    mean_gx = (g * x_hat).mean(axis=-1, keepdims=True)  # (..., 1)
    dy_mean = dy.mean(axis=-1, keepdims=True)  # (..., 1)
    dy_x = (dy * x_hat).mean(axis=-1, keepdims=True)  # (..., 1)
    return {
        "y": [("the variance is the biased one: divide by d_model, not d_model - 1", gamma * unbiased + beta),
              ("eps goes inside the square root: rstd = 1 / sqrt(var + eps)", gamma * eps_outside + beta),
              ("y = gamma * x_hat + beta: gamma and beta are swapped", beta * x_hat + gamma)],
        "dx": [("missing the - mean(g) term (the gradient through mu)", rstd * (g - x_hat * mean_gx)),
               ("missing the - x_hat * mean(g * x_hat) term (the gradient through var)", rstd * (g - mean_g)),
               ("the gradient reaching x_hat is g = dy * gamma, not dy", rstd * (dy - dy_mean - x_hat * dy_x)),
               ("dx is multiplied by rstd = 1 / sqrt(var + eps)", g - mean_g - x_hat * mean_gx)],
        "dgamma": [("dgamma = sum(dy * x_hat), with the normalised x_hat, not x",
                    (dy * x).reshape(-1, n).sum(axis=0))],
    }


@_mistakes("feedforward")
def _feedforward(probe, inp, ref):
    m = _nn("feedforward")

    def chain(skip: str):
        backend.manual_seed(0)
        ff = m.FeedForward(4, 8, activation=inp["activation"], dropout=inp["dropout"]).to(dtype="float64")
        backend.manual_seed(7)
        ff(inp["x"])
        ff._pop_cache()
        d = ff.linear2.backward(inp["dy"])
        if skip != "dropout":
            d = ff.dropout.backward(d)
        if skip != "activation":
            d = ff.activation.backward(d)
        dx = ff.linear1.backward(d)
        return {"dx": dx, "dW_1": ff.linear1.W.grad, "db_1": ff.linear1.b.grad}

    out = {}
    skips = [("activation", "the activation's backward is skipped: call self.activation.backward between the two "
                            "linear layers")]
    if inp["dropout"] > 0.0:
        skips.append(("dropout", "the dropout's backward is skipped: call self.dropout.backward (same mask)"))
    for skip, message in skips:
        for name, a in chain(skip).items():
            out.setdefault(name, []).append((message, a))
    return out
