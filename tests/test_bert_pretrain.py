"""BERT pre-training (bert_pretrain.py): the masked-positions objective, padding invariance, evaluation, a run."""

import warnings

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.bert_pretrain import (
    SIZES,
    PretrainingObjective,
    budget_schedule,
    eval_batches,
    evaluate,
    pretrain,
    split_documents,
)
from minitransformer.data.pretraining import (
    IGNORE_INDEX,
    PretrainingBatch,
    SpecialIds,
    make_pretraining_batch,
    sample_nsp_pairs,
)
from minitransformer.gradcheck import check_module
from minitransformer.models import BertConfig, BertForPreTraining, BertForSequenceClassification
from minitransformer.nn.module import Module
from minitransformer.tokenizers import WordPieceTokenizer
from tests.conftest import assert_close

V = 30
IDS = SpecialIds(pad=0, cls=2, sep=3, mask=4, vocab_size=V, special=(0, 1, 2, 3, 4))


def _config(**overrides):
    return BertConfig(**{**dict(vocab_size=V, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=16, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0), **overrides})


def _randomize(model, rng):
    """Every parameter redrawn (zero biases and unit gamma hide bugs)."""
    for name, p in model.named_parameters():
        v = 0.5 * rng.standard_normal(p.shape)
        p.data[...] = backend.asarray(1.0 + v if name.endswith("gamma") else v, dtype=p.dtype)
    return model


def _docs(n_docs=12, seed=0):
    """Tokenized documents: sentences of ids in [5, V)."""
    r = backend.host_rng(seed)
    return [[r.integers(5, V, int(r.integers(2, 7))).tolist() for _ in range(int(r.integers(2, 5)))]
            for _ in range(n_docs)]


def _batch(B=4, seed=0, mlm_probability=0.3):
    pairs = sample_nsp_pairs(_docs(), B, backend.host_rng(seed))
    batch = make_pretraining_batch(pairs, IDS, max_len=16, rng=backend.host_rng(seed + 1),
                                   mlm_probability=mlm_probability)
    assert batch.n_masked > 0 and int(backend.to_numpy(batch.attention_mask).min()) == 0  # padding present
    return batch


def _pad_batch(batch: PretrainingBatch, extra: int) -> PretrainingBatch:
    """The same batch with ``extra`` more padding columns: [PAD] ids, token type 0, mask 0, label -100."""
    def widen(a, value):
        a = backend.to_numpy(a)
        return backend.asarray(np.concatenate([a, np.full((a.shape[0], extra), value, dtype=a.dtype)], axis=1))

    return batch._replace(input_ids=widen(batch.input_ids, IDS.pad), token_type_ids=widen(batch.token_type_ids, 0),
                          attention_mask=widen(batch.attention_mask, 0), labels=widen(batch.labels, IGNORE_INDEX))


def _model_loss_and_grads(model, batch, labels=None, attention_mask=True):
    """BertForPreTraining's own loss (every position scored, -100 ignored) and every parameter's gradient."""
    model.zero_grad()
    out = model(batch.input_ids, batch.attention_mask if attention_mask else None, batch.token_type_ids,
                labels=batch.labels if labels is None else labels, next_sentence_label=batch.next_sentence_label)
    model.backward()
    return float(out.loss), {k: backend.to_numpy(p.grad).copy() for k, p in model.named_parameters()}


def _objective_loss_and_grads(model, batch):
    objective = PretrainingObjective(model)
    model.zero_grad()
    loss = float(objective(batch))
    objective.backward()
    return loss, {k: backend.to_numpy(p.grad).copy() for k, p in model.named_parameters()}


# -- the objective equals the model's loss -------------------------------------------------------------------


def test_objective_equals_the_models_full_loss_and_gradients(rng):
    model = _randomize(BertForPreTraining(_config()).to(dtype="float64"), rng)
    batch = _batch()
    loss, grads = _model_loss_and_grads(model, batch)
    loss2, grads2 = _objective_loss_and_grads(model, batch)
    assert abs(loss - loss2) <= 1e-12 * abs(loss)
    assert grads.keys() == grads2.keys()
    for k in grads:
        assert_close(grads2[k], grads[k], rtol=1e-10, atol=1e-13, err_msg=k)
    assert np.abs(grads["bert.embeddings.word_embeddings.W"]).max() > 0  # tied decoder + lookup


