import itertools

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.generate import attention_maps, beam_search, greedy_decode
from minitransformer.models import Transformer, TransformerConfig
from minitransformer.nn.softmax import log_softmax_forward


def _model(V=6, seed=0):
    backend.manual_seed(seed)
    cfg = TransformerConfig(src_vocab_size=V, tgt_vocab_size=V, d_model=8, n_heads=2, d_ff=16,
                            n_encoder_layers=1, n_decoder_layers=2, dropout=0.1, max_len=32)
    return Transformer(cfg).to(dtype="float64")


def _src():
    src = backend.asarray(np.array([[3, 4, 5, 3], [5, 4, 0, 0], [4, 4, 4, 3]]), dtype="int64")
    kpm = backend.asarray(np.array([[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=bool))
    return src, kpm


def _logp_of(model, src, kpm, b, prefix):
    """log p(next | prefix) for sequence b, by a fresh teacher-forced pass."""
    memory = model.encode(src[b:b + 1], kpm[b:b + 1])
    ys = backend.asarray(np.array([[1] + list(prefix)]), dtype="int64")
    logits = model.decode(ys, memory, kpm[b:b + 1])
    return backend.to_numpy(log_softmax_forward(logits[0, -1])[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_equals_greedy(seed):
    model = _model(seed=seed)
    src, kpm = _src()
    g = greedy_decode(model, src, kpm, max_len=12)
    b = beam_search(model, src, kpm, beam_size=1, max_len=12, length_penalty=0.0)
    assert g.tokens == b.tokens
    np.testing.assert_allclose(g.scores, b.scores, rtol=1e-12)


def test_greedy_matches_step_by_step_argmax():
    model = _model()
    src, kpm = _src()
    out = greedy_decode(model, src, kpm, max_len=6)
    model.eval()
    for b, toks in enumerate(out.tokens):
        prefix = []
        for _ in range(6):
            nxt = int(np.argmax(_logp_of(model, src, kpm, b, prefix)))
            if nxt == 2:
                break
            prefix.append(nxt)
        assert prefix == toks


def test_exhaustive_beam_finds_the_best_sequence():
    """With a beam as wide as the search space, beam search is exact: compare to brute force."""
    V, L = 5, 3
    model = _model(V=V)
    src, kpm = _src()
    src = src % V  # ids must fit the smaller vocabulary
    model.eval()
    res = beam_search(model, src, kpm, beam_size=V ** L, max_len=L, length_penalty=0.0)
    for b in range(src.shape[0]):
        best, best_seq = -np.inf, None
        for n in range(1, L + 1):
            for seq in itertools.product(range(V), repeat=n):
                if 2 in seq[:-1] or (n < L and seq[-1] != 2):
                    continue  # a hypothesis ends at its first <eos>, or unfinished at max_len
                score = sum(_logp_of(model, src, kpm, b, seq[:i])[seq[i]] for i in range(n))
                if score > best:
                    best, best_seq = score, seq
        expected = list(best_seq[:-1]) if best_seq[-1] == 2 else list(best_seq)
        assert res.tokens[b] == expected
        assert abs(res.scores[b] - best) < 1e-9


def test_wider_beam_never_scores_worse():
    model = _model(seed=3)
    src, kpm = _src()
    s1 = beam_search(model, src, kpm, beam_size=1, max_len=8, length_penalty=0.0).scores
    s4 = beam_search(model, src, kpm, beam_size=4, max_len=8, length_penalty=0.0).scores
    assert all(b >= a - 1e-12 for a, b in zip(s1, s4, strict=True))


def test_decoding_restores_training_mode_and_is_deterministic():
    model = _model()
    src, kpm = _src()
    assert model.training
    a = greedy_decode(model, src, kpm, max_len=5)
    b = greedy_decode(model, src, kpm, max_len=5)  # dropout off while decoding: same output
    assert model.training
    assert a.tokens == b.tokens
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        beam_search(model, src, kpm, beam_size=0)


def test_attention_maps_shapes_and_rows():
    model = _model()
    src, kpm = _src()
    tgt_in = backend.asarray(np.array([[1, 3, 4], [1, 4, 4], [1, 5, 3]]), dtype="int64")
    maps = attention_maps(model, src, tgt_in, kpm)
    assert [m.shape for m in maps["cross"]] == [(3, 2, 3, 4)] * 2
    assert maps["encoder"][0].shape == (3, 2, 4, 4)
    np.testing.assert_allclose(maps["cross"][0].sum(-1), 1.0, rtol=1e-12)
    assert np.all(maps["cross"][0][1, :, :, 2:] == 0.0)  # padded source tokens get no attention
