"""Tokenizers: text to token ids and back.

- ``WordPieceTokenizer`` (wordpiece.py): BERT's tokenizer, the same ids as
  transformers' ``BertTokenizer``; ``from_pretrained(folder)`` reads ``vocab.txt``.
- ``BasicTokenizer`` (basic.py): BERT's cleaning, lower-casing, accent stripping,
  CJK and punctuation splitting, before WordPiece.
- ``train_wordpiece`` (wordpiece_trainer.py): learns a WordPiece vocabulary from a corpus.
- ``ByteLevelBPETokenizer`` (bpe.py): GPT-2's byte-level BPE, the same ids as transformers'
  ``GPT2Tokenizer``; ``train`` (bpe_trainer.py) learns merges; byte_level.py holds GPT-2's byte
  table and pre-tokenizing regex.
- ``CharTokenizer`` (char.py): one id per character; ``load_tokenizer(folder)`` (auto.py) loads either.
- encoding.py: special tokens, token types, truncation and padding of id lists;
  vocab_file.py: reading and (atomically) writing ``vocab.txt``.
"""

from .auto import load_tokenizer
from .basic import BasicTokenizer
from .bpe import EOS_TOKEN, ByteLevelBPETokenizer
from .char import CharTokenizer
from .encoding import Encoding, truncate_longest_first
from .vocab_file import read_vocab, save_vocab
from .wordpiece import SPECIAL_TOKENS, WordPieceTokenizer, wordpiece_split
from .wordpiece_trainer import train_wordpiece

__all__ = [
    "EOS_TOKEN",
    "SPECIAL_TOKENS",
    "BasicTokenizer",
    "ByteLevelBPETokenizer",
    "CharTokenizer",
    "Encoding",
    "WordPieceTokenizer",
    "load_tokenizer",
    "read_vocab",
    "save_vocab",
    "train_wordpiece",
    "truncate_longest_first",
    "wordpiece_split",
]
