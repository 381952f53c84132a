import json
import math

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.nn.layernorm import LayerNorm
from minitransformer.nn.linear import Linear
from minitransformer.nn.module import Module, Parameter
from minitransformer.optim import (
    SGD,
    Adam,
    AdamW,
    clip_grad_norm,
    constant,
    decay_groups,
    noam,
    set_lr,
    warmup_cosine,
)
from tests.conftest import assert_close, require


def param(values, dtype="float64"):
    return Parameter(backend.asarray(values, dtype=dtype))


def host(p):
    return backend.to_numpy(p.data)


def run(opt, p, grads):
    """Set p.grad to each gradient in turn and step; returns the host values after each step."""
    out = []
    for g in grads:
        p.grad[...] = backend.asarray(g, dtype=p.dtype)
        opt.step()
        out.append(host(p).copy())
    return out


G = [[0.5, 1.0], [-1.0, 0.25], [0.2, -0.4]]  # three gradients for a 2-element parameter p0 = [1, -2]


# -- hand-computed steps ---------------------------------------------------------


def test_sgd_plain_with_weight_decay_by_hand():
    p = param([1.0, -2.0])
    out = run(SGD([p], lr=0.1, weight_decay=0.5), p, G[:2])
    # step 1: g = [0.5, 1] + 0.5 * [1, -2] = [1, 0]                       p = [0.9, -2]
    # step 2: g = [-1, 0.25] + 0.5 * [0.9, -2] = [-0.55, -0.75]            p = [0.955, -1.925]
    assert_close(out[0], [0.9, -2.0], rtol=1e-12)
    assert_close(out[1], [0.955, -1.925], rtol=1e-12)


def test_sgd_momentum_by_hand():
    p = param([1.0, -2.0])
    out = run(SGD([p], lr=0.1, momentum=0.9), p, G)
    # step 1: buf = g1 = [0.5, 1]                                         p = [0.95, -2.1]
    # step 2: buf = 0.9 * [0.5, 1] + [-1, 0.25] = [-0.55, 1.15]           p = [1.005, -2.215]
    # step 3: buf = 0.9 * [-0.55, 1.15] + [0.2, -0.4] = [-0.295, 0.635]   p = [1.0345, -2.2785]
    assert_close(out[0], [0.95, -2.1], rtol=1e-12)
    assert_close(out[1], [1.005, -2.215], rtol=1e-12)
    assert_close(out[2], [1.0345, -2.2785], rtol=1e-12)


def test_sgd_nesterov_by_hand():
    p = param([1.0, -2.0])
    out = run(SGD([p], lr=0.1, momentum=0.9, nesterov=True), p, G[:2])
    # step 1: buf = [0.5, 1], g = g1 + 0.9 * buf = [0.95, 1.9]            p = [0.905, -2.19]
    # step 2: buf = [-0.55, 1.15], g = [-1, 0.25] + 0.9 * buf = [-1.495, 1.285]
    #                                                                     p = [1.0545, -2.3185]
    assert_close(out[0], [0.905, -2.19], rtol=1e-12)
    assert_close(out[1], [1.0545, -2.3185], rtol=1e-12)


def adam_textbook(p0, grads, lr, beta1, beta2, eps, weight_decay=0.0, decoupled=False):
    """Kingma & Ba Algorithm 1 on one scalar (m_hat / v_hat form); AdamW decays p first."""
    p, m, v, out = p0, 0.0, 0.0, []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(p)
    return out


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_first_step_moves_by_lr_times_sign(cls):
    # m_hat = g and v_hat = g^2 on step 1, so the step is lr * g / (|g| + eps)
    p = param([1.0, -2.0])
    run(cls([p], lr=0.1, weight_decay=0.0), p, G[:1])
    assert_close(host(p), [1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 - 0.1 * 1.0 / (1.0 + 1e-8)], rtol=1e-14)
    assert_close(host(p), [0.9, -2.1], rtol=1e-7)


@pytest.mark.parametrize(("cls", "decoupled"), [(Adam, False), (AdamW, True)])
def test_adam_and_adamw_three_steps_by_formula(cls, decoupled):
    p = param([1.0, -2.0])
    out = run(cls([p], lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3), p, G)
    for i, p0 in enumerate([1.0, -2.0]):
        ref = adam_textbook(p0, [g[i] for g in G], 0.1, 0.8, 0.99, 1e-6, 0.3, decoupled)
        for step in range(3):
            assert abs(out[step][i] - ref[step]) < 1e-13, (step, i, out[step][i], ref[step])


