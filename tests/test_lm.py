import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.lm import generate, score, token_log_probs
from minitransformer.models.gpt import GPT, GPTConfig
from minitransformer.nn.softmax import log_softmax_forward


class _Chars:
    """A minimal character tokenizer for these tests: id 0 is <|endoftext|>."""

    def __init__(self, chars="abcdefghijklmnopqrstuvwxyz .,"):
        self.chars = ["<|endoftext|>", *chars]
        self.eos_id, self.vocab_size = 0, len(self.chars)
        self._ids = {c: i for i, c in enumerate(self.chars)}

    def encode(self, text):
        return [self._ids[c] for c in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


TOK = _Chars()


def _model(max_len=48, dtype="float64", seed=0, dropout=0.0, extra_vocab=0):
    cfg = GPTConfig(vocab_size=TOK.vocab_size + extra_vocab, max_len=max_len, d_model=16, n_heads=2, n_layers=2,
                    d_ff=32, dropout=dropout)
    model = GPT(cfg, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)  # GPT-2's init (std 0.02) is nearly uniform: make the model opinionated
    W = model.token_embedding.W
    W.data[...] = backend.asarray(rng.normal(0.0, 1.0, W.shape), dtype=W.dtype)
    return model


def _naive_log_prob(model, context, target):
    """log p(target | context) by one full forward pass (no cache)."""
    model.eval()
    logits = model(backend.asarray([context], dtype="int64"))  # (1, T, V)
    return float(backend.to_numpy(log_softmax_forward(logits[:, -1])[0])[0, target])


@pytest.mark.parametrize("options", [dict(greedy=True), dict(temperature=1.0), dict(temperature=0.7, top_k=5),
                                     dict(temperature=1.3, top_p=0.8), dict(top_k=8, top_p=0.9)])
def test_cached_and_uncached_generation_agree(options):
    model = _model(max_len=16)  # 16 positions: the window slides during the 40 tokens
    a = generate(model, TOK, "the cat", max_new_tokens=40, seed=5, use_cache=True, **options)
    b = generate(model, TOK, "the cat", max_new_tokens=40, seed=5, use_cache=False, **options)
    assert a.ids == b.ids and a.text == b.text and a.stop_reason == b.stop_reason
    np.testing.assert_allclose(a.token_log_probs, b.token_log_probs, rtol=1e-12, atol=1e-12)


def test_greedy_generation_equals_step_by_step_argmax():
    model = _model()
    out = generate(model, TOK, "on the", max_new_tokens=12, greedy=True)
    context = [TOK.eos_id] + TOK.encode("on the")
    for w in out.ids:
        model.eval()
        logits = backend.to_numpy(model(backend.asarray([context], dtype="int64")))[0, -1]
        assert w == int(np.argmax(logits))
        context.append(w)
    assert out.prompt_ids == TOK.encode("on the")


def test_score_is_the_sum_of_per_token_log_probs_and_matches_a_naive_loop():
    model = _model()
    text = "the cat sat on the mat."
    s = score(model, TOK, text)
    assert s.ids == TOK.encode(text) and s.tokens == list(text) and s.n_tokens == len(text)
    assert s.total_log_prob == pytest.approx(math.fsum(s.log_probs), rel=1e-14)
    assert s.perplexity == pytest.approx(math.exp(-s.total_log_prob / len(text)), rel=1e-14)
    context = [TOK.eos_id]  # the first token is conditioned on the start token
    for t, w in enumerate(s.ids):
        assert s.log_probs[t] == pytest.approx(_naive_log_prob(model, context, w), abs=1e-12)
        context.append(w)
    assert all(lp < 0 for lp in s.log_probs)


def test_score_of_a_text_longer_than_the_window_uses_overlapping_windows():
    model = _model(max_len=8)
    ids = TOK.encode("the quick brown fox jumps")  # 25 tokens > 8
    s = [TOK.eos_id] + ids
    N, W, stride = len(ids), 8, 3
    begins = list(range(0, N - W, stride)) + [N - W]
    got = token_log_probs(model, ids, TOK.eos_id, stride=stride, batch_size=2)
    for j in range(1, N + 1):  # target s[j]: from the first window whose inputs reach s[j - 1]
        b = next(b for b in begins if b + W >= j)
        assert j - b >= min(j, W - stride)  # at least W - stride tokens of context (all, early on)
        assert got[j - 1] == pytest.approx(_naive_log_prob(model, s[b:j], s[j]), abs=1e-12), j
    default = score(model, TOK, "the quick brown fox jumps")  # stride max_len // 2
    assert len(default.log_probs) == N and math.isfinite(default.total_log_prob)


def test_generate_log_probs_agree_with_score():
    model = _model(max_len=64)
    prompt = "a dog"
    g = generate(model, TOK, prompt, max_new_tokens=30, temperature=0.9, seed=11, stop=0)
    s = score(model, TOK, prompt + g.text)
    n = len(g.text)
    assert s.ids[len(g.prompt_ids):] == g.ids[:n]
    np.testing.assert_allclose(s.log_probs[len(g.prompt_ids):], g.token_log_probs[:n], rtol=1e-12, atol=1e-12)
    if n == len(g.ids):
        assert s.total_log_prob - score(model, TOK, prompt).total_log_prob == pytest.approx(g.total_log_prob,
                                                                                           abs=1e-10)


def test_fixed_seed_reproduces_the_text():
    model = _model()
    a = generate(model, TOK, "the", max_new_tokens=30, temperature=1.2, seed=42)
    b = generate(model, TOK, "the", max_new_tokens=30, temperature=1.2, seed=42)
    texts = {generate(model, TOK, "the", max_new_tokens=30, temperature=1.2, seed=s).text for s in range(5)}
    assert a.text == b.text and a.ids == b.ids
    assert len(texts) > 1


def test_stop_strings_and_stop_ids():
    model = _model()
    full = generate(model, TOK, "the", max_new_tokens=25, greedy=True)
    assert full.stop_reason == "max_new_tokens" and len(full.ids) == 25
    stop = full.text[6:8]
    cut = generate(model, TOK, "the", max_new_tokens=25, greedy=True, stop=[stop, "zzzz"])
    assert cut.stop_reason == "stop_string"
    assert cut.text == full.text[:full.text.find(stop)] and stop not in cut.text
    assert cut.ids == full.ids[:len(cut.ids)]
    w = full.ids[4]
    first = full.ids.index(w)
    by_id = generate(model, TOK, "the", max_new_tokens=25, greedy=True, stop=w)
    assert by_id.stop_reason == "stop_id" and by_id.ids == full.ids[:first + 1]
    assert by_id.text == TOK.decode(full.ids[:first])


def test_empty_prompt_starts_a_document_from_the_start_token():
    model = _model()
    g = generate(model, TOK, "", max_new_tokens=5, greedy=True)
    assert g.prompt_ids == [] and len(g.ids) >= 1
    model.eval()
    logits = backend.to_numpy(model(backend.asarray([[TOK.eos_id]], dtype="int64")))[0, -1]
    assert g.ids[0] == int(np.argmax(logits))


def test_padded_model_vocabulary_is_never_sampled():
    model = _model(extra_vocab=6)
    g = generate(model, TOK, "the", max_new_tokens=150, temperature=5.0, seed=0, stop=None)
    assert max(g.ids) < TOK.vocab_size


def test_eval_mode_inside_and_training_mode_restored():
    model = _model(dropout=0.5)
    model.train()
    a = generate(model, TOK, "the", max_new_tokens=20, seed=1)
    b = generate(model, TOK, "the", max_new_tokens=20, seed=1, use_cache=False)
    s1, s2 = score(model, TOK, "the cat"), score(model, TOK, "the cat")
    assert a.ids == b.ids and s1.log_probs == s2.log_probs  # no dropout while generating or scoring
    assert model.training


def test_float32_model_works():
    model = _model(dtype="float32")
    s = score(model, TOK, "the cat")
    g = generate(model, TOK, "the cat", max_new_tokens=5, seed=0)
    assert all(isinstance(v, float) for v in s.log_probs + g.token_log_probs)
    ref = score(_model(dtype="float64"), TOK, "the cat")
    np.testing.assert_allclose(s.log_probs, ref.log_probs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(prompt="the cat sat on the mat and the dog sat"), ValueError, r"prompt has 38 tokens .*max_len=16"),
    (dict(temperature=0.0), ValueError, "temperature must be"),
    (dict(temperature=-0.5), ValueError, "temperature must be"),
    (dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.01), ValueError, "top_p"),
    (dict(top_k=0), ValueError, "top_k must be an integer >= 1"),
    (dict(max_new_tokens=0), ValueError, "max_new_tokens must be an integer >= 1"),
    (dict(stop=99), ValueError, r"stop id 99 is outside the vocabulary \[0, 30\)"),
    (dict(stop=[""]), ValueError, "stop string must not be empty"),
    (dict(stop=[1.5]), TypeError, "stop must hold strings or token ids"),
    (dict(prompt=b"the"), TypeError, "prompt must be a str"),
    (dict(prompt="THE"), KeyError, "T"),  # the tokenizer's own error for a character it does not know
])
def test_generate_bad_input(kwargs, error, match):
    model = _model(max_len=16)
    kwargs = {"prompt": "the", **kwargs}
    with pytest.raises(error, match=match):
        generate(model, TOK, max_new_tokens=kwargs.pop("max_new_tokens", 3), **kwargs)


