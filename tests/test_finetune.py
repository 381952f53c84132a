"""Fine-tuning: WordPiece label alignment, QA spans, starting points, smoke runs of every task, saving."""

import json
import string
import warnings

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.data.finetune_sets import NER_LABELS, load_ner, load_qa, load_sentiment
from minitransformer.finetune import (
    TASKS,
    align_word_labels,
    answer,
    classify,
    encode_qa,
    evaluate,
    finetune,
    finetune_question_answering,
    finetune_sequence_classification,
    finetune_token_classification,
    load_start,
    save_finetuned,
    tag,
)
from minitransformer.models import (
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from minitransformer.tokenizers import SPECIAL_TOKENS, WordPieceTokenizer

CHARS = string.ascii_lowercase + string.digits + string.punctuation


def tiny_tokenizer(extra_words=()):
    """Special tokens, every character alone and as ##piece, and a few whole words: any ASCII text encodes,
    most words as several pieces (which is what the alignment tests need)."""
    words = sorted(set(extra_words) - set(CHARS))
    return WordPieceTokenizer(list(SPECIAL_TOKENS) + list(CHARS) + ["##" + c for c in CHARS] + words)


def tiny_config(tokenizer, **overrides):
    sizes = dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=32, max_position_embeddings=256)
    return BertConfig(**{**sizes, **overrides})


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(["the", "was", "good", "bad", "not", "movie", "book", "paris", "in", "born"])


# -- NER: labels on the first WordPiece of each word ------------------------------------------------------


def test_align_word_labels_first_piece_only(tok):
    words = ["Paris", "booking", "is", "fun", "."]
    enc, labels, first = align_word_labels(tok, words, [3, 0, 0, 0, 0], max_length=64)
    pieces = tok.convert_ids_to_tokens(enc.input_ids)
    assert pieces[:4] == ["[CLS]", "paris", "book", "##i"] and pieces[-1] == "[SEP]"
    assert first == [1, 2, 6, 8, 11]  # booking = book ##i ##n ##g, is = i ##s, fun = f ##u ##n
    expected = [-100] * len(pieces)
    for position, label in zip(first, [3, 0, 0, 0, 0], strict=True):
        expected[position] = label
    assert labels == expected
    assert sum(label != -100 for label in labels) == len(words)
    assert len(enc.input_ids) == len(enc.token_type_ids) == len(enc.attention_mask) == len(labels)


def test_align_word_labels_truncates_and_marks_cut_words(tok):
    enc, labels, first = align_word_labels(tok, ["paris", "booking", "in", "paris"], [1, 2, 3, 4], max_length=5)
    assert len(enc.input_ids) == 5
    assert tok.convert_ids_to_tokens(enc.input_ids) == ["[CLS]", "paris", "book", "##i", "[SEP]"]
    assert first == [1, 2, -1, -1] and labels == [-100, 1, 2, -100, -100]
    with pytest.raises(ValueError, match="2 words but 1 labels"):
        align_word_labels(tok, ["a", "b"], [1])


def test_align_word_labels_on_the_whole_ner_set_with_the_minilm_vocabulary():
    from minitransformer.pretrained import minilm_folder

    tokenizer = WordPieceTokenizer.from_pretrained(minilm_folder())
    for ex in load_ner("train")[:300] + load_ner("test")[:100]:
        enc, labels, first = align_word_labels(tokenizer, ex["tokens"], list(range(len(ex["tokens"]))), 128)
        assert [labels[t] for t in first] == list(range(len(ex["tokens"])))  # every word labelled, at its place
        assert sum(label != -100 for label in labels) == len(ex["tokens"])
        for word, t in zip(ex["tokens"], first, strict=True):
            assert tokenizer.convert_ids_to_tokens([enc.input_ids[t]])[0] == tokenizer.tokenize(word)[0]


# -- QA: answer spans after WordPiece ---------------------------------------------------------------------