class _Objective(Module):
    """PretrainingObjective with the batch arrays as module inputs, for check_module."""

    def __init__(self, model, batch, nsp_weight=1.0):
        super().__init__()
        self.objective, self.batch = PretrainingObjective(model, nsp_weight), batch

    def forward(self, input_ids):
        return self.objective(self.batch._replace(input_ids=input_ids))

    def backward(self, dloss):
        self.objective.backward(float(dloss))


def test_objective_gradcheck_every_parameter_with_dropout(rng):
    model = BertForPreTraining(_config(pad_token_id=None, num_hidden_layers=1, hidden_dropout_prob=0.1,
                                       attention_probs_dropout_prob=0.1))
    model = _randomize(model.to(dtype="float64"), rng)
    batch = _batch(B=3)
    r = check_module(_Objective(model, batch), (batch.input_ids,), wrt=())
    assert r.passed, r
    assert len(r.errors) == len(model.parameters())


def test_objective_nsp_weight_scales_only_the_next_sentence_part(rng):
    model = _randomize(BertForPreTraining(_config(num_hidden_layers=1)).to(dtype="float64"), rng)
    batch = _batch(B=3)
    grads = {}
    for w in (0.0, 1.0, 2.5):
        objective = PretrainingObjective(model, nsp_weight=w)
        model.zero_grad()
        loss = float(objective(batch))
        objective.backward()
        assert abs(loss - (float(objective.mlm_loss) + w * float(objective.nsp_loss))) <= 1e-12 * abs(loss)
        grads[w] = {k: backend.to_numpy(p.grad).copy() for k, p in model.named_parameters()}
    for k in grads[1.0]:  # the gradient is linear in the weight: g(2.5) = g(0) + 2.5 (g(1) - g(0))
        assert_close(grads[2.5][k], grads[0.0][k] + 2.5 * (grads[1.0][k] - grads[0.0][k]), rtol=1e-9, atol=1e-12,
                     err_msg=k)
    nsp_only = grads[1.0]["cls.seq_relationship.W"] - grads[0.0]["cls.seq_relationship.W"]
    assert np.abs(nsp_only).max() > 0 and np.abs(grads[0.0]["cls.seq_relationship.W"]).max() == 0.0
    r = check_module(_Objective(model, batch, nsp_weight=2.5), (batch.input_ids,), wrt=())
    assert r.passed, r
    for bad in (-1.0, "2", True, float("nan")):
        with pytest.raises(ValueError, match="nsp_weight"):
            PretrainingObjective(model, nsp_weight=bad)


def test_objective_without_masked_tokens_is_the_nsp_loss(rng):
    model = _randomize(BertForPreTraining(_config()).to(dtype="float64"), rng)
    batch = _batch()
    batch = batch._replace(labels=backend.asarray(np.full(batch.labels.shape, IGNORE_INDEX)), n_masked=0)
    objective = PretrainingObjective(model)
    loss = objective(batch)
    objective.backward()
    assert float(objective.mlm_loss) == 0.0 and float(loss) == float(objective.nsp_loss) > 0.0
    assert np.abs(backend.to_numpy(model.cls.predictions.bias.grad)).max() == 0.0


def test_objective_bad_model_and_backward_before_forward():
    with pytest.raises(TypeError, match="needs a BertForPreTraining"):
        PretrainingObjective(BertForSequenceClassification(_config()))
    with pytest.raises(RuntimeError):
        PretrainingObjective(BertForPreTraining(_config())).backward()


# -- padding contributes nothing ------------------------------------------------------------------------------


