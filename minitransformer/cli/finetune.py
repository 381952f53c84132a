"""The fine-tuning command: ``finetune`` (a BERT task head on sentiment, NER tags or QA spans)."""

from __future__ import annotations

import argparse
import os
import textwrap

from .common import (
    CommandError,
    add_progress_option,
    add_threads_option,
    check_out_dir,
    int_at_least,
    message,
    positive_float,
    print_written,
    write_json,
)

__all__ = ["add_parsers"]

_EPILOG = """\
tasks (data sets shipped with the package, written for this project; the held-out
splits are not drawn from the training templates):
  sentiment  BertForSequenceClassification on short reviews (2,710 train, 200 held-out
             sentences, negation and contrast included); score: accuracy
  ner        BertForTokenClassification, IOB2 tags of PER/LOC/ORG/DATE (1,200 / 300
             sentences; held-out names and templates); score: entity-level F1
  qa         BertForQuestionAnswering, answer spans in short biographies (1,200 / 300
             questions; held-out names and question wordings); scores: exact match, F1

--from: minilm (the installed all-MiniLM-L6-v2 weights), random (the same config and
vocabulary with random weights: what pre-training buys is the difference), or a
folder with config.json, model.safetensors and vocab.txt (e.g. from pretrain-bert).
--random-init starts from a folder's config with random weights.

what it writes (into --out, a directory, created if needed):
  config.json, model.safetensors    the fine-tuned model, a Hugging Face folder with the
                                    label names (from_pretrained loads it, here and in
                                    transformers)
  vocab.txt, tokenizer_config.json  its tokenizer
  metrics.json                      held-out scores, every setting, loss per step, seconds

examples:
  minitransformer finetune --task sentiment --from minilm --out sentiment_run
  minitransformer finetune --task sentiment --from random --out sentiment_random
  minitransformer finetune --task ner --from bert_run --epochs 3 --out ner_run
  minitransformer finetune --task qa --from minilm --epochs 2 --lr 1e-4 --out qa_run
  minitransformer finetune --task ner --from minilm --max-steps 5 --train-limit 40 --test-limit 20 --out /tmp/smoke

exit status: 0 when trained and saved, 1 when the starting point cannot be read
(missing folder or package, foreign config), training diverged or saving failed,
2 for a usage error."""


