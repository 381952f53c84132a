"""BERT pre-training data (data/pretraining.py): MLM masking statistics, NSP pairs, packing, batches."""

import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.data.pretraining import (
    IGNORE_INDEX,
    SpecialIds,
    make_pretraining_batch,
    mask_tokens,
    pack_pair,
    pretraining_batches,
    sample_nsp_pairs,
    tokenize_documents,
)
from minitransformer.tokenizers import WordPieceTokenizer

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = (PAD, UNK, CLS, SEP, MASK)
VOCAB = 40  # ids 5..39 are ordinary tokens
IDS = SpecialIds(PAD, CLS, SEP, MASK, VOCAB, SPECIAL)


def _within(count, n, p, sigmas=4.0):
    """count ~ Binomial(n, p) within ``sigmas`` standard deviations of n p."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1.0 - p))


def _rows(rng, B=64, T=30):
    """(ids, attention_mask): [CLS] x [SEP] y [SEP] with some [UNK], padded on the right to T."""
    ids = rng.integers(5, VOCAB, (B, T))
    mask = np.zeros((B, T), dtype=np.int64)
    for b in range(B):
        n = int(rng.integers(6, T + 1))
        cut = int(rng.integers(2, n - 2))
        ids[b, 0], ids[b, cut], ids[b, n - 1] = CLS, SEP, SEP
        ids[b, n:] = PAD
        mask[b, :n] = 1
    ids[rng.random((B, T)) < 0.03 * mask] = UNK
    return ids, mask


def test_masking_statistics_match_15_80_10_10():
    rng = backend.host_rng(0)
    data_rng = backend.host_rng(1)
    eligible = chosen = to_mask = to_random = same = 0
    n_candidates = VOCAB - len(SPECIAL)
    for _ in range(40):
        ids, attn = _rows(data_rng)
        masked, labels = mask_tokens(ids, SPECIAL, MASK, VOCAB, rng, attention_mask=attn)
        masked, labels = backend.to_numpy(masked), backend.to_numpy(labels)
        el = (attn == 1) & ~np.isin(ids, SPECIAL)
        ch = labels != IGNORE_INDEX
        eligible += int(el.sum())
        chosen += int(ch.sum())
        to_mask += int((ch & (masked == MASK)).sum())
        same += int((ch & (masked == ids)).sum())
        to_random += int((ch & (masked != MASK) & (masked != ids)).sum())
    assert eligible > 30_000
    assert _within(chosen, eligible, 0.15), (chosen, eligible)
    assert _within(to_mask, chosen, 0.8), to_mask / chosen
    # a random replacement equals the original with probability 1 / n_candidates: it then counts as "same"
    p_random_changed = 0.1 * (1.0 - 1.0 / n_candidates)
    assert _within(to_random, chosen, p_random_changed), to_random / chosen
    assert _within(same, chosen, 1.0 - 0.8 - p_random_changed), same / chosen
    assert to_mask + to_random + same == chosen


def test_masking_rates_follow_the_arguments():
    rng = backend.host_rng(3)
    ids = backend.host_rng(4).integers(5, VOCAB, (200, 100))
    masked, labels = mask_tokens(ids, SPECIAL, MASK, VOCAB, rng, mlm_probability=0.5, mask_ratio=0.0,
                                 random_ratio=0.0)
    masked, labels = backend.to_numpy(masked), backend.to_numpy(labels)
    assert _within(int((labels != IGNORE_INDEX).sum()), ids.size, 0.5)
    np.testing.assert_array_equal(masked, ids)  # chosen but all kept as they are
    masked, labels = mask_tokens(ids, SPECIAL, MASK, VOCAB, rng, mlm_probability=1.0, mask_ratio=1.0,
                                 random_ratio=0.0)
    assert (backend.to_numpy(masked) == MASK).all() and (backend.to_numpy(labels) == ids).all()


def test_special_tokens_and_padding_are_never_chosen_nor_drawn():
    rng = backend.host_rng(5)
    data_rng = backend.host_rng(6)
    for _ in range(20):
        ids, attn = _rows(data_rng)
        # every eligible token chosen, all replaced by random tokens: the hardest case for the rule
        masked, labels = mask_tokens(ids, SPECIAL, MASK, VOCAB, rng, attention_mask=attn, mlm_probability=1.0,
                                     mask_ratio=0.0, random_ratio=1.0)
        masked, labels = backend.to_numpy(masked), backend.to_numpy(labels)
        protected = (attn == 0) | np.isin(ids, SPECIAL)
        assert protected.any()
        assert (labels[protected] == IGNORE_INDEX).all()
        np.testing.assert_array_equal(masked[protected], ids[protected])
        assert not np.isin(masked[~protected], SPECIAL).any()  # random tokens are never special
        np.testing.assert_array_equal(labels[~protected], ids[~protected])  # label = the original id


def test_labels_hold_the_original_ids_at_chosen_positions():
    rng = backend.host_rng(7)
    ids, attn = _rows(backend.host_rng(8))
    masked, labels = mask_tokens(ids, SPECIAL, MASK, VOCAB, rng, attention_mask=attn)
    masked, labels = backend.to_numpy(masked), backend.to_numpy(labels)
    ch = labels != IGNORE_INDEX
    assert ch.any()
    np.testing.assert_array_equal(labels[ch], ids[ch])
    np.testing.assert_array_equal(masked[~ch], ids[~ch])  # only chosen positions can change
    assert masked.dtype == np.int64 and labels.dtype == np.int64


def test_mask_tokens_bad_input():
    rng = backend.host_rng(0)
    with pytest.raises(ValueError, match=r"\(B, T\) integer"):
        mask_tokens(np.zeros(5, dtype=np.int64), SPECIAL, MASK, VOCAB, rng)
    with pytest.raises(ValueError, match=r"\(B, T\) integer"):
        mask_tokens(np.zeros((2, 5)), SPECIAL, MASK, VOCAB, rng)
    with pytest.raises(ValueError, match="attention_mask shape"):
        mask_tokens(np.zeros((2, 5), dtype=np.int64), SPECIAL, MASK, VOCAB, rng, attention_mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="mask_ratio \\+ random_ratio <= 1"):
        mask_tokens(np.zeros((2, 5), dtype=np.int64), SPECIAL, MASK, VOCAB, rng, mask_ratio=0.9, random_ratio=0.2)
    with pytest.raises(ValueError, match="every id"):
        mask_tokens(np.zeros((2, 5), dtype=np.int64), SPECIAL, MASK, 5, rng)


# -- next-sentence pairs ----------------------------------------------------------------------------------


def _labelled_docs(n_docs=30, seed=0):
    """Documents whose sentence ids spell (document, position): sentence i of doc d = [100 + d, 200 + i, 7]."""
    r = backend.host_rng(seed)
    return [[[100 + d, 200 + i, 7] for i in range(int(r.integers(1, 6)))] for d in range(n_docs)]


def test_nsp_labels_are_balanced_and_pairs_are_right():
    docs = _labelled_docs()
    pairs = sample_nsp_pairs(docs, 4000, backend.host_rng(11))
    labels = [label for _, _, label in pairs]
    assert _within(sum(labels), len(labels), 0.5), sum(labels)
    for a, b, label in pairs:
        d_a, i_a = a[0] - 100, a[1] - 200
        d_b, i_b = b[0] - 100, b[1] - 200
        assert i_a < len(docs[d_a]) - 1  # A always has a successor, for both labels
        if label == 0:
            assert (d_b, i_b) == (d_a, i_a + 1)  # the true next sentence
        else:
            assert d_b != d_a  # from ANOTHER document
            assert 0 <= i_b < len(docs[d_b])


def _sentences(ids):
    """Split the joined ids of a span back into its (document, position) sentences ([100 + d, 200 + i, 7] each)."""
    assert len(ids) % 3 == 0 and ids[2::3] == [7] * (len(ids) // 3)
    return [(ids[k] - 100, ids[k + 1] - 200) for k in range(0, len(ids), 3)]


@pytest.mark.parametrize("budget", [6, 7, 12, 20])
def test_nsp_spans_are_consecutive_whole_sentences_within_the_budget(budget):
    docs = _labelled_docs(40, seed=5)
    pairs = sample_nsp_pairs(docs, 3000, backend.host_rng(2), span_tokens=budget)
    labels = [label for _, _, label in pairs]
    assert _within(sum(labels), len(labels), 0.5), sum(labels)
    longest_a = longest_pair = 0
    for a, b, label in pairs:
        sa, sb = _sentences(a), _sentences(b)
        d_a, d_b = sa[0][0], sb[0][0]
        for s in (sa, sb):  # consecutive sentences of one document
            assert s == [(s[0][0], s[0][1] + k) for k in range(len(s))]
        end_a = sa[-1][1]
        assert end_a < len(docs[d_a]) - 1  # A always leaves a sentence to follow it
        assert len(a) <= max(3, budget // 2) and len(a) + len(b) <= max(6, budget)
        # greedy: A stops only at the budget or before the last sentence; B only at the budget or the end
        assert len(a) + 3 > budget // 2 or end_a == len(docs[d_a]) - 2
        assert len(a) + len(b) + 3 > budget or sb[-1][1] == len(docs[d_b]) - 1
        if label == 0:
            assert sb[0] == (d_a, end_a + 1)  # B continues A
        else:
            assert d_b != d_a  # from ANOTHER document, any sentence
        longest_a, longest_pair = max(longest_a, len(sa)), max(longest_pair, len(sa) + len(sb))
    assert longest_a == max(1, (budget // 2) // 3) and longest_pair >= min(budget // 3, 5)


def test_nsp_single_sentences_are_the_default_and_spans_need_a_budget():
    docs = _labelled_docs()
    assert sample_nsp_pairs(docs, 50, backend.host_rng(3)) == sample_nsp_pairs(docs, 50, backend.host_rng(3),
                                                                               span_tokens=None)
    assert all(len(a) == len(b) == 3 for a, b, _ in sample_nsp_pairs(docs, 200, backend.host_rng(3)))
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="span_tokens"):
            sample_nsp_pairs(docs, 3, backend.host_rng(0), span_tokens=bad)


def test_random_b_covers_every_other_document():
    docs = _labelled_docs(5, seed=2)
    docs = [d if len(d) > 1 else d + [[100 + k, 299, 7]] for k, d in enumerate(docs)]
    seen = {(a[0], b[0]) for a, b, label in sample_nsp_pairs(docs, 3000, backend.host_rng(0)) if label == 1}
    assert seen == {(100 + i, 100 + j) for i in range(5) for j in range(5) if i != j}


def test_nsp_needs_two_documents_and_a_successor():
    with pytest.raises(ValueError, match="at least 2 documents"):
        sample_nsp_pairs([[[5], [6]]], 3, backend.host_rng(0))
    with pytest.raises(ValueError, match="at least 2 sentences"):
        sample_nsp_pairs([[[5]], [[6]]], 3, backend.host_rng(0))
    with pytest.raises(ValueError, match="2 non-empty documents"):
        sample_nsp_pairs([[[5], [6]], []], 3, backend.host_rng(0))


def test_pack_pair_layout_and_truncation_of_the_longer_side():
    e = pack_pair([5, 6], [7, 8, 9], CLS, SEP, max_len=20)
    assert e.input_ids == [CLS, 5, 6, SEP, 7, 8, 9, SEP]
    assert e.token_type_ids == [0, 0, 0, 0, 1, 1, 1, 1]
    assert e.attention_mask == [1] * 8
    a, b = list(range(10, 30)), [5, 6, 7]
    e = pack_pair(a, b, CLS, SEP, max_len=12)  # budget 9: B (3) kept whole, A cut to 6
    assert e.input_ids == [CLS, *a[:6], SEP, 5, 6, 7, SEP]
    e = pack_pair(b, a, CLS, SEP, max_len=12)  # the longer side is cut whichever it is
    assert e.input_ids == [CLS, 5, 6, 7, SEP, *a[:6], SEP]
    e = pack_pair(a, a, CLS, SEP, max_len=13)  # both long: half each
    assert len(e.input_ids) == 13 and e.token_type_ids.count(1) == 5 + 1
    with pytest.raises(ValueError, match="max_len must be >= 5"):
        pack_pair([5], [6], CLS, SEP, max_len=4)
    with pytest.raises(ValueError, match="at least one token"):
        pack_pair([], [6], CLS, SEP, max_len=10)


# -- batches ------------------------------------------------------------------------------------------------


def test_batch_arrays_shapes_and_consistency():
    docs = _labelled_docs(20)
    docs = [[[s[0], s[1]] + [5 + (k % 30)] * (k % 7) for k, s in enumerate(d)] for d in docs]
    pairs = sample_nsp_pairs(docs, 16, backend.host_rng(1))
    batch = make_pretraining_batch(pairs, IDS._replace(vocab_size=300), max_len=12, rng=backend.host_rng(2))
    ids, tt, am, labels, nsp = (backend.to_numpy(a) for a in batch[:5])
    B, T = ids.shape
    assert B == 16 and T <= 12
    for a in (ids, tt, am, labels, nsp):
        assert a.dtype == np.int64
    np.testing.assert_array_equal(nsp, [label for _, _, label in pairs])
    lengths = am.sum(axis=1)
    assert lengths.max() == T  # padded to the longest pair
    for b in range(B):
        n = lengths[b]
        assert (am[b, :n] == 1).all() and (am[b, n:] == 0).all()
        assert (ids[b, n:] == PAD).all() and (tt[b, n:] == 0).all() and (labels[b, n:] == IGNORE_INDEX).all()
        assert ids[b, 0] == CLS and ids[b, n - 1] == SEP and labels[b, 0] == IGNORE_INDEX
        first_sep = int(np.flatnonzero(ids[b] == SEP)[0])
        assert (tt[b, :first_sep + 1] == 0).all() and (tt[b, first_sep + 1:n] == 1).all()
    assert batch.n_masked == int((labels != IGNORE_INDEX).sum())
    assert batch.n_tokens == int(am.sum())
    padded = make_pretraining_batch(pairs, IDS._replace(vocab_size=300), max_len=12, rng=backend.host_rng(2),
                                    pad_to=20)
    assert padded.input_ids.shape == (16, 20)
    with pytest.raises(ValueError, match="pad_to=3 is shorter"):
        make_pretraining_batch(pairs, IDS, max_len=12, rng=backend.host_rng(2), pad_to=3)
    with pytest.raises(ValueError, match="at least one sentence pair"):
        make_pretraining_batch([], IDS, max_len=12, rng=backend.host_rng(2))


def test_batches_are_seeded():
    docs = [[[5 + (d + i) % 30, 6, 7] for i in range(4)] for d in range(10)]

    def draw(seed):
        it = pretraining_batches(docs, 8, 16, IDS, seed=seed)
        return [tuple(backend.to_numpy(a).tolist() for a in next(it)[:5]) for _ in range(3)]

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        next(pretraining_batches(docs, 0, 16, IDS))
    with pytest.raises(ValueError, match="bucket_batches must be an int >= 1"):
        next(pretraining_batches(docs, 4, 16, IDS, bucket_batches=0))


def test_length_buckets_cut_padding_and_keep_labels_balanced():
    r = backend.host_rng(9)
    docs = [[[5 + int(k) for k in r.integers(0, 30, int(r.integers(1, 30)))] for _ in range(4)] for _ in range(40)]

    def padding_and_labels(bucket_batches):
        it = pretraining_batches(docs, 16, 64, IDS, seed=0, bucket_batches=bucket_batches)
        pad = labels = n = 0
        for _ in range(64):
            b = next(it)
            am = backend.to_numpy(b.attention_mask)
            pad += int((am == 0).sum())
            labels += int(backend.to_numpy(b.next_sentence_label).sum())
            n += am.shape[0]
        return pad, labels, n

    pad_sorted, labels_sorted, n = padding_and_labels(8)
    pad_plain, _, _ = padding_and_labels(1)
    assert pad_sorted < 0.3 * pad_plain, (pad_sorted, pad_plain)
    assert _within(labels_sorted, n, 0.5)


def test_tokenize_documents_with_a_wordpiece_tokenizer():
    tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", ".", "dog"])

    class Doc:
        sentences = ["The cat sat.", "", "The dog sat."]

    out = tokenize_documents([Doc(), ["cat cat", "bird"]], tok)
    assert out == [[[5, 6, 7, 8], [5, 9, 7, 8]], [[6, 6], [1]]]
    ids = SpecialIds.from_tokenizer(tok)
    assert ids == SpecialIds(0, 2, 3, 4, 10, (0, 1, 2, 3, 4))
    with pytest.raises(TypeError, match="not one str"):
        tokenize_documents(["a whole text"], tok)
