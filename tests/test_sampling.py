import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.sampling import (
    check_sampling_options,
    greedy,
    sample,
    sampling_probs,
    top_k_filter,
    top_p_filter,
)
from tests.conftest import assert_close, randn, require


def _softmax(x):
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _nucleus_loop(p_row, top_p):
    """Naive nucleus: walk tokens by decreasing probability until the mass reaches top_p."""
    order = sorted(range(len(p_row)), key=lambda v: (-p_row[v], v))
    kept, mass = set(), 0.0
    for v in order:
        kept.add(v)
        mass += p_row[v]
        if mass >= top_p:
            break
    return kept


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_top_k_one_equals_greedy(rng, temperature):
    logits = randn(rng, 16, 50, dtype="float32")
    for seed in range(5):
        ids = sample(logits, temperature=temperature, top_k=1, rng=seed)
        np.testing.assert_array_equal(backend.to_numpy(ids), backend.to_numpy(greedy(logits)))
    np.testing.assert_array_equal(backend.to_numpy(greedy(logits)), np.argmax(backend.to_numpy(logits), axis=-1))


def test_greedy_option_is_argmax_and_draws_nothing(rng):
    logits = randn(rng, 4, 9)
    gen = backend.host_rng(3)
    state = dict(gen.bit_generator.state)
    ids = sample(logits, temperature=0.5, top_p=0.3, rng=gen, do_greedy=True)
    np.testing.assert_array_equal(backend.to_numpy(ids), backend.to_numpy(logits).argmax(axis=-1))
    assert gen.bit_generator.state == state


def test_top_p_filter_matches_naive_nucleus(rng):
    logits = randn(rng, 20, 12)
    P = _softmax(backend.to_numpy(logits))
    for top_p in (0.05, 0.3, 0.5, 0.77, 0.95, 1.0):
        kept = backend.to_numpy(top_p_filter(logits, top_p)) > -np.inf
        for b in range(20):
            assert set(np.flatnonzero(kept[b]).tolist()) == _nucleus_loop(P[b].tolist(), top_p), (top_p, b)


def test_top_p_never_samples_outside_the_nucleus(rng):
    # P = [0.5, 0.3, 0.15, 0.05]: nucleus(0.7) = {0, 1}, nucleus(0.81) = {0, 1, 2}, nucleus(0.4) = {0}
    probs = np.array([0.15, 0.5, 0.05, 0.3])  # shuffled ids: the filter must sort
    logits = backend.asarray(np.log(np.tile(probs, (4000, 1))), dtype="float64")
    for top_p, nucleus in ((0.4, {1}), (0.7, {1, 3}), (0.81, {0, 1, 3})):
        ids = backend.to_numpy(sample(logits, top_p=top_p, rng=11))
        assert set(ids.tolist()) == nucleus, top_p  # every nucleus member drawn, nothing else
    # random logits, many rows: each draw lies inside its own row's nucleus
    logits = randn(rng, 3000, 30, dtype="float32") * 2.0
    P = _softmax(backend.to_numpy(logits).astype(np.float64))
    ids = backend.to_numpy(sample(logits, temperature=1.0, top_p=0.6, rng=5))
    for b in range(0, 3000, 7):
        assert int(ids[b]) in _nucleus_loop(P[b].tolist(), 0.6)


def test_top_k_filter_matches_naive_loop_with_ties():
    logits = backend.asarray(np.array([[1.0, 3.0, 3.0, 0.5, 3.0, -2.0]]), dtype="float64")
    out = backend.to_numpy(top_k_filter(logits, 2))
    np.testing.assert_array_equal(out > -np.inf, [[False, True, True, False, False, False]])  # lower ids win ties
    np.testing.assert_array_equal(out[0, [1, 2]], [3.0, 3.0])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 10))
    for k in (1, 3, 10, 25):
        kept = backend.to_numpy(top_k_filter(backend.asarray(x), k)) > -np.inf
        for b in range(8):
            expected = set(sorted(range(10), key=lambda v: -x[b, v])[:k])
            assert set(np.flatnonzero(kept[b]).tolist()) == expected


def test_temperature_to_zero_approaches_greedy(rng):
    logits = randn(rng, 6, 20)
    best = backend.to_numpy(logits).argmax(axis=-1)
    p_best = []
    for T in (2.0, 1.0, 0.3, 0.1, 0.01, 1e-4):
        P = backend.to_numpy(sampling_probs(logits, temperature=T))
        p_best.append(P[np.arange(6), best])
    p_best = np.array(p_best)  # (n_T, 6)
    assert np.all(np.diff(p_best, axis=0) >= 0) and np.all(p_best[1:] > p_best[0])  # the argmax gains mass as T falls
    assert np.all(p_best[-1] > 1 - 1e-6)
    for seed in range(10):
        np.testing.assert_array_equal(backend.to_numpy(sample(logits, temperature=1e-4, rng=seed)), best)


