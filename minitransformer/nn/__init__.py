"""Layers: one concept per file, each a pure forward/backward pair plus a thin Module."""

from .activations import GELU, ReLU, gelu_backward, gelu_forward, get_activation, relu_backward, relu_forward
from .attention import (
    build_attention_mask,
    causal_mask,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from .decoder import Decoder, DecoderLayer
from .dropout import Dropout, dropout_backward, dropout_forward
from .embedding import Embedding, embedding_backward, embedding_forward
from .encoder import Encoder, EncoderLayer
from .feedforward import FeedForward
from .grad_mode import is_grad_enabled, no_grad
from .layernorm import LayerNorm, layernorm_backward, layernorm_forward
from .linear import Linear, linear_backward, linear_forward
from .losses import CrossEntropyLoss, cross_entropy_backward, cross_entropy_forward
from .module import Module, ModuleList, Parameter
from .multihead import MultiHeadAttention, multi_head_attention_backward, multi_head_attention_forward
from .positional import (
    LearnedPositionalEmbedding,
    PositionalEncoding,
    add_positions_backward,
    add_positions_forward,
    sinusoidal_table,
)
from .softmax import log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward

__all__ = [
    "GELU", "CrossEntropyLoss", "Decoder", "DecoderLayer", "Dropout", "Embedding", "Encoder", "EncoderLayer",
    "FeedForward", "LayerNorm", "LearnedPositionalEmbedding", "Linear", "Module", "ModuleList",
    "MultiHeadAttention", "Parameter", "PositionalEncoding", "ReLU",
    "add_positions_backward", "add_positions_forward", "build_attention_mask", "causal_mask",
    "cross_entropy_backward", "cross_entropy_forward", "dropout_backward", "dropout_forward",
    "embedding_backward", "embedding_forward", "gelu_backward", "gelu_forward", "get_activation",
    "layernorm_backward", "layernorm_forward", "linear_backward", "linear_forward",
    "log_softmax_backward", "log_softmax_forward", "multi_head_attention_backward",
    "is_grad_enabled", "multi_head_attention_forward", "no_grad",
    "relu_backward", "relu_forward", "scaled_dot_product_attention_backward",
    "scaled_dot_product_attention_forward", "sinusoidal_table", "softmax_backward", "softmax_forward",
]
