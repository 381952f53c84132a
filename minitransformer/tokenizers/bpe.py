"""Byte-level BPE, as in GPT-2: text -> words -> bytes -> merged tokens -> ids, and back.

Encoding one text:

1. ``"<|endoftext|>"`` is cut out first and kept whole (one id, ``eos_id``).
2. The rest is cut into words by GPT-2's regex (``byte_level.pretokenize``):
   ``"Hello world's"`` -> ``"Hello" " world" "'s"``.
3. Each word is spelt in its UTF-8 bytes, one symbol per byte, written with
   GPT-2's byte table (``byte_level.bytes_to_unicode``): ``" world"`` ->
   ``Ġ w o r l d``.
4. The merges are applied in rank order (the order training learnt them),
   exactly as GPT-2's ``bpe()``: among the adjacent pairs of the word, take the
   one with the lowest rank, join all its occurrences (left to right), and
   repeat until no adjacent pair has a rank. With the merges ``o r``, ``l d``,
   ``Ġ w``, ``Ġw or``, ``Ġwor ld``:
   ``Ġ w o r l d`` -> ``Ġ w or l d`` -> ``Ġ w or ld`` -> ``Ġw or ld`` -> ``Ġwor ld`` -> ``Ġworld``.
5. Each final symbol is looked up in the vocabulary. Words repeat, so the
   result per word is cached.

Decoding joins the tokens, maps each character back to its byte and decodes
the bytes as UTF-8; ids that end inside a character (a lone byte of an emoji)
give U+FFFD (``errors="replace"``, like GPT-2). ``decode(encode(text)) == text``
for every text.

Files are GPT-2's: ``vocab.json`` (token -> id) and ``merges.txt`` (a
``#version`` line, then one merge ``a b`` per line, in rank order), so a
Hugging Face GPT-2 tokenizer folder loads, and our files load in transformers'
``GPT2Tokenizer`` with the same ids.

Ref: Sennrich et al. 2016 (BPE); Radford et al. 2019, GPT-2, Sec. 2.2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

from .. import backend
from .bpe_trainer import train_bpe
from .byte_level import BYTE_DECODER, BYTE_ENCODER, EOS_TOKEN, pretokenize, split_special, text_to_symbols
from .vocab_file import write_text_atomic

__all__ = ["EOS_TOKEN", "ByteLevelBPETokenizer", "read_merges", "read_vocab_json"]

VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"
_CACHE_LIMIT = 100_000  # words kept in the encode cache (then it starts over)


class ByteLevelBPETokenizer:
    """GPT-2's tokenizer: ``encode(text) -> ids``, ``decode(ids) -> text``.

    Args:
        vocab: token -> id (the contents of ``vocab.json``); ids must be 0..n-1, each once, and
            the 256 byte symbols must be there. ``"<|endoftext|>"`` gets id n if missing
            (as transformers' ``GPT2Tokenizer`` does).
        merges: the merges ``(a, b)`` in rank order; ``a``, ``b`` and ``a + b`` must be tokens.
    """

    eos_token = EOS_TOKEN

    def __init__(self, vocab: Mapping[str, int], merges: Iterable[tuple[str, str]]):
        self._ids = _check_vocab(vocab)  # token -> id
        if EOS_TOKEN not in self._ids:
            self._ids[EOS_TOKEN] = len(self._ids)
        self.vocab = [""] * len(self._ids)  # id -> token
        for token, i in self._ids.items():
            self.vocab[i] = token
        self.eos_id = self._ids[EOS_TOKEN]
        self.merges: list[tuple[str, str]] = []  # rank -> (a, b)
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}  # (id a, id b) -> (rank, id of a + b)
        for rank, merge in enumerate(merges):
            if not (isinstance(merge, (tuple, list)) and len(merge) == 2 and all(isinstance(t, str) for t in merge)):
                raise ValueError(f"merge {rank} must be a pair of token strings (a, b), got {merge!r:.80}")
            a, b = merge
            missing = [t for t in (a, b, a + b) if t not in self._ids]
            if missing:
                raise ValueError(f"merge {rank} ({a!r} {b!r}): {missing!r} not in the vocabulary; the merges and the "
                                 f"vocabulary (merges.txt and vocab.json) do not belong together")
            self.merges.append((a, b))
            pair = (self._ids[a], self._ids[b])
            if pair in self._ranks:
                raise ValueError(f"merge {rank} ({a!r} {b!r}) repeats merge {self._ranks[pair][0]}")
            self._ranks[pair] = (rank, self._ids[a + b])
        self._byte_ids = [self._ids[BYTE_ENCODER[b]] for b in range(256)]  # byte value -> id
        self._cache: dict[str, list[int]] = {}  # word -> its ids

    # ---- building and files -------------------------------------------------------------------

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
              show_progress: bool = False) -> ByteLevelBPETokenizer:
        """Learn merges from ``texts`` (see ``bpe_trainer.train_bpe`` for the algorithm).

        Args:
            texts: an iterable of str, read once.
            vocab_size: at most this many tokens: 256 bytes + merged tokens + ``"<|endoftext|>"`` (>= 257).
            min_frequency: merge only pairs seen at least this often.
            show_progress: a tqdm bar on stderr.
        """
        tokens, merges = train_bpe(texts, vocab_size, min_frequency, EOS_TOKEN, show_progress)
        return cls({t: i for i, t in enumerate(tokens)}, merges)

    @classmethod
    def from_files(cls, vocab_json, merges_txt) -> ByteLevelBPETokenizer:
        """A tokenizer from GPT-2's ``vocab.json`` and ``merges.txt``."""
        return cls(read_vocab_json(vocab_json), read_merges(merges_txt))

    @classmethod
    def from_folder(cls, folder) -> ByteLevelBPETokenizer:
        """A tokenizer from a folder holding ``vocab.json`` and ``merges.txt`` (a Hugging Face GPT-2 folder works)."""
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"tokenizer folder not found: {folder!r}")
        paths = [os.path.join(folder, name) for name in (VOCAB_FILE, MERGES_FILE)]
        missing = [os.path.basename(p) for p in paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"{folder!r} lacks {' and '.join(missing)}: a byte-level BPE tokenizer needs "
                                    f"{VOCAB_FILE} and {MERGES_FILE}")
        return cls.from_files(*paths)

    def save(self, folder) -> str:
        """Write ``vocab.json`` and ``merges.txt`` (GPT-2's format, atomically) into ``folder``; returns it."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        vocab = json.dumps({t: i for i, t in enumerate(self.vocab)}, ensure_ascii=False)
        write_text_atomic(os.path.join(folder, VOCAB_FILE), vocab + "\n")
        lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in self.merges]
        write_text_atomic(os.path.join(folder, MERGES_FILE), "\n".join(lines) + "\n")
        return folder

    # ---- encoding and decoding ----------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"ByteLevelBPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"

    def get_vocab(self) -> dict[str, int]:
        """A copy of the token -> id map."""
        return dict(self._ids)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` (no token added; ``"<|endoftext|>"`` in the text is one ``eos_id``)."""
        ids: list[int] = []
        for piece in split_special(text, EOS_TOKEN):
            if piece == EOS_TOKEN:
                ids.append(self.eos_id)
                continue
            for word in pretokenize(piece):
                word_ids = self._cache.get(word)
                if word_ids is None:
                    try:
                        data = word.encode("utf-8")
                    except UnicodeEncodeError:
                        text_to_symbols(word)  # raises ValueError naming the lone surrogate
                        raise
                    word_ids = self._bpe([self._byte_ids[b] for b in data])
                    if len(self._cache) >= _CACHE_LIMIT:
                        self._cache.clear()
                    self._cache[word] = word_ids
                ids.extend(word_ids)
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The token strings of ``text`` (bytes in GPT-2's spelling: ``" é"`` -> ``["ĠÃ©"]``)."""
        return [self.vocab[i] for i in self.encode(text)]

    def _bpe(self, word: list[int]) -> list[int]:
        """Apply the merges to one word's symbol ids, lowest rank first (GPT-2's ``bpe()``).

        Math:
            while some adjacent pair (x, y) of word has a rank:
                (a, b) = the pair of lowest rank;  word = word with every a b -> id(a + b), left to right
        """
        ranks, unranked = self._ranks, (len(self._ranks), -1)  # unranked pairs sort last, with no merged id
        while len(word) > 1:
            pairs = zip(word[:-1], word[1:], strict=True)
            _, c, a, b = min(ranks.get(pair, unranked) + pair for pair in pairs)  # (rank, id of a + b, a, b)
            if c < 0:
                break  # no adjacent pair has a rank: done
            out, i, n = [], 0, len(word)
            while i < n:
                if i + 1 < n and word[i] == a and word[i + 1] == b:
                    out.append(c)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def convert_ids_to_tokens(self, ids) -> list[str]:
        """Token strings of ``ids`` (a list or 1-D array); an id outside ``[0, vocab_size)`` raises ValueError."""
        return [self.vocab[i] for i in _id_list(ids, len(self.vocab))]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """The text of ``ids``: tokens joined, mapped back to bytes, decoded as UTF-8 (``errors="replace"``).

        ``"<|endoftext|>"`` is written out, or dropped with ``skip_special_tokens``.
        """
        parts, data = [], bytearray()
        for i in _id_list(ids, len(self.vocab)):
            if i == self.eos_id:
                parts.append(data.decode("utf-8", errors="replace"))
                data = bytearray()
                if not skip_special_tokens:
                    parts.append(EOS_TOKEN)
            else:
                data.extend(BYTE_DECODER[c] for c in self.vocab[i])
        parts.append(data.decode("utf-8", errors="replace"))
        return "".join(parts)


def _id_list(ids, vocab_size: int) -> list[int]:
    """``ids`` (a list of ints or a 1-D integer array) as Python ints, checked against ``vocab_size``."""
    if isinstance(ids, str):
        raise TypeError("decode: expected a sequence of token ids, got a str")
    if backend.is_array(ids):
        if ids.ndim != 1:
            raise ValueError(f"decode: expected a 1-D sequence of ids, got shape {tuple(ids.shape)}")
        ids = backend.to_numpy(ids).tolist()
    out = []
    for i in ids:
        if isinstance(i, bool) or not hasattr(i, "__index__"):
            raise TypeError(f"decode: token ids must be ints, got {i!r} ({type(i).__name__})")
        out.append(i.__index__())
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"decode: token ids {bad[:5]} are outside the vocabulary [0, {vocab_size})")
    return out


