"""``load_tokenizer(folder)``: whichever of our language-model tokenizers a folder holds."""

from __future__ import annotations

import os

from .bpe import MERGES_FILE, VOCAB_FILE, ByteLevelBPETokenizer
from .char import CHAR_FILE, CharTokenizer

__all__ = ["load_tokenizer"]


def load_tokenizer(folder) -> ByteLevelBPETokenizer | CharTokenizer:
    """The tokenizer saved in ``folder``: ``char_tokenizer.json`` -> CharTokenizer,
    ``vocab.json`` + ``merges.txt`` -> ByteLevelBPETokenizer (a Hugging Face GPT-2 folder too)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"tokenizer folder not found: {folder!r}")
    if os.path.isfile(os.path.join(folder, CHAR_FILE)):
        return CharTokenizer.from_folder(folder)
    if os.path.isfile(os.path.join(folder, VOCAB_FILE)) or os.path.isfile(os.path.join(folder, MERGES_FILE)):
        return ByteLevelBPETokenizer.from_folder(folder)
    raise FileNotFoundError(f"{folder!r} holds no tokenizer: expected {CHAR_FILE} (CharTokenizer) or "
                            f"{VOCAB_FILE} + {MERGES_FILE} (ByteLevelBPETokenizer)")
