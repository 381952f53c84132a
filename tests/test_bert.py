"""BertModel and its heads: end-to-end gradient checks, parity with transformers, the parameter count, bad input."""

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module
from minitransformer.models import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    best_span,
)
from minitransformer.models.bert import BertEmbeddings
from minitransformer.nn.module import Module
from minitransformer.pretrained import hf_to_ours, name_map
from tests.conftest import assert_close, randn, require

TINY = dict(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
            max_position_embeddings=16, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, num_labels=3)


def _config(**overrides):
    return BertConfig(**{**TINY, **overrides})


def _randomize(model, rng):
    """Every parameter redrawn (BERT's init has zero biases and unit LayerNorm gamma, which hide bugs)."""
    for name, p in model.named_parameters():
        v = 0.5 * rng.standard_normal(p.shape)
        p.data[...] = backend.asarray(1.0 + v if name.endswith("gamma") else v, dtype=p.dtype)
    return model


def _batch():
    """B = 2, T = 6: the second sequence has two padding tokens (id 0, attention_mask 0); two segments."""
    input_ids = backend.asarray(np.array([[2, 5, 7, 3, 9, 3], [2, 4, 11, 3, 0, 0]]))
    attention_mask = backend.asarray(np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]))
    token_type_ids = backend.asarray(np.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]]))
    return input_ids, attention_mask, token_type_ids


LABELS = {  # per head: the label keyword arguments of forward, for _batch()
    "BertForPreTraining": dict(labels=[[-100, 6, -100, -100, 8, -100], [-100, -100, 12, -100, -100, -100]],
                               next_sentence_label=[0, 1]),
    "BertForMaskedLM": dict(labels=[[-100, 6, -100, 3, -100, -100], [1, -100, 12, -100, -100, -100]]),
    "BertForSequenceClassification": dict(labels=[2, 0]),
    "BertForTokenClassification": dict(labels=[[0, 2, 1, 1, 0, 2], [-100, 1, 2, 0, -100, -100]]),
    "BertForQuestionAnswering": dict(start_positions=[1, 2], end_positions=[3, 9]),  # 9 >= T: clamped, ignored
}
HEADS = {cls.__name__: cls for cls in (BertForPreTraining, BertForMaskedLM, BertForSequenceClassification,
                                       BertForTokenClassification, BertForQuestionAnswering)}


def _labels(name):
    return {k: backend.asarray(np.array(v)) for k, v in LABELS[name].items()}


class _Outputs(Module):
    """BertModel's two outputs as one scalar, L = sum(h * G) + sum(pooled * g), for check_module."""

    def __init__(self, model, rng):
        super().__init__()
        self.model = model
        self.G = randn(rng, 2, 6, 8)  # (B, T, hidden)
        self.g = randn(rng, 2, 8)  # (B, hidden)

    def forward(self, *batch):
        out = self.model(*batch)
        return backend.xp().asarray((out.last_hidden_state * self.G).sum() + (out.pooler_output * self.g).sum())

    def backward(self, dloss):
        self.model.backward(self.G * float(dloss), self.g * float(dloss))


class _Loss(Module):
    """A head's .loss as a module output (as tests/test_transformer.py's _Loss)."""

    def __init__(self, model, labels):
        super().__init__()
        self.model, self.labels = model, labels

    def forward(self, *batch):
        return self.model(*batch, **self.labels).loss

    def backward(self, dloss):
        assert float(dloss) == 1.0
        self.model.backward()


# -- gradient checks (float64, dropout 0.1 replayed by check_module's reseeding) ------------------------------
# pad_token_id=None: with a [PAD] id, the lookup deliberately sends that row no gradient (torch's padding_idx),
# which finite differences of the true function would not reproduce; test_pad_row_gets_no_lookup_gradient
# checks that rule on its own.


def test_bert_model_gradcheck_both_outputs(rng):
    model = _randomize(BertModel(_config(pad_token_id=None)).to(dtype="float64"), rng)
    r = check_module(_Outputs(model, rng), _batch(), wrt=())
    assert r.passed, r
    assert len(r.errors) == len(model.parameters()) == 5 + 2 * 16 + 2  # embeddings, 2 layers, pooler


