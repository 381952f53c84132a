"""The BERT pre-training command: ``pretrain-bert`` (masked LM + next-sentence prediction from scratch)."""

from __future__ import annotations

import argparse
import os
import textwrap

from .common import (
    CommandError,
    add_progress_option,
    add_threads_option,
    check_out_dir,
    fraction,
    int_at_least,
    message,
    positive_float,
    print_written,
    probability,
    write_json,
)

__all__ = ["add_parsers"]

_EPILOG = """\
what it writes (into --out, a directory, created if needed):
  config.json, model.safetensors     the pre-trained BertForPreTraining, a Hugging Face folder:
                                     BertForSequenceClassification.from_pretrained(DIR) starts from it
  vocab.txt, tokenizer_config.json   the WordPiece vocabulary learned from the corpus
  metrics.json                       held-out MLM loss/accuracy, NSP accuracy, unigram baseline, settings
  pretraining.png                    training losses and held-out accuracies against step

The corpus: --corpus builtin generates --documents English-like documents (topics,
people and places carried from sentence to sentence) from --corpus-seed; --text
reads plain-text files, one document per blank-line-separated block. The last 10%
of the documents are held out: the vocabulary and training never see them, and the
scores come from --eval-pairs sentence pairs drawn from them (fixed masks).

The unigram baseline is the accuracy of always predicting the most frequent token
of the masked positions: a model has learned something when MLM accuracy is well
above it.

examples:
  minitransformer pretrain-bert --out bert_run
  minitransformer pretrain-bert --size small --steps 3000 --vocab-size 1500 --out bert_run
  minitransformer pretrain-bert --text book1.txt book2.txt --steps 2000 --out my_bert
  minitransformer pretrain-bert --size tiny --steps 20 --documents 200 --no-progress --out /tmp/smoke
  # the 10-minute target recipe (benchmarks/pretrain_target.py): NSP ~0.95 on this 2-core CPU
  minitransformer pretrain-bert --minutes 9 --steps 50000 --batch-size 32 --lr 4e-3 --warmup 200 \
      --decay-fraction 0.3 --hidden-act relu --initializer-range 0.05 --eval-every 1000 --out bert_run

exit status: 0 when trained and saved, 1 when the corpus cannot be read or used, training
diverged or saving failed, 2 for a usage error."""


