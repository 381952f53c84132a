"""BERT's basic tokenizer: clean, normalise and split text into words before WordPiece.

The steps, in order (Devlin et al. 2019's ``tokenization.py``, as Hugging Face
``tokenizers``' ``BertNormalizer`` + ``BertPreTokenizer`` run them):

1. Special tokens (``[CLS]``, ``[SEP]``, ...) written in the text are cut out
   first, matched exactly (case-sensitive), and never split or normalised.
2. Clean: drop NUL, U+FFFD and control characters (Unicode category C*:
   ``\\x00``, zero-width space U+200B, ...); turn whitespace (space, ``\\t``,
   ``\\r``, ``\\n`` and category Zs) into a plain space.
3. CJK ideographs get a space on each side, so each becomes its own word
   (Chinese is written without spaces; Hiragana, Katakana and Hangul are not
   in these ranges and stay inside words).
4. Strip accents (when ``strip_accents`` is True, or None with lower-casing):
   Unicode NFD splits ``é`` into ``e`` + U+0301, then every non-spacing mark
   (category Mn) is dropped: ``café`` -> ``cafe``, ``Ångström`` -> ``Angstrom``.
5. Lower-case, one character at a time (as ``tokenizers`` does: no Greek
   final-sigma rule).
6. Split on whitespace, then put every punctuation character in a word of
   its own: ``"don't!"`` -> ``don ' t !``. Punctuation is BERT's definition:
   every ASCII character that is not a letter, digit or space (so ``$ ^ ` +``
   count) plus Unicode category P*.

Ref: Devlin et al. 2019, BERT, Sec. 3 and the released tokenization.py.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["CJK_RANGES", "BasicTokenizer", "is_cjk", "is_control", "is_punctuation", "is_whitespace"]

# The code-point blocks BERT treats as Chinese characters (CJK Unified Ideographs,
# Extensions A-E, and the two Compatibility Ideograph blocks).
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


# ASCII fast paths of BasicTokenizer (same results as the per-character rules below, checked by a test):
# category Cc is 0-31 and 127; of those tab, LF and CR are whitespace (-> " ") and the rest are dropped
_ASCII_CLEAN = {**{c: None for c in (*range(32), 127)}, **{ord(c): " " for c in "\t\n\r"}}
_ASCII_PUNCTUATION = "!-/:-@\\[-`{-~"  # code points 33-47, 58-64, 91-96, 123-126 as a regex class
_ASCII_WORD = re.compile(f"[{_ASCII_PUNCTUATION}]|[^{_ASCII_PUNCTUATION}\\s]+")  # a punctuation mark, or a run


def is_whitespace(ch: str) -> bool:
    """Space, tab, CR, LF, or Unicode category Zs (no-break space, em space, ...)."""
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch: str) -> bool:
    """Unicode category C* (control, format, unassigned...), except tab, CR and LF (whitespace)."""
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch: str) -> bool:
    """BERT's punctuation: ASCII 33-47, 58-64, 91-96, 123-126, or Unicode category P*."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(ch: str) -> bool:
    """True for a character in one of BERT's CJK ideograph blocks (``CJK_RANGES``)."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


class BasicTokenizer:
    """Splits raw text into words: cleaning, CJK and punctuation splits, lower-casing, accent stripping.

    Args:
        do_lower_case: lower-case the text (True for "uncased" vocabularies).
        strip_accents: drop accents; None means "as ``do_lower_case``", BERT's default.
        tokenize_chinese_chars: put each CJK ideograph in a word of its own.
        never_split: tokens cut out of the text before anything else and kept whole
            (the special tokens ``[CLS]``, ``[SEP]``, ...).
    """

    def __init__(self, do_lower_case: bool = True, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True, never_split: Iterable[str] = ()):
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = do_lower_case if strip_accents is None else bool(strip_accents)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        # longest first, so "[MASK]" wins over a shorter token that is its prefix
        self.never_split = tuple(sorted(set(never_split), key=lambda t: (-len(t), t)))

    def tokenize(self, text: str) -> list[str]:
        """The words of ``text``, special tokens kept whole."""
        if not isinstance(text, str):
            raise TypeError(f"BasicTokenizer.tokenize: expected a str, got {type(text).__name__}")
        words: list[str] = []
        for segment, is_special in self.split_special(text):
            if is_special:
                words.append(segment)
            else:
                words.extend(self._split_words(self.normalize(segment)))
        return words

    def split_special(self, text: str) -> list[tuple[str, bool]]:
        """Cut ``text`` at every exact occurrence of a never-split token: [(piece, is_special), ...]."""
        if not any(t in text for t in self.never_split):  # the common case, by C-level substring search
            return [(text, False)] if text else []
        out: list[tuple[str, bool]] = []
        start = i = 0
        while i < len(text):
            match = next((t for t in self.never_split if text.startswith(t, i)), None)
            if match is None:
                i += 1
                continue
            if i > start:
                out.append((text[start:i], False))
            out.append((match, True))
            i += len(match)
            start = i
        if start < len(text):
            out.append((text[start:], False))
        return out

    def normalize(self, text: str) -> str:
        """Steps 2-5: clean, space out CJK, strip accents, lower-case."""
        if text.isascii():  # the same result without a per-character Unicode lookup (~20x faster)
            text = text.translate(_ASCII_CLEAN)  # controls dropped, tab/CR/LF -> space; no CJK, no accents
            return text.lower() if self.do_lower_case else text
        chars = []
        for ch in text:
            if ch == "\x00" or ch == "\ufffd" or is_control(ch):
                continue  # dropped
            if is_whitespace(ch):
                chars.append(" ")
            elif self.tokenize_chinese_chars and is_cjk(ch):
                chars.append(f" {ch} ")
            else:
                chars.append(ch)
        text = "".join(chars)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if self.do_lower_case:
            text = "".join(c.lower() for c in text)  # per character, like tokenizers (no final-sigma context)
        return text

    @staticmethod
    def _split_words(text: str) -> list[str]:
        """Step 6: whitespace split, then every punctuation character becomes its own word."""
        if text.isascii():  # ASCII punctuation is exactly the four ranges of is_punctuation: one regex
            return _ASCII_WORD.findall(text)
        words: list[str] = []
        for word in text.split():
            current = ""
            for ch in word:
                if is_punctuation(ch):
                    if current:
                        words.append(current)
                    words.append(ch)
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        return words
