"""benchmarks/matmul_vs_torch.py --quick records the linear layers' products and times them in seconds.

No timing is asserted (speed is measured in benchmarks/, never asserted in a test): this guards the
recording (every product of a step, each labelled by the line that computes it) and the sums.
"""

import json
import math

import pytest

from minitransformer import backend
from tests.conftest import load_script, require


def _script():
    require("torch")
    require("threadpoolctl")
    return load_script("benchmarks/matmul_vs_torch.py")


def test_a_gpt_training_step_records_every_linear_product_once():
    script = _script()
    spec = script.bench.spec_for("b", quick=True)
    matmul = backend.matmul
    mode, products = script.record_products(spec)
    assert backend.matmul is matmul  # the wrapper is gone again
    assert mode == "train"
    calls = {kind: sum(p["calls"] for p in products if p["kind"] == kind) for kind in script.CALLERS.values()}
    L, d, d_ff, N, V = spec["n_layers"], spec["d_model"], spec["d_ff"], spec["B"] * spec["T"], spec["vocab_size"]
    # per layer: the fused Q/K/V projection (one product forward, one dx and one dW backward), W_o, W_1, W_2;
    # then the tied output head
    assert calls == {kind: 4 * L + 1 for kind in script.CALLERS.values()}
    shapes = {(p["kind"], p["m"], p["k"], p["n"]) for p in products}
    forward = "forward y = x W"
    assert {(forward, N, d, 3 * d), (forward, N, d, d), (forward, N, d, d_ff), (forward, N, d_ff, d),
            (forward, N, d, V)} <= shapes
    assert ("backward dW = x^T dy", d, N, V) in shapes and ("backward dx = dy W^T", N, V, d) in shapes
    assert ("backward dx = dy W^T", N, 3 * d, d) in shapes and ("backward dW = x^T dy", d, N, 3 * d) in shapes
    head = next(p for p in products if p["kind"] == forward and p["n"] == V)
    assert head["b_layout"] == "T" and not head["bias"]  # h @ W_emb^T: the tied weight, transposed, no bias


def test_quick_run_writes_every_config_and_the_sums_add_up(tmp_path, capsys):
    script = _script()
    assert script.main(["--quick", "--threads", "1", "--out-dir", str(tmp_path), "--plot"]) == 0
    record = json.loads((tmp_path / "matmul_vs_torch_threads1.json").read_text(encoding="utf-8"))
    configs = {c["config"]: c for c in record["configs"]}
    assert set(configs) == {"a", "b", "c"}
    assert configs["c"]["mode"] == "forward" and {p["kind"] for p in configs["c"]["products"]} == {"forward y = x W"}
    for c in configs.values():
        for name in ("ours", "numpy", "torch"):
            total = sum(p["calls"] * p[f"{name}_s"] for p in c["products"])
            assert c[f"total_{name}_s"] == pytest.approx(total) and total > 0
        assert math.isclose(c["total_ratio"], c["total_ours_s"] / c["total_torch_s"])
        for name in ("ours", "torch"):  # the whole step = its linear matmuls + the rest
            assert c[f"step_{name}_s"] > 0
            assert math.isclose(c[f"total_{name}_s"] + c[f"rest_{name}_s"], c[f"step_{name}_s"])
    md = (tmp_path / "matmul_vs_torch_threads1.md").read_text(encoding="utf-8")
    assert md.count("One step's linear matmuls") == 3 and "| ours / torch |" in md
    assert md.count("Everything but the linear matmuls") == 3
    assert (tmp_path / "matmul_vs_torch_threads1.png").stat().st_size > 0
    assert "ours/torch" in capsys.readouterr().out


def test_bad_arguments_exit_with_a_message():
    script = _script()
    with pytest.raises(SystemExit):
        script.parse_args(["--repeats", "0"])
    with pytest.raises(SystemExit):
        script.parse_args(["--step-repeats", "0"])