def _add_finetune_parser(sub) -> None:
    from ..finetune import TASKS

    p = sub.add_parser(
        "finetune",
        help="fine-tune a BERT task head (sentiment, NER, QA) and score it on held-out data",
        description=textwrap.fill(
            "Fine-tune BERT with a small task head, as in the BERT paper's Section 4: start from pre-trained "
            "weights (or random ones, to compare), add one new layer, train everything for a few epochs with "
            "AdamW (or Adam), a short linear warmup and cosine decay, gradient clipping at norm 1; then score "
            "on the task's held-out split and save the model. Nothing is downloaded."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", choices=list(TASKS), default="sentiment", help="the task (default: %(default)s)")
    p.add_argument("--from", dest="source", default="minilm", metavar="minilm|random|DIR",
                   help="starting weights (default: %(default)s)")
    p.add_argument("--random-init", action="store_true",
                   help="use --from's config and vocabulary but random weights")
    p.add_argument("--epochs", type=int_at_least(1), default=None, metavar="N",
                   help="passes over the training set (default: the task's, " + ", ".join(
                       f"{t.name} {t.epochs}" for t in TASKS.values()) + ")")
    p.add_argument("--lr", type=positive_float, default=None, metavar="LR",
                   help="peak learning rate (default: the task's, " + ", ".join(
                       f"{t.name} {t.lr:g}" for t in TASKS.values()) + ")")
    p.add_argument("--batch-size", type=int_at_least(1), default=None, metavar="N",
                   help="examples per step (default: the task's, " + ", ".join(
                       f"{t.name} {t.batch_size}" for t in TASKS.values()) + ")")
    p.add_argument("--max-length", type=int_at_least(8), default=None, metavar="N",
                   help="longest input in tokens, special tokens included (default: the task's, " + ", ".join(
                       f"{t.name} {t.max_length}" for t in TASKS.values()) + "; at most the model's positions)")
    p.add_argument("--optimizer", choices=("adamw", "adam"), default="adamw",
                   help="AdamW (decay on matrices only) or Adam as in the course text (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=0.01, metavar="W",
                   help="weight decay (default: %(default)s)")
    p.add_argument("--warmup", type=float, default=0.1, metavar="FRACTION",
                   help="fraction of the steps with linear warmup (default: %(default)s)")
    p.add_argument("--pooling", choices=("cls", "mean"), default=None,
                   help="sentiment: classify the [CLS] pooler (cls) or the mean of the last hidden states over the "
                        "real tokens (mean, how all-MiniLM-L6-v2 was trained) (default: the task's, " + ", ".join(
                       f"{t.name} {t.pooling}" for t in TASKS.values() if t.name == "sentiment") + ")")
    p.add_argument("--freeze-word-embeddings", action="store_true",
                   help="keep the word-embedding table fixed (faster steps)")
    p.add_argument("--max-steps", type=int_at_least(1), default=None, metavar="N",
                   help="stop after N steps (smoke tests; default: --epochs full passes)")
    p.add_argument("--train-limit", type=int_at_least(1), default=None, metavar="N",
                   help="use only N training examples, evenly spaced over the set")
    p.add_argument("--test-limit", type=int_at_least(1), default=None, metavar="N",
                   help="score only N held-out examples, evenly spaced over the set")
    p.add_argument("--eval-each-epoch", action="store_true", help="also score the held-out split after each epoch")
    p.add_argument("--seed", type=int_at_least(0), default=0, metavar="N",
                   help="seed of the new layer, dropout and batch order (default: %(default)s)")
    p.add_argument("--out", default="finetune_run", metavar="DIR", help="output directory (default: %(default)s)")
    add_progress_option(p)
    add_threads_option(p)
    p.set_defaults(func=_cmd_finetune, subparser=p)


def _spread(examples: list, n: int | None) -> list:
    """``n`` examples evenly spaced over the list (the files are grouped by label), or all of them."""
    if n is None or n >= len(examples):
        return examples
    return [examples[i * len(examples) // n] for i in range(n)]


def _format_metrics(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.1%}" if isinstance(v, float) else f"{k} {v:,}" for k, v in metrics.items())


def _cmd_finetune(args, parser) -> int:
    from threadpoolctl import threadpool_limits

    from .. import finetune as ft
    from ..train import TrainingDivergedError

    if not 0.0 <= args.warmup < 1.0:
        parser.error(f"--warmup is a fraction of the steps in [0, 1), got {args.warmup}")
    if args.weight_decay < 0.0:
        parser.error(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if args.pooling is not None and args.task != "sentiment":
        parser.error(f"--pooling is an option of the sentiment task (sequence classification), not of {args.task}")
    if args.random_init and args.source == "random":
        parser.error("--random-init needs --from minilm or a folder (--from random is already random)")
    check_out_dir(args.out, parser)
    task = ft.TASKS[args.task]
    train = _spread(ft._load_split(task, "train"), args.train_limit)
    test = _spread(ft._load_split(task, "test"), args.test_limit)
    init = "random" if args.random_init else "pretrained"
    print(f"fine-tuning for {args.task} ({task.description}) from {args.source}"
          f"{' (random weights)' if args.random_init or args.source == 'random' else ''}: {len(train):,} training, "
          f"{len(test):,} held-out examples, seed {args.seed}", flush=True)
    # BLAS threads: one is fastest on a busy 2-core CPU (see --threads).
    with threadpool_limits(limits=args.threads, user_api="blas"):
        try:
            result = ft.finetune(
                args.task, args.source, init=init, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                max_length=args.max_length, optimizer=args.optimizer, weight_decay=args.weight_decay,
                warmup=args.warmup, freeze_word_embeddings=args.freeze_word_embeddings, train=train, test=test,
                max_steps=args.max_steps, eval_each_epoch=args.eval_each_epoch, seed=args.seed,
                progress=not args.no_progress, pooling=args.pooling)
        except TrainingDivergedError as e:
            raise CommandError(f"training diverged: {e}") from None
        except (FileNotFoundError, ValueError) as e:  # no such folder, MiniLM not installed, a foreign config
            raise CommandError(f"cannot fine-tune from {args.source!r}: {message(e)}") from None
    s = result.settings
    print(f"trained {s['steps']} steps ({s['epochs']} epochs of {s['steps_per_epoch']}, batch {s['batch_size']}, "
          f"lr {s['lr']:g}, {s['optimizer']}) in {result.seconds:.1f} s, {s['parameters']:,} parameters", flush=True)
    print(f"held-out: {_format_metrics(result.metrics)}")
    try:
        written = ft.save_finetuned(result, args.out)
        data = result.to_dict()
        data["threads"] = args.threads
        data["load_average"] = list(os.getloadavg())
        write_json(os.path.join(args.out, "metrics.json"), data)
    except OSError as e:
        raise CommandError(f"cannot save into {args.out!r}: {e.strerror or e}") from None
    print_written([(what, path) for what, path in written])
    return 0


def add_parsers(sub) -> None:
    """Add ``finetune`` to the subparsers ``sub``."""
    _add_finetune_parser(sub)
