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
