"""Character-level vocabulary with four special tokens.

Ids 0-3 are reserved, in this order, for every vocabulary:

    <pad> = 0   fills the short rows of a batch (masked out everywhere)
    <bos> = 1   first decoder input ("begin of sequence")
    <eos> = 2   last decoder label ("end of sequence"); decoding stops there
    <unk> = 3   a character the vocabulary has never seen (only on request)

Then one id per character, in the order given (``Vocab.build`` sorts them, so
the same texts always give the same ids). A vocabulary is saved in a
checkpoint as JSON (``to_json`` / ``from_json``): no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .. import backend

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "SPECIAL_TOKENS", "UNK_ID", "Vocab"]

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
_FORMAT = "minitransformer.char_vocab"


class Vocab:
    """Maps characters to integer ids and back.

    Args:
        chars: the characters, each a single-character string, no repeats.
            They get ids ``4, 5, ...`` in the order given.
    """

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"Vocab: entry {i} must be a single character, got {c!r}")
        dup = sorted({c for c in chars if chars.count(c) > 1})
        if dup:
            raise ValueError(f"Vocab: repeated characters {''.join(dup)!r}")
        self.chars = "".join(chars)
        self.tokens = SPECIAL_TOKENS + tuple(chars)  # id -> token
        self._ids = {c: i + len(SPECIAL_TOKENS) for i, c in enumerate(chars)}  # char -> id

    @classmethod
    def build(cls, texts: Iterable[str], extra: str = "") -> Vocab:
        """The vocabulary of every character in ``texts`` (plus ``extra``), sorted."""
        seen = set(extra)
        for t in texts:
            seen.update(t)
        return cls(sorted(seen))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, char) -> bool:
        return char in self._ids

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __hash__(self) -> int:
        return hash(self.tokens)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, chars={self.chars!r})"

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False, unk: bool = False) -> list[int]:
        """Ids of ``text``, one per character, optionally framed by <bos> / <eos>.

        A character outside the vocabulary raises ``ValueError`` naming it and
        its position, unless ``unk=True``, which maps it to <unk>.
        """
        if not isinstance(text, str):
            raise TypeError(f"Vocab.encode: expected a str, got {type(text).__name__}")
        ids = [BOS_ID] if add_bos else []
        for pos, c in enumerate(text):
            i = self._ids.get(c)
            if i is None:
                if not unk:
                    raise ValueError(
                        f"character {c!r} at position {pos} of {text!r} is not in the vocabulary "
                        f"(known characters: {self.chars!r})"
                    )
                i = UNK_ID
            ids.append(i)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def decode(self, ids, strip_special: bool = True) -> str:
        """The text of ``ids`` (a list of ints or a 1-D array).

        With ``strip_special`` (default) decoding stops at the first <eos>,
        and <pad> / <bos> are dropped; <unk> always shows as ``"<unk>"``.
        Without it every token is written out, specials by their names.
        """
        if backend.is_array(ids):
            ids = backend.to_numpy(ids).tolist()
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"Vocab.decode: id {i} is out of range [0, {len(self.tokens)})")
            if strip_special:
                if i == EOS_ID:
                    break
                if i in (PAD_ID, BOS_ID):
                    continue
            out.append(self.tokens[i])
        return "".join(out)

    def to_json(self) -> str:
        """The vocabulary as a JSON string (for checkpoints)."""
        return json.dumps({"format": _FORMAT, "specials": list(SPECIAL_TOKENS), "chars": self.chars},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | dict) -> Vocab:
        """Inverse of ``to_json``; accepts the JSON string or the parsed dict."""
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError (bytes), too deep
                raise ValueError(f"Vocab.from_json: not valid JSON ({type(e).__name__}: {e})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("chars"), str):
            raise ValueError(f"Vocab.from_json: expected a {_FORMAT!r} object with a 'chars' string, got {data!r:.200}")
        specials = data.get("specials", [])
        if not isinstance(specials, list) or tuple(specials) != SPECIAL_TOKENS:
            raise ValueError(f"Vocab.from_json: special tokens {data.get('specials')!r} differ from {SPECIAL_TOKENS}")
        return cls(data["chars"])