def test_score_bad_input():
    model = _model(max_len=16)
    with pytest.raises(ValueError, match="cannot score an empty text"):
        score(model, TOK, "")
    with pytest.raises(TypeError, match="text must be a str"):
        score(model, TOK, ["the"])
    big = _Chars("abcdefghijklmnopqrstuvwxyz .,ABCDEFGH")
    with pytest.raises(ValueError, match="tokenizer has 38 tokens but the model only vocab_size=30"):
        score(model, big, "the")
    with pytest.raises(ValueError, match=r"stride must be in \[1, max_len=16\]"):
        token_log_probs(model, list(range(1, 20)), 0, stride=0)
    with pytest.raises(TypeError, match="tokenizer must have encode"):
        score(model, object(), "the")


# -- lm_train: data, batches, schedule, training, save/load -----------------------------------------------


from minitransformer import lm_train  # noqa: E402
from minitransformer.tokenizers.char import CharTokenizer  # noqa: E402

_DOCS = ["the cat sat on the mat. the cat was happy.", "a dog sat on the rug. the dog slept.",
         "the cat saw the dog. the dog ran.", "a bird sat on the tree. the bird sang."]


def test_prepare_data_streams_and_document_starts():
    tok = CharTokenizer.train(["\n\n".join(_DOCS)])
    data = lm_train.prepare_data(tok, _DOCS[:3], _DOCS[3:], true_entropy_nats=50.0)
    assert data.train_ids[0] == tok.eos_id and tok.decode(data.train_ids[1:]) == "\n\n".join(_DOCS[:3])
    assert data.val_ids == tok.encode(_DOCS[3])
    assert [tok.decode(data.train_ids[d:d + 5]) for d in data.doc_starts] == [d[:5] for d in _DOCS[:3]]
    assert data.true_entropy == pytest.approx(50.0 / len(_DOCS[3]))
    with pytest.raises(ValueError, match="at least one training and one validation document"):
        lm_train.prepare_data(tok, _DOCS, [])


