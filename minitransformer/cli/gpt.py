"""The language-model commands: ``train-gpt``, ``generate`` and ``score`` (a GPT on text)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
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
    prog,
    short,
    write_json,
)

__all__ = ["add_parsers"]

_TRAIN_EPILOG = """\
data: --corpus builtin (default) trains on documents generated locally by the
built-in corpus generator; its held-out documents come from another seed, and
because the generator knows the exact probability of every text, the command
reports the best cross-entropy any model could reach (the true entropy per
token, with the same tokenizer) next to the model's. --text FILE... trains on
your own plain-text files instead (blank lines separate documents; the last
10% of documents are held out).

what it writes (into --out, a directory, created if needed):
  checkpoint.npz  model, optimizer state, config, loss history (no pickle)
  vocab.json ...  the tokenizer's files (bpe: vocab.json + merges.txt)
  lm_run.json     tokenizer kind, settings and metrics (read back by generate/score)
  loss.png        training loss and learning rate against step, validation loss
  metrics.json    validation cross-entropy and perplexity, true entropy, steps, seconds

examples:
  minitransformer train-gpt --out gpt_run/
  minitransformer train-gpt --size medium --tokenizer bpe --vocab-size 1024 --time-limit 600 --out gpt_run/
  minitransformer train-gpt --text book.txt notes.txt --tokenizer char --steps 3000 --out my_lm/
  minitransformer train-gpt --size tiny --steps 20 --documents 200 --no-progress --out /tmp/smoke

exit status: 0 when trained and saved, 1 when reading, training or saving failed, 2 for a usage error."""

_GENERATE_EPILOG = """\
Prints the prompt followed by its continuation (each sample separated by a
blank line with --num-samples); how many tokens and why it stopped go to stderr.
Sampling: temperature T divides the logits (T < 1 sharper, T > 1 flatter),
--top-k keeps the k most likely tokens, --top-p the smallest set whose
probability reaches p; --greedy always takes the most likely token. The same
--seed gives the same text. An empty --prompt "" starts a new document.

examples:
  minitransformer generate --checkpoint gpt_run/ --prompt "the cat"
  minitransformer generate --checkpoint gpt_run/ --prompt "the cat" --greedy --max-new-tokens 30
  minitransformer generate --checkpoint gpt_run/ --prompt "" --temperature 0.8 --top-p 0.9 --stop $'\\n\\n'
  minitransformer generate --checkpoint gpt_run/ --prompt "the" --top-k 10 --num-samples 3 --seed 7

exit status: 0 when generated, 1 when the checkpoint or the prompt cannot be
read (a character the tokenizer does not know, longer than the context window),
2 for a usage error."""

_SCORE_EPILOG = """\
A language model assigns a probability to any text: by the chain rule,
log p(text) = sum over its tokens of log p(token | <|endoftext|>, tokens before it).
For each TEXT this prints one row per token (its log-probability in nats and
its probability), then the total log-probability and the perplexity
exp(-total / number of tokens). Compare a sentence with its words scrambled.

examples:
  minitransformer score --checkpoint gpt_run/ "the cat sat on the mat" "mat the on sat cat the"
  minitransformer score --checkpoint gpt_run/ --summary "the cat sat on the mat" "mat the on sat cat the"
  printf 'first text\\nsecond text\\n' | minitransformer score --checkpoint gpt_run/

