"""benchmarks/thread_scaling.py --quick runs end to end in seconds and writes its table.

No timing is asserted (speed is measured in benchmarks/, never asserted in a test): this guards the script.
"""

import json

from minitransformer import backend
from tests.conftest import load_script, require


def test_quick_run_fills_every_row_and_puts_the_block_size_back(tmp_path, capsys):
    require("threadpoolctl")
    script = load_script("benchmarks/thread_scaling.py")
    block = backend._HOST_BLOCK
    assert script.main(["--quick", "--out-dir", str(tmp_path)]) == 0
    assert backend._HOST_BLOCK == block
    result = json.loads((tmp_path / "thread_scaling.json").read_text(encoding="utf-8"))
    assert [r["entries"] for r in result["elementwise"]] == [4096, 65536]
    for r in result["elementwise"]:
        assert r["one_us_per_call"] > 0 and r["threads_speedup"] > 0 and r["processes_speedup"] > 0
    assert [r["block"] for r in result["gelu"]] == list(script.BLOCKS)
    assert all(r["ms_1_thread"] > 0 and r["ms_2_threads"] > 0 for r in result["gelu"])
    md = (tmp_path / "thread_scaling.md").read_text(encoding="utf-8")
    assert "| 65,536 |" in md and "speedup, 2 processes" in md
    assert "context switches per call" in capsys.readouterr().out
