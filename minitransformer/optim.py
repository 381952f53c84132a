"""Optimizers, learning-rate schedules and gradient clipping.

Usage follows PyTorch::

    opt = AdamW(decay_groups(model, weight_decay=0.01), lr=1e-3)
    schedule = noam(d_model=512, warmup=4000)
    for step in range(1, n_steps + 1):
        opt.zero_grad()
        loss = model.loss(batch)      # forward
        model.backward()              # fills every p.grad
        clip_grad_norm(model.parameters(), max_norm=1.0)
        opt.set_lr(schedule(step))
        opt.step()

The state (momentum buffers, Adam moments) lives in the optimizer, never in
the layers, on each parameter's backend and in its dtype: float32 parameters
get float32 state. Hyperparameters are kept as Python floats, so no NumPy
scalar can promote a float32 update to float64. Updates are done in place on
``p.data``, so tied parameters and views stay shared.
"""

from __future__ import annotations

import math

from . import backend
from .nn.module import Module, Parameter

__all__ = [
    "SGD", "Adam", "AdamW", "Optimizer",
    "clip_grad_norm", "constant", "decay_groups", "noam", "set_lr", "warmup_cosine",
]


def _build_groups(params, defaults: dict) -> list[dict]:
    """``params`` (Parameters, or group dicts like torch's) -> list of complete group dicts."""
    if isinstance(params, Module):
        raise TypeError("pass model.parameters() (or decay_groups(model, ...)), not the model itself")
    params = list(params)
    is_group = [isinstance(p, dict) for p in params]
    if any(is_group) and not all(is_group):
        raise TypeError("pass either a list of Parameters or a list of group dicts, not a mix")
    groups = [dict(g) for g in params] if any(is_group) else [{"params": params}]
    seen: set[int] = set()
    for g in groups:
        if "params" not in g:
            raise ValueError(f"a parameter group needs a 'params' list, got keys {sorted(g)}")
        g["params"] = list(g["params"])
        for p in g["params"]:
            if not isinstance(p, Parameter):
                raise TypeError(f"optimizer parameters must be Parameter objects, got {type(p).__name__}")
            if id(p) in seen:
                raise ValueError(f"{p} appears twice in the optimizer's parameters")
            seen.add(id(p))
        for key, value in defaults.items():
            g.setdefault(key, value)
        _check_group(g)
    if not seen:
        raise ValueError("the optimizer got an empty parameter list")
    return groups


def _check_group(g: dict) -> None:
    """Validate a group's hyperparameters and store them as Python floats (no NumPy scalars)."""
    for key in ("lr", "weight_decay", "momentum", "eps"):
        if key in g:
            g[key] = float(g[key])
            if not (g[key] >= 0.0 and math.isfinite(g[key])):
                raise ValueError(f"{key} must be a finite number >= 0, got {g[key]}")
    if "betas" in g:
        g["betas"] = tuple(float(b) for b in g["betas"])
        if len(g["betas"]) != 2 or not all(0.0 <= b < 1.0 for b in g["betas"]):
            raise ValueError(f"betas must be two numbers in [0, 1), got {g['betas']}")
    if g.get("nesterov") and g.get("momentum", 0.0) == 0.0:
        raise ValueError("nesterov=True needs momentum > 0")