exit status: 0 when every text was scored, 1 when the checkpoint or a text
cannot be read, 2 for a usage error."""


def _add_train_parser(sub) -> None:
    from ..lm_train import SIZES

    p = sub.add_parser(
        "train-gpt",
        help="train a GPT language model on the built-in corpus or your text files, and save it",
        description=textwrap.fill(
            "Train a decoder-only Transformer language model (GPT) with a character or byte-level BPE "
            "tokenizer learnt from the training text: AdamW, gradient clipping at norm 1, linear warmup then "
            "cosine decay of the learning rate. Reports validation cross-entropy (nats per token) and "
            "perplexity, and on the built-in corpus the true entropy per token of the same text."
        ),
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_mutually_exclusive_group()
    data.add_argument("--corpus", choices=("builtin",), default="builtin",
                      help="the built-in generated corpus (default)")
    data.add_argument("--text", nargs="+", metavar="FILE", help="train on these plain-text files instead")
    p.add_argument("--documents", type=int_at_least(2), default=4000, metavar="N",
                   help="built-in corpus: training documents (default: %(default)s)")
    p.add_argument("--val-documents", type=int_at_least(1), default=200, metavar="N",
                   help="built-in corpus: held-out documents (default: %(default)s)")
    p.add_argument("--tokenizer", choices=("char", "bpe"), default="bpe",
                   help="characters, or byte-level BPE learnt from the training text (default: %(default)s)")
    p.add_argument("--vocab-size", type=int_at_least(257), default=512, metavar="N",
                   help="BPE: the most tokens (default: %(default)s)")
    p.add_argument("--size", choices=list(SIZES), default="small",
                   help="model size (default: %(default)s); " + "; ".join(
                       f"{name}: d_model {s['d_model']}, {s['n_layers']} layers" for name, s in SIZES.items()))
    p.add_argument("--steps", type=int_at_least(1), default=1000, metavar="N",
                   help="optimizer steps (default: %(default)s)")
    p.add_argument("--time-limit", type=positive_float, default=None, metavar="SECONDS",
                   help="stop after this many seconds of training (the learning-rate decay follows the clock)")
    p.add_argument("--batch-size", type=int_at_least(1), default=16, metavar="N",
                   help="windows per step (default: %(default)s)")
    p.add_argument("--block-size", type=int_at_least(2), default=128, metavar="N",
                   help="tokens per window = the model's context window (default: %(default)s)")
    p.add_argument("--peak-lr", type=positive_float, default=3e-3, metavar="LR",
                   help="peak learning rate (default: %(default)s)")
    p.add_argument("--warmup", type=int_at_least(0), default=100, metavar="N",
                   help="learning-rate warmup steps (default: %(default)s)")
    p.add_argument("--dropout", type=probability, default=0.0, metavar="P", help="dropout (default: 0)")
    p.add_argument("--eval-every", type=int_at_least(0), default=0, metavar="N",
                   help="also print a quick validation loss every N steps (default: 0, only at the end)")
    p.add_argument("--seed", type=int_at_least(0), default=0, metavar="N",
                   help="seed of the corpus, the weights and the batches (default: 0)")
    p.add_argument("--out", default="gpt_run", metavar="DIR", help="output directory (default: %(default)s)")
    add_progress_option(p)
    add_threads_option(p)
    p.set_defaults(func=_cmd_train_gpt, subparser=p)


def _add_generate_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="continue a prompt with a trained GPT (greedy, temperature, top-k, top-p)",
        description=textwrap.fill(
            "Continue --prompt with a model saved by `minitransformer train-gpt` (or a Hugging Face GPT-2 "
            "folder: config.json, model.safetensors, vocab.json, merges.txt), one token at a time with a "
            "key/value cache."
        ),
        epilog=_GENERATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a train-gpt directory (or its .npz)")
    p.add_argument("--prompt", required=True, metavar="TEXT", help="the text to continue (\"\" for none)")
    p.add_argument("--max-new-tokens", type=int_at_least(1), default=100, metavar="N",
                   help="the most tokens to generate (default: %(default)s)")
    p.add_argument("--temperature", type=positive_float, default=1.0, metavar="T",
                   help="sampling temperature > 0 (default: %(default)s)")
    p.add_argument("--top-k", type=int_at_least(1), default=None, metavar="K", help="keep the K most likely tokens")
    p.add_argument("--top-p", type=fraction, default=None, metavar="P",
                   help="keep the smallest set of tokens whose probability reaches P, in (0, 1]")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token (no sampling)")
    p.add_argument("--stop", action="append", default=None, metavar="TEXT",
                   help="stop when the continuation contains TEXT (repeatable); <|endoftext|> always stops")
    p.add_argument("--seed", type=int_at_least(0), default=0, metavar="N", help="sampling seed (default: 0)")
    p.add_argument("--num-samples", type=int_at_least(1), default=1, metavar="N",
                   help="N continuations, with seeds SEED, SEED+1, ... (default: 1)")
    p.add_argument("--no-cache", action="store_true",
                   help="recompute the whole sequence at every step instead of using the KV cache (slower)")
    add_threads_option(p)
    p.set_defaults(func=_cmd_generate, subparser=p)


def _add_score_parser(sub) -> None:
    p = sub.add_parser(
        "score",
        help="the probability a trained GPT assigns to a text: per-token log-probs, total, perplexity",
        description=textwrap.fill(
            "Score each TEXT with a model saved by `minitransformer train-gpt`: the log-probability of every "
            "token given the ones before it, their sum (the log-probability of the text) and the perplexity."
        ),
        epilog=_SCORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to score (default: read lines from stdin)")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a train-gpt directory (or its .npz)")
    p.add_argument("--summary", action="store_true", help="one line per text (no per-token table)")
    add_threads_option(p)
    p.set_defaults(func=_cmd_score, subparser=p)


def _threads(n: int):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def _read_text_files(paths: list[str]) -> list[str]:
    """Documents of plain-text files: blank-line-separated blocks (the corpus reader), sentences joined by spaces."""
    from ..data.corpus import read_documents

    for path in paths:
        if not os.path.isfile(path):
            raise CommandError(f"--text {path!r}: no such file")
    try:
        docs = [" ".join(sentences) for sentences in read_documents(paths)]
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CommandError(f"cannot read --text: {message(e)}") from None
    docs = [d for d in docs if d.strip()]
    if len(docs) < 2:
        raise CommandError(f"--text holds {len(docs)} document(s); need at least 2 (blank lines separate "
                           "documents; one is held out for validation)")
    return docs


def _cmd_train_gpt(args, parser) -> int:
    from .. import lm_train, viz
    from ..train import TrainingDivergedError

    check_out_dir(args.out, parser)
    texts = _read_text_files(args.text) if args.text else None
    s = lm_train.SIZES[args.size]
    source = f"{len(texts)} documents of {len(args.text)} file(s)" if texts else \
        f"the built-in corpus ({args.documents} documents, {args.val_documents} held out)"
    limit = f", at most {args.time_limit:g} s" if args.time_limit else ""
    print(f"training a {args.size} GPT (d_model {s['d_model']}, {s['n_heads']} heads, {s['n_layers']} layers, "
          f"context {args.block_size}) with a {args.tokenizer} tokenizer on {source} for {args.steps} steps"
          f"{limit}, batch {args.batch_size}, seed {args.seed}", flush=True)
    with _threads(args.threads):
        try:
            run = lm_train.train_gpt(
                texts, n_documents=args.documents, val_documents=args.val_documents, tokenizer=args.tokenizer,
                vocab_size=args.vocab_size, size=args.size, steps=args.steps, batch_size=args.batch_size,
                block_size=args.block_size, peak_lr=args.peak_lr, warmup=args.warmup, dropout=args.dropout,
                seed=args.seed, eval_every=args.eval_every, time_limit=args.time_limit,
                progress=not args.no_progress)
        except TrainingDivergedError as e:
            raise CommandError(f"training diverged: {e}") from None
        except ValueError as e:  # too little text for a window, a vocabulary too small, ...
            raise CommandError(str(e)) from None
    m = run.metrics
    print(f"trained {m['steps']} steps in {m['train_seconds']:.1f} s ({m['tokens_per_second']:,.0f} tokens/s), "
          f"{m['parameters']:,} parameters, vocabulary {run.tokenizer.vocab_size}")
    print(f"validation: cross-entropy {m['val_loss']:.4f} nats/token, perplexity {m['val_perplexity']:.3f} "
          f"({m['val_tokens']:,} tokens)")
    if "true_entropy" in m:
        print(f"true entropy of the same text: {m['true_entropy']:.4f} nats/token (the best any model can do); "
              f"the model is at {m['ratio_to_entropy']:.3f}x")
    try:
        written = [("checkpoint", lm_train.save_gpt_run(run, args.out))]
        fig = viz.plot_loss_curve(run.history, title="GPT: training loss")
        written.append(("loss curve", viz.save_figure(fig, os.path.join(args.out, "loss.png"))))
        metrics = {**m, "settings": run.settings, "config": run.model.config.to_dict()}
        written.append(("metrics", write_json(os.path.join(args.out, "metrics.json"), metrics)))
    except OSError as e:
        raise CommandError(f"cannot save into {args.out!r}: {e.strerror or e}") from None
    print_written(written)
    print(f"try: {prog()} generate --checkpoint {shlex.quote(args.out)} --prompt \"the\"")
    return 0


def _load(path: str):
    from ..lm_train import load_gpt_run

    try:
        return load_gpt_run(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CommandError(f"cannot load the checkpoint: {message(e)}") from None


def _user_text_error(what: str, e: BaseException) -> CommandError:
    return CommandError(f"{what}: {message(e)}")


def _cmd_generate(args, parser) -> int:
    from ..lm import generate

    if args.greedy and (args.top_k is not None or args.top_p is not None or args.temperature != 1.0):
        parser.error("--greedy takes the most likely token: it cannot be combined with --temperature, --top-k "
                     "or --top-p")
    if args.stop is not None and any(s == "" for s in args.stop):
        parser.error("--stop needs a non-empty TEXT")
    run = _load(args.checkpoint)
    with _threads(args.threads):
        for k in range(args.num_samples):
            try:
                g = generate(run.model, run.tokenizer, args.prompt, max_new_tokens=args.max_new_tokens,
                             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy,
                             stop=args.stop, seed=args.seed + k, use_cache=not args.no_cache)
            except (KeyError, ValueError) as e:  # a character the tokenizer does not know, too long a prompt
                raise _user_text_error(f"prompt {short(args.prompt)}", e) from None
            if k:
                print()
            print(args.prompt + g.text, flush=True)
            print(f"[{len(g.ids)} tokens, stopped by {g.stop_reason.replace('_', ' ')}, seed {args.seed + k}, "
                  f"log-probability {g.total_log_prob:.2f}]", file=sys.stderr, flush=True)
    return 0


def _read_inputs(args, parser) -> list[str]:
    if args.texts:
        return list(args.texts)
    if sys.stdin is None or sys.stdin.isatty():
        parser.error("nothing to score: give TEXT arguments, or pipe lines on stdin")
    texts = [line.rstrip("\n") for line in sys.stdin]
    texts = [t for t in texts if t.strip()]
    if not texts:
        parser.error("nothing to score: stdin held no text")
    return texts


def _cmd_score(args, parser) -> int:
    import math

    from ..lm import score

    texts = _read_inputs(args, parser)
    if any(t == "" for t in texts):
        parser.error("cannot score an empty TEXT: it has no tokens")
    run = _load(args.checkpoint)
    results = []
    with _threads(args.threads):
        for k, text in enumerate(texts, start=1):
            where = f"text {k} {short(text)}" if len(texts) > 1 else f"text {short(text)}"
            try:
                results.append(score(run.model, run.tokenizer, text))
            except (KeyError, ValueError) as e:
                raise _user_text_error(where, e) from None
    width = max(len(short(text, 50)) for text in texts)
    for k, (text, s) in enumerate(zip(texts, results, strict=True)):
        if args.summary:
            print(f"{short(text, 50):<{width}}  log p = {s.total_log_prob:9.3f}  tokens {s.n_tokens:4d}  "
                  f"perplexity {s.perplexity:9.3f}")
            continue
        if k:
            print()
        print(f"text: {text!r}")
        print(f"  {'#':>4}  {'token':<16}  {'log p':>9}  {'p':>8}")
        for t, (tok, lp) in enumerate(zip(s.tokens, s.log_probs, strict=True), start=1):
            print(f"  {t:>4}  {repr(tok):<16}  {lp:9.4f}  {math.exp(lp):8.4f}")
        print(f"  total log-probability {s.total_log_prob:.4f} nats over {s.n_tokens} tokens "
              f"(p = {math.exp(s.total_log_prob):.3e}), perplexity {s.perplexity:.4f}")
    return 0


def add_parsers(sub) -> None:
    """Add ``train-gpt``, ``generate`` and ``score`` to the subparsers ``sub``."""
    _add_train_parser(sub)
    _add_generate_parser(sub)
    _add_score_parser(sub)
