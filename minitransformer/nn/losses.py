"""Cross-entropy loss over the last axis, with ignored targets and label smoothing.

Same definition as ``torch.nn.functional.cross_entropy`` (reduction="mean"),
with one deliberate difference: when every target is ``ignore_index`` the loss
is 0.0 with a zero gradient, where torch returns NaN (0 / 0). A batch made
only of padding then contributes nothing instead of poisoning the weights.

The backward is fused with the softmax: d(loss)/d(logits) is simply the
predicted distribution minus the target distribution, so neither a softmax
Jacobian nor a one-hot matrix is ever built.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import backend
from .checks import check_array, check_float
from .module import Module
from .softmax import log_softmax_forward

__all__ = ["CrossEntropyCache", "CrossEntropyLoss", "cross_entropy_backward", "cross_entropy_forward"]


def _check_inputs(logits, targets, ignore_index: int, label_smoothing: float) -> int:
    """Validate on the host; return the number of non-ignored targets."""
    check_float(logits, "cross_entropy logits")
    check_array(targets, "cross_entropy targets")
    if logits.ndim == 0:
        raise ValueError("cross_entropy logits: expected shape (..., C) with at least 1 axis, got shape ()")
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"cross_entropy: targets shape {tuple(targets.shape)} must equal the logits shape "
            f"{tuple(logits.shape)} without its last axis, {tuple(logits.shape[:-1])}"
        )
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy targets: expected an integer dtype, got {targets.dtype}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0.0, 1.0], got {label_smoothing}")
    C = logits.shape[-1]
    host = backend.to_numpy(targets)  # (...)  CuPy would silently wrap bad indices
    used = host[host != ignore_index]  # (n_valid,)
    if used.size and (int(used.min()) < 0 or int(used.max()) >= C):
        bad = int(used.min()) if int(used.min()) < 0 else int(used.max())
        raise IndexError(
            f"cross_entropy: target {bad} is out of range [0, {C}) for {C} classes "
            f"(ignore_index={ignore_index})"
        )
    return int(used.size)


class CrossEntropyCache(NamedTuple):
    P: object  # (..., C) softmax probabilities
    targets: object  # (...) target class; ignored positions replaced by 0
    valid: object  # (...) bool, True where the target is not ignore_index
    n_valid: int  # number of non-ignored positions
    label_smoothing: float  # eps


def cross_entropy_forward(logits, targets, ignore_index: int = -100, label_smoothing: float = 0.0):
    """Mean label-smoothed cross-entropy over the non-ignored positions.

    Args:
        logits: (..., C) unnormalised scores, float32 or float64.
        targets: (...) integer classes in [0, C), or ``ignore_index``.
        ignore_index: target value that contributes neither loss nor gradient.
        label_smoothing: eps in [0, 1]; the target distribution becomes
            (1 - eps) * onehot + eps / C.
    Returns:
        loss: () 0-d array of logits' dtype (0.0 if every target is ignored), and the cache.

    Math:
        logp = log_softmax(logits)                     (stable: log-sum-exp)
        q_c = (1 - eps) [c == t] + eps / C
        loss_i = -sum_c q_c logp_c = (1 - eps) (-logp_t) + eps (-mean_c logp_c)
        loss = sum_{i valid} loss_i / n_valid

    Ref: Szegedy et al. 2016 (label smoothing), Sec. 7; Vaswani et al. 2017, Sec. 5.4.
    """
    eps = float(label_smoothing)
    n_valid = _check_inputs(logits, targets, ignore_index, eps)
    xp = backend.get_array_module(logits)
    logp, lsm_cache = log_softmax_forward(logits)  # (..., C)
    valid = targets != ignore_index  # (...) bool
    t = xp.where(valid, targets, 0)  # (...)  a safe index for ignored positions
    nll = -xp.take_along_axis(logp, t[..., None], axis=-1)[..., 0]  # (...)  -logp_t
    loss_i = nll  # (...)  eps = 0 skips the smoothing term (0 * inf would be NaN for -inf logits)
    if eps > 0.0:
        smooth = -logp.mean(axis=-1)  # (...)  -(1/C) sum_c logp_c
        loss_i = (1.0 - eps) * nll + eps * smooth  # (...)
    total = xp.where(valid, loss_i, 0.0).sum()  # ()
    loss = xp.asarray(total / max(n_valid, 1), dtype=logits.dtype)  # ()  0/1 = 0 when all ignored
    return loss, CrossEntropyCache(lsm_cache.P, t, valid, n_valid, eps)


def cross_entropy_backward(dloss, cache: CrossEntropyCache):
    """Fused softmax + cross-entropy gradient.

    Args:
        dloss: () upstream gradient of the scalar loss (0-d array or Python float).
        cache: from ``cross_entropy_forward``.
    Returns:
        dlogits: (..., C).

    Math:
        d loss_i / d logits_i = P_i - q_i        (the softmax Jacobian cancels against log)
        dlogits = (P - q) * valid / n_valid * dloss

        P - q = (P - eps / C) - (1 - eps) [c == t]: we copy P while subtracting
        eps / C into G, then subtract (1 - eps) at one index per row with fancy indexing,
        G2[arange(N), t] -= 1 - eps. Each row is hit once, so plain -= is exact
        (no scatter-add needed) and no (N, C) one-hot matrix is ever made.
    """
    # BEGIN SOLUTION cross_entropy: dlogits = (P - q) * valid / n_valid * dloss, q = (1 - eps) one_hot(t) + eps / C
    # HINT: no one-hot: copy P - eps / C, subtract (1 - eps) at [arange(N), t] of a (N, C) view; never write the cache
    xp = backend.get_array_module(cache.P)
    P, t, valid, n_valid, eps = cache
    C = P.shape[-1]
    G = P - eps / C  # (..., C)  a fresh array: the cache is never written
    G2 = G.reshape(-1, C)  # (N, C)  a view of G
    G2[xp.arange(G2.shape[0]), t.reshape(-1)] -= 1.0 - eps  # (N, C)  inverts nll = -logp_t
    scale = xp.asarray(dloss, dtype=P.dtype) / max(n_valid, 1)  # ()  inverts loss = total / n_valid
    G *= valid[..., None] * scale  # (..., C)                  inverts where(valid, loss_i, 0)
    return G
    # END SOLUTION


class CrossEntropyLoss(Module):
    """Mean cross-entropy of ``logits`` (..., C) against integer ``targets`` (...); no parameters.

    Args:
        ignore_index: target value to skip (padding), -100 as in PyTorch.
        label_smoothing: eps in [0, 1].
    """

    def __init__(self, ignore_index: int = -100, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0.0, 1.0], got {label_smoothing}")
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, targets):
        """logits: (..., C), targets: (...) -> loss: () (validated in ``cross_entropy_forward``)."""
        loss, self._cache = cross_entropy_forward(logits, targets, self.ignore_index, self.label_smoothing)
        return loss

    def backward(self, dloss=1.0):
        """dloss: () -> dlogits: (..., C)."""
        return cross_entropy_backward(dloss, self._pop_cache())

    def __repr__(self) -> str:
        return f"CrossEntropyLoss(ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing})"