class Optimizer:
    """Base class: parameter groups, the step count, ``zero_grad``, ``set_lr``, ``state_dict``.

    Subclasses list their per-parameter state arrays in ``slots`` and write
    the update of one parameter in ``_update(p, state, group)``.

    Attributes:
        param_groups: list of dicts ``{"params": [...], "lr": ..., ...}``; change
            ``group["lr"]`` (or call ``set_lr``) between steps.
        state: one dict per parameter (in group order), slot name -> array (...).
        step_count: steps taken so far (t in the Math blocks; the first step has t = 1).
    """

    slots: tuple[str, ...] = ()

    def __init__(self, params, **defaults):
        self.param_groups = _build_groups(params, defaults)
        self.state: list[dict] = [{} for _ in self._params()]
        self.step_count = 0

    def _params(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self) -> None:
        for p in self._params():
            p.zero_grad()

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every group (e.g. ``opt.set_lr(schedule(step))``)."""
        for g in self.param_groups:
            g["lr"] = float(lr)

    def step(self) -> None:
        """Apply one update to every parameter from its ``p.grad``."""
        self.step_count += 1
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                self._update(p, self.state[i], group)
                i += 1

    def _update(self, p: Parameter, state: dict, group: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """``{"arrays": {"<i>.<slot>": host array}, "scalars": JSON-able dict}`` (i = parameter index)."""
        arrays = {f"{i}.{slot}": backend.to_numpy(a).copy() for i, s in enumerate(self.state) for slot, a in s.items()}
        groups = [{k: v for k, v in g.items() if k != "params"} | {"n_params": len(g["params"])}
                  for g in self.param_groups]
        scalars = {"type": type(self).__name__, "step_count": self.step_count, "param_groups": groups}
        return {"arrays": arrays, "scalars": scalars}

    def check_state_dict(self, state: dict) -> None:
        """Raise ValueError if ``state`` (from ``state_dict()``) does not fit this optimizer's parameters."""
        if not isinstance(state, dict) or set(state) != {"arrays", "scalars"}:
            raise ValueError("optimizer state must be a dict with keys 'arrays' and 'scalars' (from state_dict())")
        arrays, scalars = state["arrays"], state["scalars"]
        name = type(self).__name__
        if scalars.get("type") != name:
            raise ValueError(f"optimizer state is for {scalars.get('type')!r}, this optimizer is {name!r}")
        sizes = [len(g["params"]) for g in self.param_groups]
        saved = [g["n_params"] for g in scalars["param_groups"]]
        if saved != sizes:
            raise ValueError(f"optimizer state has groups of sizes {saved}, this optimizer has {sizes}")
        params = self._params()
        bad = []
        for key, value in arrays.items():
            i, _, slot = key.partition(".")
            if not i.isdigit() or int(i) >= len(params) or slot not in self.slots:
                bad.append(f"unexpected key {key!r}")
            elif tuple(value.shape) != tuple(params[int(i)].shape):
                bad.append(f"{key!r} has shape {tuple(value.shape)}, parameter has {tuple(params[int(i)].shape)}")
        if bad:
            raise ValueError(f"optimizer state does not match {name}: " + "; ".join(bad))

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()`` output bit-exactly; everything is checked before anything changes."""
        self.check_state_dict(state)
        arrays, scalars = state["arrays"], state["scalars"]
        params = self._params()
        self.state = [{} for _ in params]
        for key, value in arrays.items():
            i, _, slot = key.partition(".")
            p = params[int(i)]
            xp = backend.get_array_module(p.data)
            self.state[int(i)][slot] = xp.array(value, dtype=p.dtype)  # (...) a copy, on p's device
        for g, s in zip(self.param_groups, scalars["param_groups"], strict=True):
            g.update({k: v for k, v in s.items() if k not in ("params", "n_params")})
            _check_group(g)
        self.step_count = int(scalars["step_count"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    Args:
        params: Parameters, or group dicts ``{"params": [...], "lr": ..., "weight_decay": ...}``.
        lr: learning rate. momentum: mu. weight_decay: L2 coefficient. nesterov: look-ahead form.

    Math (as torch.optim.SGD with dampening 0; buf starts as g on the first step):
        g   = p.grad + weight_decay * p
        buf = momentum * buf + g                   (if momentum > 0)
        g   = g + momentum * buf   if nesterov   else   buf
        p   = p - lr * g

    Ref: Sutskever et al. 2013, "On the importance of initialization and momentum in deep learning".
    """

    slots = ("momentum_buffer",)

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def _update(self, p, state, group):
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        g = p.grad  # (...)  never modified in place
        if weight_decay != 0.0:
            g = g + weight_decay * p.data  # (...)  L2: gradient of 0.5 * weight_decay * |p|^2
        if momentum != 0.0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()  # (...)  first step: buf = g
            else:
                buf = state["momentum_buffer"]  # (...)
                buf *= momentum
                buf += g  # buf = momentum * buf + g, in place
            buf = state["momentum_buffer"]  # (...)
            g = g + momentum * buf if group["nesterov"] else buf  # (...)
        p.data -= lr * g