def _check_vocab(vocab: Mapping[str, int], where: str = "vocabulary") -> dict[str, int]:
    """A copy of ``vocab`` after checking it: str tokens of byte symbols, int ids 0..n-1 once each, all 256 bytes."""
    if not isinstance(vocab, Mapping):
        raise TypeError(f"{where}: expected a token -> id mapping, got {type(vocab).__name__}")
    seen: dict[int, str] = {}
    for token, i in vocab.items():
        if not isinstance(token, str) or not token:
            raise ValueError(f"{where}: tokens must be non-empty str, got {token!r}")
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f"{where}: the id of {token!r} must be an int, got {i!r}")
        if i in seen:
            raise ValueError(f"{where}: tokens {seen[i]!r} and {token!r} share the id {i}")
        if token != EOS_TOKEN and any(c not in BYTE_DECODER for c in token):
            bad = next(c for c in token if c not in BYTE_DECODER)
            raise ValueError(f"{where}: token {token!r} (id {i}) holds {bad!r}, which is not one of GPT-2's 256 byte "
                             f"symbols (byte_level.bytes_to_unicode); not a byte-level vocabulary")
        seen[i] = token
    n = len(seen)
    if n and (min(seen) != 0 or max(seen) != n - 1):
        gap = next(i for i in range(n) if i not in seen)
        raise ValueError(f"{where}: ids must be 0..{n - 1} without gaps; id {gap} is missing")
    missing = [c for c in BYTE_ENCODER.values() if c not in vocab]
    if missing:
        raise ValueError(f"{where}: {len(missing)} of the 256 byte symbols are missing (e.g. {missing[:5]!r}); a "
                         f"byte-level BPE vocabulary must hold every byte so that any text can be encoded")
    return dict(vocab)


def read_vocab_json(path) -> dict[str, int]:
    """The token -> id map of a GPT-2 ``vocab.json`` (checked: ids 0..n-1, all 256 byte symbols)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocabulary file not found: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, nesting too deep
        raise ValueError(f"{path!r} is not UTF-8 JSON ({type(e).__name__}: {e})") from None
    if not isinstance(vocab, dict):
        raise ValueError(f"{path!r} holds a JSON {type(vocab).__name__}, not an object of token -> id")
    return _check_vocab(vocab, where=path)


def read_merges(path) -> list[tuple[str, str]]:
    """The merges of a GPT-2 ``merges.txt``, in rank order.

    An optional first line ``#version: ...`` is skipped, and so are empty lines;
    every other line must be two tokens separated by one space.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"merges file not found: {path!r}")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as e:
        raise ValueError(f"merges file {path!r} is not UTF-8 text ({e})") from None
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{path!r} line {number}: expected a merge 'a b' (two tokens, one space), "
                             f"got {line!r:.80}")
        merges.append((parts[0], parts[1]))
    return merges
