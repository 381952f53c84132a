"""One optimisation step of every fine-tuning head: against transformers + torch.optim, and against finite differences.

The batch is a real fine-tuning batch (``finetune._features`` + ``_collate`` on the project's data sets,
with padding), the model a small random BERT (2 layers, 4 heads). transformers' gradients per head are
already compared in tests/test_bert.py; here the whole step is: forward with labels, backward, Adam or
AdamW (decoupled decay on matrices only, as ``finetune``), and every parameter after the step.
"""

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.data.finetune_sets import load_ner, load_qa, load_sentiment
from minitransformer.finetune import TASKS, _collate, _features, _labels
from minitransformer.models import BertConfig
from minitransformer.optim import Adam, AdamW, decay_groups
from minitransformer.pretrained import hf_to_ours, name_map
from tests.conftest import require
from tests.test_finetune import tiny_tokenizer

LR = 1e-3
DATA = {"sentiment": lambda: load_sentiment("train", blind=False)[::150],  # 4 sentences, both labels
        "ner": lambda: load_ner("train")[:3],
        "qa": lambda: load_qa("train")[:12:4]}


def _tokenizer():
    """Whole words for most of the batch (short sequences), characters for the rest (several pieces per word)."""
    texts = [ex["context"] + " " + ex["question"] for ex in load_qa("train")[:12:4]]
    words = {w.strip(".,?'").lower() for text in texts for w in text.split()}
    return tiny_tokenizer(sorted(words - {"born", "company"}) + ["the", "was", "in", "and", "of"])


def _batch(task, tok):
    items = _features(TASKS[task], tok, DATA[task](), 128, _labels(TASKS[task]))
    inputs, targets, _ = _collate(TASKS[task], items, tok.pad_token_id)
    assert int(backend.to_numpy(inputs["attention_mask"]).min()) == 0  # the batch has padding
    return inputs, targets


def _sizes(task, tok, dropout=0.0):
    n = 2 if task == "qa" else len(_labels(TASKS[task]))  # transformers sizes qa_outputs by num_labels
    return dict(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=32, max_position_embeddings=160, hidden_dropout_prob=dropout,
                attention_probs_dropout_prob=dropout, num_labels=n)


