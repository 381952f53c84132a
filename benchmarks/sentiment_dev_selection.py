"""Choose the sentiment recipe on dev splits of the TRAINING sentences (issue 6), never on the held-out file.

    python benchmarks/sentiment_dev_selection.py                                   # the default recipe, seed 0
    python benchmarks/sentiment_dev_selection.py --lr 5e-5 --pooling cls --seed 1  # another setting
    for f in 0 1 2 3 4; do python benchmarks/sentiment_dev_selection.py --fold $f; done  # 5-fold CV
    python benchmarks/sentiment_dev_selection.py --no-blind                        # without parts 3 and 4
    python benchmarks/sentiment_dev_selection.py --no-blind --epochs 4 \
        --extra minitransformer/data/finetune_sets/sentiment_train_blind.tsv        # parts 1-3: the default
                                                                                   # of 11-29, before part 4
    python benchmarks/sentiment_dev_selection.py --extra more.tsv                  # + any other sentences

The dev split: 20% of each label of the 358 hand-written training sentences (sentiment_train.tsv), drawn
with random.Random(1234): 72 sentences for fold 0 (--fold 1-4: the other fifths, 70-72 sentences). The
model trains on the other hand-written ones, the 420 templated ones and the 1,932 of parts 3 and 4
(--no-blind: without them, as every run before 2026-11-29), leaving out any repeat of a dev sentence.
Each run prints (and appends to --out) the dev accuracy after every epoch, the final dev accuracy, mean
negative log-likelihood and per-sentence log-odds, and CPU seconds (one BLAS thread). The held-out file
is not read.

benchmarks/results/sentiment_dev_selection.json records every run behind the default recipe:
- 21 runs on fold 0 behind lr 2e-5 and pooling "mean": lr, pooling, epochs and seeds by this script's
  method, plus a few variants run with throw-away patches of the same loop (layer-wise lr decay, linear
  probe then fine-tune, weight averaging of the last epochs, no templated sentences), none adopted;
- 4 runs of 2026-11-29 on fold 0 with more data: part 3 (adopted) and part 4 (not adopted then);
- 20 runs of 2026-11-29, 5 folds x 2 seeds x {parts 1-3 for 4 epochs, parts 1-4 for 3 epochs}, which
  adopted part 4 and 3 epochs (fold 0 alone had pointed the other way).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

from threadpoolctl import threadpool_limits

from minitransformer import backend
from minitransformer.data.finetune_sets import FOLDER, read_tsv
from minitransformer.finetune import finetune


def dev_split(fraction: float = 0.2, seed: int = 1234, blind: bool = True, fold: int = 0) -> tuple[list, list]:
    """(train, dev): ``fraction`` of each label of the hand-written training sentences is dev.

    ``blind``: parts 3 and 4 (sentiment_train_blind.tsv, sentiment_train_blind_2.tsv) join the training side,
    as in the default training data (``load_sentiment("train")``); the dev sentences are the same either way.
    ``fold``: which block of each label's shuffled sentences is dev (0 .. 1/fraction - 1; the last block
    takes any remainder), for cross-validation: the folds together use every hand-written sentence as dev
    once. Fold 0 is the split of every run before 2026-11-29 (second session).
    """
    n_folds = round(1 / fraction)
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    hand = read_tsv(FOLDER / "sentiment_train.tsv")
    templated = read_tsv(FOLDER / "sentiment_train_templated.tsv")
    if blind:
        templated += read_tsv(FOLDER / "sentiment_train_blind.tsv") + read_tsv(FOLDER / "sentiment_train_blind_2.tsv")
    rng, train, dev = random.Random(seed), [], []
    for label in (0, 1):
        rows = [r for r in hand if r[1] == label]
        rng.shuffle(rows)
        k = round(fraction * len(rows))
        stop = (fold + 1) * k if fold < n_folds - 1 else len(rows)
        dev, train = dev + rows[fold * k:stop], train + rows[:fold * k] + rows[stop:]
    held = {text for text, _ in dev}  # a dev sentence that is also a part-2/3 one ("I did not enjoy the book.")
    return train + [r for r in templated if r[0] not in held], dev  # stays out of training


def dev_scores(model, tokenizer, dev) -> tuple[float, float, list[float]]:
    """(accuracy, mean negative log-likelihood, log-odds z1 - z0 per sentence) of ``model`` on the dev sentences.

    The log-odds let runs be combined afterwards (e.g. averaged over seeds) without retraining.
    """
    model.eval()
    batch = tokenizer([t for t, _ in dev], padding=True, truncation=True, max_length=64)
    logits = backend.to_numpy(model(**batch).logits).astype("float64").tolist()  # (N, 2)
    model.clear_cache()
    nll, correct = 0.0, 0
    for (z0, z1), (_, y) in zip(logits, dev, strict=True):
        top = max(z0, z1)
        nll += top + math.log(math.exp(z0 - top) + math.exp(z1 - top)) - (z1 if y else z0)
        correct += int((z1 > z0) == bool(y))
    return correct / len(dev), nll / len(dev), [z1 - z0 for z0, z1 in logits]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", type=float, default=None, help="default: the task's")
    parser.add_argument("--epochs", type=int, default=None, help="default: the task's")
    parser.add_argument("--pooling", choices=("cls", "mean"), default=None, help="default: the task's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blind", action=argparse.BooleanOptionalAction, default=True,
                        help="train on parts 3 and 4 (sentiment_train_blind*.tsv) as the default data does "
                             "(--no-blind: the 706 training sentences of the runs before 11-29; the same dev split)")
    parser.add_argument("--fold", type=int, default=0,
                        help="which fifth of the hand-written sentences is dev (0-4; default 0, the split of the "
                             "runs before 11-29): run all five for 5-fold cross-validation")
    parser.add_argument("--extra", action="append", default=[], metavar="TSV",
                        help="also train on this label<TAB>text file (repeatable; the same dev split)")
    parser.add_argument("--out", default=None, help="append the result as one JSON line to this file")
    args = parser.parse_args(argv)
    train, dev = dev_split(blind=args.blind, fold=args.fold)
    for path in args.extra:
        train += read_tsv(path)
    with threadpool_limits(limits=1, user_api="blas"):
        cpu0 = time.process_time()
        r = finetune("sentiment", "minilm", train=train, test=dev, lr=args.lr, epochs=args.epochs,
                     pooling=args.pooling, seed=args.seed, eval_each_epoch=True, progress=False)
        accuracy, nll, log_odds = dev_scores(r.model, r.tokenizer, dev)
        cpu = time.process_time() - cpu0
    s = r.settings
    row = {"fold": args.fold, "blind": args.blind, "extra": args.extra, "pooling": s["pooling"], "lr": s["lr"],
           "epochs": s["epochs"], "seed": s["seed"], "n_train": len(train),
           "n_dev": len(dev), "dev_accuracy": accuracy, "dev_mean_nll": round(nll, 4),
           "dev_accuracy_per_epoch": [e["accuracy"] for e in r.history.evals], "cpu_seconds": round(cpu, 1),
           "dev_log_odds": [round(z, 4) for z in log_odds]}
    print(json.dumps(row))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
