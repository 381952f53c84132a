"""One forward + backward through ours and torch with the same weights, inputs and upstream gradient."""

from __future__ import annotations

import numpy as np

from minitransformer import backend
from tests.parity.helpers import assert_grads_match, assert_match, ours_array, torch_tensor


def run_parity(torch, interop, check, dtype, ours, theirs, inputs, ours_fn, theirs_fn, case="", seed=0):
    """Load torch's weights into ours, run both, backprop one upstream gradient, compare everything.

    Args:
        inputs: ``[(name, host array)]``; float arrays are cast to ``dtype`` and their gradients
            compared, integer arrays (token ids) are passed as they are.
        ours_fn(*arrays) -> y, theirs_fn(*tensors) -> y: the two forwards (masks bound inside).
    Returns:
        ours' output, for extra checks.
    """
    interop.load_from_torch(ours, theirs)
    is_float = [a.dtype.kind == "f" for _, a in inputs]
    xs = [ours_array(a, dtype if f else None) for (_, a), f in zip(inputs, is_float, strict=True)]
    ts = [torch_tensor(torch, a, dtype if f else None, grad=f) for (_, a), f in zip(inputs, is_float, strict=True)]
    y, yt = ours_fn(*xs), theirs_fn(*ts)
    assert y.dtype == backend.dtype(dtype), f"{check}: {dtype} in, {y.dtype} out"
    dy = np.random.default_rng(seed + 1).standard_normal(y.shape)  # (*y.shape) the shared upstream gradient
    grads = ours.backward(ours_array(dy, dtype))
    yt.backward(torch_tensor(torch, dy, dtype))
    assert_match(check, dtype, "output", y, yt, case)
    grads = grads if isinstance(grads, tuple) else (grads,)
    float_inputs = [(name, t) for (name, _), t, f in zip(inputs, ts, is_float, strict=True) if f]
    assert len([g for g in grads if g is not None]) == len(float_inputs)
    for (name, t), g in zip(float_inputs, grads, strict=False):
        assert g.dtype == backend.dtype(dtype)
        assert_match(check, dtype, "d" + name, g, t.grad, case)
    assert_grads_match(check, dtype, ours, interop.grads_from_torch(theirs), case)
    return y


def padding(B: int, T: int, pad: dict) -> np.ndarray:
    """Bool (B, T) key padding mask, True = padding: ``pad = {row: n_padded_at_the_end}``."""
    kpm = np.zeros((B, T), dtype=bool)
    for row, n in pad.items():
        kpm[row, T - n:] = True
    return kpm


def torch_causal(torch, Tq: int, Tk: int):
    """torch's bool attn_mask (True = blocked) for our ``causal=True``: key j hidden from query i if j > i + Tk - Tq."""
    return torch.from_numpy(np.triu(np.ones((Tq, Tk), dtype=bool), k=1 + Tk - Tq))
