"""Training a WordPiece vocabulary from a text corpus.

Pre-tokenize the corpus into words with BERT's ``BasicTokenizer`` and count
them. Spell every word in single characters, all but the first with the
continuation prefix: ``hugs`` -> ``h ##u ##g ##s``. The starting vocabulary is
the special tokens, then these characters (the alphabet). Then merge, one pair
of adjacent pieces at a time, the pair with the highest likelihood score

    score(a, b) = freq(a b) / (freq(a) * freq(b))

(frequencies counted over the corpus, each word weighted by its count), until
the vocabulary has ``vocab_size`` tokens or no pair occurs ``min_frequency``
times. The merged piece is ``a`` followed by ``b`` without its ``##``:
``##g`` + ``##s`` -> ``##gs``, ``h`` + ``##u`` -> ``hu``.

Why this score: Schuster & Nakajima (2012) add the piece that most increases
the likelihood of the training data under a unigram model of pieces. Joining
``a`` and ``b`` changes the log-likelihood by about
``freq(a b) * log(p(a b) / (p(a) p(b)))``, a gain that is large when ``a`` and
``b`` occur together far more often than chance; ranking pairs by
``freq(a b) / (freq(a) freq(b))`` is the cheap form of that rule given in
Hugging Face's NLP course. Unlike BPE it does not simply merge the most frequent pair:
a pair of rare pieces that always occur together wins over a pair of common
pieces that occur together often. (Hugging Face ``tokenizers``'
``WordPieceTrainer`` itself runs BPE's frequency merges; this file follows
the likelihood rule of the paper and the course, so its vocabularies differ.)
Ties go to the more frequent pair, then to the alphabetically first, so
training is deterministic.

Tokenizing later uses greedy longest-match-first (``wordpiece_split``), not
the merge list, so only the vocabulary is kept.

Ref: Schuster & Nakajima 2012, Japanese and Korean Voice Search, Sec. 3.1;
Wu et al. 2016, Google's Neural Machine Translation System, Sec. 4.1.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from .basic import BasicTokenizer
from .wordpiece import SPECIAL_TOKENS

__all__ = ["train_wordpiece"]


def _pairs(pieces: list[str]) -> list[tuple[str, str]]:
    """The adjacent pairs of one spelt word."""
    return list(zip(pieces[:-1], pieces[1:], strict=True))


def _merge(pieces: list[str], a: str, b: str, merged: str) -> list[str]:
    """``pieces`` with every adjacent ``a b`` replaced by ``merged`` (left to right)."""
    out, i = [], 0
    while i < len(pieces):
        if i + 1 < len(pieces) and pieces[i] == a and pieces[i + 1] == b:
            out.append(merged)
            i += 2
        else:
            out.append(pieces[i])
            i += 1
    return out


def train_wordpiece(corpus_texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
                    do_lower_case: bool = True, strip_accents: bool | None = None,
                    tokenize_chinese_chars: bool = True, special_tokens: Sequence[str] = SPECIAL_TOKENS,
                    limit_alphabet: int | None = None) -> list[str]:
    """Learn a WordPiece vocabulary of at most ``vocab_size`` tokens from ``corpus_texts``.

    Args:
        corpus_texts: the training texts (an iterable of str, read once).
        vocab_size: the largest vocabulary wanted, special tokens and alphabet included.
        min_frequency: a pair is merged only if it occurs at least this often.
        do_lower_case, strip_accents, tokenize_chinese_chars: the ``BasicTokenizer``
            settings; use the same ones in the ``WordPieceTokenizer`` that reads the vocabulary.
        special_tokens: put first, in this order (default ``[PAD] [UNK] [CLS] [SEP] [MASK]``,
            so ``[PAD]`` is id 0).
        limit_alphabet: keep only this many most frequent characters; words with
            other characters are left out (they will tokenize to ``[UNK]``).

    Returns:
        the vocabulary, a list of tokens: special tokens, the alphabet, then the merges in order.

    Math:
        freq(w) = count of word w;  pieces(w) = [w[0], "##" + w[1], ..., "##" + w[-1]]
        freq(p) = sum_w freq(w) * (times p occurs in pieces(w))
        freq(a b) = sum_w freq(w) * (times a is followed by b in pieces(w))
        (a, b) = argmax freq(a b) / (freq(a) * freq(b)) over pairs with freq(a b) >= min_frequency
        merged = a + b[2:] if b starts with "##" else a + b;  replace a b by merged in every word
    """
    special_tokens = list(special_tokens)
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"train_wordpiece: repeated special tokens {special_tokens}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= len(special_tokens):
        raise ValueError(f"train_wordpiece: vocab_size must be an int > {len(special_tokens)} "
                         f"(the special tokens), got {vocab_size!r}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"train_wordpiece: min_frequency must be an int >= 1, got {min_frequency!r}")
    if isinstance(corpus_texts, str):
        raise TypeError("train_wordpiece: corpus_texts must be an iterable of texts, not one str")

    basic = BasicTokenizer(do_lower_case, strip_accents, tokenize_chinese_chars, never_split=special_tokens)
    word_freq: Counter[str] = Counter()
    for i, text in enumerate(corpus_texts):
        if not isinstance(text, str):
            raise TypeError(f"train_wordpiece: corpus text {i} is {type(text).__name__}, not str")
        word_freq.update(w for w in basic.tokenize(text) if w not in special_tokens)
    if not word_freq:
        raise ValueError("train_wordpiece: the corpus has no words")
    if limit_alphabet is not None:
        char_freq: Counter[str] = Counter()
        for word, n in word_freq.items():
            for ch in word:
                char_freq[ch] += n
        kept = {ch for ch, _ in sorted(char_freq.items(), key=lambda kv: (-kv[1], kv[0]))[:limit_alphabet]}
        word_freq = Counter({w: n for w, n in word_freq.items() if set(w) <= kept})

    words = sorted(word_freq)  # a fixed order: training never depends on the order of the corpus
    freqs = [word_freq[w] for w in words]
    spelt = [[w[0]] + ["##" + c for c in w[1:]] for w in words]
    alphabet = sorted({p for pieces in spelt for p in pieces}, key=lambda p: (p.startswith("##"), p))
    vocab = special_tokens + [p for p in alphabet if p not in special_tokens]
    if len(vocab) > vocab_size:
        raise ValueError(f"train_wordpiece: vocab_size={vocab_size} is smaller than the special tokens plus the "
                         f"alphabet ({len(vocab)} tokens); raise vocab_size or pass limit_alphabet")
    in_vocab = set(vocab)

    piece_freq: Counter[str] = Counter()
    pair_freq: Counter[tuple[str, str]] = Counter()
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)  # pair -> indices of the words holding it
    for i, pieces in enumerate(spelt):
        for p in pieces:
            piece_freq[p] += freqs[i]
        for pair in _pairs(pieces):
            pair_freq[pair] += freqs[i]
            where[pair].add(i)

    while len(vocab) < vocab_size:
        best, best_key = None, None
        for (a, b), n in pair_freq.items():
            if n < min_frequency:
                continue
            key = (n / (piece_freq[a] * piece_freq[b]), n)  # score, then frequency; then alphabetical below
            if best is None or key > best_key or (key == best_key and (a, b) < best):
                best, best_key = (a, b), key
        if best is None:
            break  # no pair occurs min_frequency times
        a, b = best
        merged = a + b[2:] if b.startswith("##") else a + b
        for i in sorted(where.pop(best)):
            old = spelt[i]
            new = _merge(old, a, b, merged)
            for p in old:
                piece_freq[p] -= freqs[i]
            for pair in _pairs(old):
                pair_freq[pair] -= freqs[i]
                if pair_freq[pair] <= 0:
                    del pair_freq[pair]
                if pair != best:
                    where[pair].discard(i)
            for p in new:
                piece_freq[p] += freqs[i]
            for pair in _pairs(new):
                pair_freq[pair] += freqs[i]
                where[pair].add(i)
            spelt[i] = new
        if merged not in in_vocab:  # two different merges can spell the same piece
            vocab.append(merged)
            in_vocab.add(merged)
    return vocab
