"""Parity of the Transformer blocks with torch: encoder/decoder layers, stacks, and nn.Transformer.

Covered: batch > 1, several heads, target length != source length, key padding masks on source and
target, causal masks, post-LN and pre-LN (norm_first), ReLU and GELU, stacks with and without a final
norm; dropout 0. Output, input gradients (x, memory / src, tgt) and every parameter gradient in float64
(< 1e-10) and float32 (< 1e-5).
"""

from __future__ import annotations

import numpy as np
import pytest

from minitransformer import backend
from tests.parity.helpers import DTYPES, make_pair, torch_tensor
from tests.parity.runner import padding, run_parity, torch_causal

pytestmark = pytest.mark.torch

B, T, S, D = 3, 4, 6, 8  # batch, target length, source length, d_model
ACTIVATIONS = ["relu", "gelu"]


def _inputs(*shapes):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s) for s in shapes]


def _case(**kw) -> str:
    return ",".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer(torch, interop, dtype, norm_first, activation):
    ours, theirs = make_pair(torch, "TransformerEncoderLayer", dtype, norm_first=norm_first, activation=activation)
    (x,) = _inputs((B, S, D))
    kpm = padding(B, S, {1: 2, 2: 1})
    run_parity(torch, interop, "TransformerEncoderLayer", dtype, ours, theirs, [("x", x)],
               lambda x: ours(x, key_padding_mask=backend.asarray(kpm), causal=True),
               lambda x: theirs(x, src_mask=torch_causal(torch, S, S), src_key_padding_mask=torch_tensor(torch, kpm)),
               case=_case(norm_first=norm_first, activation=activation))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer(torch, interop, dtype, norm_first, activation):
    ours, theirs = make_pair(torch, "TransformerDecoderLayer", dtype, n_heads=4, norm_first=norm_first,
                             activation=activation)
    x, memory = _inputs((B, T, D), (B, S, D))
    tgt, mem = padding(B, T, {0: 1}), padding(B, S, {1: 2, 2: 3})
    run_parity(torch, interop, "TransformerDecoderLayer", dtype, ours, theirs, [("x", x), ("memory", memory)],
               lambda x, m: ours(x, m, tgt_key_padding_mask=backend.asarray(tgt),
                                 memory_key_padding_mask=backend.asarray(mem)),
               lambda x, m: theirs(x, m, tgt_mask=torch_causal(torch, T, T),
                                   tgt_key_padding_mask=torch_tensor(torch, tgt),
                                   memory_key_padding_mask=torch_tensor(torch, mem)),
               case=_case(norm_first=norm_first, activation=activation))


# (norm_first, final_norm, activation): post-LN usually without a final norm, pre-LN with one; both other ways too
STACKS = [(False, False, "relu"), (False, True, "gelu"), (True, True, "relu"), (True, False, "gelu")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first,final_norm,activation", STACKS)
def test_encoder(torch, interop, dtype, norm_first, final_norm, activation):
    ours, theirs = make_pair(torch, "TransformerEncoder", dtype, norm_first=norm_first, final_norm=final_norm,
                             activation=activation)
    (x,) = _inputs((B, S, D))
    kpm = padding(B, S, {0: 3, 2: 1})
    run_parity(torch, interop, "TransformerEncoder", dtype, ours, theirs, [("x", x)],
               lambda x: ours(x, key_padding_mask=backend.asarray(kpm), causal=True),
               lambda x: theirs(x, mask=torch_causal(torch, S, S), src_key_padding_mask=torch_tensor(torch, kpm)),
               case=_case(norm_first=norm_first, final_norm=final_norm, activation=activation))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first,final_norm,activation", STACKS)
def test_decoder(torch, interop, dtype, norm_first, final_norm, activation):
    ours, theirs = make_pair(torch, "TransformerDecoder", dtype, norm_first=norm_first, final_norm=final_norm,
                             activation=activation)
    x, memory = _inputs((B, T, D), (B, S, D))
    tgt, mem = padding(B, T, {1: 2}), padding(B, S, {0: 2})
    run_parity(torch, interop, "TransformerDecoder", dtype, ours, theirs, [("x", x), ("memory", memory)],
               lambda x, m: ours(x, m, tgt_key_padding_mask=backend.asarray(tgt),
                                 memory_key_padding_mask=backend.asarray(mem)),
               lambda x, m: theirs(x, m, tgt_mask=torch_causal(torch, T, T),
                                   tgt_key_padding_mask=torch_tensor(torch, tgt),
                                   memory_key_padding_mask=torch_tensor(torch, mem)),
               case=_case(norm_first=norm_first, final_norm=final_norm, activation=activation))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer(torch, interop, dtype, norm_first, activation):
    ours, theirs = make_pair(torch, "Transformer", dtype, norm_first=norm_first, activation=activation)
    src, tgt = _inputs((B, S, D), (B, T, D))
    src_kpm, tgt_kpm = padding(B, S, {1: 3, 2: 1}), padding(B, T, {0: 2})
    run_parity(torch, interop, "Transformer", dtype, ours, theirs, [("src", src), ("tgt", tgt)],
               lambda s, t: ours(s, t, src_key_padding_mask=backend.asarray(src_kpm),
                                 tgt_key_padding_mask=backend.asarray(tgt_kpm)),
               lambda s, t: theirs(s, t, tgt_mask=torch_causal(torch, T, T),
                                   src_key_padding_mask=torch_tensor(torch, src_kpm),
                                   tgt_key_padding_mask=torch_tensor(torch, tgt_kpm),
                                   memory_key_padding_mask=torch_tensor(torch, src_kpm)),
               case=_case(norm_first=norm_first, activation=activation))