def test_lm_batches_are_shifted_windows_some_starting_a_document():
    tok = CharTokenizer.train(["\n\n".join(_DOCS)])
    data = lm_train.prepare_data(tok, _DOCS[:3], _DOCS[3:])
    stream = data.train_ids
    batches = lm_train.lm_batches(data, batch_size=64, block_size=12, seed=3, doc_start_fraction=0.5)
    x, y = next(batches)
    x, y = backend.to_numpy(x), backend.to_numpy(y)
    assert x.shape == y.shape == (64, 12) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets = inputs shifted left by one
    n_doc = 0
    for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
        window = row_x + row_y[-1:]
        if window[0] == tok.eos_id:  # <eos> + a document's first tokens
            assert any(window[1:] == stream[d:d + 12] for d in data.doc_starts)
            n_doc += 1
        else:  # a window of the stream
            assert any(window == stream[s:s + 13] for s in range(len(stream) - 12))
    assert 15 <= n_doc <= 50
    x2, _ = next(lm_train.lm_batches(data, batch_size=64, block_size=12, seed=3, doc_start_fraction=0.5))
    np.testing.assert_array_equal(backend.to_numpy(x2), x)  # seeded
    with pytest.raises(ValueError, match="a window of block_size=500 needs 501"):
        next(lm_train.lm_batches(data, batch_size=2, block_size=500))


