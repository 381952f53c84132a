import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gradcheck import check_module
from minitransformer.models.gpt import GPT, GPTConfig
from minitransformer.nn.encoder import EncoderLayer
from minitransformer.nn.losses import cross_entropy_forward
from tests.conftest import assert_close


def tiny_config(**overrides):
    sizes = dict(vocab_size=11, max_len=8, d_model=4, n_heads=2, n_layers=2, d_ff=8, dropout=0.1)
    return GPTConfig(**{**sizes, **overrides})


def randomized(model, seed=300):
    """Every parameter redrawn N(0, 0.5) (LayerNorm gamma around 1): GPT-2's zero biases and unit gamma hide bugs."""
    rng = backend.host_rng(seed)
    for name, p in model.named_parameters():
        p.data[...] = backend.asarray(0.5 * rng.standard_normal(p.shape) + (name.endswith("gamma")), dtype=p.dtype)
    return model


IDS = [[1, 5, 7, 2, 5], [3, 3, 0, 9, 10]]  # (B, T) = (2, 5), repeated ids
TARGETS = [[5, 7, 2, 5, -100], [3, 0, 9, 10, 4]]  # next tokens, one ignored


class LossOf:
    """GPT.loss as a module output for check_module: forward = loss, backward() from it."""

    def __init__(self, model):
        self.model = model

    def forward(self, ids, targets):
        return self.model.loss(ids, targets)

    def backward(self, dloss):
        self.model.backward()

    def named_parameters(self):
        return self.model.named_parameters()

    def zero_grad(self):
        self.model.zero_grad()

    def modules(self):
        return self.model.modules()


def test_gpt_loss_gradcheck_every_parameter():
    model = randomized(GPT(tiny_config(), dtype="float64"))
    r = check_module(LossOf(model), (backend.asarray(IDS), backend.asarray(TARGETS)), wrt=())
    assert r.passed, r
    names = {n for n, _ in model.named_parameters()}
    assert set(r.errors) == names  # every parameter checked, the tied head once (as token_embedding.W)
    assert r.worst < 1e-6, r


def test_gpt_backward_of_given_dlogits_matches_loss_path():
    model = randomized(GPT(tiny_config(dropout=0.0), dtype="float64"))
    ids, targets = backend.asarray(IDS), backend.asarray(TARGETS)
    model.loss(ids, targets)
    model.backward()
    via_loss = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    logits = model(ids)
    _, ce = cross_entropy_forward(logits, targets)
    from minitransformer.nn.losses import cross_entropy_backward

    model.backward(cross_entropy_backward(1.0, ce))
    for n, p in model.named_parameters():
        assert_close(p.grad, via_loss[n], rtol=1e-12, err_msg=n)


def test_tied_head_gradient_adds_into_the_embedding():
    model = randomized(GPT(tiny_config(dropout=0.0), dtype="float64"))
    ids = backend.asarray(IDS)
    logits = model(ids)
    G = backend.asarray(np.random.default_rng(0).standard_normal(logits.shape))  # (B, T, vocab_size)
    model.backward(G)
    h = model.norm(model.layers[1](model.layers[0](model.position_embedding(model.token_embedding(ids)),
                                                   causal=True), causal=True))  # recomputed final states
    head = np.einsum("btv,btd->vd", backend.to_numpy(G), backend.to_numpy(h))  # the head's share of dW_emb
    assert float(np.abs(head).max()) > 0.1
    model.clear_cache()
    # the lookup's share is zero in rows of tokens that never occur: there only the head's share remains
    unused = sorted(set(range(11)) - set(np.array(IDS).ravel().tolist()))
    assert unused
    assert_close(model.token_embedding.W.grad[unused], head[unused], rtol=1e-12)


def test_gpt_matches_reference_loop():
    """Embeddings, a hand-written pre-LN causal block loop, final LayerNorm, tied head."""
    model = randomized(GPT(tiny_config(dropout=0.0, n_layers=1), dtype="float64"))
    ids = np.array(IDS)
    logits = backend.to_numpy(model(backend.asarray(ids)))
    sd = model.state_dict()

    def ln(x, g, b):
        mu = x.mean(-1, keepdims=True)
        return g * (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5) + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    p = "layers.0."
    for b in range(2):
        x = sd["token_embedding.W"][ids[b]] + sd["position_embedding.W"][:5]  # (T, d)
        n = ln(x, sd[p + "norm1.gamma"], sd[p + "norm1.beta"])
        heads = []
        for hd in range(2):
            cols = slice(2 * hd, 2 * hd + 2)
            Q = (n @ sd[p + "self_attn.W_q"] + sd[p + "self_attn.b_q"])[:, cols]
            K = (n @ sd[p + "self_attn.W_k"] + sd[p + "self_attn.b_k"])[:, cols]
            V = (n @ sd[p + "self_attn.W_v"] + sd[p + "self_attn.b_v"])[:, cols]
            out = np.zeros((5, 2))
            for i in range(5):
                s = np.array([Q[i] @ K[j] / np.sqrt(2) for j in range(i + 1)])  # only j <= i
                w = np.exp(s - s.max())
                out[i] = (w / w.sum()) @ V[: i + 1]
            heads.append(out)
        x = x + np.concatenate(heads, -1) @ sd[p + "self_attn.W_o"] + sd[p + "self_attn.b_o"]
        n = ln(x, sd[p + "norm2.gamma"], sd[p + "norm2.beta"])
        x = x + gelu(n @ sd[p + "ff.linear1.W"] + sd[p + "ff.linear1.b"]) @ sd[p + "ff.linear2.W"] + sd[
            p + "ff.linear2.b"]
        ref = ln(x, sd["norm.gamma"], sd["norm.beta"]) @ sd["token_embedding.W"].T
        assert_close(logits[b], ref, rtol=1e-10, atol=1e-12)