def test_adamw_decay_is_decoupled():
    # zero gradient: Adam's L2 makes g = wd * p, so its first step is lr * sign(p) (about 0.1);
    # AdamW only shrinks p by lr * wd * p and the Adam part sees g = 0 (m = 0, no move)
    pa, pw = param([1.0, -2.0]), param([1.0, -2.0])
    run(Adam([pa], lr=0.1, weight_decay=0.5), pa, [[0.0, 0.0]])
    run(AdamW([pw], lr=0.1, weight_decay=0.5), pw, [[0.0, 0.0]])
    assert_close(host(pw), [1.0 * (1 - 0.05), -2.0 * (1 - 0.05)], rtol=1e-15)
    assert_close(host(pa), [0.9, -1.9], rtol=1e-7)


def test_step_does_not_modify_grads():
    p = param([1.0, -2.0])
    for opt in (SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), Adam([p], weight_decay=0.1), AdamW([p])):
        p.grad[...] = backend.asarray([0.5, 1.0])
        opt.step()
        assert_close(p.grad, [0.5, 1.0], rtol=0)


def test_step_count_and_zero_grad():
    p = param([1.0, -2.0])
    opt = Adam([p])
    run(opt, p, G)
    assert opt.step_count == 3
    opt.zero_grad()
    assert float(abs(p.grad).max()) == 0.0


# -- torch parity ---------------------------------------------------------------


def _torch_parity(make_ours, make_theirs, steps=20, rtol=1e-12):
    torch = require("torch")
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((2, 2))]
    ours = [param(a) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt, ref = make_ours(ours), make_theirs(torch, theirs)
    for step in range(1, steps + 1):
        lr = 0.05 / math.sqrt(step)  # a changing learning rate, set the same way on both
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        for g in ref.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        for p, t in zip(ours, theirs, strict=True):
            grad = rng.standard_normal(t.shape)
            p.grad[...] = backend.asarray(grad)
            t.grad = torch.tensor(grad)
        opt.step()
        ref.step()
        for p, t in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(host(p), t.detach().numpy(), rtol=rtol, atol=1e-14, err_msg=f"step {step}")


def _groups(ps):
    """Two groups with their own weight decay and a learning-rate scale."""
    return [{"params": ps[:2], "weight_decay": 0.1, "lr_scale": 1.0}, {"params": ps[2:], "lr_scale": 2.0}]


@pytest.mark.torch
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_torch_parity(nesterov):
    _torch_parity(lambda ps: SGD(_groups(ps), lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov),
                  lambda torch, ts: torch.optim.SGD(_groups(ts), lr=0.1, momentum=0.9, weight_decay=0.01,
                                                    nesterov=nesterov))


@pytest.mark.torch
def test_adam_torch_parity():
    _torch_parity(lambda ps: Adam(_groups(ps), lr=0.1, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.02),
                  lambda torch, ts: torch.optim.Adam(_groups(ts), lr=0.1, betas=(0.8, 0.95), eps=1e-6,
                                                     weight_decay=0.02))


@pytest.mark.torch
def test_adamw_torch_parity():
    _torch_parity(lambda ps: AdamW(_groups(ps), lr=0.1, weight_decay=0.05),
                  lambda torch, ts: torch.optim.AdamW(_groups(ts), lr=0.1, weight_decay=0.05))


# -- decay groups, dtypes, learning rates ------------------------------------------


class Tiny(Module):
    def __init__(self):
        super().__init__()
        self.proj = Linear(4, 3)
        self.norm = LayerNorm(3)


def test_decay_groups_skips_biases_and_layernorm():
    model = Tiny()
    decay, no_decay = decay_groups(model, weight_decay=0.1)
    assert [id(p) for p in decay["params"]] == [id(model.proj.W)]
    assert {id(p) for p in no_decay["params"]} == {id(model.proj.b), id(model.norm.gamma), id(model.norm.beta)}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    # also from named parameters, and AdamW really leaves the no-decay group alone
    groups = decay_groups(model.named_parameters(), weight_decay=0.5)
    opt = AdamW(groups, lr=0.1)
    gamma0, W0 = host(model.norm.gamma).copy(), host(model.proj.W).copy()
    opt.step()  # zero gradients: only decay moves anything
    np.testing.assert_array_equal(host(model.norm.gamma), gamma0)
    assert_close(host(model.proj.W), W0 * np.float32(1 - 0.05), rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=np.float64(0.1), momentum=np.float64(0.9), weight_decay=np.float64(0.01), nesterov=True),
    lambda ps: Adam(ps, lr=np.float64(0.1), weight_decay=np.float64(0.01)),
    lambda ps: AdamW(ps, lr=np.float64(0.1), betas=(np.float64(0.9), np.float64(0.99))),
])
def test_float32_params_keep_float32_state(make):
    rng = np.random.default_rng(0)
    ps = [param(rng.standard_normal((3, 2)), "float32"), param(rng.standard_normal(2), "float32")]
    opt = make(ps)  # NumPy float64 hyperparameters must not leak into the arithmetic
    for _ in range(3):
        for p in ps:
            p.grad[...] = backend.asarray(rng.standard_normal(p.shape), dtype="float32")
        opt.step()
    for g in opt.param_groups:
        assert all(type(g[k]) is float for k in ("lr", "weight_decay")), g
    for p, s in zip(ps, opt.state, strict=True):
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
        assert s, "no state after three steps"
        for a in s.values():
            assert a.dtype == np.float32, a.dtype
            assert type(a) is type(p.data)  # state on the parameter's backend


