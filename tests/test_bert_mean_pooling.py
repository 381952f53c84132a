"""BertForSequenceClassification with classifier_pooling="mean": gradient check, torch parity, padding, config."""

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module, check_op
from minitransformer.models import BertConfig, BertForSequenceClassification
from minitransformer.models.bert_heads import _mean_pool_backward, _mean_pool_forward
from tests.conftest import assert_close, randn, require
from tests.test_bert import _batch, _config, _hf_pair, _labels, _Loss, _randomize

MASK = [[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]  # B=3, T=5: two padded rows of different lengths


def _mask(rows):
    return backend.asarray(rows, dtype="int64")  # (B, T)


# -- the pure pair ---------------------------------------------------------------------------------------------


def test_mean_pool_op_gradcheck_padded(rng):
    r = check_op(_mean_pool_forward, _mean_pool_backward, (randn(rng, 3, 5, 4), _mask(MASK)), wrt=[0])
    assert r.passed, r
    assert r.worst < 1e-6
    r = check_op(_mean_pool_forward, _mean_pool_backward, (randn(rng, 2, 3, 4),))  # no mask
    assert r.passed, r


def test_mean_pool_matches_loop(rng):
    h = randn(rng, 3, 5, 4)
    pooled, _ = _mean_pool_forward(h, _mask(MASK))
    hn, p = backend.to_numpy(h), backend.to_numpy(pooled)
    for b in range(3):
        real = [t for t in range(5) if MASK[b][t]]
        for j in range(4):
            assert abs(p[b, j] - sum(hn[b, t, j] for t in real) / len(real)) < 1e-12


def test_mean_pool_padding_gets_no_gradient_and_changes_nothing(rng):
    h = randn(rng, 3, 5, 4)
    pooled, cache = _mean_pool_forward(h, _mask(MASK))
    dy = randn(rng, 3, 4)
    dy0 = dy.copy()
    dh = backend.to_numpy(_mean_pool_backward(dy, cache))
    assert_close(dy, dy0, rtol=0)  # dy not mutated
    assert float(np.abs(dh[0, 4]).max()) == 0.0 and float(np.abs(dh[1, 2:]).max()) == 0.0
    assert float(np.abs(dh[1, :2]).min()) > 0.0
    h2 = h.copy()
    h2[1, 2:] = 1e6  # garbage at padding positions
    assert_close(_mean_pool_forward(h2, _mask(MASK))[0], pooled, rtol=0)
    assert_close(_mean_pool_forward(h, backend.asarray(MASK, dtype="bool"))[0], pooled, rtol=0)


def test_mean_pool_all_padding_row_is_zero_not_nan(rng):
    pooled, cache = _mean_pool_forward(randn(rng, 2, 3, 4), _mask([[0, 0, 0], [1, 0, 0]]))
    p = backend.to_numpy(pooled)
    assert np.isfinite(p).all() and float(np.abs(p[0]).max()) == 0.0
    assert np.isfinite(backend.to_numpy(_mean_pool_backward(randn(rng, 2, 4), cache))).all()


def test_mean_pool_float32_in_float32_out(rng):
    pooled, cache = _mean_pool_forward(randn(rng, 2, 3, 4, dtype="float32"), _mask([[1, 1, 0], [1, 1, 1]]))
    assert pooled.dtype == np.float32
    assert _mean_pool_backward(randn(rng, 2, 4, dtype="float32"), cache).dtype == np.float32


@pytest.mark.torch
def test_mean_pool_torch_parity(rng):
    """sentence-transformers' mean pooling written in torch: same output and input gradient."""
    torch = require("torch")
    h, dy = randn(rng, 3, 5, 4), randn(rng, 3, 4)
    ht = torch.from_numpy(backend.to_numpy(h)).requires_grad_()
    mt = torch.tensor(MASK, dtype=torch.float64).unsqueeze(-1)  # (B, T, 1)
    yt = (ht * mt).sum(1) / torch.clamp(mt.sum(1), min=1e-9)
    yt.backward(torch.from_numpy(backend.to_numpy(dy)))
    y, cache = _mean_pool_forward(h, _mask(MASK))
    np.testing.assert_allclose(backend.to_numpy(y), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(_mean_pool_backward(dy, cache)), ht.grad.numpy(), rtol=1e-12,
                               atol=1e-12)


# -- the head --------------------------------------------------------------------------------------------------


def test_mean_pooling_head_loss_gradcheck_every_parameter(rng):
    """Padding + two segments, dropout 0.1 replayed, random LayerNorm gamma; the unused pooler gets exactly 0."""
    model = _randomize(BertForSequenceClassification(_config(pad_token_id=None, classifier_pooling="mean"))
                       .to(dtype="float64"), rng)
    r = check_module(_Loss(model, _labels("BertForSequenceClassification")), _batch(), wrt=())
    assert r.passed, r
    assert len(r.errors) == len(model.parameters())
    assert r.worst < 1e-6
    model(*_batch(), **_labels("BertForSequenceClassification"))
    model.zero_grad()
    model.backward()
    assert float(np.abs(backend.to_numpy(model.bert.pooler.dense.W.grad)).max()) == 0.0
    assert float(np.abs(backend.to_numpy(model.classifier.W.grad)).max()) > 0.0


def test_mean_pooling_differs_from_cls_and_ignores_padding(rng):
    cls_model = _randomize(BertForSequenceClassification(_config()).to(dtype="float64"), rng).eval()
    mean_model = BertForSequenceClassification(_config(classifier_pooling="mean")).to(dtype="float64").eval()
    mean_model.load_state_dict(cls_model.state_dict())  # same weights: only the pooling differs
    ids, mask, types = _batch()
    a, b = cls_model(ids, mask, types).logits, mean_model(ids, mask, types).logits
    assert float(np.abs(backend.to_numpy(a) - backend.to_numpy(b)).max()) > 1e-3
    # the padded second sequence alone, without its padding, gives the same logits
    alone = mean_model(ids[1:, :4], mask[1:, :4], types[1:, :4]).logits
    assert_close(alone, b[1:], rtol=1e-10, atol=1e-12)


def test_classifier_pooling_config():
    assert BertConfig().classifier_pooling == "cls"
    c = BertConfig(classifier_pooling="mean")
    assert BertConfig.from_dict(c.to_dict()) == c
    assert BertConfig.from_dict({"model_type": "bert"}).classifier_pooling == "cls"  # a transformers config.json
    with pytest.raises(ValueError, match="classifier_pooling must be 'cls' or 'mean', got 'max'"):
        BertConfig(classifier_pooling="max")


def test_mean_pooling_float32_accumulate_and_backward_before_forward(rng):
    model = BertForSequenceClassification(_config(classifier_pooling="mean"))
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward()
    backend.manual_seed(3)  # the same dropout masks in both forwards
    out = model(*_batch(), **_labels("BertForSequenceClassification"))
    assert out.logits.dtype == np.float32 and out.loss.dtype == np.float32
    model.backward()
    W = model.bert.encoder.layers[0].self_attn.W_q.grad
    assert W.dtype == np.float32
    once = W.copy()
    backend.manual_seed(3)
    model(*_batch(), **_labels("BertForSequenceClassification"))
    model.backward()
    assert_close(W, 2 * once, rtol=1e-5)


@pytest.mark.torch
def test_mean_pooling_head_torch_parity(rng):
    """transformers' BertModel + the sentence-transformers mean pooling + the classifier, written in torch:
    same logits, loss and every parameter gradient (the pooler: none in torch, zero here)."""
    torch, hf, ours, pairs = _hf_pair("BertForSequenceClassification", rng, classifier_pooling="mean")
    assert ours.mean_pooling
    ids_t, mask_t, types_t = (torch.from_numpy(backend.to_numpy(a)) for a in _batch())
    labels = _labels("BertForSequenceClassification")
    h = hf.bert(input_ids=ids_t, attention_mask=mask_t, token_type_ids=types_t).last_hidden_state
    m = mask_t.to(torch.float64).unsqueeze(-1)  # (B, T, 1)
    pooled = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
    logits = hf.classifier(hf.dropout(pooled))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(backend.to_numpy(labels["labels"])))
    out = ours(*_batch(), **labels)
    assert_close(out.logits, logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert abs(float(out.loss) - loss.item()) < 1e-10 * max(1.0, abs(loss.item()))
    loss.backward()
    ours.backward()
    for k, p in ours.named_parameters():
        t, transpose = pairs[k]
        if t.grad is None:
            assert k.startswith("bert.pooler."), k
            assert float(np.abs(backend.to_numpy(p.grad)).max()) == 0.0, k
            continue
        ref = t.grad.numpy()
        assert_close(p.grad, ref.T if transpose else ref, rtol=1e-9, atol=1e-11, err_msg=k)
