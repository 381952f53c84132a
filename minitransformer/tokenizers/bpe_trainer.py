"""Learning byte-level BPE merges from a corpus (Sennrich et al. 2016, at the byte level as in GPT-2).

The algorithm:

1. Cut every text into words with GPT-2's regex (``byte_level.pretokenize``)
   and count them. ``"<|endoftext|>"`` is removed first: it is a token of its
   own, never part of a word.
2. Spell each distinct word in its UTF-8 bytes, each byte one symbol. The
   starting vocabulary is the 256 bytes, so nothing is ever unknown.
3. Count every pair of adjacent symbols over all words, each word weighted by
   its frequency.
4. Take the most frequent pair ``(a, b)``, add the symbol ``ab`` to the
   vocabulary, record the merge ``a b``, and replace every adjacent ``a b`` in
   every word by ``ab`` (left to right). Ties go to the pair of older tokens
   (compare ``a`` first, then ``b``): the bytes are the oldest, ordered by
   their symbol's code point; merged tokens are as old as the merge that
   made them. That is the rule of Hugging Face ``tokenizers``' ``BpeTrainer``,
   so both learn the same merges from the same corpus (tested).
5. Repeat 3-4 until the vocabulary has ``vocab_size`` tokens or the best pair
   occurs fewer than ``min_frequency`` times.

Worked example (Hugging Face NLP course; no spaces, so one symbol per letter):
words ``hug`` x10, ``pug`` x5, ``pun`` x12, ``bun`` x4, ``hugs`` x5.

    pairs:  u g = 10+5+5 = 20,  p u = 17,  u n = 16,  h u = 15,  b u = 4,  g s = 5
    merge 1: u g -> ug          words: h ug, p ug, p u n, b u n, h ug s
    pairs:  u n = 16,  h ug = 15,  p u = 12,  p ug = 5,  ug s = 5,  b u = 4
    merge 2: u n -> un          words: h ug, p ug, p un, b un, h ug s
    pairs:  h ug = 15,  p un = 12,  p ug = 5,  ug s = 5,  b un = 4
    merge 3: h ug -> hug        words: hug, p ug, p un, b un, hug s

The merges, in this order (their *rank*), are the model: encoding a new word
replays them (``bpe.ByteLevelBPETokenizer``).

Speed: step 3 is not redone from scratch. ``pair_counts`` is kept up to date
and ``where[pair]`` remembers the words that hold a pair, so a merge touches
only the words that contain ``a b``: their old pairs are subtracted and their
new pairs added (weighted by the word's count). The best pair comes from a
heap of ``(-count, age(a), age(b))`` entries; an entry whose count is out of
date is skipped when popped (a fresh one was pushed when the count changed).

Ref: Sennrich, Haddow & Birch 2016, Neural Machine Translation of Rare Words
with Subword Units, Sec. 3.2 (Algorithm 1); Radford et al. 2019, GPT-2, Sec. 2.2.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

from .byte_level import BYTE_ENCODER, EOS_TOKEN, pretokenize, split_special

__all__ = ["count_words", "train_bpe"]


def count_words(texts: Iterable[str], special: str = EOS_TOKEN) -> Counter:
    """How often each pre-tokenized word occurs in ``texts`` (``special`` is skipped, never a word)."""
    if isinstance(texts, str):
        raise TypeError("train: texts must be an iterable of str (a list of texts), got one str; wrap it: [text]")
    counts: Counter = Counter()
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"train: text {i} must be a str, got {type(text).__name__}")
        for piece in split_special(text, special):
            if piece != special:
                counts.update(pretokenize(piece))
    return counts


def _merge_word(word: list[int], a: int, b: int, c: int) -> list[int]:
    """``word`` with every adjacent ``a b`` replaced by ``c``, left to right (``a a a`` -> ``c a``)."""
    out, i, n = [], 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(c)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2, special: str = EOS_TOKEN,
              show_progress: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
    """Learn byte-level BPE merges until the vocabulary has ``vocab_size`` tokens.

    Args:
        texts: the training texts (an iterable of str, read once).
        vocab_size: the largest vocabulary wanted: 256 bytes + merges + ``special``, so at least 257.
        min_frequency: a pair is merged only if it occurs at least this often (>= 1).
        special: the end-of-text token, given the last id (as GPT-2's 50256).
        show_progress: a tqdm bar (stderr) over the merges.

    Returns:
        (vocab, merges): ``vocab[i]`` is the token string of id i (bytes spelt with
        ``byte_level.BYTE_ENCODER``: ids 0-255 are the bytes in GPT-2's order, then the
        merged tokens in the order they were made, then ``special``); ``merges[r] = (a, b)``
        is the merge of rank r, and ``a + b`` is in ``vocab``. Usually one new token per
        merge, but a merge can rebuild a token that exists (``a bc`` after ``ab c``), so
        there may be more merges than new tokens. Fewer than ``vocab_size`` tokens when
        the pairs run out or fall below ``min_frequency``.

    Math:
        pair_counts[(x, y)] = sum over words w of freq[w] * #{i: w[i] = x, w[i + 1] = y}
        repeat: (a, b) = argmax pair_counts (ties: smallest (age[a], age[b]));  stop if its count < min_frequency
                every word: a b -> ab;  pair_counts updated for the words that held (a, b)
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 257:
        raise ValueError(f"vocab_size must be an int >= 257 (256 bytes + {special!r}), got {vocab_size!r}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}")
    tokens = list(BYTE_ENCODER.values())  # id -> token string; ids 0-255 are the bytes
    token_ids = {t: i for i, t in enumerate(tokens)}  # token string -> id
    byte_id = {b: i for i, b in enumerate(BYTE_ENCODER)}  # byte value -> id
    word_counts = count_words(texts, special)
    words: list[list[int]] = []  # each distinct word of >= 2 bytes, as symbol ids
    freqs: list[int] = []  # its count
    for word, count in word_counts.items():
        data = _utf8(word)
        if len(data) > 1:
            words.append([byte_id[b] for b in data])
            freqs.append(count)

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)  # (x, y) -> weighted count
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # (x, y) -> indices of words that may hold it
    for wi, (word, f) in enumerate(zip(words, freqs, strict=True)):
        for pair in zip(word[:-1], word[1:], strict=True):
            pair_counts[pair] += f
            where[pair].add(wi)
    age = [ord(t) for t in tokens]  # tie-break key per id: a byte's symbol code point (33-323), later 1000 + id
    heap = [(-count, age[x], age[y], x, y) for (x, y), count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[str, str]] = []
    from tqdm.auto import tqdm

    with tqdm(total=vocab_size - 1 - len(tokens), desc="BPE merges", unit="token", disable=not show_progress) as bar:
        while len(tokens) < vocab_size - 1 and heap:
            neg_count, _, _, a, b = heapq.heappop(heap)
            if pair_counts.get((a, b), 0) != -neg_count:
                continue  # out of date: the pair's count changed after this entry was pushed
            if -neg_count < min_frequency:
                break
            merged = tokens[a] + tokens[b]
            c = token_ids.get(merged, len(tokens))  # "a"+"bc" and "ab"+"c" are one token "abc"
            if c == len(tokens):
                tokens.append(merged)
                token_ids[merged] = c
                age.append(1000 + c)
                bar.update(1)
            merges.append((tokens[a], tokens[b]))
            delta: dict[tuple[int, int], int] = defaultdict(int)  # change of each pair's count
            for wi in where.pop((a, b)):
                word, f = words[wi], freqs[wi]
                new = _merge_word(word, a, b, c)
                if len(new) == len(word):
                    continue  # a stale index: an earlier merge already took this word's (a, b) apart
                for pair in zip(word[:-1], word[1:], strict=True):
                    delta[pair] -= f
                for pair in zip(new[:-1], new[1:], strict=True):
                    delta[pair] += f
                    if c in pair:
                        where[pair].add(wi)
                words[wi] = new
            for (x, y), d in delta.items():
                if d:
                    count = pair_counts[(x, y)] + d
                    if count:
                        pair_counts[(x, y)] = count
                        heapq.heappush(heap, (-count, age[x], age[y], x, y))
                    else:
                        del pair_counts[(x, y)]
    return tokens + [special], merges


def _utf8(word: str) -> bytes:
    """UTF-8 bytes of ``word``; a lone surrogate raises ValueError naming it."""
    try:
        return word.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"train: the corpus holds {word[e.start:e.end]!r} (a lone surrogate) in the word {word!r}; "
                         f"it has no UTF-8 bytes") from None