def test_sgd_float32_update_is_computed_in_float32():
    # bit-exact against the same formula in float32 arithmetic: a float64 detour would round differently
    rng = np.random.default_rng(3)
    x = rng.standard_normal(1000).astype(np.float32)
    p = param(x.copy(), "float32")  # a copy: on NumPy, asarray would share x with p.data
    opt = SGD([p], lr=np.float64(0.1), momentum=0.9)
    buf = None
    for _ in range(3):
        g = rng.standard_normal(1000).astype(np.float32)
        p.grad[...] = backend.asarray(g)
        opt.step()
        buf = g.copy() if buf is None else np.float32(0.9) * buf + g
        x = x - np.float32(0.1) * buf
    assert x.dtype == np.float32
    np.testing.assert_array_equal(host(p), x)


def test_lr_settable_per_group_and_set_lr():
    a, b = param([1.0]), param([1.0])
    opt = SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    a.grad[...] = 1.0
    b.grad[...] = 1.0
    opt.step()
    assert_close(host(a), [0.5])
    assert_close(host(b), [0.9])
    opt.param_groups[1]["lr"] = 0.2
    opt.step()
    assert_close(host(b), [0.7])
    set_lr(opt, 0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01]
    opt.set_lr(0.02)
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.02]


def test_bad_optimizer_arguments():
    p = param([1.0, 2.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="appears twice"):
        Adam([p, p])
    with pytest.raises(TypeError, match="model.parameters"):
        Adam(Tiny())
    with pytest.raises(TypeError, match="Parameter objects, got ndarray"):
        Adam([np.zeros(2)])
    with pytest.raises(ValueError, match="lr must be a finite number >= 0, got -1.0"):
        SGD([p], lr=-1.0)
    with pytest.raises(ValueError, match="betas must be two numbers in \\[0, 1\\), got \\(0.9, 1.0\\)"):
        Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="'params'"):
        Adam([{"lr": 0.1}])
    with pytest.raises(TypeError, match="not a mix"):
        Adam([{"params": [p]}, param([1.0])])


# -- state_dict ------------------------------------------------------------------------


def _make_params(seed):
    rng = np.random.default_rng(seed)
    return [param(rng.standard_normal((3, 4)), "float32"), param(rng.standard_normal(4), "float32")]


