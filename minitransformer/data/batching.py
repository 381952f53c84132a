"""From string pairs to padded id arrays for the encoder-decoder, batched by length.

A batch of B pairs becomes (teacher forcing: the decoder reads the target
shifted right by one and predicts the next character):

    source  "28 Nov"      src_ids  [ '2' '8' ' ' 'N' 'o' 'v' ]
    target  "11-28"       tgt_in   [ <bos> '1' '1' '-' '2' '8' ]
                          tgt_out  [ '1' '1' '-' '2' '8' <eos> ]

Short rows are padded on the right: ``src_ids`` and ``tgt_in`` with <pad> = 0,
``tgt_out`` with ``IGNORE_INDEX`` = -100, the ``ignore_index`` of
``nn.losses.cross_entropy_forward``, so padding adds neither loss nor
gradient. The padding masks are True at padded positions (the
``key_padding_mask`` convention of ``nn.attention``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from .. import backend
from .vocab import BOS_ID, EOS_ID, PAD_ID, Vocab

__all__ = ["IGNORE_INDEX", "Seq2SeqBatch", "batches", "make_batch"]

IGNORE_INDEX = -100


class Seq2SeqBatch(NamedTuple):
    """One padded batch; arrays on the active backend, the rest on the host."""

    src_ids: object  # (B, S) int64 source ids, <pad> after each row's end
    tgt_in: object  # (B, T) int64 decoder input: <bos> + target, then <pad>
    tgt_out: object  # (B, T) int64 labels: target + <eos>, then IGNORE_INDEX
    src_key_padding_mask: object  # (B, S) bool, True = padding
    tgt_key_padding_mask: object  # (B, T) bool, True = padding
    src_lengths: tuple  # (B,) ints: real source positions per row
    tgt_lengths: tuple  # (B,) ints: real target positions per row, len(target) + 1
    n_tokens: int  # sum(tgt_lengths): positions that count in the loss
    src_texts: tuple  # (B,) the source strings
    tgt_texts: tuple  # (B,) the target strings

    @property
    def n_padding(self) -> int:
        """Padded positions in the source and target arrays together."""
        B, S = len(self.src_lengths), max(self.src_lengths)
        T = max(self.tgt_lengths)
        return B * S - sum(self.src_lengths) + B * T - self.n_tokens


def _pad(rows: list[list[int]], width: int, value: int) -> list[list[int]]:
    return [r + [value] * (width - len(r)) for r in rows]


def make_batch(pairs: Sequence[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab,
               src_eos: bool = False, unk: bool = False) -> Seq2SeqBatch:
    """Encode and pad ``pairs`` into one ``Seq2SeqBatch``.

    Args:
        pairs: B >= 1 ``(source, target)`` strings; sources must be non-empty.
        src_vocab, tgt_vocab: character vocabularies (may be the same object).
        src_eos: append <eos> to every source.
        unk: map unknown characters to <unk> instead of raising ``ValueError``.
    Returns:
        the batch; S = longest source, T = longest target + 1.
    """
    if len(pairs) == 0:
        raise ValueError("make_batch: expected at least one (source, target) pair, got none")
    src_rows, tgt_rows = [], []
    for k, (src, tgt) in enumerate(pairs):
        if not src:
            raise ValueError(f"make_batch: pair {k} has an empty source (target {tgt!r})")
        src_rows.append(src_vocab.encode(src, add_eos=src_eos, unk=unk))
        tgt_rows.append(tgt_vocab.encode(tgt, unk=unk))
    src_lengths = tuple(len(r) for r in src_rows)
    tgt_lengths = tuple(len(r) + 1 for r in tgt_rows)
    S, T = max(src_lengths), max(tgt_lengths)
    src_ids = backend.asarray(_pad(src_rows, S, PAD_ID), dtype="int64")  # (B, S)
    tgt_in = backend.asarray(_pad([[BOS_ID] + r for r in tgt_rows], T, PAD_ID), dtype="int64")  # (B, T)
    tgt_out = backend.asarray(_pad([r + [EOS_ID] for r in tgt_rows], T, IGNORE_INDEX), dtype="int64")  # (B, T)
    src_mask = backend.asarray([[t >= n for t in range(S)] for n in src_lengths], dtype="bool")  # (B, S)
    tgt_mask = backend.asarray([[t >= n for t in range(T)] for n in tgt_lengths], dtype="bool")  # (B, T)
    return Seq2SeqBatch(src_ids, tgt_in, tgt_out, src_mask, tgt_mask, src_lengths, tgt_lengths,
                        sum(tgt_lengths), tuple(s for s, _ in pairs), tuple(t for _, t in pairs))


def batches(pairs: Sequence[tuple[str, str]], batch_size: int, src_vocab: Vocab, tgt_vocab: Vocab,
            shuffle_seed: int | None = None, by_length: bool = True, bucket_batches: int = 32,
            drop_last: bool = False, **batch_options) -> Iterator[Seq2SeqBatch]:
    """Yield ``Seq2SeqBatch``es of ``batch_size`` pairs (one may be smaller, unless ``drop_last``).

    Args:
        pairs: the ``(source, target)`` strings.
        batch_size: pairs per batch, >= 1.
        src_vocab, tgt_vocab: as for ``make_batch``.
        shuffle_seed: None keeps the given order; an int shuffles with ``random.Random(shuffle_seed)``.
        by_length: group pairs of similar length to cut padding. The (shuffled)
            pairs are cut into buckets of ``batch_size * bucket_batches``; each
            bucket is sorted by (source length, target length) and cut into
            batches; with a seed the batch order is then shuffled too.
        drop_last: skip a final batch smaller than ``batch_size``.
        batch_options: passed to ``make_batch`` (``src_eos``, ``unk``).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batches: batch_size must be an int >= 1, got {batch_size!r}")
    if bucket_batches < 1:
        raise ValueError(f"batches: bucket_batches must be >= 1, got {bucket_batches!r}")
    rng = random.Random(shuffle_seed) if shuffle_seed is not None else None
    order = list(range(len(pairs)))
    if rng is not None:
        rng.shuffle(order)
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if by_length:
        bucket = batch_size * bucket_batches
        groups = []
        for start in range(0, len(order), bucket):
            chunk = sorted(order[start:start + bucket], key=lambda i: (len(pairs[i][0]), len(pairs[i][1])))
            groups += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        if rng is not None:
            rng.shuffle(groups)
    for group in groups:
        if drop_last and len(group) < batch_size:
            continue
        yield make_batch([pairs[i] for i in group], src_vocab, tgt_vocab, **batch_options)