def test_encode_qa_answer_tokens_spell_the_answer(tok):
    context = "Ann was born in Paris. Bob was born in Oslo."
    f = encode_qa(tok, "Where was Bob born?", context, context.index("Oslo"), "Oslo", max_length=64)
    pieces = tok.convert_ids_to_tokens(f.encoding.input_ids)
    assert pieces[f.start:f.end + 1] == ["o", "##s", "##l", "##o"]
    assert context[f.spans[f.start][0]:f.spans[f.end][1]] == "Oslo"
    sep = pieces.index("[SEP]")
    assert f.encoding.token_type_ids == [0] * (sep + 1) + [1] * (len(pieces) - sep - 1)
    assert all(s is None for s in f.spans[:sep + 1]) and f.spans[-1] is None
    assert all(s is not None for s in f.spans[sep + 1:-1]) and not f.truncated


def test_encode_qa_every_generated_answer_maps_back_exactly():
    """All 1,500 generated examples, MiniLM's vocabulary: the labelled token span is exactly the answer."""
    from minitransformer.pretrained import minilm_folder

    tokenizer = WordPieceTokenizer.from_pretrained(minilm_folder())
    for ex in load_qa("train") + load_qa("test"):
        f = encode_qa(tokenizer, ex["question"], ex["context"], ex["answer_start"], ex["answer"], max_length=192)
        assert not f.truncated and 0 < f.start <= f.end
        assert ex["context"][f.spans[f.start][0]:f.spans[f.end][1]] == ex["answer"]


def test_encode_qa_offsets_survive_accents_lower_case_and_dropped_characters():
    from minitransformer.pretrained import minilm_folder

    tokenizer = WordPieceTokenizer.from_pretrained(minilm_folder())
    context = "Café Müller,\x00 in São Paulo — unaffable ΣΑΣ! It was founded by José Ñúñez in 1990."
    for answer_text in ("São Paulo", "José Ñúñez", "unaffable", "ΣΑΣ", "1990"):
        f = encode_qa(tokenizer, "Who?", context, context.index(answer_text), answer_text)
        assert context[f.spans[f.start][0]:f.spans[f.end][1]] == answer_text
        assert f.end - f.start + 1 == len(tokenizer.tokenize(answer_text))


def test_encode_qa_truncation(tok):
    context = "Ann was born in Paris. Bob was born in Oslo."
    f = encode_qa(tok, "Where was Bob born?", context, context.index("Oslo"), "Oslo", max_length=30)
    assert f.truncated and len(f.encoding.input_ids) == 30
    assert (f.start, f.end) == (0, 0)  # the answer was cut off: labelled at [CLS], as Hugging Face's run_qa
    full = len(encode_qa(tok, "Where was Ann born?", context, max_length=128).encoding.input_ids)
    f = encode_qa(tok, "Where was Ann born?", context, context.index("Paris"), "Paris", max_length=full - 3)
    assert f.truncated and context[f.spans[f.start][0]:f.spans[f.end][1]] == "Paris"
    f = encode_qa(tok, "x " * 100, context, max_length=64, max_question_length=5)  # long question: cut to 5 pieces
    assert f.encoding.token_type_ids.count(0) == 5 + 2
    with pytest.raises(ValueError, match="is not at character 3"):
        encode_qa(tok, "Where?", context, 3, "Paris")
    with pytest.raises(ValueError, match="leaves no room for the context"):
        encode_qa(tok, "a b c d e f", context, max_length=8)


# -- starting points ----------------------------------------------------------------------------------------