def test_extra_padding_changes_neither_loss_nor_any_gradient(rng):
    """Loss and every gradient are the same with 9 more padding columns (a known textbook bug otherwise)."""
    model = _randomize(BertForPreTraining(_config()).to(dtype="float64"), rng)
    batch = _batch()
    padded = _pad_batch(batch, 9)
    assert padded.input_ids.shape[1] == batch.input_ids.shape[1] + 9
    for fn in (_model_loss_and_grads, _objective_loss_and_grads):
        loss, grads = fn(model, batch)
        loss_p, grads_p = fn(model, padded)
        assert abs(loss - loss_p) <= 1e-12 * abs(loss), fn.__name__
        for k in grads:
            assert_close(grads_p[k], grads[k], rtol=1e-9, atol=1e-13, err_msg=f"{fn.__name__}: {k}")


def test_the_padding_check_catches_the_bugs_it_guards_against(rng):
    """Labels on padding (labels copied from input_ids), or no attention mask, do change the loss."""
    model = _randomize(BertForPreTraining(_config()).to(dtype="float64"), rng)
    batch = _batch()
    padded = _pad_batch(batch, 9)
    buggy = backend.to_numpy(padded.labels).copy()
    buggy[backend.to_numpy(padded.attention_mask) == 0] = IDS.pad  # padding predicted as [PAD]
    loss, _ = _model_loss_and_grads(model, padded)
    loss_bug, _ = _model_loss_and_grads(model, padded, labels=backend.asarray(buggy))
    assert abs(loss_bug - loss) > 1e-3
    no_mask, _ = _model_loss_and_grads(model, batch, attention_mask=False)
    no_mask_p, _ = _model_loss_and_grads(model, padded, attention_mask=False)
    assert abs(no_mask - no_mask_p) > 1e-6


# -- evaluation -----------------------------------------------------------------------------------------------


def test_evaluate_counts_match_a_direct_computation(rng):
    model = _randomize(BertForPreTraining(_config()).to(dtype="float64"), rng)
    batches = [_batch(B=5, seed=s) for s in (0, 10)]
    m = evaluate(model, batches)
    right = masked = nsp_right = pairs = 0
    nll = []
    counts = {}
    for b in batches:
        out = model(b.input_ids, b.attention_mask, b.token_type_ids)
        logits, labels = backend.to_numpy(out.prediction_logits), backend.to_numpy(b.labels)
        sel = labels != IGNORE_INDEX
        right += int((logits.argmax(-1)[sel] == labels[sel]).sum())
        masked += int(sel.sum())
        z = logits[sel] - logits[sel].max(-1, keepdims=True)
        nll += list(np.log(np.exp(z).sum(-1)) - z[np.arange(len(z)), labels[sel]])
        nsp = backend.to_numpy(b.next_sentence_label)
        nsp_right += int((backend.to_numpy(out.seq_relationship_logits).argmax(-1) == nsp).sum())
        pairs += len(nsp)
        for v in labels[sel]:
            counts[v] = counts.get(v, 0) + 1
    assert m["n_masked"] == masked and m["n_pairs"] == pairs == 10
    assert m["mlm_accuracy"] == right / masked
    assert m["nsp_accuracy"] == nsp_right / pairs
    assert m["unigram_mlm_accuracy"] == max(counts.values()) / masked
    assert abs(m["mlm_loss"] - float(np.mean(nll))) < 1e-9
    assert model.training  # restored


def test_eval_batches_are_fixed_by_their_seed():
    a = eval_batches(_docs(), IDS, 16, n_pairs=30, batch_size=8)
    b = eval_batches(_docs(), IDS, 16, n_pairs=30, batch_size=8)
    assert [len(x.next_sentence_label) for x in a] == [8, 8, 8, 6]
    for x, y in zip(a, b, strict=True):
        for k in ("input_ids", "labels", "next_sentence_label"):
            np.testing.assert_array_equal(backend.to_numpy(getattr(x, k)), backend.to_numpy(getattr(y, k)))


def test_eval_batches_hold_spans_or_single_sentences():
    tokens = lambda batches: sum(int(backend.to_numpy(x.attention_mask).sum()) for x in batches)  # noqa: E731
    spans = eval_batches(_docs(), IDS, 16, n_pairs=30, batch_size=8, spans=True)
    single = eval_batches(_docs(), IDS, 16, n_pairs=30, batch_size=8)
    assert max(x.input_ids.shape[1] for x in spans) <= 16
    assert tokens(spans) > tokens(single)  # more sentences per side, same pairs budget


