"""GPT-2's byte level: the byte <-> character table and the pre-tokenizing regex.

Byte-level BPE works on the UTF-8 bytes of a text, not on its characters, so
its base alphabet is just the 256 byte values: any text at all can be
encoded, and no token is ever "unknown" (emoji, CJK, control characters and
rare accents fall back to their bytes).

The merges and the vocabulary are stored as *strings* (``vocab.json``,
``merges.txt``), and a raw byte cannot be written there readably: byte 0x20
(space) would clash with the space that separates the two halves of a merge,
byte 0x0A (newline) with the line ends, and bytes 0x80-0xFF are not text on
their own. ``bytes_to_unicode`` therefore gives each byte one printable
stand-in character:

- the 188 bytes that are already printable Latin-1 characters (``!`` to ``~``,
  ``¡`` to ``¬``, ``®`` to ``ÿ``) stand for themselves;
- the other 68 (control characters, space, DEL, NBSP, soft hyphen) are moved,
  in byte order, to the characters 256, 257, ...: space (0x20, the 33rd of
  them) becomes ``Ġ`` (U+0120), newline (0x0A) becomes ``Ċ`` (U+010A).

So ``" hello"`` is the token ``Ġhello``, and ``"é"`` (bytes C3 A9) is spelt
``Ã©`` before merging. Every mapped string is printable, has no spaces, and
maps back to its bytes exactly.

Before BPE the text is cut into words with GPT-2's regex (``GPT2_PATTERN``),
so merges never cross a word boundary: English contractions ('s 't 're 've 'm
'll 'd), a letter run with at most one leading space, a digit run with at most
one leading space, a run of other symbols with at most one leading space, and
whitespace runs (all but the last space of a run before a word stay alone, so
that the word keeps its leading space). ``\\p{L}`` and ``\\p{N}`` are Unicode
letters and numbers, which is why the ``regex`` package is needed (the
standard ``re`` module lacks them).

Ref: Radford et al. 2019, Language Models are Unsupervised Multitask Learners,
Sec. 2.2; openai/gpt-2 src/encoder.py.
"""

from __future__ import annotations

import functools

import regex

__all__ = ["BYTE_DECODER", "BYTE_ENCODER", "EOS_TOKEN", "GPT2_PATTERN", "bytes_to_unicode", "pretokenize",
           "split_special", "symbols_to_bytes", "text_to_symbols"]

EOS_TOKEN = "<|endoftext|>"  # GPT-2's one special token: end of a text (also its padding and "begin" token)

GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: byte value (0-255) -> one printable character.

    Returns:
        a dict of 256 entries; its values are 256 distinct characters with no
        whitespace or control characters among them.

    Math:
        bs = [33..126] + [161..172] + [174..255]          # printable: b -> chr(b)
        n = 0
        for b in 0..255 not in bs: b -> chr(256 + n); n += 1
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


BYTE_ENCODER: dict[int, str] = bytes_to_unicode()  # byte -> character, in GPT-2's order (printable bytes first)
BYTE_DECODER: dict[str, int] = {c: b for b, c in BYTE_ENCODER.items()}  # character -> byte


def pretokenize(text: str) -> list[str]:
    """GPT-2's pre-tokenization: the words of ``text`` (their concatenation is ``text``).

    ``"Hello world's  2024!\\n"`` -> ``["Hello", " world", "'s", " ", " 2024", "!", "\\n"]``.
    """
    return GPT2_PATTERN.findall(text)


def split_special(text: str, special: str = EOS_TOKEN) -> list[str]:
    """``text`` cut around every ``special``, which stays whole: ``"a<|endoftext|>b"`` -> ``["a", special, "b"]``.

    Empty pieces are dropped; the pieces joined give ``text`` back.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    pieces = []
    for i, part in enumerate(text.split(special)):
        if i > 0:
            pieces.append(special)
        if part:
            pieces.append(part)
    return pieces


def text_to_symbols(word: str) -> str:
    """The UTF-8 bytes of ``word`` spelt in the byte table: ``" é"`` -> ``"ĠÃ©"``.

    Raises ValueError for a lone surrogate (a str that has no UTF-8 encoding).
    """
    try:
        data = word.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"the text holds {word[e.start:e.end]!r} at position {e.start} of {word!r}, which has no "
                         f"UTF-8 encoding (a lone surrogate); byte-level BPE needs valid Unicode text") from None
    return "".join(BYTE_ENCODER[b] for b in data)


def symbols_to_bytes(symbols: str) -> bytes:
    """Inverse of ``text_to_symbols`` before UTF-8 decoding: ``"ĠÃ©"`` -> ``b" \\xc3\\xa9"``."""
    return bytes(BYTE_DECODER[c] for c in symbols)
