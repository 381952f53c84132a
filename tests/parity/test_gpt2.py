"""Our GPT against transformers' GPT2LMHeadModel: folders both ways, logits, loss and every parameter gradient.

Models are built from a small random GPT2Config and saved to a temporary folder: no download.
"""

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.gpt2_weights import ours_to_hf
from minitransformer.gradcheck import rel_error
from minitransformer.models.gpt import GPT, GPTConfig
from tests.conftest import require

pytestmark = pytest.mark.torch

SIZES = dict(n_embd=64, n_head=4, n_layer=2, vocab_size=300, n_positions=64)
BOUND = {"float32": 1e-5, "float64": 1e-12}


def _libs():
    torch = require("torch")
    transformers = require("transformers")
    torch.set_num_threads(1)
    return torch, transformers


def _hf_model(torch, transformers, dtype="float32", dropout=0.1):
    """A GPT2LMHeadModel with every parameter random (GPT-2 starts biases at 0 and LayerNorms at 1)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(**SIZES, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                                     bos_token_id=299, eos_token_id=299)
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for p in model.parameters():  # wte is also lm_head: tied, one tensor
            p.add_(0.1 * torch.randn_like(p))
    return model.to(getattr(torch, dtype)).eval()


def _ids(B=2, T=20, seed=0):
    return np.random.default_rng(seed).integers(0, SIZES["vocab_size"], (B, T))


def _hf_logits(torch, hf, ids):
    with torch.no_grad():
        return hf(torch.as_tensor(ids)).logits.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_transformers_folder_loads_with_equal_logits(tmp_path, dtype):
    torch, transformers = _libs()
    hf = _hf_model(torch, transformers, dtype)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path, dtype=dtype)
    assert not ours.training and ours.token_embedding.W.dtype == np.dtype(dtype)
    ids = _ids()
    logits = backend.to_numpy(ours(backend.asarray(ids)))
    err = rel_error(logits, _hf_logits(torch, hf, ids))
    print(f"GPT-2 folder -> ours, {dtype}: logits rel error {err:.1e}")
    assert logits.dtype == np.dtype(dtype)
    assert err < BOUND[dtype], err
    assert float(np.abs(logits - _hf_logits(torch, hf, ids)).max()) < 1e-5


def test_our_folder_loads_in_transformers_with_equal_logits(tmp_path):
    torch, transformers = _libs()
    config = GPTConfig(vocab_size=300, max_len=64, d_model=64, n_heads=4, n_layers=2, d_ff=256)
    ours = GPT(config, dtype="float64", seed=1).eval()
    rng = backend.host_rng(2)
    for p in ours.parameters():
        p.data[...] += backend.asarray(0.1 * rng.standard_normal(p.shape))
    ours.save_pretrained(tmp_path)
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True,
                                                            dtype=torch.float64)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ids = _ids(seed=3)
    err = rel_error(backend.to_numpy(ours(backend.asarray(ids))), _hf_logits(torch, hf.eval(), ids))
    print(f"ours -> GPT-2 folder -> transformers, float64: logits rel error {err:.1e}")
    assert err < 1e-12, err
    again = GPT.from_pretrained(tmp_path, dtype="float64")  # and back into ours: bit for bit
    for (name, p), q in zip(ours.named_parameters(), again.parameters(), strict=True):
        assert np.array_equal(backend.to_numpy(p.data), backend.to_numpy(q.data)), name


def test_loss_and_every_parameter_gradient_match_torch(tmp_path):
    torch, transformers = _libs()
    hf = _hf_model(torch, transformers, "float64", dropout=0.0)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path, dtype="float64").train()
    ids = _ids(T=12, seed=4)
    targets = np.roll(ids, -1, axis=1)
    targets[:, -1] = -100  # the last position has no next token
    targets[1, 3] = -100
    loss = ours.loss(backend.asarray(ids), backend.asarray(targets))
    ours.backward()
    hf.train()
    logits = hf(torch.as_tensor(ids)).logits
    t_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, SIZES["vocab_size"]),
                                               torch.as_tensor(targets).reshape(-1), ignore_index=-100)
    t_loss.backward()
    assert abs(float(loss) - t_loss.item()) < 1e-12 * abs(t_loss.item())
    grads = ours_to_hf({n: p.grad for n, p in ours.named_parameters()}, ours.config.n_layers)
    t_grads = {n: p.grad.numpy() for n, p in hf.named_parameters()}  # lm_head is wte: listed once
    assert set(grads) == set(t_grads)
    worst = max((rel_error(grads[n], t_grads[n]), n) for n in grads)
    print(f"GPT-2 gradients, float64: worst rel error {worst[0]:.1e} ({worst[1]})")
    assert worst[0] < 1e-10, worst
