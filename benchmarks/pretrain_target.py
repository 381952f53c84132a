"""Measure the BERT pre-training target of issue 6 on the built-in corpus.

    python benchmarks/pretrain_target.py                   # the target run, about 10 minutes
    python benchmarks/pretrain_target.py --minutes 2       # a shorter run (not the target)
    python benchmarks/pretrain_target.py --minutes 6.5 --set hidden_size=128 --set lr=2e-3 --out /tmp/try.json

Target (issue 6): on the built-in corpus, with a small model, on this 2-core CPU
within 10 minutes in all (corpus, vocabulary, training, evaluation): held-out
NSP accuracy >= 90% and MLM accuracy well above the unigram baseline (the
accuracy of always predicting the most frequent token among the masked
positions). Both are reported, with the load average before and after: other
jobs share this CPU, so the timings (and the steps that fit in the budget) are
pessimistic when the load is above 2.

The training is time-boxed: ``pretrain(max_seconds=...)`` stops after the
training budget and decays the learning rate with time, so the run fits in 10
minutes whatever the load; the JSON records how many steps fitted. Results go
to benchmarks/results/pretrain_target.json and a PNG of the curves next to it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

from threadpoolctl import threadpool_limits

from minitransformer.bert_pretrain import SIZES, plot_pretraining, pretrain
from minitransformer.data.corpus import generate_documents
from minitransformer.models.bert import BertConfig
from minitransformer.viz import save_figure

# Chosen by measurement on this 2-core CPU (README, "Pre-training and fine-tuning BERT"). The last three are
# BertConfig / schedule choices that made next-sentence prediction take off within the 10 minutes:
#   hidden_act="relu"       ~15% cheaper steps than the erf GELU (about 8,100 steps instead of 7,000);
#   initializer_range=0.05  with BERT's 0.02 the masked-LM loss drop (which NSP follows) came later here;
#   decay_fraction=0.3      warmup-stable-decay: the peak rate until 70% of the time, then a cosine.
SETTINGS = dict(size="small", vocab_size=4000, steps=50_000, batch_size=32, max_len=64, lr=4e-3, warmup=200,
                dropout=0.0, eval_pairs=2000, spans=True, hidden_act="relu", initializer_range=0.05,
                decay_fraction=0.3)
DOCUMENTS = 4000  # of the built-in corpus, seed 0; the last 10% are held out
TOTAL_SECONDS = 600.0  # the target: everything within 10 minutes
RESERVE_SECONDS = 60.0  # corpus, vocabulary and tokenizing (~10 s), 11 held-out evaluations (~30 s), with a margin
TARGET_NSP = 0.90
TARGET_MLM_MARGIN = 0.15  # "well above": at least 15 points above the unigram baseline


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=TOTAL_SECONDS / 60.0,
                        help="wall-clock budget of the whole run (default: 10, the target)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--documents", type=int, default=DOCUMENTS,
                        help=f"documents of the built-in corpus (seed 0; the last 10%% held out; default {DOCUMENTS})")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1, as the CLI)")
    parser.add_argument("--eval-every", type=int, default=500, help="held-out evaluations for the plot")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting or a model size field, e.g. --set lr=2e-3 --set hidden_size=128 "
                             "--set spans=false (give --out too, to keep the target's results)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "pretrain_target.json"))
    args = parser.parse_args(argv)
    settings = dict(SETTINGS)
    known = sorted(set(settings) | set(SIZES[settings["size"]]) | {"nsp_weight", "weight_decay"}
                   | set(BertConfig().to_dict()))
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in known:
            parser.error(f"unknown setting {key!r}: one of {known}")
        try:
            settings[key] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            settings[key] = value  # a string (size="tiny")

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    if args.documents < 20:
        parser.error(f"--documents must be at least 20 (10% of them are held out), got {args.documents}")
    docs = generate_documents(args.documents, seed=0)
    budget = 60.0 * args.minutes - RESERVE_SECONDS - (time.perf_counter() - t0)  # the corpus's seconds count too
    with threadpool_limits(limits=args.threads, user_api="blas"):
        run = pretrain(docs, seed=args.seed, max_seconds=budget, eval_every=args.eval_every, progress=False,
                       **settings)
    total = time.perf_counter() - t0
    load_after = os.getloadavg()
    m = run.metrics
    margin = m["mlm_accuracy"] - m["unigram_mlm_accuracy"]
    met = (m["nsp_accuracy"] >= TARGET_NSP and margin >= TARGET_MLM_MARGIN and total <= TOTAL_SECONDS
           and args.minutes * 60.0 <= TOTAL_SECONDS)
    record = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
        "cpu_count": os.cpu_count(), "threads": args.threads, "seed": args.seed, "documents": args.documents,
        "corpus_seed": 0,
        "settings": settings,
        "model": {**{k: m["config"][k] for k in (*SIZES["small"], "hidden_act", "initializer_range")},
                  "parameters": m["parameters"]},
        "budget_minutes": args.minutes, "training_budget_seconds": budget, "wall_seconds": round(total, 1),
        "steps": m["steps"], "train_seconds": m["seconds"], "prepare_seconds": m["prepare_seconds"],
        "held_out": {k: m[k] for k in ("mlm_loss", "mlm_accuracy", "unigram_mlm_accuracy", "nsp_loss",
                                        "nsp_accuracy", "n_masked", "n_pairs")},
        "mlm_accuracy_above_unigram": round(margin, 4),
        "targets": {"nsp_accuracy": TARGET_NSP, "mlm_above_unigram": TARGET_MLM_MARGIN, "seconds": TOTAL_SECONDS},
        "met": met,
        "evals": run.history.evals,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=2)
    png = os.path.splitext(args.out)[0] + ".png"
    save_figure(plot_pretraining(run, title=f"pre-training a small BERT: {m['steps']} steps in {total / 60:.1f} min "
                                 f"(load {load_before[0]:.1f})"), png)
    print(f"{m['steps']} steps in {m['seconds']:.0f} s of training, {total:.0f} s in all (load average "
          f"{load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} cores)")
    print(f"held-out: NSP accuracy {m['nsp_accuracy']:.3f} (target >= {TARGET_NSP}), MLM accuracy "
          f"{m['mlm_accuracy']:.3f} vs unigram baseline {m['unigram_mlm_accuracy']:.3f} (+{margin:.3f}), "
          f"MLM loss {m['mlm_loss']:.3f}  {'MET' if met else 'NOT MET'}")
    print(f"written {args.out} and {png}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
