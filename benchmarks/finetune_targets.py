"""Measure the fine-tuning targets of issue 6: held-out scores and time of each task.

    python benchmarks/finetune_targets.py                          # all runs below
    python benchmarks/finetune_targets.py --runs sentiment-minilm,sentiment-random

Runs (settings: the tasks' defaults in minitransformer.finetune.TASKS unless listed in RUNS):
    sentiment-minilm   the target: >= 90% held-out accuracy with the real all-MiniLM-L6-v2 weights,
                       within 5 minutes on this CPU. Default recipe: 3 epochs over the 2,710 training
                       sentences, lr 2e-5, batch 16, AdamW, the classifier on the MEAN of the last hidden
                       states (pooling="mean"); lr, pooling, epochs and data were chosen on dev splits of
                       the training sentences only (see benchmarks/results/sentiment_dev_selection.json),
                       never on the held-out file
    sentiment-minilm-cls  the same with BERT's [CLS] pooler (pooling="cls"), the course-text head
    sentiment-random   the same model, data and settings from random weights: what pre-training buys
    ner-minilm         entity-level F1 on held-out names and templates
    qa-minilm          exact match and token F1 on held-out names and question wordings

Every run records wall-clock seconds AND the process's CPU seconds (one BLAS thread, as the CLI), with
os.getloadavg() before and after and os.cpu_count(): other jobs sharing the CPU stretch the wall clock,
not the CPU time, so on a busy machine the CPU seconds are the better estimate of an idle run. Results
are printed and written as JSON with the date and machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

from threadpoolctl import threadpool_limits

from minitransformer.finetune import TASKS, finetune

RUNS = {
    "sentiment-minilm": dict(task="sentiment", source="minilm"),
    "sentiment-random": dict(task="sentiment", source="random"),
    "sentiment-minilm-cls": dict(task="sentiment", source="minilm", pooling="cls"),
    "ner-minilm": dict(task="ner", source="minilm"),
    "qa-minilm": dict(task="qa", source="minilm"),
    "ner-random": dict(task="ner", source="random"),
    "qa-random": dict(task="qa", source="random"),
}
DEFAULT_RUNS = "sentiment-minilm,sentiment-random,ner-minilm,qa-minilm"
TARGET = {"sentiment-minilm": ("accuracy", 0.90, 300.0)}  # run -> (metric, at least, within seconds)


def _one(name: str, seed: int, threads: int) -> dict:
    cfg = dict(RUNS[name])
    task, source = cfg.pop("task"), cfg.pop("source")
    load_before = os.getloadavg()
    with threadpool_limits(limits=threads, user_api="blas"):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = finetune(task, source, seed=seed, progress=False, eval_each_epoch=True, **cfg)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    s = result.settings
    row = {"run": name, "task": task, "source": source, "seed": seed, "threads": threads,
           "metrics": result.metrics, "per_epoch": result.history.evals,
           "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
           "train_wall_seconds": round(result.history.seconds, 1),
           "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
           "final_train_loss": result.history.loss[-1],
           "settings": {k: v for k, v in s.items() if k not in ("model_config", "load_notes")}}
    if name in TARGET:
        metric, at_least, seconds = TARGET[name]
        row["target"] = {"metric": metric, "at_least": at_least, "within_seconds": seconds}
        row["met_score"] = result.metrics[metric] >= at_least
        row["met_time_wall"] = wall <= seconds
        row["met_time_cpu"] = cpu <= seconds
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=DEFAULT_RUNS, help=f"comma-separated, of {', '.join(RUNS)} "
                                                             f"(default: {DEFAULT_RUNS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1, as the CLI)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "finetune_targets.json"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the other runs already in --out (rows of the same run are replaced)")
    args = parser.parse_args(argv)
    names = [n for n in args.runs.split(",") if n]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown runs {unknown}; known: {list(RUNS)}")
    rows = []
    for name in names:
        rows.append(_one(name, args.seed, args.threads))
        r = rows[-1]
        scores = ", ".join(f"{k} {v:.3f}" for k, v in r["metrics"].items() if isinstance(v, float))
        verdict = ""
        if "met_score" in r:
            def word(ok):
                return "MET" if ok else "NOT MET"

            verdict = (f"  score {word(r['met_score'])}, time {word(r['met_time_cpu'])} by CPU seconds, "
                       f"{word(r['met_time_wall'])} by wall clock")
        pooling = f"  pooling {r['settings']['pooling']}" if r["settings"].get("pooling") else ""
        print(f"{name:17s} {r['settings']['steps']:4d} steps{pooling}  wall {r['wall_seconds']:6.1f} s  "
              f"cpu {r['cpu_seconds']:6.1f} s  load {r['load_average_before'][0]:.1f}->"
              f"{r['load_average_after'][0]:.1f}  {scores}{verdict}", flush=True)
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
              "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "python": platform.python_version(),
              "note": "other jobs shared this CPU (see the load averages): wall-clock times are pessimistic; "
                      "CPU seconds estimate an idle single-thread run",
              "task_defaults": {k: {f: getattr(t, f) for f in ("epochs", "lr", "batch_size", "max_length")}
                                for k, t in TASKS.items()},
              "runs": rows}
    if args.merge and os.path.isfile(args.out):
        with open(args.out, encoding="utf-8") as f:
            old = json.load(f)
        kept = [r for r in old.get("runs", []) if r["run"] not in names]
        report["runs"] = sorted(kept + rows, key=lambda r: list(RUNS).index(r["run"]))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