def test_split_documents():
    train, held = split_documents(list(range(50)), 0.1)
    assert train == list(range(45)) and held == list(range(45, 50))
    assert split_documents(list(range(5)), 0.1) == ([0, 1, 2], [3, 4])  # at least 2 held out
    with pytest.raises(ValueError, match="fewer than 2 for training"):
        split_documents(list(range(3)), 0.1)
    with pytest.raises(ValueError, match="eval_fraction"):
        split_documents(list(range(30)), 1.0)


# -- a whole (tiny) run ----------------------------------------------------------------------------------------


def _text_docs(n=120, seed=0):
    """Topic documents: every sentence of a document names the same person and draws words of one topic."""
    r = backend.host_rng(seed)
    topics = [["ship", "sail", "wave", "port"], ["corn", "barn", "cow", "field"], ["king", "crown", "war", "army"]]
    names = ["anna", "boris", "clara", "dmitri", "elena"]
    docs = []
    for _ in range(n):
        t, who = topics[int(r.integers(3))], names[int(r.integers(5))]
        docs.append([f"{who} saw the {t[int(r.integers(4))]} near the {t[int(r.integers(4))]}."
                     for _ in range(int(r.integers(2, 6)))])
    return docs


@pytest.fixture(scope="module")
def tiny_run():
    return pretrain(_text_docs(), vocab_size=60, size="tiny", steps=120, batch_size=16, max_len=24, lr=3e-3,
                    dropout=0.0, eval_pairs=200, progress=False, seed=1)


def test_pretrain_learns_and_reports(tiny_run):
    m = tiny_run.metrics
    for key in ("mlm_loss", "mlm_accuracy", "nsp_accuracy", "nsp_loss", "unigram_mlm_accuracy", "n_masked",
                "n_pairs", "size", "steps", "parameters", "vocab_size", "seconds", "config"):
        assert key in m, key
    assert m["steps"] == 120 and m["n_pairs"] == 200 and m["size"] == "tiny"
    assert len(tiny_run.mlm_loss) == len(tiny_run.nsp_loss) == 120
    np.testing.assert_allclose(np.add(tiny_run.mlm_loss, tiny_run.nsp_loss), tiny_run.history.loss, rtol=1e-5)
    assert m["mlm_accuracy"] > m["unigram_mlm_accuracy"] + 0.1, m
    assert np.mean(tiny_run.history.loss[-10:]) < np.mean(tiny_run.history.loss[:10]) - 0.5
    assert m["vocab_size"] == tiny_run.tokenizer.vocab_size <= 60
    assert m["parameters"] == tiny_run.model.num_parameters()
    assert tiny_run.model.config.max_position_embeddings == 24 and not tiny_run.model.training


def test_saved_run_loads_into_sequence_classification(tiny_run, tmp_path):
    tiny_run.save(tmp_path / "bert")
    with warnings.catch_warnings(record=True):  # the classifier is new, the pre-training heads unused
        warnings.simplefilter("always")
        clf = BertForSequenceClassification.from_pretrained(tmp_path / "bert")
    tok = WordPieceTokenizer.from_pretrained(tmp_path / "bert")
    assert tok.vocab == tiny_run.tokenizer.vocab
    ours = dict(tiny_run.model.bert.named_parameters())
    for k, p in clf.bert.named_parameters():
        np.testing.assert_array_equal(backend.to_numpy(p.data), backend.to_numpy(ours[k].data), err_msg=k)
    enc = tok(["anna saw the ship."], ["anna saw the wave."])
    logits = clf(backend.asarray(enc["input_ids"]), backend.asarray(enc["attention_mask"]),
                 backend.asarray(enc["token_type_ids"])).logits
    assert logits.shape == (1, 2)


def test_pretrain_is_seeded():
    kwargs = dict(vocab_size=60, size="tiny", steps=5, batch_size=4, max_len=24, eval_pairs=20, progress=False)
    a = pretrain(_text_docs(30), seed=3, **kwargs)
    b = pretrain(_text_docs(30), seed=3, **kwargs)
    c = pretrain(_text_docs(30), seed=4, **kwargs)
    assert a.history.loss == b.history.loss and a.metrics["mlm_loss"] == b.metrics["mlm_loss"]
    assert a.history.loss != c.history.loss