def _optimizers(torch, kind, ours, hf):
    if kind == "adam":  # the course text's optimizer
        return Adam(ours.parameters(), lr=LR), torch.optim.Adam(hf.parameters(), lr=LR)
    decay = [p for p in hf.parameters() if p.ndim >= 2]
    rest = [p for p in hf.parameters() if p.ndim < 2]
    return (AdamW(decay_groups(ours, 0.01), lr=LR),
            torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=LR))


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["adam", "adamw"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("task", list(TASKS))
def test_one_step_matches_transformers(task, dtype, kind):
    torch, transformers = require("torch"), require("transformers")
    torch.manual_seed(0)
    tok = _tokenizer()
    inputs, targets = _batch(task, tok)
    sizes = _sizes(task, tok)
    hf_config = transformers.BertConfig(**sizes, pad_token_id=0)
    hf_config._attn_implementation = "eager"
    hf = getattr(transformers, TASKS[task].head.__name__)(hf_config)
    hf = (hf.double() if dtype == "float64" else hf.float()).train()
    rng = np.random.default_rng(5)
    with torch.no_grad():
        for name, t in hf.named_parameters():  # random, not BERT's init: zero biases and unit gammas hide bugs
            t.copy_(torch.from_numpy(0.2 * rng.standard_normal(tuple(t.shape)) + (1.0 if "LayerNorm.weight" in name
                                                                                  else 0.0)))
    ours = TASKS[task].head(BertConfig(**sizes), dtype=dtype).train()
    ours.load_state_dict(hf_to_ours({k: v.detach().numpy() for k, v in hf.state_dict().items()}, ours))
    hf_params = dict(hf.named_parameters(remove_duplicate=False))
    pairs = {our: (hf_params[h], transpose) for h, our, transpose in name_map(ours)}
    before = {k: backend.to_numpy(p.data).copy() for k, p in ours.named_parameters()}

    opt, hf_opt = _optimizers(torch, kind, ours, hf)
    as_torch = {k: torch.from_numpy(backend.to_numpy(v)) for k, v in {**inputs, **targets}.items()}
    out, ref = ours(**inputs, **targets), hf(**as_torch)
    tol = 1e-10 if dtype == "float64" else 1e-5
    assert abs(float(out.loss) - ref.loss.item()) <= tol * max(1.0, abs(ref.loss.item()))
    opt.zero_grad()
    ours.backward()
    opt.step()
    hf_opt.zero_grad()
    ref.loss.backward()
    hf_opt.step()

    # The update of every parameter agrees, entry by entry: within 1e-8 * lr in float64. In float32, entries whose
    # gradient is below 1e-6 are only checked to move by at most lr: Adam's step is g / (|g| + eps) with eps = 1e-8,
    # so a gradient that is exactly 0 in exact arithmetic, and only float32 rounding noise on each side, becomes
    # an update of either sign. Such gradients exist: the attention key bias b_k (tests/parity/helpers.py) and, for
    # QA, qa_outputs.b and the last LayerNorm's beta (a shift of every position's logit leaves the softmax over
    # positions unchanged).
    bound = 1e-8 * LR if dtype == "float64" else 2e-3 * LR
    for name, p in ours.named_parameters():
        t, transpose = pairs[name]
        theirs = t.detach().numpy().T if transpose else t.detach().numpy()
        grad = t.grad.numpy().T if transpose else t.grad.numpy()
        step_ours, step_theirs = backend.to_numpy(p.data) - before[name], theirs - before[name]
        solid = np.abs(grad) > (0.0 if dtype == "float64" else 1e-6)
        assert np.abs(step_ours[~solid]).max(initial=0.0) <= 1.0001 * LR
        worst = float(np.abs(step_ours - step_theirs)[solid].max(initial=0.0))
        assert worst <= bound, f"{name}: update differs by {worst:.3g} (bound {bound:.3g})"
        assert str(p.data.dtype) == dtype
    moved = sum(float(np.abs(backend.to_numpy(p.data) - before[k]).max()) > 0.5 * LR
                for k, p in ours.named_parameters())
    assert moved >= len(before) - 8  # the step really moved (almost) everything; a few rows/biases may have g = 0
    out2, ref2 = ours(**inputs, **targets), hf(**as_torch)  # and the loss after the step agrees
    assert abs(float(out2.loss) - ref2.loss.item()) <= tol * max(1.0, abs(ref2.loss.item()))
    assert float(out2.loss) < float(out.loss)


def _loss(model, inputs, targets):
    backend.manual_seed(7)  # the same dropout masks at every evaluation
    loss = float(model(**inputs, **targets).loss)
    model.clear_cache()
    return loss


def _move(model, direction, scale):
    for name, p in model.named_parameters():
        p.data += scale * direction[name]


@pytest.mark.parametrize("task", list(TASKS))
def test_one_step_against_finite_differences(task):
    """float64, dropout 0.1 (masks replayed): the loss change along the Adam step and along a random direction
    equals the gradient's prediction, centred differences, relative error < 1e-6.

    The random direction leaves the [PAD] row of the word embeddings alone: padded positions still feed the QA
    loss's softmax, but the lookup gives that row no gradient, as torch's padding_idx (tests/test_bert.py).
    """
    tok = _tokenizer()
    inputs, targets = _batch(task, tok)
    backend.manual_seed(0)
    model = TASKS[task].head(BertConfig(**_sizes(task, tok, dropout=0.1)), dtype="float64").train()
    rng = np.random.default_rng(3)
    for name, p in model.named_parameters():
        p.data[...] = backend.asarray(0.3 * rng.standard_normal(p.shape) + (1.0 if name.endswith("gamma") else 0.0),
                                      dtype="float64")
    before = {k: p.data.copy() for k, p in model.named_parameters()}
    _loss(model, inputs, targets)
    backend.manual_seed(7)
    model(**inputs, **targets)
    model.zero_grad()
    model.backward()
    grads = {k: p.grad.copy() for k, p in model.named_parameters()}
    opt = Adam(model.parameters(), lr=LR)
    opt.step()
    step = {k: p.data - before[k] for k, p in model.named_parameters()}
    for k, p in model.named_parameters():
        p.data[...] = before[k]
    random_dir = {k: backend.asarray(rng.standard_normal(p.shape), dtype="float64")
                  for k, p in model.named_parameters()}
    random_dir["bert.embeddings.word_embeddings.W"][tok.pad_token_id] = 0.0
    for direction in (step, random_dir):
        norm = float(np.sqrt(sum(float((backend.to_numpy(d) ** 2).sum()) for d in direction.values())))
        unit = {k: d / norm for k, d in direction.items()}
        predicted = sum(float((backend.to_numpy(grads[k]) * backend.to_numpy(unit[k])).sum()) for k in unit)
        eps = 1e-5
        _move(model, unit, eps)
        plus = _loss(model, inputs, targets)
        _move(model, unit, -2 * eps)
        minus = _loss(model, inputs, targets)
        _move(model, unit, eps)
        numeric = (plus - minus) / (2 * eps)
        assert abs(numeric - predicted) <= 1e-6 * max(1e-8, abs(numeric) + abs(predicted)), (numeric, predicted)
    assert sum(float((backend.to_numpy(grads[k]) * backend.to_numpy(step[k])).sum()) for k in step) < 0  # downhill
