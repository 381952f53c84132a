"""Vocabulary and batching (minitransformer.data.vocab, minitransformer.data.batching)."""

import json

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.data import (
    BOS_ID,
    EOS_ID,
    IGNORE_INDEX,
    PAD_ID,
    UNK_ID,
    Vocab,
    batches,
    get_task,
    make_batch,
)
from minitransformer.nn.losses import cross_entropy_forward

PAIRS = [("abc", "xy"), ("a", "xyzzy"), ("cabba", ""), ("bb", "zx")]


def _vocabs():
    return Vocab.build(s for s, _ in PAIRS), Vocab.build(t for _, t in PAIRS)


# ---------------------------------------------------------------- vocabulary
def test_vocab_special_ids_and_sorted_chars():
    v = Vocab.build(["hello", "world"])
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert v.tokens[:4] == ("<pad>", "<bos>", "<eos>", "<unk>")
    assert v.chars == "dehlorw" and len(v) == 4 + 7
    assert v.encode("dew") == [4, 5, 10]
    assert "h" in v and "z" not in v


def test_vocab_round_trip_with_bos_eos():
    v = Vocab.build(["Saturday, 28th of November 2026"])
    ids = v.encode("28 Nov 2026", add_bos=True, add_eos=True)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert v.decode(ids) == "28 Nov 2026"
    assert v.decode(ids, strip_special=False) == "<bos>28 Nov 2026<eos>"


def test_vocab_decode_stops_at_eos_and_skips_padding():
    v = Vocab("ab")
    assert v.decode([BOS_ID, 4, 5, EOS_ID, 4, PAD_ID]) == "ab"
    assert v.decode([4, PAD_ID, 5]) == "ab"
    assert v.decode(backend.asarray([4, 5, 4], dtype="int64")) == "aba"  # 1-D array input


def test_vocab_unknown_character_error_names_char_and_position():
    v = Vocab("abc")
    with pytest.raises(ValueError, match=r"character 'Z' at position 2 of 'abZc'"):
        v.encode("abZc")
    assert v.encode("abZc", unk=True) == [4, 5, UNK_ID, 6]
    assert v.decode([4, UNK_ID]) == "a<unk>"


def test_vocab_bad_inputs():
    with pytest.raises(ValueError, match="repeated characters 'a'"):
        Vocab("aba")
    with pytest.raises(ValueError, match="single character"):
        Vocab(["ab"])
    with pytest.raises(ValueError, match=r"id 7 is out of range \[0, 6\)"):
        Vocab("ab").decode([4, 7])
    with pytest.raises(TypeError, match="expected a str"):
        Vocab("ab").encode(["a"])


def test_vocab_json_round_trip_and_errors():
    v = Vocab.build(["héllo wörld, 28-11"])
    s = v.to_json()
    assert json.loads(s)["chars"] == v.chars
    w = Vocab.from_json(s)
    assert w == v and w.encode("wörld") == v.encode("wörld")
    assert Vocab.from_json(json.loads(s)) == v
    with pytest.raises(ValueError, match="not valid JSON"):
        Vocab.from_json(s[:-3])
    with pytest.raises(ValueError, match="'chars' string"):
        Vocab.from_json('{"format": "something else"}')
    bad = json.loads(s)
    bad["specials"] = ["<pad>", "<eos>", "<bos>", "<unk>"]
    with pytest.raises(ValueError, match="special tokens"):
        Vocab.from_json(bad)


# ---------------------------------------------------------------- one batch
def test_batch_shapes_dtypes_and_padding():
    sv, tv = _vocabs()
    b = make_batch(PAIRS, sv, tv)
    src, tin, tout = (backend.to_numpy(a) for a in (b.src_ids, b.tgt_in, b.tgt_out))
    assert src.shape == (4, 5) and tin.shape == tout.shape == (4, 6)  # S = 5, T = len("xyzzy") + 1
    assert src.dtype == tin.dtype == tout.dtype == np.int64
    assert backend.to_numpy(b.src_key_padding_mask).dtype == np.bool_
    assert b.src_lengths == (3, 1, 5, 2) and b.tgt_lengths == (3, 6, 1, 3) and b.n_tokens == 13
    assert b.n_padding == 4 * 5 - 11 + 4 * 6 - 13
    for k, (s, t) in enumerate(PAIRS):
        assert src[k].tolist() == sv.encode(s) + [PAD_ID] * (5 - len(s))
        assert tin[k].tolist() == [BOS_ID] + tv.encode(t) + [PAD_ID] * (5 - len(t))
        assert tout[k].tolist() == tv.encode(t) + [EOS_ID] + [IGNORE_INDEX] * (5 - len(t))
        assert sv.decode(src[k]) == s and tv.decode(tin[k]) == t and tv.decode(tout[k][: len(t) + 1]) == t
    assert b.src_texts == tuple(s for s, _ in PAIRS) and b.tgt_texts == tuple(t for _, t in PAIRS)


