"""Character-level tokenizer: ids, end-of-text, unseen characters, save/load, hostile files."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.tokenizers import EOS_TOKEN, CharTokenizer, load_tokenizer

TEXTS = ["hello world", "café 中文 😀\n\tend", f"two{EOS_TOKEN}docs"]


@pytest.fixture
def tok():
    return CharTokenizer.train(TEXTS)


def test_vocabulary_is_sorted_characters_then_eos(tok):
    chars = sorted(set("".join(TEXTS).replace(EOS_TOKEN, "")))
    assert tok.chars == chars and tok.vocab_size == len(chars) + 1 == len(tok)
    assert tok.eos_id == len(chars) and tok.eos_token == EOS_TOKEN
    assert tok.get_vocab() == {c: i for i, c in enumerate(chars)} | {EOS_TOKEN: len(chars)}
    assert "<" not in tok.chars and "|" not in tok.chars  # the end-of-text token is never spelt out
    assert CharTokenizer.from_texts(TEXTS).chars == tok.chars


def test_encode_reference(tok):
    text = f"hello{EOS_TOKEN}😀 中"
    expected = [tok.chars.index(c) for c in "hello"] + [tok.eos_id] + [tok.chars.index(c) for c in "😀 中"]
    assert tok.encode(text) == expected
    assert tok.decode(expected) == text and tok.decode(expected, skip_special_tokens=True) == "hello😀 中"
    assert tok.decode(np.array(expected)) == text
    assert tok.encode("") == [] and tok.decode([]) == ""


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(st.text(max_size=20), min_size=1, max_size=4))
def test_round_trip(texts):
    tok = CharTokenizer.train(texts)
    for text in texts:
        assert tok.decode(tok.encode(text)) == text
    joined = EOS_TOKEN.join(texts)
    assert tok.decode(tok.encode(joined)) == joined and tok.encode(joined).count(tok.eos_id) >= len(texts) - 1


def test_unseen_character_is_a_clear_error(tok):
    with pytest.raises(ValueError, match=r"character 'Z' \(U\+005A\) at position 3 of the text is not in the "
                                         r"vocabulary .* no unknown token"):
        tok.encode("hel" + "Z")
    with pytest.raises(ValueError, match=r"character 'q' \(U\+0071\) at position 18 "):
        tok.encode(f"hello{EOS_TOKEN}q")
    with pytest.raises(TypeError, match="expected a str"):
        tok.encode(None)


def test_bad_construction_and_ids(tok):
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer("aba")
    with pytest.raises(ValueError, match="entry 1 must be a single character"):
        CharTokenizer(["a", "bc"])
    with pytest.raises(ValueError, match="lone surrogate"):
        CharTokenizer(["\udc80"])
    with pytest.raises(TypeError, match="got one str"):
        CharTokenizer.train("hello")
    with pytest.raises(TypeError, match="text 0 must be a str"):
        CharTokenizer.train([b"bytes"])
    with pytest.raises(ValueError, match=rf"outside the vocabulary \[0, {tok.vocab_size}\)"):
        tok.decode([tok.vocab_size])


def test_save_and_load(tok, tmp_path):
    tok.save(tmp_path)
    data = json.loads((tmp_path / "char_tokenizer.json").read_text(encoding="utf-8"))
    assert data["format"] == "minitransformer.char_tokenizer" and data["chars"] == "".join(tok.chars)
    for again in (CharTokenizer.from_folder(tmp_path), load_tokenizer(tmp_path)):
        assert isinstance(again, CharTokenizer) and again.chars == tok.chars and again.eos_id == tok.eos_id
        assert again.encode(TEXTS[1]) == tok.encode(TEXTS[1])


@pytest.mark.parametrize("content, match", [
    ("not json", "is not UTF-8 JSON"),
    ("[" * 100000, "is not UTF-8 JSON"),
    ('["a"]', "expected a 'minitransformer.char_tokenizer' object"),
    ('{"format": "other", "chars": "ab"}', "expected a 'minitransformer.char_tokenizer' object"),
    ('{"format": "minitransformer.char_tokenizer", "chars": 5}', "with a 'chars' string"),
    ('{"format": "minitransformer.char_tokenizer", "chars": "aa"}', "repeated"),
    ('{"format": "minitransformer.char_tokenizer", "chars": "ab", "eos_token": "</s>"}', "eos_token '</s>'"),
])
def test_hostile_files(tmp_path, content, match):
    (tmp_path / "char_tokenizer.json").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        CharTokenizer.from_folder(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer folder not found"):
        CharTokenizer.from_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no char_tokenizer.json"):
        CharTokenizer.from_folder(tmp_path)
    (tmp_path / "char_tokenizer.json").write_bytes(b'{"chars": "\xff"}')
    with pytest.raises(ValueError, match="is not UTF-8 JSON"):
        CharTokenizer.from_folder(tmp_path)