def test_load_start_from_a_folder_pretrained_or_random(tok, tmp_path):
    base = BertModel(tiny_config(tok))
    base.save_pretrained(tmp_path, tokenizer=tok)  # what pretrain-bert saves: an encoder + vocab.txt
    model, tokenizer, notes = load_start(tmp_path, BertForTokenClassification, 9)
    assert isinstance(model, BertForTokenClassification) and model.training
    assert model.classifier.W.shape == (16, 9) and tokenizer.vocab == tok.vocab
    assert any("newly initialised" in n and "classifier" in n for n in notes)
    W = backend.to_numpy(base.encoder.layers[0].self_attn.W_q.data)
    assert np.array_equal(backend.to_numpy(model.bert.encoder.layers[0].self_attn.W_q.data), W)
    fresh, _, _ = load_start(tmp_path, BertForTokenClassification, 9, init="random")
    assert not np.array_equal(backend.to_numpy(fresh.bert.encoder.layers[0].self_attn.W_q.data), W)
    assert fresh.config.hidden_size == 16  # the same config, other weights
    again, _, _ = load_start(tmp_path, BertForTokenClassification, 9, init="random")
    assert np.array_equal(backend.to_numpy(again.classifier.W.data), backend.to_numpy(fresh.classifier.W.data))


def test_load_start_minilm_and_random_share_config_and_vocabulary():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the loader's warnings are collected as notes, not shown
        model, tokenizer, notes = load_start("minilm", BertForSequenceClassification, 2)
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6 and tokenizer.vocab_size == 30522
    assert any("classifier" in n for n in notes)
    random_model, _, _ = load_start("random", BertForSequenceClassification, 2)
    assert random_model.config == model.config
    a = backend.to_numpy(model.bert.embeddings.word_embeddings.W.data[1000])
    b = backend.to_numpy(random_model.bert.embeddings.word_embeddings.W.data[1000])
    assert not np.allclose(a, b)


def test_load_start_errors(tok, tmp_path):
    with pytest.raises(ValueError, match="pass init='random' and a tokenizer"):
        load_start(tiny_config(tok))
    with pytest.raises(FileNotFoundError, match="no model folder"):
        load_start(tmp_path / "nothing")
    with pytest.raises(ValueError, match="init must be"):
        load_start("minilm", init="scratch")
    with pytest.raises(ValueError, match="the tokenizer has .* tokens but the model only 10"):
        load_start(BertConfig(vocab_size=10, hidden_size=8, num_attention_heads=2, intermediate_size=8,
                              num_hidden_layers=1), init="random", tokenizer=tok)
    with pytest.raises(ValueError, match="unknown task 'pos'"):
        finetune("pos", tiny_config(tok), init="random", tokenizer=tok)


# -- smoke runs of every task (tiny model, a few steps, seconds) --------------------------------------------


def _run(task, tok, **kwargs):
    data = {"sentiment": (load_sentiment("train")[:24], load_sentiment("test")[::20]),
            "ner": (load_ner("train")[:24], load_ner("test")[:10]),
            "qa": (load_qa("train")[:24], load_qa("test")[:10])}[task]
    options = dict(init="random", tokenizer=tok, train=data[0], test=data[1], epochs=1, batch_size=8, progress=False)
    return finetune(task, tiny_config(tok), **{**options, **kwargs})


@pytest.mark.parametrize("task", list(TASKS))
def test_smoke_every_task(task, tok):
    result = _run(task, tok)
    assert result.history.steps == [1, 2, 3] and all(np.isfinite(result.history.loss))
    assert result.settings["steps"] == 3 and result.settings["steps_per_epoch"] == 3
    assert TASKS[task].metric in result.metrics and 0.0 <= result.metrics[TASKS[task].metric] <= 1.0
    assert not result.model.training
    json.dumps(result.to_dict())  # JSON-ready
    again = _run(task, tok)
    assert again.history.loss == result.history.loss  # same seed: the same run, bit for bit
    other = _run(task, tok, seed=1)
    assert other.history.loss != result.history.loss


def test_wrappers_and_max_steps(tok):
    for fn, task in ((finetune_sequence_classification, "sentiment"), (finetune_token_classification, "ner"),
                     (finetune_question_answering, "qa")):
        data = {"sentiment": load_sentiment("train")[:8], "ner": load_ner("train")[:8], "qa": load_qa("train")[:8]}
        r = fn(tiny_config(tok), init="random", tokenizer=tok, train=data[task], test=data[task][:2], max_steps=2,
               batch_size=2, progress=False)
        assert r.task == task and r.history.steps == [1, 2]


