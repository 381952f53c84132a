"""benchmarks/soak.py runs end to end in a few seconds and writes its JSON, PNG and checkpoint.

The real soak (30 minutes) is run by hand and reported in docs/soak.md; this only guards the script.
"""

import json

import pytest

from tests.conftest import load_script, require


def _load_soak():
    return load_script("benchmarks/soak.py")


def test_soak_smoke_writes_json_png_and_checkpoint(tmp_path, capsys):
    require("matplotlib")
    require("threadpoolctl")
    soak = _load_soak()
    rc = soak.main(["--minutes", "0.05", "--every-minutes", "0.02", "--eval-size", "10", "--record-every", "1",
                    "--out", str(tmp_path)])
    assert rc == 0
    record = json.loads((tmp_path / "soak.json").read_text())
    assert {"date", "machine", "settings", "summary", "evals", "samples"} <= set(record)
    summary = record["summary"]
    for key in ("rss_start_mb", "rss_after_warmup_mb", "rss_end_mb", "rss_slope_mb_per_10min",
                "loss_mean_last_third", "exact_match"):
        assert key in summary, key
    assert summary["steps"] >= 1 and summary["rss_end_mb"] > 0
    assert len(record["evals"]) >= 1 and len(summary["exact_match"]) == len(record["evals"])
    assert {"step", "elapsed_s", "loss", "rss_mb"} <= set(record["samples"][-1])
    steps = [s["step"] for s in record["samples"]]
    assert steps == sorted(steps)
    png = (tmp_path / "soak_memory.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "checkpoint.npz").exists()
    assert "RSS" in capsys.readouterr().out


def test_slope_per_10min_is_exact_on_a_line():
    soak = _load_soak()
    t = [0.0, 60.0, 120.0, 300.0]
    assert soak.slope_per_10min(t, [5.0 + 0.01 * x for x in t]) == pytest.approx(6.0)
    assert soak.slope_per_10min(t, [7.0] * 4) == 0.0
    assert soak.slope_per_10min([1.0], [2.0]) != soak.slope_per_10min([1.0], [2.0])  # nan under 2 points