def test_batch_masks_and_teacher_forcing_shift():
    sv, tv = _vocabs()
    b = make_batch(PAIRS, sv, tv)
    src, tin, tout = (backend.to_numpy(a) for a in (b.src_ids, b.tgt_in, b.tgt_out))
    src_mask, tgt_mask = backend.to_numpy(b.src_key_padding_mask), backend.to_numpy(b.tgt_key_padding_mask)
    np.testing.assert_array_equal(src_mask, src == PAD_ID)
    np.testing.assert_array_equal(tgt_mask, tout == IGNORE_INDEX)
    np.testing.assert_array_equal(tgt_mask, tin == PAD_ID)
    assert (tin[:, 0] == BOS_ID).all()
    # tgt_in is tgt_out shifted right by one, wherever both are real tokens.
    real = ~tgt_mask[:, 1:]
    np.testing.assert_array_equal(tin[:, 1:][real], tout[:, :-1][real])
    assert [int(tout[k, n - 1]) for k, n in enumerate(b.tgt_lengths)] == [EOS_ID] * 4


def test_batch_src_eos_unk_and_errors():
    sv, tv = _vocabs()
    b = make_batch([("ab", "x")], sv, tv, src_eos=True)
    assert backend.to_numpy(b.src_ids).tolist() == [sv.encode("ab") + [EOS_ID]] and b.src_lengths == (3,)
    with pytest.raises(ValueError, match="character 'q' at position 1"):
        make_batch([("aq", "x")], sv, tv)
    assert backend.to_numpy(make_batch([("aq", "x")], sv, tv, unk=True).src_ids).tolist() == [[4, UNK_ID]]
    with pytest.raises(ValueError, match="at least one"):
        make_batch([], sv, tv)
    with pytest.raises(ValueError, match="pair 0 has an empty source"):
        make_batch([("", "x")], sv, tv)


def test_batch_padding_is_ignored_by_the_loss(rng):
    sv, tv = _vocabs()
    b = make_batch(PAIRS, sv, tv)
    logits = backend.asarray(rng.standard_normal((4, 6, len(tv))))  # (B, T, vocab_size)
    loss, _ = cross_entropy_forward(logits, b.tgt_out)
    lg, tout = backend.to_numpy(logits), backend.to_numpy(b.tgt_out)
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    ref = -sum(logp[k, t, tout[k, t]] for k in range(4) for t in range(b.tgt_lengths[k])) / b.n_tokens
    assert abs(float(backend.to_numpy(loss)) - ref) < 1e-12


# ---------------------------------------------------------------- batching
def _pairs(n=500, seed=0):
    return get_task("numbers").sample(n, seed=seed)


def test_batches_cover_every_pair_once_and_are_deterministic():
    pairs = _pairs()
    sv, tv = get_task("numbers").build_vocabs()
    for by_length in (False, True):
        got = list(batches(pairs, 32, sv, tv, shuffle_seed=3, by_length=by_length))
        assert sorted(p for b in got for p in zip(b.src_texts, b.tgt_texts, strict=True)) == sorted(pairs)
        assert sum(len(b.src_lengths) == 32 for b in got) == len(pairs) // 32
        again = list(batches(pairs, 32, sv, tv, shuffle_seed=3, by_length=by_length))
        assert [b.src_texts for b in got] == [b.src_texts for b in again]
    other = list(batches(pairs, 32, sv, tv, shuffle_seed=4))
    assert [b.src_texts for b in other] != [b.src_texts for b in got]
    plain = list(batches(pairs, 32, sv, tv, by_length=False))  # no seed: the given order
    assert [p for b in plain for p in b.src_texts] == [s for s, _ in pairs]


def test_batches_by_length_cut_padding():
    pairs = _pairs(2000)
    sv, tv = get_task("numbers").build_vocabs()
    random_order = sum(b.n_padding for b in batches(pairs, 32, sv, tv, shuffle_seed=0, by_length=False))
    by_length = sum(b.n_padding for b in batches(pairs, 32, sv, tv, shuffle_seed=0, by_length=True))
    assert by_length < 0.25 * random_order, (by_length, random_order)


def test_batches_drop_last_and_bad_arguments():
    pairs = _pairs(100)
    sv, tv = get_task("numbers").build_vocabs()
    sizes = [len(b.src_lengths) for b in batches(pairs, 32, sv, tv, shuffle_seed=1, drop_last=True)]
    assert sizes == [32, 32, 32]
    assert sorted(len(b.src_lengths) for b in batches(pairs, 32, sv, tv, shuffle_seed=1)) == [4, 32, 32, 32]
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        next(batches(pairs, 0, sv, tv))
