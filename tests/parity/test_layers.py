"""Parity of single layers with torch: Linear, Embedding, LayerNorm, MultiheadAttention.

Same weights (torch's, randomized biases and gains, loaded into ours), same input, same upstream
gradient; output, input gradients and every parameter gradient compared in float64 (< 1e-10) and
float32 (< 1e-5), normwise (gradcheck.rel_error). See helpers.py for the tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer import backend
from tests.parity.helpers import DTYPES, assert_match, make_pair, torch_tensor
from tests.parity.runner import padding, run_parity, torch_causal

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(torch, interop, dtype, bias):
    ours, theirs = make_pair(torch, "Linear", dtype, bias=bias)
    x = np.random.default_rng(0).standard_normal((3, 4, 8))  # (B, T, d_in)
    run_parity(torch, interop, "Linear", dtype, ours, theirs, [("x", x)], ours, theirs, case=f"bias={bias}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding(torch, interop, dtype):
    ours, theirs = make_pair(torch, "Embedding", dtype)
    ids = np.random.default_rng(0).integers(0, 11, (3, 5))  # (B, T)
    ids[0, :3] = 4  # a repeated id: its gradient rows must add up
    run_parity(torch, interop, "Embedding", dtype, ours, theirs, [("ids", ids)], ours, theirs)
    assert theirs.weight.grad[4].abs().sum() > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm(torch, interop, dtype):
    ours, theirs = make_pair(torch, "LayerNorm", dtype)
    x = 3.0 + 2.0 * np.random.default_rng(0).standard_normal((3, 4, 8))  # off-centre, wide: mean and var matter
    run_parity(torch, interop, "LayerNorm", dtype, ours, theirs, [("x", x)], ours, theirs)


MHA_CASES = {
    # name: (n_heads, Tq, Tk, inputs, causal, {row: padded keys})
    "self-causal-padding": (2, 5, 5, "x", True, {1: 2}),
    "cross-Tq!=Tk-padding": (4, 3, 6, "query,memory", False, {0: 1, 1: 3}),
    "qkv-causal-Tq!=Tk-padding": (2, 4, 6, "query,key,value", True, {1: 2}),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multihead_attention(torch, interop, dtype, case):
    n_heads, Tq, Tk, names, causal, pad = MHA_CASES[case]
    ours, theirs = make_pair(torch, "MultiheadAttention", dtype, n_heads=n_heads)
    rng = np.random.default_rng(0)
    names = names.split(",")
    inputs = [(n, rng.standard_normal((2, Tq if i == 0 else Tk, 8))) for i, n in enumerate(names)]
    kpm = padding(2, Tk, pad)
    mask = torch_causal(torch, Tq, Tk) if causal else None
    weights = {}

    def ours_fn(*xs):
        y, weights["ours"] = ours(*xs, key_padding_mask=backend.asarray(kpm), causal=causal, need_weights=True)
        return y

    def theirs_fn(*ts):
        q, k, v = (ts * 3)[:3] if len(ts) == 1 else (ts[0], ts[1], ts[-1])
        y, weights["torch"] = theirs(q, k, v, key_padding_mask=torch_tensor(torch, kpm), attn_mask=mask,
                                     need_weights=True, average_attn_weights=False)
        return y

    run_parity(torch, interop, "MultiheadAttention", dtype, ours, theirs, inputs, ours_fn, theirs_fn, case=case)
    assert_match("MultiheadAttention", dtype, "attention weights P", weights["ours"], weights["torch"], case)
