"""Character-level tokenizer: one id per character, plus ``"<|endoftext|>"``.

The simplest tokenizer a language model can use, with the same interface as
``ByteLevelBPETokenizer`` (``encode``, ``decode``, ``vocab_size``,
``eos_token`` / ``eos_id``, ``save``, ``from_folder``), so a model can be
trained on either.

The vocabulary is every character seen in the training texts, sorted by code
point (ids 0..n-1), then ``"<|endoftext|>"`` (id n), which is one token
wherever it appears in a text. There is no unknown token: ``encode`` raises
ValueError naming a character it has never seen, because a model cannot learn
anything about an id that never occurred in training, and silently dropping
or merging characters would make ``decode(encode(text))`` differ from
``text``. Build the vocabulary from every text you will encode (or use the
byte-level BPE, for which no character is unknown).

Saved as ``char_tokenizer.json`` (plain JSON, no pickle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from .bpe import _id_list
from .byte_level import EOS_TOKEN, split_special
from .vocab_file import write_text_atomic

__all__ = ["CharTokenizer"]

CHAR_FILE = "char_tokenizer.json"
_FORMAT = "minitransformer.char_tokenizer"


class CharTokenizer:
    """Characters <-> ids.

    Args:
        chars: the characters (single-character str, no repeats); they get ids 0, 1, ... in
            this order, and ``"<|endoftext|>"`` gets the next id.
    """

    eos_token = EOS_TOKEN

    def __init__(self, chars: Iterable[str]):
        if isinstance(chars, str):
            chars = list(chars)
        self.chars: list[str] = []
        self._ids: dict[str, int] = {}  # char -> id
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharTokenizer: entry {i} must be a single character, got {c!r:.40}")
            if "\ud800" <= c <= "\udfff":
                raise ValueError(f"CharTokenizer: entry {i} is {c!r}, a lone surrogate (not a Unicode character)")
            if c in self._ids:
                raise ValueError(f"CharTokenizer: the character {c!r} is repeated (ids {self._ids[c]} and {i})")
            self._ids[c] = i
            self.chars.append(c)
        self.eos_id = len(self.chars)

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        """The tokenizer of every character in ``texts`` (sorted; ``"<|endoftext|>"`` is not spelt out).

        Named like ``ByteLevelBPETokenizer.train``; there is nothing to learn but the alphabet.
        """
        if isinstance(texts, str):
            raise TypeError("CharTokenizer.train: expected an iterable of str (a list of texts), got one str; "
                            "wrap it: [text]")
        seen: set[str] = set()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"CharTokenizer.train: text {i} must be a str, got {type(text).__name__}")
            for piece in split_special(text, EOS_TOKEN):
                if piece != EOS_TOKEN:
                    seen.update(piece)
        return cls(sorted(seen))

    from_texts = train

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def get_vocab(self) -> dict[str, int]:
        """A copy of the token -> id map (``"<|endoftext|>"`` included)."""
        return {**self._ids, EOS_TOKEN: self.eos_id}

    def encode(self, text: str) -> list[int]:
        """One id per character of ``text``; ``"<|endoftext|>"`` is one ``eos_id``.

        Raises ValueError naming the first character not in the vocabulary (and its position).
        """
        ids: list[int] = []
        pos = 0
        for piece in split_special(text, EOS_TOKEN):
            if piece == EOS_TOKEN:
                ids.append(self.eos_id)
            else:
                try:
                    ids.extend([self._ids[c] for c in piece])
                except KeyError:
                    j = next(j for j, c in enumerate(piece) if c not in self._ids)
                    raise ValueError(
                        f"character {piece[j]!r} (U+{ord(piece[j]):04X}) at position {pos + j} of the text is not in "
                        f"the vocabulary of {len(self.chars)} characters; CharTokenizer has no unknown token: build it "
                        f"from texts that contain every character (CharTokenizer.train)") from None
            pos += len(piece)
        return ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """The text of ``ids`` (list or 1-D array); ``"<|endoftext|>"`` is written out unless skipped."""
        out = []
        for i in _id_list(ids, self.vocab_size):
            if i == self.eos_id:
                if not skip_special_tokens:
                    out.append(EOS_TOKEN)
            else:
                out.append(self.chars[i])
        return "".join(out)

    def save(self, folder) -> str:
        """Write ``char_tokenizer.json`` into ``folder`` (atomically); returns the folder."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        data = {"format": _FORMAT, "version": 1, "chars": "".join(self.chars), "eos_token": EOS_TOKEN}
        write_text_atomic(os.path.join(folder, CHAR_FILE), json.dumps(data, ensure_ascii=False) + "\n")
        return folder

    @classmethod
    def from_folder(cls, folder) -> CharTokenizer:
        """The tokenizer saved by ``save(folder)``."""
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"tokenizer folder not found: {folder!r}")
        path = os.path.join(folder, CHAR_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {CHAR_FILE} in {folder!r}: not a saved CharTokenizer")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, nesting too deep
            raise ValueError(f"{path!r} is not UTF-8 JSON ({type(e).__name__}: {e})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("chars"), str):
            raise ValueError(f"{path!r}: expected a {_FORMAT!r} object with a 'chars' string, got {data!r:.200}")
        if data.get("eos_token", EOS_TOKEN) != EOS_TOKEN:
            raise ValueError(f"{path!r}: eos_token {data.get('eos_token')!r} is not {EOS_TOKEN!r}")
        try:
            return cls(data["chars"])
        except ValueError as e:
            raise ValueError(f"{path!r}: {e}") from None
