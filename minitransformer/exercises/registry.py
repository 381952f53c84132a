"""The exercise set: what each exercise asks for, in course order, with time, dependencies and checks.

An exercise is one concept. Its code is marked in the library source by
``# BEGIN SOLUTION <id>: <hint>`` / ``# END SOLUTION`` comment lines (see
``regions.py``); ``minitransformer exercises make`` replaces the marked lines
by a ``raise NotImplementedError("Exercise <id>: <hint>")`` in the student
copy, and ``minitransformer exercises check`` grades it (see ``check.py``).

The order is the course's: the notebooks' order, each exercise using only
what came before it (``needs``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["EXERCISES", "Exercise", "exercise_ids", "get", "needs_closure", "select"]


@dataclass(frozen=True)
class Exercise:
    """One exercise.

    Attributes:
        id: the name used in the markers and on the command line (``--only``).
        title: one line for the guide and the score table.
        minutes: expected time for a student who has read the notebook.
        writes: the functions the student writes (``file.py: function``).
        needs: exercises whose code this one calls (finish those first).
        gradchecks: the gradient-check cases of ``minitransformer gradcheck`` that cover it.
        notebook: the notebook that teaches it.
    """

    id: str
    title: str
    minutes: int
    writes: tuple[str, ...]
    needs: tuple[str, ...]
    gradchecks: tuple[str, ...]
    notebook: str


EXERCISES: tuple[Exercise, ...] = (
    Exercise("linear", "Linear layer backward: dx, dW, db", 20,
             ("linear.py: linear_backward",), (), ("linear", "Linear"), "02_linear_backprop.ipynb"),
    Exercise("relu", "ReLU backward", 10,
             ("activations.py: relu_backward",), (), ("relu", "ReLU"), "02_linear_backprop.ipynb"),
    Exercise("gelu", "GELU backward, exact and tanh forms (product and chain rule)", 25,
             ("activations.py: gelu_backward",), (), ("gelu", "GELU"), "09_encoder_decoder_blocks.ipynb"),
    Exercise("softmax", "Stable masked softmax forward and its backward without the Jacobian", 30,
             ("softmax.py: softmax_forward", "softmax.py: softmax_backward"), (), ("softmax",),
             "03_softmax_cross_entropy.ipynb"),
    Exercise("cross_entropy", "Log-softmax backward and the fused cross-entropy backward (ignore_index, smoothing)",
             35, ("softmax.py: log_softmax_backward", "losses.py: cross_entropy_backward"), (),
             ("log_softmax", "cross_entropy", "CrossEntropyLoss"), "03_softmax_cross_entropy.ipynb"),
    Exercise("embedding", "Embedding backward: scatter-add of repeated ids", 15,
             ("embedding.py: embedding_backward",), (), ("embedding", "Embedding"),
             "08_positional_encoding.ipynb"),
    Exercise("dropout", "Inverted dropout forward and backward", 15,
             ("dropout.py: dropout_forward", "dropout.py: dropout_backward"), (), ("dropout", "Dropout"),
             "09_encoder_decoder_blocks.ipynb"),
    Exercise("attention", "Scaled dot-product attention: the scores, and the whole backward", 45,
             ("attention.py: scaled_dot_product_attention_forward",
              "attention.py: scaled_dot_product_attention_backward"), ("softmax",),
             ("scaled_dot_product_attention",), "04_self_attention.ipynb"),
    Exercise("multihead", "Multi-head attention: split/merge heads and the backward through all of it", 40,
             ("multihead.py: split_heads", "multihead.py: merge_heads", "multihead.py: multi_head_attention_backward"),
             ("linear", "attention"), ("multi_head_attention", "MultiHeadAttention"),
             "05_multi_head_attention.ipynb"),
    Exercise("layernorm", "LayerNorm forward and backward (the mean and variance terms)", 45,
             ("layernorm.py: layernorm_forward", "layernorm.py: layernorm_backward"), (),
             ("layernorm", "LayerNorm"), "07_layernorm_residual.ipynb"),
    Exercise("feedforward", "Feed-forward block backward: chaining the children's backward", 15,
             ("feedforward.py: FeedForward.backward",), ("linear", "relu", "gelu", "dropout"), ("FeedForward",),
             "09_encoder_decoder_blocks.ipynb"),
)

_BY_ID = {e.id: e for e in EXERCISES}


def exercise_ids() -> list[str]:
    """The exercise ids in course order."""
    return [e.id for e in EXERCISES]


def get(exercise_id: str) -> Exercise:
    """The exercise called ``exercise_id`` (ValueError listing the valid ids otherwise)."""
    return select([exercise_id])[0]


def select(only=None) -> list[Exercise]:
    """The exercises named in ``only`` (all when None), in course order.

    Raises:
        ValueError: for an empty selection or an unknown name, listing the valid ids
            (with a "did you mean" for a near miss).
    """
    if only is None:
        return list(EXERCISES)
    names = [n.strip() for n in only if n and n.strip()]
    if not names:
        raise ValueError(f"no exercise named; valid exercises: {', '.join(exercise_ids())}")
    unknown = [n for n in names if n not in _BY_ID]
    if unknown:
        parts = []
        for n in unknown:
            close = difflib.get_close_matches(n.lower(), exercise_ids(), n=2, cutoff=0.6)
            parts.append(f"{n!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
        raise ValueError(f"unknown exercise {', '.join(parts)}; valid exercises: {', '.join(exercise_ids())}")
    wanted = set(names)
    return [e for e in EXERCISES if e.id in wanted]


def needs_closure(exercise_id: str) -> list[str]:
    """Every exercise that ``exercise_id`` depends on, directly or not, in course order."""
    seen: set[str] = set()
    todo = list(_BY_ID[exercise_id].needs)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(_BY_ID[n].needs)
    return [e for e in exercise_ids() if e in seen]