class Adam(Optimizer):
    """Adam; ``weight_decay`` is an L2 term added to the gradient (as torch.optim.Adam).

    Args:
        params: Parameters, or group dicts.
        lr, betas=(beta1, beta2), eps: as in the paper. weight_decay: L2 coefficient.

    Math (t = step_count, m and v start at zero):
        g     = p.grad + weight_decay * p
        m     = beta1 * m + (1 - beta1) * g
        v     = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1^t)
        v_hat = v / (1 - beta2^t)
        p     = p - lr * m_hat / (sqrt(v_hat) + eps)
    The code computes the last line as torch does,
        p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps),
    which is the same number.

    Ref: Kingma and Ba 2015, "Adam: A Method for Stochastic Optimization", Algorithm 1.
    """

    slots = ("exp_avg", "exp_avg_sq")
    decoupled = False  # AdamW sets True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _update(self, p, state, group):
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        t = self.step_count
        xp = backend.get_array_module(p.data)
        if not state:
            state["exp_avg"] = xp.zeros_like(p.data)  # (...)  m, in p's dtype
            state["exp_avg_sq"] = xp.zeros_like(p.data)  # (...)  v
        bias1 = 1.0 - beta1**t  # Python floats: no NumPy scalar can upcast float32
        bias2 = 1.0 - beta2**t
        # The lines below run on cache-sized blocks of the flattened arrays (backend.flat_blocks; one block on
        # a GPU), spread over the CPU's cores (backend.for_each_block). Each line is one pass; over whole arrays
        # each pass would go through memory (an embedding table is 47 MB), on blocks they stay in the cache.
        def block(p_b, g_b, m, v):  # (b,) views of p, its gradient, m and v
            if weight_decay != 0.0:
                if self.decoupled:
                    p_b *= 1.0 - lr * weight_decay  # AdamW: p = p - lr * weight_decay * p
                else:
                    g_b = g_b + weight_decay * p_b  # (b,)  Adam: L2 folded into the gradient (p.grad untouched)
            # Every line below works in place; tmp is the update's only temporary (as big as the block).
            tmp = g_b * g_b  # (b,)
            tmp *= 1.0 - beta2
            v *= beta2
            v += tmp  # v = beta2 * v + (1 - beta2) * g * g
            xp.multiply(g_b, 1.0 - beta1, out=tmp)
            m *= beta1
            m += tmp  # m = beta1 * m + (1 - beta1) * g
            xp.sqrt(v, out=tmp)
            tmp /= math.sqrt(bias2)
            tmp += eps  # tmp = sqrt(v_hat) + eps
            xp.divide(m, tmp, out=tmp)
            tmp *= lr / bias1
            p_b -= tmp  # p = p - lr * m_hat / (sqrt(v_hat) + eps)

        backend.for_each_block(block, backend.flat_blocks(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"]))


class AdamW(Adam):
    """Adam with decoupled weight decay (as torch.optim.AdamW).

    Args:
        params: Parameters, or group dicts (see ``decay_groups``).
        lr, betas, eps: as Adam. weight_decay: decoupled decay coefficient (0.01 default).

    Math (t = step_count):
        p     = p - lr * weight_decay * p              (decay first, not through m and v)
        g     = p.grad
        m     = beta1 * m + (1 - beta1) * g
        v     = beta2 * v + (1 - beta2) * g * g
        p     = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    Ref: Loshchilov and Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 2.
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def decay_groups(model_or_named_params, weight_decay: float) -> list[dict]:
    """Split parameters into a weight-decay group and a no-decay group.

    Rule: a parameter with ``ndim < 2`` (biases, LayerNorm gamma and beta) gets
    no weight decay; every matrix (Linear weights, embedding tables) gets
    ``weight_decay``. Shrinking a bias or a LayerNorm scale towards zero does
    not regularise anything useful, so the common recipe (BERT, GPT-2) skips them.

    Args:
        model_or_named_params: a Module, or an iterable of ``(name, Parameter)``.
        weight_decay: the coefficient of the decay group.
    Returns:
        ``[{"params": matrices, "weight_decay": weight_decay}, {"params": the rest, "weight_decay": 0.0}]``.
    """
    named = model_or_named_params
    if isinstance(named, Module):
        named = named.named_parameters()
    decay, no_decay = [], []
    for _name, p in named:
        (decay if p.data.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]


def set_lr(opt: Optimizer, lr: float) -> None:
    """Set the learning rate of every group of ``opt``."""
    opt.set_lr(lr)


# -- learning-rate schedules: callables step -> lr, steps counted from 1 --------


def _check_step(step) -> int:
    if int(step) != step or step < 1:
        raise ValueError(f"schedule steps are counted from 1, got step {step}")
    return int(step)


def noam(d_model: int, warmup: int, factor: float = 1.0):
    """The Transformer paper's schedule: linear warmup, then decay as 1/sqrt(step).

    Math:
        lr(step) = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)
    The two terms meet at step = warmup, where lr peaks at factor / sqrt(d_model * warmup).

    Ref: Vaswani et al. 2017, "Attention Is All You Need", Eq. 3.
    """
    if d_model < 1 or warmup < 1:
        raise ValueError(f"noam needs d_model >= 1 and warmup >= 1, got d_model={d_model}, warmup={warmup}")

    def schedule(step) -> float:
        step = _check_step(step)
        return float(factor) * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)

    return schedule


def warmup_cosine(peak_lr: float, warmup: int, total: int, min_lr: float = 0.0):
    """Linear warmup to ``peak_lr`` over ``warmup`` steps, then cosine decay to ``min_lr`` at step ``total``.

    Math:
        lr(step) = peak_lr * step / warmup                                     for step <= warmup
        progress = min(1, (step - warmup) / (total - warmup))
        lr(step) = min_lr + 0.5 * (peak_lr - min_lr) * (1 + cos(pi * progress))  after; min_lr after total

    Ref: Loshchilov and Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm Restarts" (one cycle).
    """
    if not 0 <= warmup < total:
        raise ValueError(f"warmup_cosine needs 0 <= warmup < total, got warmup={warmup}, total={total}")

    def schedule(step) -> float:
        step = _check_step(step)
        if step <= warmup:
            return float(peak_lr) * step / warmup
        progress = min(1.0, (step - warmup) / (total - warmup))
        return float(min_lr) + 0.5 * (float(peak_lr) - float(min_lr)) * (1.0 + math.cos(math.pi * progress))

    return schedule


def constant(lr: float):
    """The same learning rate at every step: lr(step) = lr."""

    def schedule(step) -> float:
        _check_step(step)
        return float(lr)

    return schedule


# -- gradient clipping -----------------------------------------------------------


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``.

    Args:
        params: Parameters (or group dicts); their ``grad`` arrays (...) are scaled in place.
        max_norm: the largest allowed global norm (> 0).
    Returns:
        the total norm before clipping, as a Python float.

    Math (as torch.nn.utils.clip_grad_norm_):
        total = sqrt(sum over all parameters and entries of grad^2)
        scale = max_norm / (total + 1e-6)
        grad  = grad * scale          only when scale < 1
    A non-finite total (a NaN or inf gradient) is returned as it is and the
    gradients are left untouched: the caller decides (stop, or skip the step).
    """
    if not (max_norm > 0.0 and math.isfinite(max_norm)):
        raise ValueError(f"max_norm must be a finite number > 0, got {max_norm}")
    params = [p for g in _build_groups(params, {}) for p in g["params"]]
    squares = [backend.get_array_module(p.grad).vdot(p.grad.ravel(), p.grad.ravel()) for p in params]  # () each
    total = math.sqrt(float(sum(squares)))  # one transfer to the host
    scale = float(max_norm) / (total + 1e-6)
    if math.isfinite(total) and scale < 1.0:
        for p in params:
            p.grad *= scale
    return total
