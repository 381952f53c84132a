"""BERT pre-training data: next-sentence pairs, masked-LM masking, whole batches.

From documents (each a list of sentences, already cut into token ids) to the
five arrays ``BertForPreTraining`` trains on:

    A = "the old sailor mended the net ."   B = "then he rowed out at dawn ."   (B follows A: label 0)
    input_ids       [CLS] the old [MASK] mended the net . [SEP] then he rowed out at dawn . [SEP] [PAD] ...
    token_type_ids    0    0   0    0      0     0   0  0   0    1    1   1    1   1   1   1   1     0
    attention_mask    1    1   1    1      1     1   1  1   1    1    1   1    1   1   1   1   1     0
    labels          -100 -100 -100 sailor -100 -100 ...                                       -100
    next_sentence_label 0

Next-sentence prediction (Devlin et al. 2019, Section 3.1, Task #2): sentence A
is drawn uniformly from the sentences that have a successor in their document;
with probability ``nsp_probability`` (0.5) B is a sentence drawn uniformly from
ANOTHER document (label 1, "NotNext"), otherwise B is A's true successor
(label 0, "IsNext"). Label 0 = "B follows A" as in Hugging Face's
``next_sentence_label``. A is drawn the same way for both labels, so only the
relation between A and B tells them apart.

Masked LM (Section 3.1, Task #1, and Appendix A.1): each token that is not
special ([CLS], [SEP], [PAD], [UNK], [MASK]) and not padding is chosen
independently with probability 0.15 (a Bernoulli draw per token, as Hugging
Face's ``DataCollatorForLanguageModeling``; the original code picks exactly
round(0.15 n) per sequence: same expectation). A chosen token becomes [MASK]
with probability 0.8, a random non-special token with probability 0.1, and
stays as it is with probability 0.1; its label is its original id. Every other
position has label -100, the ``ignore_index`` of the cross-entropy, so the
loss is the mean over chosen positions only and padding adds nothing.

Everything is seeded: a ``numpy.random.Generator`` from
``backend.host_rng(seed)`` draws on the host, so a seed gives the same batches
on CPU and GPU; the finished arrays go to the active backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from .. import backend
from ..tokenizers.encoding import build_inputs

__all__ = [
    "IGNORE_INDEX", "MLM_PROBABILITY", "NSP_PROBABILITY", "PretrainingBatch", "SpecialIds", "make_pretraining_batch",
    "mask_tokens", "pack_pair", "pretraining_batches", "sample_nsp_pairs", "tokenize_documents",
]

IGNORE_INDEX = -100  # label of every position that is not predicted (cross_entropy_forward's ignore_index)
MLM_PROBABILITY = 0.15  # share of (non-special, non-padding) tokens chosen for prediction
NSP_PROBABILITY = 0.5  # share of pairs whose B is a random sentence of another document

TokenizedDocument = list[list[int]]  # a document: its sentences, each a list of token ids (no special tokens)


class SpecialIds(NamedTuple):
    """The ids the pre-training data needs, and the vocabulary size (random replacements are drawn from it)."""

    pad: int
    cls: int
    sep: int
    mask: int
    vocab_size: int
    special: tuple  # every special id: never chosen for masking, never drawn as a random replacement

    @classmethod
    def from_tokenizer(cls, tokenizer) -> SpecialIds:
        """From a ``WordPieceTokenizer`` (ids of `[PAD]`, `[CLS]`, `[SEP]`, `[MASK]`; ``all_special_ids``)."""
        return cls(tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id,
                   tokenizer.vocab_size, tuple(sorted(tokenizer.all_special_ids)))


class PretrainingBatch(NamedTuple):
    """One batch for ``BertForPreTraining``: arrays on the active backend, counts on the host."""

    input_ids: object  # (B, T) int64, masked: [MASK] / random / unchanged at the chosen positions
    token_type_ids: object  # (B, T) int64, 0 over [CLS] A [SEP] (and padding), 1 over B [SEP]
    attention_mask: object  # (B, T) int64, 1 = token, 0 = padding
    labels: object  # (B, T) int64, the original id at chosen positions, IGNORE_INDEX elsewhere
    next_sentence_label: object  # (B,) int64, 0 = B follows A, 1 = B is from another document
    n_masked: int  # positions with a label: what the masked-LM loss averages over
    n_tokens: int  # real (non-padding) tokens


# -- documents to ids ---------------------------------------------------------------------------------------


def tokenize_documents(documents, tokenizer) -> list[TokenizedDocument]:
    """Cut every sentence of every document into token ids (no [CLS]/[SEP]); empty sentences are dropped.

    Args:
        documents: documents, each a list of sentence strings, or objects with a ``.sentences`` list
            (``data.corpus.Document``).
        tokenizer: anything with ``tokenize(text)`` and ``convert_tokens_to_ids(tokens)`` (a WordPieceTokenizer).
    Returns:
        one list per document, holding one list of ids per non-empty sentence.
    """
    cache: dict[str, list[int]] = {}  # generated corpora repeat sentences: tokenize each once
    out = []
    for doc in documents:
        sentences = getattr(doc, "sentences", doc)
        if isinstance(sentences, str):
            raise TypeError("tokenize_documents: a document must be a list of sentences, not one str")
        ids_doc = []
        for s in sentences:
            if s not in cache:
                cache[s] = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(s))
            if cache[s]:
                ids_doc.append(cache[s])
        out.append(ids_doc)
    return out


# -- next-sentence pairs --------------------------------------------------------------------------------------


def _check_documents(docs: Sequence[TokenizedDocument]) -> list[tuple[int, int]]:
    """The (document, sentence) positions that can be sentence A: those with a successor."""
    if len(docs) < 2:
        raise ValueError(f"next-sentence pairs need at least 2 documents (B may come from another one), "
                         f"got {len(docs)}")
    starts = [(d, i) for d, doc in enumerate(docs) for i in range(len(doc) - 1)]
    if not starts:
        raise ValueError("next-sentence pairs need a document of at least 2 sentences; every document has < 2")
    others = [d for d, doc in enumerate(docs) if doc]
    if len(others) < 2:
        raise ValueError("next-sentence pairs need at least 2 non-empty documents")
    return starts


def sample_nsp_pairs(docs: Sequence[TokenizedDocument], n: int, rng, nsp_probability: float = NSP_PROBABILITY,
                     span_tokens: int | None = None) -> list[tuple[list[int], list[int], int]]:
    """Draw ``n`` pairs (A, B, label) for next-sentence prediction: single sentences, or spans of sentences.

    Args:
        docs: tokenized documents (``tokenize_documents``), at least 2, one with >= 2 sentences.
        n: number of pairs.
        rng: a ``numpy.random.Generator`` (``backend.host_rng(seed)``).
        nsp_probability: probability that B is random text of another document.
        span_tokens: None: A and B are one sentence each. An int (the pair's token budget, ``max_len - 3``):
            A and B are spans of whole consecutive sentences, as the BERT paper's "sentences" ("an arbitrary
            span of contiguous text"): A takes sentences while it stays within half the budget, B takes the
            sentences that follow (or those of another document) while A + B stays within the budget.
            Each side keeps at least one sentence (``pack_pair`` truncates what is still too long).
    Returns:
        ``n`` tuples ``(ids_a, ids_b, label)``, label 0 = B follows A, 1 = B is random.

    Math:
        (d, i) ~ uniform over sentences with a successor
        label ~ Bernoulli(nsp_probability)
        sentences:  A = docs[d][i]
                    label 0: B = docs[d][i + 1]
                    label 1: d' ~ uniform over non-empty documents != d,  B ~ uniform over the sentences of docs[d']
        spans (budget L = span_tokens):
                    A = docs[d][i : j], j the largest index <= len(docs[d]) - 1 with |A| <= L / 2 (j >= i + 1)
                    label 0: B = docs[d][j : k],   k the largest with |A| + |B| <= L (k >= j + 1)
                    label 1: d', s ~ uniform over its sentences,  B = docs[d'][s : k], k as above
    """
    starts = _check_documents(docs)
    if span_tokens is not None and (isinstance(span_tokens, bool) or not isinstance(span_tokens, int)
                                    or span_tokens < 2):
        raise ValueError(f"sample_nsp_pairs: span_tokens must be None or an int >= 2, got {span_tokens!r}")
    non_empty = [d for d, doc in enumerate(docs) if doc]  # d holds A, so it is one of them
    rank = {d: k for k, d in enumerate(non_empty)}
    pairs = []
    for _ in range(int(n)):
        d, i = starts[int(rng.integers(len(starts)))]
        doc = docs[d]
        if span_tokens is None:
            j, a = i + 1, list(doc[i])  # A = one sentence, B starts right after it
        else:
            j, a = _span(doc, i, span_tokens // 2, stop=len(doc) - 1)  # leave B at least one sentence
        if rng.random() < nsp_probability:
            k = int(rng.integers(len(non_empty) - 1))  # uniform over the other documents:
            k = k + 1 if k >= rank[d] else k  # skip d itself
            other = docs[non_empty[k]]
            s = int(rng.integers(len(other)))
            b = list(other[s]) if span_tokens is None else _span(other, s, span_tokens - len(a))[1]
            pairs.append((a, b, 1))
        else:
            b = list(doc[j]) if span_tokens is None else _span(doc, j, span_tokens - len(a))[1]
            pairs.append((a, b, 0))
    return pairs


def _span(doc: TokenizedDocument, start: int, budget: int, stop: int | None = None) -> tuple[int, list[int]]:
    """Sentences ``doc[start:end]`` joined, ``end`` as far as ``budget`` tokens (and ``stop``) allow, >= start + 1."""
    stop = len(doc) if stop is None else stop
    ids = list(doc[start])  # always at least one sentence
    end = start + 1
    while end < stop and len(ids) + len(doc[end]) <= budget:
        ids.extend(doc[end])
        end += 1
    return end, ids


def pack_pair(ids_a: list[int], ids_b: list[int], cls_id: int, sep_id: int, max_len: int):
    """``[CLS] A [SEP] B [SEP]`` with token types 0 / 1, the longer side truncated to fit ``max_len``.

    Args:
        ids_a, ids_b: (T_a,), (T_b,) ids without special tokens.
        cls_id, sep_id: the [CLS] and [SEP] ids.
        max_len: the longest result, special tokens included (>= 5: one token of each side survives).
    Returns:
        ``tokenizers.Encoding(input_ids (T,), token_type_ids (T,), attention_mask (T,))``, T <= max_len.

    Math:
        budget = max_len - 3
        keep_a, keep_b = truncate_longest_first(T_a, T_b, budget)   the longer side loses tokens first
        input_ids      = [CLS] + A[:keep_a] + [SEP] + B[:keep_b] + [SEP]
        token_type_ids = 0 * (keep_a + 2)  +  1 * (keep_b + 1)
    """
    if int(max_len) < 5:
        raise ValueError(f"pack_pair: max_len must be >= 5 ([CLS] A [SEP] B [SEP] with a token of each), "
                         f"got {max_len}")
    if not ids_a or not ids_b:
        raise ValueError(f"pack_pair: both sentences need at least one token, got {len(ids_a)} and {len(ids_b)}")
    return build_inputs(list(ids_a), list(ids_b), cls_id, sep_id, int(max_len), truncation=True)


# -- masked LM ----------------------------------------------------------------------------------------------


def mask_tokens(input_ids, special_ids: Sequence[int], mask_id: int, vocab_size: int, rng,
                attention_mask=None, mlm_probability: float = MLM_PROBABILITY, mask_ratio: float = 0.8,
                random_ratio: float = 0.1):
    """BERT's masked-LM corruption: choose tokens, replace them, keep the originals as labels.

    Args:
        input_ids: (B, T) int token ids (any backend; drawn on the host).
        special_ids: never chosen, never random replacements (`[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`).
        mask_id: the [MASK] id.
        vocab_size: ids are in [0, vocab_size); random replacements are the non-special ones.
        rng: a ``numpy.random.Generator`` (``backend.host_rng(seed)``).
        attention_mask: (B, T), 0 = padding (never chosen), or None for no padding.
        mlm_probability: probability that an eligible token is chosen (0.15).
        mask_ratio, random_ratio: of the chosen tokens, the shares replaced by [MASK] (0.8) and by a random
            token (0.1); the rest (0.1) stay unchanged.
    Returns:
        (masked_ids (B, T), labels (B, T)): int64 on the active backend; labels = original id where chosen,
        IGNORE_INDEX elsewhere.

    Math:
        eligible = attention_mask == 1 and input_ids not in special_ids        (B, T)
        chosen   = eligible and u1 < mlm_probability,  u1 ~ U(0, 1)           (B, T)
        labels   = where(chosen, input_ids, -100)
        u2 ~ U(0, 1):  u2 < mask_ratio                          -> [MASK]       (80%)
                       mask_ratio <= u2 < mask_ratio + random_ratio -> r ~ uniform over non-special ids (10%)
                       otherwise                                -> unchanged    (10%)
        So P(chosen) = 0.15, P([MASK] | chosen) = 0.8, P(random | chosen) = 0.1, P(same | chosen) = 0.1
        (a random draw can equal the original token: P = 1 / (number of non-special ids)).

    Ref: Devlin et al. 2019, Section 3.1 (Task #1) and Appendix C.2 (why 80/10/10).
    """
    if not (0.0 <= mlm_probability <= 1.0 and 0.0 <= mask_ratio and 0.0 <= random_ratio
            and mask_ratio + random_ratio <= 1.0):
        raise ValueError(f"mask_tokens: need 0 <= mlm_probability <= 1 and mask_ratio, random_ratio >= 0 with "
                         f"mask_ratio + random_ratio <= 1, got {mlm_probability}, {mask_ratio}, {random_ratio}")
    ids = backend.to_numpy(input_ids)  # (B, T) host copy: the draws happen on the host
    xp = backend.get_array_module(ids)  # the host array module
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(f"mask_tokens: input_ids must be a (B, T) integer array, got shape {tuple(ids.shape)} "
                         f"dtype {ids.dtype}")
    special = xp.asarray(sorted(set(int(s) for s in special_ids)), dtype="int64")  # (n_special,)
    candidates = xp.setdiff1d(xp.arange(vocab_size, dtype="int64"), special)  # (n_candidates,) non-special ids
    if candidates.size == 0:
        raise ValueError(f"mask_tokens: every id of vocab_size={vocab_size} is special; nothing to draw")
    eligible = ~xp.isin(ids, special)  # (B, T) bool
    if attention_mask is not None:
        am = backend.to_numpy(attention_mask)  # (B, T)
        if tuple(am.shape) != tuple(ids.shape):
            raise ValueError(f"mask_tokens: attention_mask shape {tuple(am.shape)} != input_ids shape "
                             f"{tuple(ids.shape)}")
        eligible &= am != 0  # (B, T)  padding is never chosen
    chosen = eligible & (rng.random(ids.shape) < mlm_probability)  # (B, T) bool
    labels = xp.where(chosen, ids, IGNORE_INDEX).astype("int64")  # (B, T)
    u = rng.random(ids.shape)  # (B, T)  one draw per position decides the fate of a chosen token
    to_mask = chosen & (u < mask_ratio)  # (B, T)
    to_random = chosen & (u >= mask_ratio) & (u < mask_ratio + random_ratio)  # (B, T)
    random_ids = candidates[rng.integers(0, candidates.size, ids.shape)]  # (B, T)  drawn everywhere, used where
    masked = xp.where(to_mask, mask_id, xp.where(to_random, random_ids, ids)).astype("int64")  # (B, T)
    return backend.asarray(masked, dtype="int64"), backend.asarray(labels, dtype="int64")


# -- batches ------------------------------------------------------------------------------------------------


def make_pretraining_batch(pairs: Sequence[tuple[list[int], list[int], int]], ids: SpecialIds, max_len: int, rng,
                           pad_to: int | None = None, mlm_probability: float = MLM_PROBABILITY) -> PretrainingBatch:
    """Pack, pad and mask a list of (A, B, label) pairs into one ``PretrainingBatch``.

    Args:
        pairs: from ``sample_nsp_pairs``, B >= 1 of them.
        ids: the special ids and vocabulary size.
        max_len: longest packed pair (the model's max_position_embeddings or less).
        rng: a ``numpy.random.Generator`` for the masking.
        pad_to: pad every row to this length; None pads to the longest row of the batch.
        mlm_probability: as ``mask_tokens``.
    Returns:
        the batch; T = pad_to or the longest packed pair.
    """
    if not pairs:
        raise ValueError("make_pretraining_batch: expected at least one sentence pair, got none")
    encodings = [pack_pair(a, b, ids.cls, ids.sep, max_len) for a, b, _ in pairs]
    T = max(len(e.input_ids) for e in encodings)
    if pad_to is not None:
        if pad_to < T:
            raise ValueError(f"make_pretraining_batch: pad_to={pad_to} is shorter than the longest pair ({T})")
        T = int(pad_to)
    rows = [(e.input_ids + [ids.pad] * (T - len(e.input_ids)),
             e.token_type_ids + [0] * (T - len(e.input_ids)),
             e.attention_mask + [0] * (T - len(e.input_ids))) for e in encodings]
    input_ids = backend.to_numpy([r[0] for r in rows]).astype("int64")  # (B, T) host
    attention_mask = backend.to_numpy([r[2] for r in rows]).astype("int64")  # (B, T) host
    masked, labels = mask_tokens(input_ids, ids.special, ids.mask, ids.vocab_size, rng,
                                 attention_mask=attention_mask, mlm_probability=mlm_probability)  # (B, T), (B, T)
    return PretrainingBatch(
        input_ids=masked,
        token_type_ids=backend.asarray([r[1] for r in rows], dtype="int64"),  # (B, T)
        attention_mask=backend.asarray(attention_mask, dtype="int64"),  # (B, T)
        labels=labels,
        next_sentence_label=backend.asarray([label for _, _, label in pairs], dtype="int64"),  # (B,)
        n_masked=int((backend.to_numpy(labels) != IGNORE_INDEX).sum()),
        n_tokens=int(attention_mask.sum()),
    )


def pretraining_batches(docs: Sequence[TokenizedDocument], batch_size: int, max_len: int, ids: SpecialIds,
                        seed: int = 0, nsp_probability: float = NSP_PROBABILITY,
                        mlm_probability: float = MLM_PROBABILITY, bucket_batches: int = 8,
                        spans: bool = False) -> Iterator[PretrainingBatch]:
    """Endless batches of fresh NSP pairs with fresh masks, all drawn from one seeded generator.

    Pairs are drawn ``batch_size * bucket_batches`` at a time, sorted by length and cut into batches
    (served in a random order), so that a batch holds pairs of similar length and little padding:
    each batch is padded to its own longest pair. ``bucket_batches=1`` gives unsorted batches.

    Args:
        docs: tokenized documents (``tokenize_documents``).
        batch_size: pairs per batch (>= 1).
        max_len: longest packed pair, special tokens included.
        ids: ``SpecialIds`` (``SpecialIds.from_tokenizer(tokenizer)``).
        seed: the generator's seed; the same seed gives the same batches.
        nsp_probability, mlm_probability: as ``sample_nsp_pairs`` and ``mask_tokens``.
        bucket_batches: batches whose pairs are sorted by length together (>= 1).
        spans: False: A and B are single sentences; True: spans of sentences that fill ``max_len``
            (``sample_nsp_pairs(span_tokens=max_len - 3)``).
    Yields:
        ``PretrainingBatch``es.
    """
    for name, value in (("batch_size", batch_size), ("bucket_batches", bucket_batches)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"pretraining_batches: {name} must be an int >= 1, got {value!r}")
    _check_documents(docs)
    rng = backend.host_rng(seed)
    while True:
        pairs = sample_nsp_pairs(docs, batch_size * bucket_batches, rng, nsp_probability,
                                 span_tokens=max_len - 3 if spans else None)
        if bucket_batches > 1:
            pairs.sort(key=lambda p: min(len(p[0]) + len(p[1]), max_len))  # stable: ties keep the draw order
        groups = [pairs[i:i + batch_size] for i in range(0, len(pairs), batch_size)]
        for k in rng.permutation(len(groups)).tolist():
            yield make_pretraining_batch(groups[k], ids, max_len, rng, mlm_probability=mlm_probability)
