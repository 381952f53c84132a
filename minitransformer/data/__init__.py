"""Data for the encoder-decoder: character vocabularies, synthetic tasks, batching.

    from minitransformer.data import get_task, batches

    task = get_task("dates")
    src_vocab, tgt_vocab = task.build_vocabs()
    train = task.sample(10_000, seed=0, split="train")
    for batch in batches(train, 64, src_vocab, tgt_vocab, shuffle_seed=0):
        ...  # batch.src_ids (B, S), batch.tgt_in / batch.tgt_out (B, T), masks
"""

from .base import SPLITS, Task
from .batching import IGNORE_INDEX, Seq2SeqBatch, batches, make_batch
from .dates import FORMATS as DATE_FORMATS
from .dates import TWO_DIGIT_YEARS, DatesTask, format_date, ordinal
from .numbers import NumbersTask, number_to_words
from .sequences import CopyTask, ReverseTask, SequenceTask, SortTask
from .tasks import TASKS, get_task, task_names
from .vocab import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID, Vocab

__all__ = [
    "BOS_ID", "DATE_FORMATS", "EOS_ID", "IGNORE_INDEX", "PAD_ID", "SPECIAL_TOKENS", "SPLITS", "TASKS",
    "TWO_DIGIT_YEARS", "UNK_ID", "CopyTask", "DatesTask", "NumbersTask", "ReverseTask", "Seq2SeqBatch",
    "SequenceTask", "SortTask", "Task", "Vocab", "batches", "format_date", "get_task", "make_batch",
    "number_to_words", "ordinal", "task_names",
]
