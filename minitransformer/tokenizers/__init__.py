"""Tokenizers: text to token ids and back.

- ``WordPieceTokenizer`` (wordpiece.py): BERT's tokenizer, the same ids as
  transformers' ``BertTokenizer``; ``from_pretrained(folder)`` reads ``vocab.txt``.
- ``BasicTokenizer`` (basic.py): BERT's cleaning, lower-casing, accent stripping,
  CJK and punctuation splitting, before WordPiece.
- ``train_wordpiece`` (wordpiece_trainer.py): learns a WordPiece vocabulary from a corpus.
- encoding.py: special tokens, token types, truncation and padding of id lists;
  vocab_file.py: reading and (atomically) writing ``vocab.txt``.
"""

from .basic import BasicTokenizer
from .encoding import Encoding, truncate_longest_first
from .vocab_file import read_vocab, save_vocab
from .wordpiece import SPECIAL_TOKENS, WordPieceTokenizer, wordpiece_split
from .wordpiece_trainer import train_wordpiece

__all__ = [
    "SPECIAL_TOKENS",
    "BasicTokenizer",
    "Encoding",
    "WordPieceTokenizer",
    "read_vocab",
    "save_vocab",
    "train_wordpiece",
    "truncate_longest_first",
    "wordpiece_split",
]