def _steps(opt, ps, rng, n):
    for _ in range(n):
        for p in ps:
            p.grad[...] = backend.asarray(rng.standard_normal(p.shape), dtype="float32")
        opt.step()


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
    lambda ps: AdamW(decay_groups([("W", ps[0]), ("b", ps[1])], 0.1), lr=0.01),
])
def test_state_dict_round_trip_is_bit_exact(make):
    ps = _make_params(0)
    opt = make(ps)
    _steps(opt, ps, np.random.default_rng(1), 5)
    state = opt.state_dict()
    assert all(isinstance(a, np.ndarray) for a in state["arrays"].values())
    scalars = json.loads(json.dumps(state["scalars"]))  # JSON-able, as a checkpoint stores it
    arrays = {k: a.copy() for k, a in state["arrays"].items()}

    ps2 = [param(host(p).copy(), "float32") for p in ps]
    opt2 = make(ps2)
    opt2.load_state_dict({"arrays": arrays, "scalars": scalars})
    assert opt2.step_count == 5
    _steps(opt, ps, np.random.default_rng(2), 5)  # uninterrupted
    _steps(opt2, ps2, np.random.default_rng(2), 5)  # resumed
    for p, p2 in zip(ps, ps2, strict=True):
        np.testing.assert_array_equal(host(p2), host(p))
    for k, a in state["arrays"].items():  # loading copied: the resumed run did not write into our dict
        np.testing.assert_array_equal(arrays[k], a)


def test_load_state_dict_mismatch_errors():
    ps = _make_params(0)
    opt = Adam(ps)
    _steps(opt, ps, np.random.default_rng(1), 1)
    state = opt.state_dict()
    with pytest.raises(ValueError, match="state is for 'Adam', this optimizer is 'SGD'"):
        SGD(ps, lr=0.1, momentum=0.9).load_state_dict(state)
    with pytest.raises(ValueError, match="groups of sizes \\[2\\], this optimizer has \\[1\\]"):
        Adam(ps[:1]).load_state_dict(state)
    swapped = [ps[1], ps[0]]
    fresh = Adam(swapped)
    with pytest.raises(ValueError, match="'0.exp_avg' has shape \\(3, 4\\), parameter has \\(4,\\)"):
        fresh.load_state_dict(state)
    assert fresh.step_count == 0 and fresh.state == [{}, {}]  # nothing changed


# -- schedules -------------------------------------------------------------------------


def test_noam_matches_paper_formula():
    s = noam(d_model=512, warmup=4000)
    assert s(1) == pytest.approx(512**-0.5 * 4000**-1.5, rel=1e-15)
    assert s(4000) == pytest.approx(1.0 / math.sqrt(512 * 4000), rel=1e-15)  # the peak: both terms equal
    assert s(16000) == pytest.approx(512**-0.5 / 126.49110640673517, rel=1e-15)  # 16000^-0.5
    assert s(2000) == pytest.approx(0.5 * s(4000), rel=1e-12)  # linear warmup
    assert s(16000) == pytest.approx(0.5 * s(4000), rel=1e-12)  # 1/sqrt decay
    assert max(s(t) for t in range(1, 20000, 7)) <= s(4000)
    assert noam(64, 10, factor=2.0)(5) == pytest.approx(2.0 * 64**-0.5 * 5 * 10**-1.5, rel=1e-15)


@pytest.mark.torch
def test_noam_matches_torch_lambda_lr():
    torch = require("torch")
    s = noam(d_model=32, warmup=10, factor=2.0)
    t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([t], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lambda epoch: s(epoch + 1))  # torch counts from 0
    for step in range(1, 40):
        assert opt.param_groups[0]["lr"] == pytest.approx(s(step), rel=1e-15), step
        opt.step()
        sched.step()


def test_warmup_cosine_values():
    s = warmup_cosine(peak_lr=1e-3, warmup=10, total=110, min_lr=1e-5)
    assert s(1) == pytest.approx(1e-4, rel=1e-15)
    assert s(5) == pytest.approx(5e-4, rel=1e-15)
    assert s(10) == pytest.approx(1e-3, rel=1e-15)
    assert s(60) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-12)  # halfway: cos(pi/2) = 0
    assert s(35) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi / 4)), rel=1e-12)
    assert s(110) == pytest.approx(1e-5, rel=1e-12)
    assert s(500) == pytest.approx(1e-5, rel=1e-12)
    assert warmup_cosine(1.0, 0, 4)(2) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)), abs=1e-15)


def test_constant_and_bad_steps():
    assert constant(3e-4)(1) == 3e-4 and constant(3e-4)(10**6) == 3e-4
    for s in (noam(8, 4), warmup_cosine(1.0, 2, 10), constant(1.0)):
        with pytest.raises(ValueError, match="counted from 1, got step 0"):
            s(0)
    with pytest.raises(ValueError, match="warmup < total"):
        warmup_cosine(1.0, 10, 10)
    with pytest.raises(ValueError, match="warmup >= 1"):
        noam(8, 0)


# -- gradient clipping -------------------------------------------------------------------