def test_training_learns_a_separable_set(tok):
    """A tiny model from random weights learns 'good' vs 'bad' (the loop, the loss and the optimizer together)."""
    train = [(f"the {w} was {a}", int(a == "good")) for w in ("movie", "book", "paris") for a in ("good", "bad")]
    config = tiny_config(tok, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    r = finetune("sentiment", config, init="random", tokenizer=tok, train=train * 4, test=train, epochs=30,
                 batch_size=8, lr=1e-2, warmup=0.0, progress=False)
    assert r.history.loss[-1] < 0.05 and r.history.loss[0] > 0.6
    assert r.metrics["accuracy"] == 1.0
    assert classify(r.model, tok, ["the book was good", "the movie was bad"]) == [1, 0]


def test_freeze_word_embeddings(tok):
    result = _run("sentiment", tok, freeze_word_embeddings=True, init="random")
    model = result.model
    fresh, _, _ = load_start(tiny_config(tok), BertForSequenceClassification, 2, init="random", tokenizer=tok)
    assert np.array_equal(backend.to_numpy(model.bert.embeddings.word_embeddings.W.data),
                          backend.to_numpy(fresh.bert.embeddings.word_embeddings.W.data))
    assert not np.array_equal(backend.to_numpy(model.classifier.W.data), backend.to_numpy(fresh.classifier.W.data))
    assert result.settings["trained_parameters"] == model.num_parameters() - tok.vocab_size * 16


def test_eval_each_epoch_and_adam(tok):
    r = _run("ner", tok, epochs=2, eval_each_epoch=True, optimizer="adam")
    assert [e["step"] for e in r.history.evals] == [3, 6]
    assert r.metrics == {k: v for k, v in r.history.evals[-1].items() if k != "step"}
    with pytest.raises(ValueError, match="optimizer must be"):
        _run("ner", tok, optimizer="sgd")
    with pytest.raises(ValueError, match="need epochs >= 1"):
        _run("ner", tok, epochs=0)
    with pytest.raises(ValueError, match="are not among the labels"):
        _run("ner", tok, train=[{"tokens": ["a"], "tags": ["B-MISC"]}])


def test_predictors_shapes_and_restore_training_mode(tok):
    model, _, _ = load_start(tiny_config(tok), BertForTokenClassification, len(NER_LABELS), init="random",
                             tokenizer=tok)
    sentences = [["Ann", "was", "born", "in", "Paris", "."], ["Hi"]]
    tags = tag(model, tok, sentences, NER_LABELS)
    assert [len(t) for t in tags] == [6, 1] and all(t in NER_LABELS for row in tags for t in row)
    assert model.training  # put back
    qa, _, _ = load_start(tiny_config(tok), BertForQuestionAnswering, 2, init="random", tokenizer=tok)
    context = "Ann was born in Paris. Bob was born in Oslo."
    answers = answer(qa, tok, ["Where was Bob born?"] * 2, [context, "Oslo."])
    assert len(answers) == 2 and answers[0] in context and answers[1] in "Oslo."
    metrics = evaluate("qa", qa, tok, load_qa("test")[:3])
    assert set(metrics) == {"exact_match", "f1", "examples"}


def test_save_finetuned_reloads_with_label_names(tok, tmp_path):
    result = _run("ner", tok)
    written = dict(save_finetuned(result, tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["id2label"]["1"] == "B-PER" and config["label2id"]["I-DATE"] == 8
    assert config["finetuning_task"] == "ner"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["metrics"] == result.metrics and written["metrics"].endswith("metrics.json")
    reloaded = BertForTokenClassification.from_pretrained(tmp_path)
    sentences = [ex["tokens"] for ex in load_ner("test")[:4]]
    assert tag(reloaded, WordPieceTokenizer.from_pretrained(tmp_path), sentences, NER_LABELS) == \
        tag(result.model, tok, sentences, NER_LABELS)