def test_causal_future_tokens_never_change_earlier_logits():
    model = randomized(GPT(tiny_config(), dtype="float64")).eval()
    ids = np.array(IDS)
    base = backend.to_numpy(model(backend.asarray(ids)))
    for t in range(5):
        changed = ids.copy()
        changed[:, t:] = (changed[:, t:] + 3) % 11
        out = backend.to_numpy(model(backend.asarray(changed)))
        assert_close(out[:, :t], base[:, :t], rtol=1e-13, atol=1e-14)
        assert float(np.abs(out[:, t] - base[:, t]).max()) > 1e-3  # the changed position did change


def test_float32_in_float32_out_and_loss_dtype():
    model = GPT(tiny_config())
    ids = backend.asarray(IDS)
    logits = model(ids)
    assert logits.dtype == np.float32 and logits.shape == (2, 5, 11)
    model.clear_cache()
    loss = model.loss(ids, backend.asarray(TARGETS))
    assert loss.dtype == np.float32 and loss.shape == ()
    model.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_grads_accumulate_over_two_backward_calls():
    model = GPT(tiny_config(dropout=0.0), dtype="float64")
    ids, targets = backend.asarray(IDS), backend.asarray(TARGETS)
    model.loss(ids, targets)
    model.backward()
    once = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.loss(ids, targets)
    model.backward()
    for n, p in model.named_parameters():
        assert_close(p.grad, 2 * once[n], rtol=1e-12, err_msg=n)


def test_backward_does_not_mutate_dlogits():
    model = GPT(tiny_config(), dtype="float64")
    logits = model(backend.asarray(IDS))
    G = backend.asarray(np.random.default_rng(1).standard_normal(logits.shape))
    G0 = G.copy()
    model.backward(G)
    assert_close(G, G0, rtol=0)


def test_uses_pre_ln_causal_encoder_layers_and_gpt2_init():
    model = GPT(tiny_config(n_layers=3), seed=5)
    assert all(isinstance(layer, EncoderLayer) and layer.norm_first for layer in model.layers)
    assert model.layers[0].ff.dropout.p == 0.0  # GPT-2 has no dropout on the FFN hidden layer
    assert float(np.abs(backend.to_numpy(model.layers[0].self_attn.b_q.data)).max()) == 0.0
    again = GPT(tiny_config(n_layers=3), seed=5)
    other = GPT(tiny_config(n_layers=3), seed=6)
    assert_close(again.token_embedding.W.data, model.token_embedding.W.data, rtol=0)
    assert float(np.abs(other.token_embedding.W.data - model.token_embedding.W.data).max()) > 0


def test_gpt2_small_has_124_439_808_parameters():
    config = GPTConfig.gpt2_small()
    assert config.num_parameters() == 124_439_808
    assert tiny_config().num_parameters() == GPT(tiny_config()).num_parameters()
    model = GPT(config)  # built once (~1 GB with gradients)
    assert model.num_parameters() == 124_439_808
    assert model.token_embedding.W.shape == (50257, 768)


def test_config_round_trip_and_bad_values():
    c = tiny_config()
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown keys \\['n_embd'\\]"):
        GPTConfig.from_dict({**c.to_dict(), "n_embd": 4})
    with pytest.raises(ValueError, match="d_model=6 must be divisible by n_heads=4"):
        tiny_config(d_model=6, n_heads=4)
    with pytest.raises(ValueError, match="activation must be one of"):
        tiny_config(activation="swish")
    with pytest.raises(ValueError, match="dropout must be in"):
        tiny_config(dropout=1.0)


