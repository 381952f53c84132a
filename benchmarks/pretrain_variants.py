"""Summarise and plot the 10-minute pre-training variants (issue 6's NSP target).

    python benchmarks/pretrain_variants.py        # reads benchmarks/results/pretrain_variants/*.json

Each JSON there was written by ``benchmarks/pretrain_target.py`` (10 minutes, 1 BLAS thread, two runs at a
time, one per core) with the ``--seed`` and ``--set`` options its "settings" record; the name of the file is
only a label. The script prints one table row per run and draws held-out NSP accuracy against step for
all of them: ``benchmarks/results/pretrain_variants.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minitransformer.viz import save_figure

HERE = Path(__file__).resolve().parent / "results"

# (setting, its value in BERT's GELU / init 0.02 / cosine recipe at lr 4e-3, how another value is named)
NAMED = (("hidden_act", "gelu", "{}"), ("initializer_range", 0.02, "init {}"), ("decay_fraction", 1.0, "wsd {}"),
         ("lr", 4e-3, "lr {:g}"), ("warmup", 200, "warmup {}"), ("max_len", 64, "max_len {}"),
         ("nsp_weight", 1.0, "nsp_weight {}"), ("weight_decay", 0.01, "weight decay {:g}"),
         ("batch_size", 32, "batch {}"))


def describe(record: dict) -> str:
    """The settings that differ from BERT's GELU / init 0.02 / cosine at lr 4e-3, e.g. 'relu, init 0.05, wsd 0.3'."""
    s = record["settings"]
    parts = [name.format(s[key]) for key, default, name in NAMED if s.get(key, default) != default]
    if record.get("documents", 4000) != 4000:
        parts.append(f"{record['documents']:,} documents")
    small = {"hidden_size": (64, "hidden"), "num_hidden_layers": (2, "layers"),
             "num_attention_heads": (4, "heads"), "intermediate_size": (256, "d_ff")}  # SIZES["small"]
    parts += [f"{record['model'][key]} {short}" for key, (value, short) in small.items()
              if record.get("model", {}).get(key, value) != value]
    return ", ".join(parts) or "GELU, init 0.02, cosine"


def seed_of(name: str, record: dict) -> int:
    """The training seed: recorded by pretrain_target.py since 11-29; older files name it (``..._seed2``), else 0."""
    if "seed" in record:
        return int(record["seed"])
    return int(name.rsplit("_seed", 1)[1]) if "_seed" in name else 0


def load(folder: Path) -> list[tuple[str, dict]]:
    return [(p.stem, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=HERE / "pretrain_variants")
    parser.add_argument("--out", type=Path, default=HERE / "pretrain_variants.png")
    args = parser.parse_args(argv)
    runs = load(args.folder)
    if not runs:
        parser.error(f"no JSON files in {args.folder}")
    print(f"{'run':18s} {'settings':40s} {'seed':>4s} {'steps':>6s} {'MLM':>6s} {'NSP':>6s}  met")
    for name, r in runs:
        h = r["held_out"]
        print(f"{name:18s} {describe(r):40s} {seed_of(name, r):>4d} {r['steps']:>6,d} {h['mlm_accuracy']:6.3f} "
              f"{h['nsp_accuracy']:6.3f}  {r['met']}")

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.8), dpi=90)
    for name, r in runs:
        steps = [e["step"] for e in r["evals"]]
        nsp = [e["nsp_accuracy"] for e in r["evals"]]
        recipe = describe(r) == "relu, init 0.05, wsd 0.3"
        ax.plot(steps, nsp, "-" if recipe else ":", lw=2.0 if recipe else 1.2,
                label=f"{describe(r)}, seed {seed_of(name, r)}")
    ax.axhline(0.90, color="k", lw=0.8, ls="--", label="target 0.90")
    ax.set_xlabel("step (each run: 10 minutes on one core)")
    ax.set_ylabel("held-out NSP accuracy")
    ax.set_ylim(0.45, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    ax.set_title("NSP sits near 0.72, then jumps; when depends on the recipe and the seed")
    save_figure(fig, args.out)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
