"""benchmarks/pretrain_variants.py: the summary of the committed 10-minute pre-training runs, and its plot."""

import json

import pytest

from tests.conftest import load_script

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load():
    return load_script("benchmarks/pretrain_variants.py")


def _record(settings, nsp=0.7, steps=100, seed=None):
    r = {"settings": {"max_len": 64, **settings}, "steps": steps, "met": nsp >= 0.9,
         "held_out": {"mlm_accuracy": 0.5, "nsp_accuracy": nsp},
         "evals": [{"step": 50, "nsp_accuracy": 0.6}, {"step": steps, "nsp_accuracy": nsp}]}
    if seed is not None:
        r["seed"] = seed
    return r


def test_describe_names_only_what_differs_from_the_gelu_cosine_recipe():
    describe = _load().describe
    assert describe(_record({})) == "GELU, init 0.02, cosine"
    assert describe(_record({"hidden_act": "relu", "initializer_range": 0.05, "decay_fraction": 0.3})) == \
        "relu, init 0.05, wsd 0.3"
    assert describe(_record({"max_len": 96, "nsp_weight": 3})) == "max_len 96, nsp_weight 3"
    assert describe(_record({"weight_decay": 0.1, "batch_size": 16})) == "weight decay 0.1, batch 16"
    assert describe(_record({"weight_decay": 0.01, "batch_size": 32})) == "GELU, init 0.02, cosine"  # the defaults


def test_seed_from_the_record_or_the_file_name():
    seed_of = _load().seed_of
    assert seed_of("anything", _record({}, seed=4)) == 4
    assert seed_of("final_seed2", _record({})) == 2
    assert seed_of("relu_i05wsd", _record({})) == 0


def test_main_prints_a_row_per_run_and_writes_the_plot(tmp_path, capsys):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "a_seed1.json").write_text(json.dumps(_record({"hidden_act": "relu"}, nsp=0.95, steps=8000)))
    (folder / "b.json").write_text(json.dumps(_record({}, nsp=0.72, steps=7000)))
    out = tmp_path / "plot.png"
    assert _load().main(["--folder", str(folder), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "a_seed1" in text and "8,000" in text and "0.950  True" in text and "0.720  False" in text
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_the_committed_runs_are_summarised(capsys, tmp_path):
    assert _load().main(["--out", str(tmp_path / "p.png")]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]  # between the header and "written ..."
    recipe = [row for row in rows if "relu, init 0.05, wsd 0.3 " in row]
    assert len(rows) >= 10 and len(recipe) >= 3  # the recipe with three seeds, and the variants around it
    assert any(row.endswith("True") for row in recipe) and any(row.endswith("False") for row in recipe)


def test_an_empty_folder_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as e:
        _load().main(["--folder", str(tmp_path), "--out", str(tmp_path / "p.png")])
    assert e.value.code == 2