def test_warmup_cosine_timed_follows_steps_or_clock():
    base = lm_train.warmup_cosine(1e-3, 10, 100, 1e-5)
    untimed = lm_train.warmup_cosine_timed(1e-3, 10, 100, 1e-5)
    assert [untimed(s) for s in range(1, 101)] == [base(s) for s in range(1, 101)]
    now = [0.0]
    timed = lm_train.warmup_cosine_timed(1e-3, 10, 10_000, 1e-5, time_limit=100.0, clock=lambda: now[0])
    assert timed(1) == pytest.approx(1e-4)  # warmup by steps
    assert timed(10) == pytest.approx(1e-3)
    now[0] = 5.0
    assert timed(11) == pytest.approx(1e-3, rel=1e-3)  # the cosine starts at t_w = 5 s
    now[0] = 5.0 + 95.0 / 2
    assert timed(12) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))  # half of the remaining time: half-way down
    now[0] = 200.0
    assert timed(13) == pytest.approx(1e-5)  # past the limit: min_lr


@pytest.fixture(scope="module")
def toy_run():
    """A small GPT trained on toy sentences (char tokenizer): seconds (a minute on a busy CPU)."""
    texts = [" ".join(["the cat sat on the mat.", "the dog lay on the rug.", "a cat saw a dog.",
                       "the bird sang in the tree."][(i + k) % 4] for k in range(3)) for i in range(40)]
    return lm_train.train_gpt(texts, tokenizer="char", size="small", steps=80, batch_size=8, block_size=32,
                              peak_lr=1e-2, warmup=10, seed=0, progress=False, eval_every=40, eval_tokens=200)


def test_trained_model_prefers_the_sentence_to_its_scramble(toy_run):
    run = toy_run
    good = score(run.model, run.tokenizer, "the cat sat on the mat.")
    bad = score(run.model, run.tokenizer, "mat the on sat cat the.")
    assert good.total_log_prob > bad.total_log_prob + 10.0
    assert good.perplexity < 2.0 < bad.perplexity


def test_train_gpt_metrics_and_history(toy_run):
    m = toy_run.metrics
    assert m["steps"] == 80 and m["stopped_by"] == "steps" and "true_entropy" not in m
    assert m["val_perplexity"] == pytest.approx(math.exp(m["val_loss"]))
    data_val = toy_run.history.evals
    assert [e["step"] for e in data_val] == [40, 80] and data_val[-1]["val_loss"] == m["val_loss"]
    assert toy_run.history.loss[-1] < toy_run.history.loss[0] / 3
    assert m["val_loss"] < 0.7  # the toy sentences are nearly deterministic
    assert not toy_run.model.training