def test_bad_input_errors():
    model = GPT(tiny_config())
    with pytest.raises(IndexError, match="token id 11 is out of range"):
        model(backend.asarray([[1, 11]]))
    with pytest.raises(ValueError, match="sequence length 9 exceeds max_len=8"):
        model(backend.asarray([[1] * 9]))
    with pytest.raises(ValueError, match="expected 2 axes"):
        model(backend.asarray([1, 2]))
    with pytest.raises(RuntimeError, match="before forward"):
        GPT(tiny_config()).backward()
    model(backend.asarray(IDS))
    with pytest.raises(RuntimeError, match="call loss\\(\\) first"):
        model.backward()
    model(backend.asarray(IDS))
    with pytest.raises(ValueError, match="dlogits must have shape"):
        model.backward(backend.asarray(np.zeros((2, 5, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="targets shape"):
        model.loss(backend.asarray(IDS), backend.asarray([[1, 2], [3, 4]]))


# -- GPT-2 folders (transformers parity: tests/parity/test_gpt2.py) -----------------------------------------


def _saved(tmp_path):
    from minitransformer.gpt2_weights import save_pretrained

    model = randomized(GPT(tiny_config(), dtype="float64"))
    return model, save_pretrained(model, tmp_path / "gpt")


def _rewrite(folder, edit_state=None, edit_config=None):
    """Change a saved folder's weights or config in place."""
    import json

    from minitransformer.pretrained import load_safetensors, save_safetensors

    if edit_state is not None:
        state = load_safetensors(folder / "model.safetensors")
        save_safetensors(edit_state(state), folder / "model.safetensors")
    if edit_config is not None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(edit_config(config)))


def test_save_and_load_round_trip_bit_for_bit(tmp_path):
    import json

    model, folder = _saved(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_embd"] == 4 and config["activation_function"] == "gelu_new"
    loaded = GPT.from_pretrained(folder, dtype="float64")
    assert loaded.config == model.config and not loaded.training
    for (name, p), q in zip(model.named_parameters(), loaded.parameters(), strict=True):
        assert np.array_equal(backend.to_numpy(p.data), backend.to_numpy(q.data)), name


def test_load_without_prefix_with_tied_head_and_mask_buffers(tmp_path):
    model, folder = _saved(tmp_path)

    def original_gpt2_names(state):
        state = {k.removeprefix("transformer."): v for k, v in state.items()}
        state["lm_head.weight"] = state["wte.weight"].copy()  # tied: equal
        state["h.0.attn.bias"] = np.tril(np.ones((1, 1, 8, 8)))  # an old checkpoint's causal-mask buffer
        state["h.1.attn.masked_bias"] = np.array(-1e4)
        return state

    _rewrite(folder, original_gpt2_names)
    loaded = GPT.from_pretrained(folder, dtype="float64")
    assert_close(loaded.layers[1].self_attn.W_v.data, model.layers[1].self_attn.W_v.data, rtol=0)


def test_strict_load_lists_missing_and_unexpected_keys(tmp_path):
    _, folder = _saved(tmp_path)

    def damage(state):
        del state["transformer.h.1.mlp.c_fc.bias"]
        del state["transformer.ln_f.weight"]
        state["transformer.h.0.attn.q_proj.weight"] = np.zeros((4, 4))
        return state

    _rewrite(folder, damage)
    with pytest.raises(ValueError, match=r"model.safetensors: checkpoint does not match GPT: missing keys "
                                         r"\['h.1.mlp.c_fc.bias', 'ln_f.weight'\], unexpected keys "
                                         r"\['transformer.h.0.attn.q_proj.weight'\]"):
        GPT.from_pretrained(folder)


def test_untied_head_and_wrong_shapes_refused(tmp_path):
    _, folder = _saved(tmp_path)

    def untie(state):
        state["lm_head.weight"] = state["transformer.wte.weight"] + 1.0
        state["transformer.h.0.attn.c_attn.weight"] = np.zeros((4, 8))
        return state

    _rewrite(folder, untie)
    with pytest.raises(ValueError, match=r"c_attn.weight': checkpoint has shape \(4, 8\), model expects \(4, 12\)"
                                         r".*'lm_head.weight' differs from wte.weight"):
        GPT.from_pretrained(folder)


@pytest.mark.parametrize(("change", "match"), [
    ({"model_type": "bert"}, "model_type='bert', not 'gpt2'"),
    ({"scale_attn_weights": False}, "scale_attn_weights=False"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings=False"),
    ({"activation_function": "swish"}, "activation_function='swish' is not one of"),
    ({"n_head": 3}, "d_model=4 must be divisible by n_heads=3"),
])
def test_bad_configs_refused_naming_the_file(tmp_path, change, match):
    _, folder = _saved(tmp_path)
    _rewrite(folder, edit_config=lambda c: {**c, **change})
    with pytest.raises(ValueError, match=f"config.json: .*{match}"):
        GPT.from_pretrained(folder)


def test_config_from_hf_defaults_and_names():
    from minitransformer.gpt2_weights import config_from_hf, hf_config

    c = config_from_hf({"model_type": "gpt2", "n_embd": 8, "n_head": 2, "n_layer": 1, "n_positions": 16,
                        "vocab_size": 20, "n_inner": None, "activation_function": "gelu_pytorch_tanh"})
    assert (c.d_model, c.n_heads, c.n_layers, c.max_len, c.vocab_size, c.d_ff) == (8, 2, 1, 16, 20, 32)
    assert c.activation == "gelu_tanh" and c.layer_norm_eps == 1e-5 and c.dropout == 0.1
    assert config_from_hf(hf_config(c)) == c
    assert config_from_hf({}) == GPTConfig.gpt2_small()  # GPT2Config's defaults are GPT-2 small


def test_pickle_only_folder_is_refused(tmp_path):
    _, folder = _saved(tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(ValueError, match="refusing to read a PyTorch pickle"):
        GPT.from_pretrained(folder)
