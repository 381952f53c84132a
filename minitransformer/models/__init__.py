"""Whole models built from the layers in ``minitransformer.nn``."""

from .bert import BertConfig, BertEmbeddings, BertModel, BertModelOutput, BertPooler
from .bert_heads import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    best_span,
)
from .gpt import GPT, GPTConfig
from .transformer import Transformer, TransformerConfig

__all__ = [
    "BertConfig",
    "BertEmbeddings",
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertModelOutput",
    "BertPooler",
    "GPT",
    "GPTConfig",
    "Transformer",
    "TransformerConfig",
    "best_span",
]