@pytest.mark.parametrize("name", list(HEADS))
def test_head_loss_gradcheck_every_parameter(rng, name):
    model = _randomize(HEADS[name](_config(pad_token_id=None)).to(dtype="float64"), rng)
    r = check_module(_Loss(model, _labels(name)), _batch(), wrt=())
    assert r.passed, r
    assert len(r.errors) == len(model.parameters())


@pytest.mark.parametrize("num_labels,labels", [(1, [0.5, -1.5]), (3, [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])],
                         ids=["regression", "multi_label"])
def test_sequence_classification_other_losses_gradcheck(rng, num_labels, labels):
    model = BertForSequenceClassification(_config(pad_token_id=None, num_labels=num_labels, num_hidden_layers=1))
    model = _randomize(model.to(dtype="float64"), rng)
    r = check_module(_Loss(model, {"labels": backend.asarray(labels)}), _batch(), wrt=())
    assert r.passed, r


def test_embeddings_gradcheck_with_offset(rng):
    emb = _randomize(BertEmbeddings(_config(pad_token_id=None)).to(dtype="float64"), rng)
    ids, _, types = _batch()
    r = check_module(emb, (ids, types), kwargs={"position_offset": 3}, wrt=())
    assert r.passed, r
    dW_pos = backend.to_numpy(emb.position_embeddings.W.grad)  # from check_module's one backward
    assert np.all(dW_pos[:3] == 0.0) and np.all(dW_pos[9:] == 0.0) and np.all(np.abs(dW_pos[3:9]).max(1) > 0)


def test_pad_row_gets_no_lookup_gradient(rng):
    """With pad_token_id = 0 the [PAD] row gets no gradient from the lookup; every other gradient is unchanged."""
    ids, mask, types = _batch()
    with_pad = _randomize(BertModel(_config(pad_token_id=0, hidden_dropout_prob=0.0)).to(dtype="float64"), rng)
    without = BertModel(_config(pad_token_id=None, hidden_dropout_prob=0.0)).to(dtype="float64")
    without.load_state_dict(with_pad.state_dict())
    G, g = randn(rng, 2, 6, 8), randn(rng, 2, 8)
    for model in (with_pad, without):
        backend.manual_seed(3)
        model(ids, mask, types)
        model.backward(G, g)
    pad_grad = backend.to_numpy(with_pad.embeddings.word_embeddings.W.grad)
    free_grad = backend.to_numpy(without.embeddings.word_embeddings.W.grad)
    assert np.all(pad_grad[0] == 0.0) and np.abs(free_grad[0]).max() > 1e-3  # row 0 is used by the batch
    np.testing.assert_allclose(pad_grad[1:], free_grad[1:], rtol=1e-12, atol=1e-14)
    for (k, p), (_, q) in zip(with_pad.named_parameters(), without.named_parameters(), strict=True):
        if k != "embeddings.word_embeddings.W":
            assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14, err_msg=k)


# -- structure, counts, init ------------------------------------------------------------------------------------


def test_bert_base_has_109482240_parameters():
    """The count transformers reports for bert-base-uncased's BertModel (with pooler, without heads)."""
    model = BertModel(BertConfig())
    assert model.num_parameters() == 109_482_240
    assert model.embeddings.word_embeddings.W.dtype == np.float32


def test_names_match_the_brief():
    model = BertForPreTraining(_config())
    names = {k for k, _ in model.named_parameters()}
    for expected in ("bert.embeddings.word_embeddings.W", "bert.embeddings.position_embeddings.W",
                     "bert.embeddings.token_type_embeddings.W", "bert.embeddings.LayerNorm.gamma",
                     "bert.encoder.layers.1.self_attn.W_q", "bert.encoder.layers.1.self_attn.b_o",
                     "bert.encoder.layers.1.norm1.beta", "bert.encoder.layers.1.ff.linear1.W",
                     "bert.encoder.layers.1.ff.linear2.b", "bert.encoder.layers.1.norm2.gamma",
                     "bert.pooler.dense.W", "cls.predictions.transform.dense.W",
                     "cls.predictions.transform.LayerNorm.gamma", "cls.predictions.bias", "cls.seq_relationship.W"):
        assert expected in names, expected
    assert model.bert.embeddings.position_embeddings.W.shape == (16, 8)
    assert model.cls.predictions.decoder is model.bert.embeddings.word_embeddings.W  # tied: one Parameter
    assert "cls.predictions.decoder" not in names  # counted once
    assert model.bert.encoder.norm is None and model.bert.encoder.layers[0].ff.dropout.p == 0.0
    assert model.bert.encoder.layers[0].self_attn.dropout == 0.1
    for cls in (BertForMaskedLM, BertForTokenClassification, BertForQuestionAnswering):
        assert cls(_config()).bert.pooler is None  # as Hugging Face: add_pooling_layer=False
    assert BertForSequenceClassification(_config()).bert.pooler is not None