def test_fixed_seed_reproduces_exactly(rng):
    logits = randn(rng, 64, 40, dtype="float32")
    a = backend.to_numpy(sample(logits, temperature=0.9, top_k=20, top_p=0.9, rng=123))
    b = backend.to_numpy(sample(logits, temperature=0.9, top_k=20, top_p=0.9, rng=123))
    c = backend.to_numpy(sample(logits, temperature=0.9, top_k=20, top_p=0.9, rng=124))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g1, g2 = backend.host_rng(7), backend.host_rng(7)  # a generator carries on from where it stopped
    seq1 = [backend.to_numpy(sample(logits, rng=g1)) for _ in range(3)]
    seq2 = [backend.to_numpy(sample(logits, rng=g2)) for _ in range(3)]
    np.testing.assert_array_equal(np.stack(seq1), np.stack(seq2))
    assert not np.array_equal(seq1[0], seq1[1])


@pytest.mark.parametrize("T,top_k,top_p", [(1.0, None, None), (0.7, None, None), (1.5, 4, None), (1.0, None, 0.8),
                                           (0.8, 5, 0.9)])
def test_distribution_matches_reference_chi_square(T, top_k, top_p):
    stats = require("scipy.stats")
    x = np.array([1.2, -0.3, 0.4, 2.0, 0.0, -1.5, 0.9, 0.1])
    # reference distribution, written out by hand: softmax(x / T), cut to top-k then to the nucleus
    z = x / T
    if top_k is not None:
        z = np.where(np.isin(np.arange(8), np.argsort(-z, kind="stable")[:top_k]), z, -np.inf)
    if top_p is not None:
        kept = _nucleus_loop(_softmax(z).tolist(), top_p)
        z = np.where(np.isin(np.arange(8), sorted(kept)), z, -np.inf)
    ref = _softmax(z)
    assert_close(sampling_probs(backend.asarray(x), T, top_k, top_p), ref, rtol=1e-12, atol=1e-15)
    N = 40_000
    logits = backend.asarray(np.tile(x, (N, 1)), dtype="float32")
    ids = backend.to_numpy(sample(logits, temperature=T, top_k=top_k, top_p=top_p, rng=2024))
    counts = np.bincount(ids, minlength=8)
    support = ref > 0
    assert np.all(counts[~support] == 0)
    chi2, pvalue = stats.chisquare(counts[support], N * ref[support])
    assert pvalue > 1e-3, (counts, N * ref)


def test_never_samples_a_masked_token(rng):
    x = backend.to_numpy(randn(rng, 500, 7))
    x[:, [0, 3, 6]] = -np.inf  # e.g. a vocabulary mask
    ids = backend.to_numpy(sample(backend.asarray(x), temperature=3.0, rng=1))
    assert not np.isin(ids, [0, 3, 6]).any()
    assert set(ids.tolist()) == {1, 2, 4, 5}
    one = backend.asarray(np.array([[-np.inf, -np.inf, 0.0]] * 50))  # only the last token possible
    assert set(backend.to_numpy(sample(one, rng=0)).tolist()) == {2}


def test_shapes_and_dtypes(rng):
    logits32 = randn(rng, 3, 11, dtype="float32")
    assert sampling_probs(logits32, 0.5, 3, 0.9).dtype == np.float32
    assert top_k_filter(logits32, 2).dtype == np.float32
    assert top_p_filter(logits32, 0.5).dtype == np.float32
    ids = sample(logits32, rng=0)
    assert ids.shape == (3,) and ids.dtype == np.int64
    single = sample(logits32[0], rng=0)
    assert single.shape == () and 0 <= int(single) < 11
    assert greedy(logits32[1]).shape == ()
    P = backend.to_numpy(sampling_probs(randn(rng, 5, 11), 1.3, 6, 0.7))
    np.testing.assert_allclose(P.sum(axis=-1), 1.0, rtol=1e-12)
    assert not np.shares_memory(backend.to_numpy(top_k_filter(logits32, 20)), backend.to_numpy(logits32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(temperature=0.0), "temperature must be .* > 0 .*greedy"),
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=math.nan), "temperature"),
    (dict(temperature=math.inf), "temperature"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_p=-0.2), "top_p"),
    (dict(top_k=0), "top_k must be an integer >= 1"),
    (dict(top_k=2.5), "top_k"),
    (dict(top_k=True), "top_k"),
])
def test_bad_options_are_refused(rng, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_sampling_options(**kwargs)
    with pytest.raises(ValueError, match=match):
        sample(randn(rng, 2, 5), rng=0, **kwargs)
    with pytest.raises(ValueError, match=match):
        sample(randn(rng, 2, 5), rng=0, do_greedy=True, **kwargs)  # checked even when greedy


def test_bad_logits_are_refused(rng):
    with pytest.raises(ValueError, match=r"shape \(V,\) or \(B, V\).*\(2, 3, 4\)"):
        sample(randn(rng, 2, 3, 4), rng=0)
    with pytest.raises(ValueError, match="floating point"):
        sample(backend.asarray(np.array([1, 2, 3])), rng=0)
    bad = backend.to_numpy(randn(rng, 2, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sample(backend.asarray(bad), rng=0)
    with pytest.raises(ValueError, match="every logit of a row is -inf"):
        greedy(backend.asarray(np.full((1, 3), -np.inf)))
    with pytest.raises(TypeError, match="rng must be"):
        sample(randn(rng, 2, 4), rng="seed")