def test_budget_schedule_follows_steps_or_time_whichever_runs_out_first():
    from minitransformer.optim import warmup_cosine

    by_steps, reference = budget_schedule(1e-2, 10, 100), warmup_cosine(1e-2, 10, 100)
    for step in (1, 5, 10, 11, 50, 99, 100):
        assert by_steps(step) == pytest.approx(reference(step), rel=1e-12, abs=1e-15)
    seconds = {"t": 0.0}
    by_time = budget_schedule(1e-2, 10, 1000, max_seconds=60.0, clock=lambda: seconds["t"])
    assert by_time(5) == pytest.approx(5e-3)  # warmup counts steps
    seconds["t"] = 30.0  # half the time, 2% of the steps: the decay follows the time
    assert by_time(20) == pytest.approx(0.5e-2)
    seconds["t"] = 60.0
    assert by_time(21) == pytest.approx(0.0, abs=1e-18)
    seconds["t"] = 1.0
    assert by_time(1000) == pytest.approx(0.0, abs=1e-18)  # steps ran out first
    with pytest.raises(ValueError, match="warmup < steps"):
        budget_schedule(1e-3, 10, 10)
    with pytest.raises(ValueError, match="needs a clock"):
        budget_schedule(1e-3, 1, 10, max_seconds=5.0)


def test_budget_schedule_warmup_stable_decay():
    s = budget_schedule(1e-2, 10, 110, decay_fraction=0.3)  # after warmup: 100 steps, the last 30 decay
    assert s(5) == pytest.approx(5e-3) and s(10) == pytest.approx(1e-2)
    for step in (11, 50, 80):  # p <= 0.7: the stable phase at the peak
        assert s(step) == pytest.approx(1e-2, rel=1e-12)
    assert s(95) == pytest.approx(0.5e-2)  # p = 0.85: halfway through the decay, cos(pi / 2) = 0
    assert s(110) == pytest.approx(0.0, abs=1e-18)
    seconds = {"t": 0.0}
    by_time = budget_schedule(1e-2, 10, 10_000, max_seconds=100.0, clock=lambda: seconds["t"], decay_fraction=0.3)
    seconds["t"] = 60.0
    assert by_time(20) == pytest.approx(1e-2)
    seconds["t"] = 85.0
    assert by_time(21) == pytest.approx(0.5e-2)
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="decay_fraction"):
            budget_schedule(1e-2, 10, 110, decay_fraction=bad)


def test_pretrain_stops_at_the_time_budget():
    run = pretrain(_text_docs(30), vocab_size=60, size="tiny", steps=10_000, batch_size=4, max_len=24,
                   warmup=2, eval_pairs=20, progress=False, max_seconds=0.5)
    assert 1 <= run.metrics["steps"] < 10_000 and run.metrics["max_seconds"] == 0.5
    assert run.history.seconds >= 0.5 and run.history.seconds < 5.0
    assert run.history.lr[-1] < 0.05 * run.metrics["lr"]  # decayed with time


def test_pretrain_pairs_spans_by_default_single_sentences_on_request():
    kwargs = dict(vocab_size=60, size="tiny", steps=3, batch_size=4, max_len=96, eval_pairs=20, progress=False)
    spans, single = pretrain(_text_docs(30), **kwargs), pretrain(_text_docs(30), spans=False, **kwargs)
    assert spans.metrics["spans"] is True and single.metrics["spans"] is False
    # the same held-out pairs (same seed), but each side holds as many whole sentences as fit
    assert spans.metrics["n_pairs"] == single.metrics["n_pairs"] == 20
    assert spans.metrics["n_masked"] > single.metrics["n_masked"]


def test_pretrain_errors():
    with pytest.raises(ValueError, match="unknown size"):
        pretrain(_text_docs(10), size="huge")
    with pytest.raises(ValueError, match="steps must be"):
        pretrain(_text_docs(10), steps=0)
    assert set(SIZES) == {"tiny", "small"}