def test_init_as_hugging_face():
    backend.manual_seed(5)
    a = BertModel(_config(vocab_size=200, hidden_size=32, intermediate_size=64, num_attention_heads=4))
    backend.manual_seed(5)
    b = BertModel(_config(vocab_size=200, hidden_size=32, intermediate_size=64, num_attention_heads=4))
    W = backend.to_numpy(a.embeddings.word_embeddings.W.data)
    assert np.all(W[0] == 0.0)  # the [PAD] row
    assert 0.018 < W[1:].std() < 0.022  # N(0, initializer_range = 0.02)
    assert np.all(backend.to_numpy(a.encoder.layers[0].self_attn.b_q.data) == 0.0)
    assert 0.018 < float(backend.to_numpy(a.encoder.layers[0].ff.linear1.W.data).std()) < 0.022
    for (k, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(backend.to_numpy(p.data), backend.to_numpy(q.data), err_msg=k)


# -- config -----------------------------------------------------------------------------------------------------


def test_config_from_hugging_face_dict():
    d = {"_name_or_path": "x", "architectures": ["BertModel"], "model_type": "bert", "torch_dtype": "float32",
         "transformers_version": "4.8.2", "hidden_size": 384, "num_attention_heads": 12, "num_hidden_layers": 6,
         "intermediate_size": 1536, "position_embedding_type": "absolute", "use_cache": True,
         "gradient_checkpointing": False, "id2label": {"0": "NEG", "1": "NEU", "2": "POS"}}
    c = BertConfig.from_dict(d)
    assert (c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.num_labels) == (384, 6, 1536, 3)
    assert c.vocab_size == 30522 and c.layer_norm_eps == 1e-12 and c.hidden_act == "gelu"
    assert BertConfig.from_dict(c.to_dict()) == c
    assert c.to_dict()["model_type"] == "bert"


def test_config_errors():
    with pytest.raises(ValueError, match="config is for roberta, not bert"):
        BertConfig.from_dict({"model_type": "roberta", "hidden_size": 8})
    with pytest.raises(ValueError, match="position_embedding_type='relative_key'"):
        BertConfig.from_dict({"position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="hidden_size=10 must be divisible by num_attention_heads=4"):
        BertConfig(hidden_size=10, num_attention_heads=4)
    with pytest.raises(ValueError, match="unknown activation 'swiglu'"):
        BertConfig(hidden_act="swiglu")
    with pytest.raises(ValueError, match=r"hidden_dropout_prob must be in \[0, 1\), got 1.5"):
        BertConfig(hidden_dropout_prob=1.5)


# -- behaviour --------------------------------------------------------------------------------------------------


def test_float32_in_float32_out_and_outputs():
    ids, mask, types = _batch()
    model = BertModel(_config())
    out = model(ids, mask, types, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.dtype == np.float32 and out.last_hidden_state.shape == (2, 6, 8)
    assert out.pooler_output.dtype == np.float32 and out.pooler_output.shape == (2, 8)
    assert len(out.hidden_states) == 3 and out.hidden_states[-1] is out.last_hidden_state
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 2, 6, 6)
    P = backend.to_numpy(out.attentions[1])
    assert np.all(P[1, :, :, 4:] == 0.0)  # padded keys get no attention
    np.testing.assert_allclose(P.sum(-1), 1.0, rtol=1e-5)
    for name, cls in HEADS.items():
        head_out = cls(_config())(ids, mask, types, **_labels(name))
        assert head_out.loss.dtype == np.float32 and head_out.loss.ndim == 0, name
    assert model(ids).hidden_states is None and model(ids).attentions is None


def test_padding_does_not_change_real_tokens(rng):
    model = _randomize(BertModel(_config()).to(dtype="float64"), rng).eval()
    ids, mask, types = _batch()
    full = model(ids, mask, types)
    short = model(ids[1:, :4], mask[1:, :4], types[1:, :4])
    assert_close(full.last_hidden_state[1, :4], short.last_hidden_state[0], rtol=1e-12, atol=1e-14)
    assert_close(full.pooler_output[1], short.pooler_output[0], rtol=1e-12, atol=1e-14)


def test_grads_accumulate_and_dy_not_mutated(rng):
    model = _randomize(BertModel(_config()).to(dtype="float64"), rng)
    batch = _batch()
    G, g = randn(rng, 2, 6, 8), randn(rng, 2, 8)
    G0, g0 = G.copy(), g.copy()
    for _ in range(2):
        backend.manual_seed(1)
        model(*batch)
        model.backward(G, g)
        if _ == 0:
            once = {k: p.grad.copy() for k, p in model.named_parameters()}
    for k, p in model.named_parameters():
        assert_close(p.grad, 2 * once[k], rtol=1e-12, err_msg=k)
    assert_close(G, G0, rtol=0) and assert_close(g, g0, rtol=0)


def test_head_backward_with_given_logits_gradient_equals_loss_backward(rng):
    """backward(dlogits) with dlogits = dloss/dlogits gives what backward() gives."""
    model = _randomize(BertForTokenClassification(_config()).to(dtype="float64"), rng).eval()
    batch, labels = _batch(), _labels("BertForTokenClassification")
    model(*batch, **labels)
    model.backward()
    from_loss = {k: p.grad.copy() for k, p in model.named_parameters()}
    model.zero_grad()
    logits = model(*batch).logits
    valid = backend.to_numpy(labels["labels"]) != -100
    P = np.exp(backend.to_numpy(logits))
    P /= P.sum(-1, keepdims=True)
    P[valid, backend.to_numpy(labels["labels"])[valid]] -= 1.0
    model.backward(backend.asarray(P * valid[..., None] / valid.sum()))
    for k, p in model.named_parameters():
        assert_close(p.grad, from_loss[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_question_answering_clamps_positions_like_hugging_face(rng):
    model = _randomize(BertForQuestionAnswering(_config()).to(dtype="float64"), rng).eval()
    ids, mask, types = _batch()
    out = model(ids, mask, types, start_positions=backend.asarray([1, 2]), end_positions=backend.asarray([3, 9]))
    s, e = backend.to_numpy(out.start_logits), backend.to_numpy(out.end_logits)

    def ce(row, t):
        return -(row[t] - np.log(np.exp(row).sum()))

    expected = ((ce(s[0], 1) + ce(s[1], 2)) / 2 + ce(e[0], 3)) / 2  # end 9 -> T = 6: ignored
    assert abs(float(out.loss) - expected) < 1e-12


# -- best_span -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_answer_len", [1, 3, 30])
def test_best_span_matches_brute_force(rng, max_answer_len):
    B, T = 3, 9
    start, end = randn(rng, B, T), randn(rng, B, T)
    mask = rng.random((B, T)) > 0.3
    mask[:, 4] = True  # at least one allowed token per example
    starts, ends, scores = best_span(start, end, max_answer_len=max_answer_len, mask=backend.asarray(mask))
    s_h, e_h = backend.to_numpy(start), backend.to_numpy(end)
    for b in range(B):
        best = max((s_h[b, i] + e_h[b, j], i, j) for i in range(T) for j in range(i, min(T, i + max_answer_len))
                   if mask[b, i] and mask[b, j])
        assert (int(starts[b]), int(ends[b])) == best[1:]
        assert abs(float(scores[b]) - best[0]) < 1e-12
    assert BertForQuestionAnswering.best_span is best_span


def test_best_span_errors(rng):
    start = randn(rng, 2, 5)
    with pytest.raises(ValueError, match=r"no allowed span in example\(s\) \[1\]"):
        best_span(start, start, mask=backend.asarray(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=bool)))
    with pytest.raises(ValueError, match="end_logits shape"):
        best_span(start, start[:, :4])
    with pytest.raises(ValueError, match="max_answer_len must be >= 1"):
        best_span(start, start, max_answer_len=0)


# -- bad input ------------------------------------------------------------------------------------------------


def test_bad_inputs():
    ids, mask, types = _batch()
    model = BertModel(_config())
    long_ids = backend.asarray(np.ones((1, 17), dtype=np.int64))
    with pytest.raises(ValueError, match="sequence length 17 .* exceeds max_position_embeddings=16; truncate"):
        model(long_ids)
    with pytest.raises(IndexError, match=r"BertModel input_ids: token id 20 is out of range \[0, 20\)"):
        model(ids + 9)
    with pytest.raises(IndexError, match="token id 2 is out of range"):
        model(ids, mask, types * 2)  # type_vocab_size = 2
    with pytest.raises(ValueError, match=r"attention_mask: expected shape \(B, T\) = \(2, 6\)"):
        model(ids, mask[:, :5])
    with pytest.raises(ValueError, match=r"token_type_ids: expected shape \(B, T\) = \(2, 6\)"):
        model(ids, mask, types[:1])
    with pytest.raises(ValueError, match=r"expected 2 axes \(B, T\), got shape \(6,\)"):
        model(ids[0])
    with pytest.raises(RuntimeError, match="before forward"):
        BertModel(_config()).backward(randn(backend.host_rng(0), 2, 6, 8, dtype="float32"))
    model(ids)
    with pytest.raises(ValueError, match="d_last_hidden_state, d_pooler_output or both"):
        model.backward()


def test_head_label_errors():
    ids, mask, types = _batch()
    cases = [
        (BertForMaskedLM, dict(labels=np.zeros((2, 5), dtype=np.int64)), r"labels: expected shape \(B, T\) = \(2, 6\)"),
        (BertForTokenClassification, dict(labels=np.zeros((2,), dtype=np.int64)), r"expected shape \(B, T\)"),
        (BertForSequenceClassification, dict(labels=np.zeros((2, 6), dtype=np.int64)),
         r"labels: expected shape \(B,\) class ids = \(2,\), got \(2, 6\)"),
        (BertForPreTraining, dict(labels=np.zeros((2, 6), dtype=np.int64), next_sentence_label=np.zeros(3, np.int64)),
         r"next_sentence_label: expected shape \(B,\) = \(2,\), got \(3,\)"),
        (BertForPreTraining, dict(labels=np.zeros((2, 6), dtype=np.int64)), "pass both labels"),
        (BertForQuestionAnswering, dict(start_positions=np.zeros(2, np.int64)), "pass both start_positions"),
        (BertForQuestionAnswering, dict(start_positions=np.zeros(3, np.int64), end_positions=np.zeros(3, np.int64)),
         r"start_positions: expected shape \(B,\) = \(2,\), got \(3,\)"),
    ]
    for cls, labels, message in cases:
        with pytest.raises(ValueError, match=message):
            cls(_config())(ids, mask, types, **{k: backend.asarray(v) for k, v in labels.items()})
    with pytest.raises(IndexError, match=r"target 3 is out of range \[0, 3\)"):
        BertForSequenceClassification(_config())(ids, labels=backend.asarray(np.array([3, 0])))
    head = BertForSequenceClassification(_config())
    head(ids)
    with pytest.raises(RuntimeError, match="needs a forward with labels first"):
        head.backward()
    with pytest.raises(ValueError, match="has no pooler"):
        mlm = BertForMaskedLM(_config())
        mlm.bert(ids)
        mlm.bert.backward(None, randn(backend.host_rng(0), 2, 8, dtype="float32"))


# -- parity with transformers (float64, eval mode) -------------------------------------------------------------

def _copy_from_hf(ours, hf):
    """Load the transformers model's weights into ours (pretrained.hf_to_ours: the brief's name map, transposes,
    tied decoder); return {our name: (the HF parameter, transposed?)} to compare gradients."""
    state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    ours.load_state_dict(hf_to_ours(state, ours))  # strict: every parameter set, no key left over
    hf_params = dict(hf.named_parameters(remove_duplicate=False))
    pairs = {our: (hf_params[hf_name], transpose) for hf_name, our, transpose in name_map(ours)}
    assert set(pairs) == {k for k, _ in ours.named_parameters()}
    return pairs


def _hf_pair(name, rng, **overrides):
    """A transformers model with random weights and ours with the same weights, float64, eval mode."""
    torch, transformers = require("torch"), require("transformers")
    sizes = {**TINY, "num_labels": 2} if name == "BertForQuestionAnswering" else TINY  # HF's qa_outputs: num_labels
    sizes = {**sizes, **overrides}
    hf_config = transformers.BertConfig(**sizes, pad_token_id=0)
    hf_config._attn_implementation = "eager"  # the attention weights are returned only by the eager kernel
    hf = getattr(transformers, name)(hf_config).double().eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for hf_name, t in hf.named_parameters():  # random everything: zero biases and unit gammas hide bugs
            t.copy_(torch.from_numpy(0.5 * rng.standard_normal(tuple(t.shape))) + (1.0 if "LayerNorm.weight" in
                                                                                      hf_name else 0.0))
    ours = (BertModel if name == "BertModel" else HEADS[name])(BertConfig(**sizes)).to(dtype="float64").eval()
    pairs = _copy_from_hf(ours, hf)
    return torch, hf, ours, pairs


def _assert_grads(ours, pairs):
    for k, p in ours.named_parameters():
        t, transpose = pairs[k]
        ref = t.grad.numpy()
        assert_close(p.grad, ref.T if transpose else ref, rtol=1e-9, atol=1e-11, err_msg=k)


def _torch_batch(torch):
    return [torch.from_numpy(backend.to_numpy(a)) for a in _batch()]


@pytest.mark.torch
def test_bert_model_transformers_parity(rng):
    torch, hf, ours, pairs = _hf_pair("BertModel", rng)
    ids_t, mask_t, types_t = _torch_batch(torch)
    ref = hf(input_ids=ids_t, attention_mask=mask_t, token_type_ids=types_t, output_hidden_states=True,
             output_attentions=True)
    out = ours(*_batch(), output_hidden_states=True, output_attentions=True)
    assert_close(out.last_hidden_state, ref.last_hidden_state.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert_close(out.pooler_output, ref.pooler_output.detach().numpy(), rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(out.hidden_states, ref.hidden_states, strict=True):
        assert_close(mine, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(out.attentions, ref.attentions, strict=True):
        assert_close(mine, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    G, g = randn(rng, 2, 6, 8), randn(rng, 2, 8)
    ((ref.last_hidden_state * torch.from_numpy(backend.to_numpy(G))).sum()
     + (ref.pooler_output * torch.from_numpy(backend.to_numpy(g))).sum()).backward()
    ours.backward(G, g)
    _assert_grads(ours, pairs)
    assert np.all(backend.to_numpy(ours.embeddings.word_embeddings.W.grad)[0] == 0.0)  # [PAD] appears in the batch


@pytest.mark.torch
@pytest.mark.parametrize("name", list(HEADS))
def test_head_transformers_parity(rng, name):
    torch, hf, ours, pairs = _hf_pair(name, rng)
    ids_t, mask_t, types_t = _torch_batch(torch)
    labels = _labels(name)
    ref = hf(input_ids=ids_t, attention_mask=mask_t, token_type_ids=types_t,
             **{k: torch.from_numpy(backend.to_numpy(v)) for k, v in labels.items()})
    out = ours(*_batch(), **labels)
    logit_names = {"BertForPreTraining": ("prediction_logits", "seq_relationship_logits"),
                   "BertForQuestionAnswering": ("start_logits", "end_logits")}.get(name, ("logits",))
    for field in logit_names:
        assert_close(getattr(out, field), getattr(ref, field).detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=field)
    assert abs(float(out.loss) - ref.loss.item()) < 1e-10 * max(1.0, abs(ref.loss.item()))
    ref.loss.backward()
    ours.backward()
    _assert_grads(ours, pairs)
    if name == "BertForPreTraining":
        assert hf.cls.predictions.decoder.weight is hf.bert.embeddings.word_embeddings.weight  # HF ties it too


@pytest.mark.torch
@pytest.mark.parametrize("num_labels,labels", [(1, [0.5, -1.5]), (3, [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])],
                         ids=["regression", "multi_label"])
def test_sequence_classification_other_losses_transformers_parity(rng, num_labels, labels):
    torch, hf, ours, pairs = _hf_pair("BertForSequenceClassification", rng, num_labels=num_labels)
    ids_t, mask_t, types_t = _torch_batch(torch)
    ref = hf(input_ids=ids_t, attention_mask=mask_t, token_type_ids=types_t,
             labels=torch.tensor(labels, dtype=torch.float64))
    out = ours(*_batch(), labels=backend.asarray(labels))
    assert_close(out.logits, ref.logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert abs(float(out.loss) - ref.loss.item()) < 1e-10 * max(1.0, abs(ref.loss.item()))
    ref.loss.backward()
    ours.backward()
    _assert_grads(ours, pairs)