def _grads(seed, dtype="float64"):
    rng = np.random.default_rng(seed)
    ps = [param(np.zeros((3, 4)), dtype), param(np.zeros(5), dtype)]
    for p in ps:
        p.grad[...] = backend.asarray(rng.standard_normal(p.shape), dtype=dtype)
    return ps


def test_clip_grad_norm_by_hand():
    p = param([0.0, 0.0])
    p.grad[...] = backend.asarray([3.0, 4.0])
    assert clip_grad_norm([p], max_norm=10.0) == 5.0
    assert_close(p.grad, [3.0, 4.0], rtol=0)  # below the limit: untouched
    assert clip_grad_norm([p], max_norm=1.0) == 5.0
    assert_close(p.grad, [3.0 / (5.0 + 1e-6), 4.0 / (5.0 + 1e-6)], rtol=1e-15)


@pytest.mark.torch
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_torch_parity(max_norm):
    torch = require("torch")
    ps = _grads(0)
    ts = [torch.zeros(p.shape, dtype=torch.float64, requires_grad=True) for p in ps]
    for p, t in zip(ps, ts, strict=True):
        t.grad = torch.tensor(backend.to_numpy(p.grad))
    total = clip_grad_norm(ps, max_norm)
    ref = torch.nn.utils.clip_grad_norm_(ts, max_norm)
    assert isinstance(total, float)
    assert total == pytest.approx(float(ref), rel=1e-14)
    for p, t in zip(ps, ts, strict=True):
        np.testing.assert_allclose(backend.to_numpy(p.grad), t.grad.numpy(), rtol=1e-14)


def test_clip_grad_norm_float32_and_non_finite():
    ps = _grads(1, "float32")
    clip_grad_norm(ps, 0.1)
    assert all(p.grad.dtype == np.float32 for p in ps)
    ps[1].grad[2] = float("nan")
    before = [backend.to_numpy(p.grad).copy() for p in ps]
    assert math.isnan(clip_grad_norm(ps, 0.1))  # returned for the trainer to act on
    for p, b in zip(ps, before, strict=True):
        np.testing.assert_array_equal(backend.to_numpy(p.grad), b)  # grads untouched
    ps[1].grad[2] = float("inf")
    before = [backend.to_numpy(p.grad).copy() for p in ps]
    assert clip_grad_norm(ps, 0.1) == float("inf")
    for p, b in zip(ps, before, strict=True):
        np.testing.assert_array_equal(backend.to_numpy(p.grad), b)  # not scaled by 0 (inf * 0 = nan)
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0, got 0"):
        clip_grad_norm(ps, 0)


@pytest.mark.torch
@pytest.mark.parametrize("make", ["adam", "adamw"])
def test_adam_update_in_blocks_matches_torch(monkeypatch, make):
    """Adam's update runs on blocks of ``backend.block_size`` entries (65,536 on the host, more than any
    parameter above has): blocks of 5 here, so the (3, 4) matrix is 5 + 5 + 2 entries, and every block boundary
    and the ragged last block are crossed; still torch's numbers."""
    monkeypatch.setattr(backend, "_HOST_BLOCK", 5)
    if make == "adam":
        _torch_parity(lambda ps: Adam(_groups(ps), lr=0.1, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.02),
                      lambda torch, ts: torch.optim.Adam(_groups(ts), lr=0.1, betas=(0.8, 0.95), eps=1e-6,
                                                         weight_decay=0.02))
    else:
        _torch_parity(lambda ps: AdamW(_groups(ps), lr=0.1, weight_decay=0.05),
                      lambda torch, ts: torch.optim.AdamW(_groups(ts), lr=0.1, weight_decay=0.05))


def test_adam_blocks_are_bit_identical_to_one_block(monkeypatch):
    """Blocking changes where each pass runs, not what it computes: the same bits as one whole-array block."""
    rng = np.random.default_rng(3)
    init, grads = rng.standard_normal((7, 9)), [rng.standard_normal((7, 9)) for _ in range(4)]
    out = {}
    for block in (4, 10**6):
        monkeypatch.setattr(backend, "_HOST_BLOCK", block)
        p = param(init)
        opt = AdamW([p], lr=0.05, weight_decay=0.1)
        for g in grads:
            p.grad[...] = backend.asarray(g)
            opt.step()
        out[block] = host(p)
    np.testing.assert_array_equal(out[4], out[10**6])