def _add_pretrain_parser(sub) -> None:
    from ..bert_pretrain import SIZES
    from ..nn.activations import activation_names

    p = sub.add_parser(
        "pretrain-bert",
        help="pre-train a small BERT from scratch (masked LM + next sentence) and save it",
        description=textwrap.fill(
            "Pre-train a small BERT from scratch on this CPU: learn a WordPiece vocabulary from the corpus, "
            "then train BertForPreTraining on masked-language-model (15% of tokens: 80% [MASK], 10% random, "
            "10% kept) and next-sentence-prediction (50% true next sentence, 50% a sentence of another "
            "document) with AdamW, linear warmup and cosine decay; score it on held-out documents and save "
            "a folder that the fine-tuning code loads with from_pretrained. Nothing is downloaded."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--corpus", choices=("builtin",), default=None,
                        help="the generated corpus (the default)")
    source.add_argument("--text", nargs="+", metavar="FILE",
                        help="plain-text files instead: blank-line-separated blocks are documents")
    p.add_argument("--documents", type=int_at_least(4), default=4000, metavar="N",
                   help="documents of the built-in corpus (default: %(default)s)")
    p.add_argument("--corpus-seed", type=int_at_least(0), default=0, metavar="N",
                   help="seed of the built-in corpus (default: %(default)s)")
    p.add_argument("--vocab-size", type=int_at_least(6), default=4000, metavar="N",
                   help="WordPiece vocabulary size, special tokens included (default: %(default)s: on the built-in "
                        "corpus nearly every word is then one token)")
    p.add_argument("--size", choices=list(SIZES), default="small",
                   help="model size (default: %(default)s); " + "; ".join(
                       f"{name}: hidden {s['hidden_size']}, {s['num_hidden_layers']} layers, "
                       f"{s['num_attention_heads']} heads" for name, s in SIZES.items()))
    p.add_argument("--steps", type=int_at_least(1), default=2000, metavar="N",
                   help="optimizer steps (default: %(default)s)")
    p.add_argument("--minutes", type=positive_float, default=None, metavar="M",
                   help="stop training after M minutes of training steps, even before --steps; the learning "
                        "rate decays with time too (default: no limit)")
    p.add_argument("--batch-size", type=int_at_least(1), default=64, metavar="N",
                   help="sentence pairs per step (default: %(default)s)")
    p.add_argument("--max-len", type=int_at_least(5), default=64, metavar="N",
                   help="longest packed pair [CLS] A [SEP] B [SEP] in tokens, and the model's position "
                        "limit (default: %(default)s)")
    p.add_argument("--single-sentences", action="store_true",
                   help="A and B are one sentence each (default: spans of consecutive sentences that fill "
                        "--max-len, as in the BERT paper: next-sentence prediction learns far faster from them)")
    p.add_argument("--lr", type=positive_float, default=5e-3, metavar="LR",
                   help="peak learning rate (default: %(default)s)")
    p.add_argument("--decay-fraction", type=fraction, default=1.0, metavar="F",
                   help="the learning rate stays at its peak after warmup and decays (cosine) over the last F of "
                        "the run (default: %(default)s, cosine over the whole run)")
    p.add_argument("--hidden-act", choices=activation_names(), default="gelu",
                   help="feed-forward activation (default: %(default)s, BERT's exact erf GELU; relu: ~15%% cheaper "
                        "steps here, used by the 10-minute target run)")
    p.add_argument("--initializer-range", type=positive_float, default=0.02, metavar="STD",
                   help="standard deviation of the initial weights (default: %(default)s, BERT's; the 10-minute "
                        "target run uses 0.05, with which the masked-LM loss drop came earlier in the measured runs)")
    p.add_argument("--warmup", type=int_at_least(0), default=None, metavar="N",
                   help="learning-rate warmup steps (default: 5%% of --steps, at most 200)")
    p.add_argument("--dropout", type=probability, default=0.0, metavar="P",
                   help="hidden and attention dropout (default: %(default)s: the corpus is endless, fresh pairs "
                        "and masks every step; BERT used 0.1)")
    p.add_argument("--seed", type=int_at_least(0), default=0, metavar="N",
                   help="seed of the weights, the sentence pairs and the masks (default: %(default)s)")
    p.add_argument("--eval-every", type=int_at_least(0), default=None, metavar="N",
                   help="evaluate on the held-out pairs every N steps (default: 10 times per run; 0: only at "
                        "the end)")
    p.add_argument("--eval-pairs", type=int_at_least(1), default=1000, metavar="N",
                   help="held-out sentence pairs per evaluation (default: %(default)s)")
    p.add_argument("--out", default="bert_run", metavar="DIR", help="output directory (default: %(default)s)")
    add_progress_option(p)
    add_threads_option(p)
    p.set_defaults(func=_cmd_pretrain_bert, subparser=p)


def _documents(args) -> tuple[list, str]:
    """(documents, a description of the corpus)."""
    from ..data import corpus

    if args.text:
        try:
            docs = corpus.read_documents(args.text)
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise CommandError(f"cannot read --text: {message(e)}") from None
        return docs, f"{len(docs):,} documents from {len(args.text)} file(s)"
    docs = corpus.generate_documents(args.documents, seed=args.corpus_seed)
    return docs, f"{len(docs):,} generated documents (seed {args.corpus_seed})"


def _cmd_pretrain_bert(args, parser) -> int:
    from threadpoolctl import threadpool_limits

    from .. import bert_pretrain, viz
    from ..train import TrainingDivergedError

    check_out_dir(args.out, parser)
    if args.warmup is not None and args.warmup >= args.steps and args.steps > 1:
        parser.error(f"--warmup {args.warmup} must be smaller than --steps {args.steps}")
    docs, what = _documents(args)
    eval_every = max(1, args.steps // 10) if args.eval_every is None else args.eval_every
    s = bert_pretrain.SIZES[args.size]
    print(f"pre-training a {args.size} BERT (hidden {s['hidden_size']}, {s['num_hidden_layers']} layers, "
          f"{s['num_attention_heads']} heads) on {what}: {args.steps} steps, batch {args.batch_size}, "
          f"max_len {args.max_len}, seed {args.seed}", flush=True)
    # BLAS threads: one is fastest for these small matrices on a busy 2-core CPU (see --threads).
    with threadpool_limits(limits=args.threads, user_api="blas"):
        try:
            run = bert_pretrain.pretrain(
                docs, vocab_size=args.vocab_size, size=args.size, steps=args.steps, batch_size=args.batch_size,
                max_len=args.max_len, lr=args.lr, warmup=args.warmup, seed=args.seed, dropout=args.dropout,
                max_seconds=None if args.minutes is None else 60.0 * args.minutes,
                eval_pairs=args.eval_pairs, eval_every=eval_every, progress=not args.no_progress,
                spans=not args.single_sentences, decay_fraction=args.decay_fraction,
                hidden_act=args.hidden_act, initializer_range=args.initializer_range)
        except TrainingDivergedError as e:
            raise CommandError(f"training diverged: {e}") from None
        except ValueError as e:  # a corpus too small or without sentence pairs, a vocabulary too small
            raise CommandError(f"cannot pre-train on this corpus: {message(e)}") from None
    m = run.metrics
    m["corpus"] = "text" if args.text else "builtin"
    m["corpus_files"] = list(args.text) if args.text else None
    m["documents"] = len(docs)
    m["corpus_seed"] = None if args.text else args.corpus_seed
    m["threads"] = args.threads
    print(f"trained {m['steps']} steps in {m['seconds']:.1f} s ({m['total_seconds']:.1f} s in all), "
          f"{m['parameters']:,} parameters, vocabulary {m['vocab_size']:,} WordPieces", flush=True)
    print(f"held-out ({m['n_pairs']:,} pairs, {m['n_masked']:,} masked tokens): MLM loss {m['mlm_loss']:.3f}, "
          f"MLM accuracy {m['mlm_accuracy']:.1%} (unigram baseline {m['unigram_mlm_accuracy']:.1%}), "
          f"NSP accuracy {m['nsp_accuracy']:.1%}")
    try:
        run.save(args.out)
        written = [("model", os.path.join(args.out, "model.safetensors")),
                   ("config", os.path.join(args.out, "config.json")),
                   ("vocabulary", os.path.join(args.out, "vocab.txt"))]
        fig = bert_pretrain.plot_pretraining(run, title=f"pre-training a {args.size} BERT")
        written.append(("plot", viz.save_figure(fig, os.path.join(args.out, "pretraining.png"))))
        written.append(("metrics", write_json(os.path.join(args.out, "metrics.json"), m)))
    except OSError as e:
        raise CommandError(f"cannot save into {args.out!r}: {e.strerror or e}") from None
    print_written(written)
    print(f"fine-tune from it: BertForSequenceClassification.from_pretrained({args.out!r})")
    return 0


def add_parsers(sub) -> None:
    """Add ``pretrain-bert`` to the subparsers ``sub``."""
    _add_pretrain_parser(sub)