def test_evaluate_lm_is_the_mean_score_of_the_held_out_text(toy_run):
    run = toy_run
    text = "the cat sat on the mat. the dog sat on the rug."
    data = lm_train.prepare_data(run.tokenizer, ["the cat sat."], [text])
    ev = lm_train.evaluate_lm(run.model, data)
    s = score(run.model, run.tokenizer, text)
    assert ev["val_loss"] == pytest.approx(-s.total_log_prob / s.n_tokens, rel=1e-12)
    assert ev["val_tokens"] == s.n_tokens


def test_save_and_load_a_run(toy_run, tmp_path):
    lm_train.save_gpt_run(toy_run, tmp_path / "run")
    loaded = lm_train.load_gpt_run(tmp_path / "run")
    assert loaded.tokenizer_kind == "char" and loaded.tokenizer.chars == toy_run.tokenizer.chars
    assert loaded.model.config == toy_run.model.config and not loaded.model.training
    a = score(toy_run.model, toy_run.tokenizer, "the dog sat.")
    b = score(loaded.model, loaded.tokenizer, "the dog sat.")
    assert a.log_probs == b.log_probs
    assert loaded.history.loss == toy_run.history.loss and loaded.metrics["val_loss"] == toy_run.metrics["val_loss"]
    again = lm_train.load_gpt_run(tmp_path / "run" / "checkpoint.npz")  # the .npz itself works too
    assert again.settings == toy_run.settings
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        lm_train.load_gpt_run(tmp_path / "missing")


def test_train_gpt_builtin_corpus_with_bpe_and_time_limit():
    run = lm_train.train_gpt(n_documents=60, val_documents=4, tokenizer="bpe", vocab_size=300, size="tiny",
                             steps=10_000, batch_size=4, block_size=32, time_limit=0.5, progress=False, seed=1)
    m = run.metrics
    assert m["stopped_by"] == "time_limit" and 1 <= m["steps"] < 10_000
    assert m["ratio_to_entropy"] == pytest.approx(m["val_loss"] / m["true_entropy"])
    assert m["true_entropy"] > 0 and run.tokenizer.vocab_size <= 300 and run.tokenizer_kind == "bpe"


@pytest.mark.parametrize("kwargs,match", [
    (dict(size="huge"), "unknown size 'huge'"),
    (dict(tokenizer="word"), "unknown tokenizer 'word'"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(block_size=1), "block_size must be an integer >= 2"),
    (dict(texts=["only one"]), "need at least 2 non-empty documents"),
    (dict(texts=["a b", "c d"], block_size=64), "the training text has 4 tokens"),
    (dict(corpus="wiki"), "unknown corpus 'wiki'"),
])
def test_train_gpt_bad_input(kwargs, match):
    kwargs = {"size": "tiny", "steps": 2, "tokenizer": "char", "n_documents": 10, "val_documents": 2,
              "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        lm_train.train_gpt(**kwargs)


def test_load_a_hugging_face_style_gpt2_folder(tmp_path):
    from minitransformer.tokenizers.bpe import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer.train(["the cat sat on the mat. " * 20], 280)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, max_len=16, d_model=16, n_heads=2, n_layers=1, d_ff=32,
                          dropout=0.0), seed=3)
    model.save_pretrained(tmp_path / "gpt2")
    tok.save(tmp_path / "gpt2")
    run = lm_train.load_gpt_run(tmp_path / "gpt2")
    assert run.tokenizer_kind == "gpt2" and run.tokenizer.vocab_size == tok.vocab_size
    a, b = score(model, tok, "the cat sat"), score(run.model, run.tokenizer, "the cat sat")
    np.testing.assert_allclose(a.log_probs, b.log_probs, rtol=1e-5, atol=1e-6)
    assert generate(run.model, run.tokenizer, "the", max_new_tokens=3, seed=0).stop_reason in ("max_new_tokens",
                                                                                               "eos")
