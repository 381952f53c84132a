"""From token ids to model inputs: special tokens, token types, truncation, padding, batches.

BERT's input for one text is ``[CLS] A [SEP]``, for a pair ``[CLS] A [SEP] B
[SEP]``, with ``token_type_ids`` 0 over ``[CLS] A [SEP]`` and 1 over ``B
[SEP]``, and ``attention_mask`` 1 on real tokens, 0 on padding. Nothing here
depends on how the text was cut into tokens, so any tokenizer can use it.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import backend

__all__ = ["Encoding", "build_inputs", "collate", "pad", "padding_mode", "truncate_longest_first"]


class Encoding(NamedTuple):
    """One encoded text (or pair): three lists of ints of equal length."""

    input_ids: list[int]  # (T,) token ids
    token_type_ids: list[int]  # (T,) 0 for the first text, 1 for the second
    attention_mask: list[int]  # (T,) 1 = real token, 0 = padding


def truncate_longest_first(n_a: int, n_b: int, budget: int) -> tuple[int, int]:
    """How many tokens of each text of a pair to keep so that ``keep_a + keep_b <= budget``.

    "Longest first", as Hugging Face ``tokenizers`` does it: the shorter text
    is kept whole if it fits in half the budget and the longer one gets the
    rest; otherwise each keeps half, the odd token going to the longer one (to
    the second text on a tie). transformers' pure-Python BertTokenizerLegacy
    gives the odd token to the first text instead; ties are the only difference.
    """
    if n_a + n_b <= budget:
        return n_a, n_b
    short = min(n_a, n_b)
    if 2 * short <= budget:
        keep_short, keep_long = short, budget - short
    else:
        keep_short, keep_long = budget // 2, budget - budget // 2
    return (keep_long, keep_short) if n_a > n_b else (keep_short, keep_long)


def build_inputs(ids_a: list[int], ids_b: list[int] | None, cls_id: int, sep_id: int, max_length: int | None,
                 truncation: bool, add_special_tokens: bool = True) -> Encoding:
    """``[CLS] A [SEP] (B [SEP])`` with token types and mask, cut to ``max_length`` if asked.

    Args:
        ids_a: (T_a,) ids of the first text; ids_b: (T_b,) ids of the second, or None.
        max_length: the limit including special tokens (None: no limit).
        truncation: cut to ``max_length`` (pairs: ``truncate_longest_first``);
            when False, an input over the limit raises ValueError.

    Returns:
        Encoding(input_ids (T,), token_type_ids (T,), attention_mask (T,)), not padded.
    """
    n_special = (2 if ids_b is None else 3) if add_special_tokens else 0
    total = len(ids_a) + (0 if ids_b is None else len(ids_b)) + n_special
    if max_length is not None and total > max_length:
        if not truncation:
            raise ValueError(f"the input is {total} tokens long (special tokens included), more than "
                             f"max_length={max_length}; pass truncation=True to cut it to {max_length} tokens")
        if max_length < n_special:
            raise ValueError(f"max_length={max_length} leaves no room for the {n_special} special tokens")
        if ids_b is None:
            ids_a = ids_a[:max_length - n_special]  # (T_a',)
        else:
            keep_a, keep_b = truncate_longest_first(len(ids_a), len(ids_b), max_length - n_special)
            ids_a, ids_b = ids_a[:keep_a], ids_b[:keep_b]  # (T_a',), (T_b',)
    cls_, sep = ([cls_id], [sep_id]) if add_special_tokens else ([], [])
    input_ids = cls_ + ids_a + sep  # (T,)
    token_type_ids = [0] * len(input_ids)  # (T,)
    if ids_b is not None:
        input_ids = input_ids + ids_b + sep  # (T,)
        token_type_ids = token_type_ids + [1] * (len(ids_b) + len(sep))  # (T,)
    return Encoding(input_ids, token_type_ids, [1] * len(input_ids))


def pad(encoding: Encoding, length: int, pad_id: int) -> Encoding:
    """``encoding`` padded on the right to ``length``: ids ``pad_id``, token type 0, mask 0."""
    n = length - len(encoding.input_ids)
    return Encoding(encoding.input_ids + [pad_id] * n, encoding.token_type_ids + [0] * n,  # (length,) each
                    encoding.attention_mask + [0] * n)


_PADDING = {False: None, "do_not_pad": None, True: "longest", "longest": "longest", "max_length": "max_length"}


def padding_mode(padding) -> str | None:
    """None, "longest" or "max_length" from transformers' spellings (False, True, "longest", ...)."""
    if not isinstance(padding, (bool, str)) or padding not in _PADDING:
        raise ValueError(f"padding must be False, True, 'longest' or 'max_length', got {padding!r}")
    return _PADDING[padding]


def collate(encodings: list[Encoding], pad_id: int, padding, max_length: int | None = None,
            return_arrays: bool = True) -> dict:
    """Stack encodings into a batch dict ``{"input_ids", "token_type_ids", "attention_mask"}``.

    Args:
        padding: True / "longest" pads to the longest row, "max_length" to ``max_length``, False not at all.
        return_arrays: int64 arrays (B, T) on the active backend; False gives lists of lists.
    """
    mode = padding_mode(padding)
    if mode is not None:
        length = max(len(e.input_ids) for e in encodings) if mode == "longest" else max_length
        if length is None:
            raise ValueError("padding='max_length' needs max_length")
        encodings = [pad(e, length, pad_id) for e in encodings]
    out = {key: [list(getattr(e, key)) for e in encodings] for key in Encoding._fields}
    if not return_arrays:
        return out
    lengths = sorted({len(row) for row in out["input_ids"]})
    if len(lengths) > 1:
        raise ValueError(f"rows have different lengths {lengths}: pass padding=True, or return_arrays=False for lists")
    return {key: backend.asarray(rows, dtype="int64") for key, rows in out.items()}  # (B, T) each
