"""scripts/gpu_check.py is tried here, without a GPU, before a session spends device time on it.

``--dry-run`` lets NumPy play the GPU's part: the parity numbers are then trivially 0, so this test proves
the plumbing (every model builds, runs, moves with ``.to()``, and the JSON is written), not the GPU.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_writes_every_section(tmp_path):
    proc = subprocess.run(
        [sys.executable, "scripts/gpu_check.py", "--out", str(tmp_path), "--dry-run", "--skip", "tests,gradcheck",
         "--repeats", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert results["dry_run"] is True
    sections = results["sections"]
    assert set(sections) == {"versions", "parity", "gpt_step"}
    assert all(s["status"] == "ok" for s in sections.values()), sections
    rows = sections["parity"]["rows"]
    models = {r["model"] for r in rows}
    assert {"Transformer", "BertForPreTraining", "BertForQuestionAnswering", "GPT"} <= models
    assert {r["dtype"] for r in rows} == {"float32", "float64"}
    assert all(r["params"] > 10 and r["pass"] for r in rows)
    assert sections["gpt_step"]["ours_ms"] > 0
