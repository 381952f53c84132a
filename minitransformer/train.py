"""A small, readable training loop shared by every model.

One step is the whole story of training by hand:

    opt.zero_grad()                 # forget the last step's gradients
    loss = loss_fn(model, batch)    # forward, keeping caches
    model.backward()                # hand-written backward fills every p.grad
    clip_grad_norm(params, max)     # rescale if the global norm is too large
    opt.set_lr(schedule(step))      # learning rate for this step
    opt.step()                      # update the parameters

The ``Trainer`` adds what a user expects around it: a progress bar (loss,
learning rate, tokens/s), periodic evaluation, a history for plots, and a
clear stop when the loss or a gradient is not finite (naming the step and the
first parameter, in model order, whose gradient went bad).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from . import backend
from .optim import clip_grad_norm

__all__ = ["History", "Trainer", "TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


@dataclass
class History:
    """What happened during training, for loss curves and notebooks."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)  # {"step": ..., metric: value, ...}
    tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"steps": self.steps, "loss": self.loss, "lr": self.lr, "grad_norm": self.grad_norm,
                "evals": self.evals, "tokens": self.tokens, "seconds": self.seconds}


class Trainer:
    """Train ``model`` with ``optimizer`` on batches from an iterator.

    Args:
        model: a Module with ``backward()`` that backpropagates the loss of
            the last ``loss_fn`` call.
        optimizer: from ``minitransformer.optim``.
        loss_fn: ``loss_fn(model, batch) -> (loss 0-d array, n_tokens int)``.
        schedule: ``schedule(step) -> lr`` (step from 1), or None to keep the optimizer's lr.
        clip_norm: global gradient-norm limit, or None.
        eval_fn: ``eval_fn(model) -> dict of metrics``, run every ``eval_every`` steps and at the end.
        callback: ``callback(step, history)`` after every step (notebooks plot live from it).
    """

    def __init__(self, model, optimizer, loss_fn: Callable, schedule: Callable | None = None,
                 clip_norm: float | None = 1.0, eval_fn: Callable | None = None, eval_every: int = 0,
                 callback: Callable | None = None):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.schedule, self.clip_norm = schedule, clip_norm
        self.eval_fn, self.eval_every, self.callback = eval_fn, eval_every, callback
        self.step_count = 0
        self.history = History()

    def train_step(self, batch) -> tuple[float, int]:
        """One optimisation step; returns (loss, number of target tokens)."""
        step = self.step_count + 1
        self.model.train()
        self.optimizer.zero_grad()
        loss, n_tokens = self.loss_fn(self.model, batch)
        loss = float(loss)
        self.model.backward()
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"step {step}: loss is {loss}; {self._diagnose()}")
        norm = clip_grad_norm(self.model.parameters(), self.clip_norm) if self.clip_norm else math.nan
        if self.clip_norm and not math.isfinite(norm):
            raise TrainingDivergedError(f"step {step}: gradient norm is {norm}; {self._diagnose()}")
        lr = self.schedule(step) if self.schedule else self.optimizer.param_groups[0]["lr"]
        self.optimizer.set_lr(lr)
        self.optimizer.step()
        self.step_count = step
        h = self.history
        h.steps.append(step)
        h.loss.append(loss)
        h.lr.append(lr)
        h.grad_norm.append(norm)
        h.tokens += int(n_tokens)
        return loss, int(n_tokens)

    def _diagnose(self) -> str:
        """Name the first parameter (in model order) whose value, and whose gradient, is not finite."""
        bad_value = bad_grad = None
        for name, p in self.model.named_parameters():
            xp = backend.get_array_module(p.data)
            if bad_value is None and not bool(xp.isfinite(p.data).all()):
                bad_value = name
            if bad_grad is None and not bool(xp.isfinite(p.grad).all()):
                bad_grad = name
        parts = [f"first non-finite gradient: {bad_grad or 'none'}"]
        if bad_value:
            parts.append(f"first non-finite parameter: {bad_value}")
        return "; ".join(parts)

    def evaluate(self) -> dict:
        """Run ``eval_fn`` now and record its metrics."""
        metrics = {"step": self.step_count, **self.eval_fn(self.model)}
        self.history.evals.append(metrics)
        return metrics

    def fit(self, batches: Iterator, steps: int, progress: bool = True, desc: str = "train") -> History:
        """Train for ``steps`` steps, drawing batches from ``batches`` (an iterator that does not run out)."""
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, disable=not progress, dynamic_ncols=True, leave=True)
        t0 = time.perf_counter()
        tokens0 = self.history.tokens
        try:
            for _ in range(steps):
                loss, _ = self.train_step(next(batches))
                elapsed = time.perf_counter() - t0
                tok_s = (self.history.tokens - tokens0) / max(elapsed, 1e-9)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self.history.lr[-1]:.2e}", tok_s=f"{tok_s:,.0f}",
                                refresh=False)
                bar.update(1)
                if self.eval_fn and self.eval_every and self.step_count % self.eval_every == 0:
                    metrics = self.evaluate()
                    bar.write(f"step {self.step_count}: " + ", ".join(
                        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
                        if k != "step"))
                if self.callback:
                    self.callback(self.step_count, self.history)
        finally:
            bar.close()
            self.history.seconds += time.perf_counter() - t0
        return self.history
