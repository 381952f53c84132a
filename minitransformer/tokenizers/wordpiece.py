"""WordPiece tokenizer, BERT-compatible: text -> word pieces -> ids, pairs, truncation, padding, decoding.

``BasicTokenizer`` (basic.py) splits text into words; ``wordpiece_split`` then
cuts each word greedily into the longest pieces found in ``vocab.txt``:
``"unaffable"`` -> ``un ##aff ##able`` (``##`` marks a piece that continues a
word). A word that cannot be spelt with the vocabulary, or longer than
``max_input_chars_per_word``, becomes a single ``[UNK]``.

Ids match transformers' ``BertTokenizer`` (in transformers 5 the
``tokenizers``-backed class, also named ``BertTokenizerFast``) exactly. Where
transformers' pure-Python ``BertTokenizerLegacy`` differs from it we follow
``BertTokenizer``: Greek final sigma is lower-cased per character (``Σ`` ->
``σ``, never ``ς``), cased vocabularies get no NFC pass, and pair truncation
breaks ties as ``truncate_longest_first`` describes.

Ref: Wu et al. 2016, Google's Neural Machine Translation System, Sec. 4.1;
Devlin et al. 2019, BERT, Sec. 3.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from .. import backend
from .basic import BasicTokenizer
from .encoding import Encoding, build_inputs, collate, pad, padding_mode
from .vocab_file import read_vocab, save_vocab, write_text_atomic

__all__ = ["SPECIAL_TOKENS", "WordPieceTokenizer", "wordpiece_split"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def wordpiece_split(word: str, vocab, unk_token: str = "[UNK]", max_input_chars_per_word: int = 100) -> list[str]:
    """Greedy longest-match-first split of one word into vocabulary pieces.

    Args:
        word: one word from ``BasicTokenizer`` (no spaces).
        vocab: anything supporting ``in`` (a dict or set of pieces).
        unk_token: returned alone when the word cannot be split.
        max_input_chars_per_word: longer words are ``[unk_token]`` at once.

    Returns:
        the pieces, every one after the first prefixed with ``##``.

    Math:
        start = 0
        while start < len(word):
            end = the largest end > start with piece = ("##" if start > 0 else "") + word[start:end] in vocab
            no such end -> the whole word is [UNK]
            pieces.append(piece); start = end
    """
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end, piece = len(word), None
        while end > start:
            candidate = ("##" if start > 0 else "") + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


class WordPieceTokenizer:
    """BERT's tokenizer: ``tokenizer(texts)`` gives ``input_ids``, ``token_type_ids``, ``attention_mask``.

    Args:
        vocab: the tokens; id = position. Must hold the five special tokens, no repeats.
        do_lower_case: lower-case (and strip accents) for "uncased" vocabularies.
        strip_accents: None = as ``do_lower_case``.
        tokenize_chinese_chars: each CJK ideograph is its own word.
        model_max_length: the longest encoding accepted without truncation (None: no limit).
        max_input_chars_per_word: longer words become ``[UNK]``.
    """

    pad_token, unk_token, cls_token, sep_token, mask_token = SPECIAL_TOKENS

    def __init__(self, vocab: Iterable[str], do_lower_case: bool = True, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True, model_max_length: int | None = 512,
                 max_input_chars_per_word: int = 100):
        self.vocab = list(vocab)  # id -> token
        if not self.vocab:
            raise ValueError("WordPieceTokenizer: the vocabulary is empty")
        self._ids: dict[str, int] = {}  # token -> id
        for i, token in enumerate(self.vocab):
            if not isinstance(token, str):
                raise TypeError(f"WordPieceTokenizer: vocabulary entry {i} must be a str, got {token!r}")
            if token in self._ids:
                raise ValueError(f"WordPieceTokenizer: duplicate token {token!r} at ids {self._ids[token]} and {i} "
                                 f"(vocab.txt lines {self._ids[token] + 1} and {i + 1})")
            self._ids[token] = i
        missing = [t for t in SPECIAL_TOKENS if t not in self._ids]
        if missing:
            raise ValueError(f"WordPieceTokenizer: the vocabulary lacks the special tokens {missing}")
        self.do_lower_case = bool(do_lower_case)
        self.model_max_length = model_max_length
        self.max_input_chars_per_word = int(max_input_chars_per_word)
        self.basic = BasicTokenizer(do_lower_case, strip_accents, tokenize_chinese_chars, never_split=SPECIAL_TOKENS)
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            self._ids[t] for t in SPECIAL_TOKENS)
        self.all_special_ids = frozenset(self._ids[t] for t in SPECIAL_TOKENS)

    @classmethod
    def from_file(cls, vocab_file, do_lower_case: bool = True, **kwargs) -> WordPieceTokenizer:
        """A tokenizer from a ``vocab.txt`` file."""
        return cls(read_vocab(vocab_file), do_lower_case=do_lower_case, **kwargs)

    @classmethod
    def from_pretrained(cls, folder, **kwargs) -> WordPieceTokenizer:
        """A tokenizer from a Hugging Face folder: ``vocab.txt`` plus, if present, ``tokenizer_config.json``.

        ``do_lower_case``, ``strip_accents``, ``tokenize_chinese_chars`` and
        ``model_max_length`` are read from the config; keyword arguments override it.
        """
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"tokenizer folder not found: {folder!r}")
        vocab_file = os.path.join(folder, "vocab.txt")
        if not os.path.isfile(vocab_file):
            raise FileNotFoundError(f"no vocab.txt in {folder!r}: a WordPiece tokenizer needs its vocabulary file")
        options = {}
        config_file = os.path.join(folder, "tokenizer_config.json")
        if os.path.isfile(config_file):
            try:
                with open(config_file, encoding="utf-8") as f:
                    config = json.load(f)
            except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, nesting too deep
                raise ValueError(f"{config_file!r} is not UTF-8 JSON ({type(e).__name__}: {e})") from None
            if not isinstance(config, dict):
                raise ValueError(f"{config_file!r} holds a JSON {type(config).__name__}, not an object")
            for key in ("do_lower_case", "strip_accents", "tokenize_chinese_chars"):
                if config.get(key) is not None:
                    options[key] = config[key]
            if isinstance(config.get("model_max_length"), int) and config["model_max_length"] <= 10**6:
                options["model_max_length"] = config["model_max_length"]  # HF writes 1e30 for "no limit"
        options.update(kwargs)
        return cls(read_vocab(vocab_file), **options)

    def save_pretrained(self, folder) -> str:
        """Write ``vocab.txt`` and ``tokenizer_config.json`` (readable by transformers' BertTokenizer)."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        save_vocab(self.vocab, os.path.join(folder, "vocab.txt"))
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.do_lower_case,
                  "strip_accents": self.basic.strip_accents,
                  "tokenize_chinese_chars": self.basic.tokenize_chinese_chars,
                  "unk_token": self.unk_token, "sep_token": self.sep_token, "pad_token": self.pad_token,
                  "cls_token": self.cls_token, "mask_token": self.mask_token}
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        write_text_atomic(os.path.join(folder, "tokenizer_config.json"), json.dumps(config, indent=2) + "\n")
        return folder

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        """A copy of the token -> id map."""
        return dict(self._ids)

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text`` (no ``[CLS]``/``[SEP]`` added)."""
        pieces: list[str] = []
        for word in self.basic.tokenize(text):
            if word in SPECIAL_TOKENS:
                pieces.append(word)
            else:
                pieces.extend(wordpiece_split(word, self._ids, self.unk_token, self.max_input_chars_per_word))
        return pieces

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens get ``unk_token_id``."""
        return [self._ids.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids) -> list[str]:
        """Tokens of ``ids`` (a list or 1-D array); an id outside ``[0, vocab_size)`` raises ValueError."""
        ids = self._id_list(ids)
        return [self.vocab[i] for i in ids]

    def encode(self, text: str, text_pair: str | None = None, max_length: int | None = None, truncation: bool = False,
               padding=False, add_special_tokens: bool = True) -> Encoding:
        """Encode one text or a pair: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``.

        Args:
            text, text_pair: the texts (str; ``text_pair`` optional).
            max_length: the limit, special tokens included (None: ``model_max_length``).
                A longer input raises ValueError unless ``truncation=True``.
            truncation: cut to ``max_length`` (pairs: longest first, see ``truncate_longest_first``).
            padding: False, True / "longest" (nothing to do for one text), or "max_length".
            add_special_tokens: add ``[CLS]`` and ``[SEP]``.

        Returns:
            Encoding(input_ids (T,), token_type_ids (T,), attention_mask (T,)) as lists of ints.
        """
        for name, value in (("text", text), ("text_pair", text_pair)):
            if not isinstance(value, str) and not (name == "text_pair" and value is None):
                raise TypeError(f"encode: {name} must be a str, got {type(value).__name__}")
        mode = padding_mode(padding)
        limit = self._limit(max_length, truncation or mode == "max_length")
        ids_a = self.convert_tokens_to_ids(self.tokenize(text))  # (T_a,)
        ids_b = None if text_pair is None else self.convert_tokens_to_ids(self.tokenize(text_pair))  # (T_b,)
        encoding = build_inputs(ids_a, ids_b, self.cls_token_id, self.sep_token_id, limit, truncation,
                                add_special_tokens)
        return pad(encoding, limit, self.pad_token_id) if mode == "max_length" else encoding

    def __call__(self, texts, pairs=None, padding=True, truncation=True, max_length: int | None = None,
                 return_arrays: bool = True) -> dict:
        """Encode a batch, like transformers' ``tokenizer(texts, padding=True, truncation=True)``.

        Args:
            texts: a list of str (a single str is a batch of one).
            pairs: None, or one second text per text.
            padding: True / "longest" (to the longest row), "max_length", or False.
            truncation: cut each row to ``max_length``; when False a longer row raises ValueError.
            max_length: None means ``model_max_length`` (512 for BERT).
            return_arrays: int64 arrays on the active backend; False gives lists of lists.

        Returns:
            {"input_ids": (B, T), "token_type_ids": (B, T), "attention_mask": (B, T)}.
        """
        if isinstance(texts, str):
            texts, pairs = [texts], (None if pairs is None else [pairs])
        texts = list(texts)
        if not texts:
            raise ValueError("tokenizer: got an empty batch of texts")
        pairs = [None] * len(texts) if pairs is None else list(pairs)
        if len(pairs) != len(texts):
            raise ValueError(f"tokenizer: {len(texts)} texts but {len(pairs)} pairs")
        mode = padding_mode(padding)
        limit = self._limit(max_length, truncation or mode == "max_length")
        encodings = [self.encode(t, p, limit, truncation) for t, p in zip(texts, pairs, strict=True)]
        return collate(encodings, self.pad_token_id, padding, limit, return_arrays)

    def decode(self, ids, skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool = False) -> str:
        """Text of ``ids``: pieces joined with spaces, ``##`` pieces glued to the one before.

        Like transformers' ``BertTokenizer``: the space before ``. ? ! ,`` is
        always dropped (its WordPiece decoder's cleanup); with
        ``clean_up_tokenization_spaces=True`` also ``" ' "`` -> ``'`` and the
        space before ``n't 'm 's 've 're``. Lower-casing, accents and exact
        spacing are lost, so ``decode(encode(text))`` is a normalised text.
        With ``skip_special_tokens`` all five special tokens ([UNK] too) are dropped.
        """
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in SPECIAL_TOKENS]
        parts = []
        for i, token in enumerate(tokens):
            if i > 0:
                token = token[2:] if token.startswith("##") else " " + token
            parts.append(_clean_up(token))
        text = "".join(parts)
        return _clean_up(text) if clean_up_tokenization_spaces else text

    def batch_decode(self, rows, **kwargs) -> list[str]:
        """``decode`` of each row of a (B, T) array or list of lists."""
        if backend.is_array(rows):
            rows = backend.to_numpy(rows).tolist()
        return [self.decode(row, **kwargs) for row in rows]

    def _id_list(self, ids) -> list[int]:
        """``ids`` as a list of Python ints, checked against the vocabulary size."""
        if backend.is_array(ids):
            if ids.ndim != 1:
                raise ValueError(f"expected a 1-D sequence of ids, got shape {tuple(ids.shape)}; use batch_decode")
            ids = backend.to_numpy(ids).tolist()
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(self.vocab)]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are outside the vocabulary [0, {len(self.vocab)})")
        return ids

    def _limit(self, max_length, needed: bool) -> int | None:
        limit = self.model_max_length if max_length is None else max_length
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"max_length must be a positive int, got {limit!r}")
        if limit is None and needed:
            raise ValueError("truncation or padding='max_length' needs max_length (this tokenizer has no "
                             "model_max_length)")
        return limit


def _clean_up(text: str) -> str:
    """transformers' clean-up of tokenization spaces (" ." -> ".", " n't" -> "n't", ...)."""
    for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(old, new)
    return text
