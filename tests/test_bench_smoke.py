"""benchmarks/bench_vs_torch.py --quick runs end to end in seconds and prints the full table.

No timing is asserted (DESIGN: speed is measured in benchmarks/, never asserted in a test); this only
guards the script: both implementations build, agree, run, and every column of the table is filled.
"""


from tests.conftest import load_script, require


def _load():
    return load_script("benchmarks/bench_vs_torch.py")


def test_bench_quick_prints_every_column(capsys, tmp_path):
    require("torch")
    require("threadpoolctl")
    bench = _load()
    rc = bench.main(["--quick", "--config", "a,b", "--modes", "train", "--threads", "1", "--out-dir", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| config"))
    assert [c.strip() for c in header.strip("|").split("|")] == bench.COLUMNS
    for key in ("a", "b"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {key} "))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == len(bench.COLUMNS) and "-" not in cells[2:], row  # times, rates, memory all there
        assert float(cells[2]) > 0 and float(cells[3]) > 0
    assert "eval forward max|ours - torch|" in out and "blas:" in out and "loadavg" in out
    stem = tmp_path / "bench_vs_torch_threads1"  # --threads 1; the 2 threads write bench_vs_torch.*
    assert stem.with_suffix(".json").exists() and stem.with_suffix(".md").exists()


def test_bench_flops_count_matches_a_hand_count():
    bench = _load()
    spec = bench.spec_for("b", quick=False)
    d, d_ff, L, N, T, V = 512, 2048, 6, 16 * 128, 128, 4096
    per_layer = 2 * N * d * 3 * d + 2 * N * d * d + 2 * 2 * 16 * T * T * d + 2 * 2 * N * d * d_ff
    assert bench.matmul_flops(spec) == L * per_layer + 2 * N * d * V
