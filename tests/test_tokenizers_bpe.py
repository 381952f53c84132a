"""Byte-level BPE (GPT-2): byte table, pre-tokenizer, trainer, encoding, decoding, files, errors.

The reference implementations live in this file: GPT-2's own ``bpe()`` (openai/gpt-2 src/encoder.py, on
strings) for encoding, and a trainer that recounts every pair from scratch at every step for training.
Parity with transformers' GPT2Tokenizer and the ``tokenizers`` trainer is in tests/parity/test_gpt2_tokenizer.py.
"""

import json
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.tokenizers import EOS_TOKEN, ByteLevelBPETokenizer, load_tokenizer
from minitransformer.tokenizers.bpe import read_merges, read_vocab_json
from minitransformer.tokenizers.bpe_trainer import count_words, train_bpe
from minitransformer.tokenizers.byte_level import (
    BYTE_DECODER,
    BYTE_ENCODER,
    bytes_to_unicode,
    pretokenize,
    split_special,
    symbols_to_bytes,
    text_to_symbols,
)

SENTENCES = [
    "The cat sat on the mat. The cats sat on the mats, and the cat's hat was flat.",
    "We'll see what they've done; I'm sure you're right, she'd say it isn't so.",
    "Café naïve résumé façade: accents are bytes too. Ünïcödé everywhere!",
    "中文字符 日本語のテキスト 한국어 텍스트 漢字かな交じり文",
    "Emoji 😀🎉👍🏽 and ❤️ hearts, flags 🇫🇷.",
    "Numbers 3.14159, 1,000,000 and 2024-01-01 at 10:30pm cost $12.50 (50%).",
    "   leading spaces, trailing spaces   \n\n\tTabbed\tline\r\nwindows line\n",
]
CORPUS = [f"{s} {i} {s.lower()}" for i in range(12) for s in SENTENCES]
VARIED = SENTENCES + ["", " ", "  ", "\n", "a", "  hello  world  ", "x\t\t y\n\n\nz   ", "don't DON'T 'tis o'clock",
                      "it's 's 't 're 've 'm 'll 'd", "123456789 12 345", "!!!???...", "Straße ΑΘΗΝΑ Привет мир",
                      "hi<|endoftext|>there", "<|endoftext|><|endoftext|>", "<|endoftext", "trailing   "]


@pytest.fixture(scope="module")
def tok():
    return ByteLevelBPETokenizer.train(CORPUS, vocab_size=420)


# ---- byte table and pre-tokenizer ---------------------------------------------------------------------------

def test_byte_table_is_gpt2s():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() and len(c) == 1 for c in table.values())
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    assert len(printable) == 188 and all(table[b] == chr(b) for b in printable)
    assert list(table)[:188] == printable  # GPT-2's order: the printable bytes first (ids 0-187 of its vocab)
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[0] == "Ā" and table[0xAD] == "Ń"
    assert BYTE_DECODER == {c: b for b, c in table.items()}


def test_text_to_symbols_round_trip():
    assert text_to_symbols(" é") == "ĠÃ©"
    assert symbols_to_bytes("ĠÃ©") == " é".encode()
    with pytest.raises(ValueError, match="lone surrogate"):
        text_to_symbols("a\ud800")


@pytest.mark.parametrize("text, words", [
    ("Hello world's  2024!\n", ["Hello", " world", "'s", " ", " 2024", "!", "\n"]),
    ("I'm you're we've he'll she'd it's isn't", ["I", "'m", " you", "'re", " we", "'ve", " he", "'ll", " she", "'d",
                                               " it", "'s", " isn", "'t"]),
    ("a   b", ["a", "  ", " b"]),
    ("a \t\nb", ["a", " \t", "\n", "b"]),
    ("end   ", ["end", "   "]),
    ("café naïve", ["café", " naïve"]),
    ("中文 字符", ["中文", " 字符"]),
    ("x😀😀 !?", ["x", "😀😀", " !?"]),
    ("abc123def", ["abc", "123", "def"]),
    ("DON'T", ["DON", "'", "T"]),  # the contractions are lower case only, as in GPT-2
])
def test_pretokenize(text, words):
    assert pretokenize(text) == words
    assert "".join(pretokenize(text)) == text


def test_split_special():
    assert split_special(f"a{EOS_TOKEN}b") == ["a", EOS_TOKEN, "b"]
    assert split_special(f"{EOS_TOKEN}{EOS_TOKEN}") == [EOS_TOKEN, EOS_TOKEN]
    assert split_special("") == []
    with pytest.raises(TypeError, match="expected a str"):
        split_special(b"bytes")


# ---- training ------------------------------------------------------------------------------------------------

def test_train_worked_example_from_the_docstring():
    words = ["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5
    vocab, merges = train_bpe(["\n".join(words)], vocab_size=260)
    assert merges == [("u", "g"), ("u", "n"), ("h", "ug")]
    assert vocab[256:] == ["ug", "un", "hug", EOS_TOKEN]


def _age(token, order):
    return ord(token) if len(token) == 1 and token in BYTE_DECODER else 1000 + order[token]


def naive_train(texts, vocab_size, min_frequency):
    """Recount every pair from scratch at every step (no incremental updates): the reference trainer."""
    words = {tuple(text_to_symbols(w)): c for w, c in count_words(texts).items()}
    order, merges = {}, []
    while len(order) < vocab_size - 257:
        counts = Counter()
        for w, c in words.items():
            for pair in zip(w[:-1], w[1:], strict=True):
                counts[pair] += c
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], _age(p[0], order), _age(p[1], order)))
        if counts[best] < min_frequency:
            break
        a, b = best
        merges.append(best)
        order.setdefault(a + b, len(order))
        new_words = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] += c
        words = new_words
    return merges


@pytest.mark.parametrize("vocab_size, min_frequency", [(330, 2), (600, 1), (600, 5)])
def test_train_equals_recount_from_scratch(vocab_size, min_frequency):
    texts = CORPUS[::3] + ["aaaa aaaaaaa abab ababab xxyxxy " * 3]  # overlapping pairs: a a a -> aa a
    vocab, merges = train_bpe(texts, vocab_size, min_frequency)
    assert merges == naive_train(texts, vocab_size, min_frequency)
    assert len(set(vocab)) == len(vocab) and all(a + b in vocab for a, b in merges)


def test_train_vocab_size_and_min_frequency(tok):
    assert tok.vocab_size == 420 and tok.eos_id == 419 and tok.vocab[-1] == EOS_TOKEN
    assert tok.vocab[:256] == list(BYTE_ENCODER.values())
    # words "ab" " ab" " ab" " cd": a b x3, then Ġ ab x2; every other pair once
    assert ByteLevelBPETokenizer.train(["ab ab ab cd"], vocab_size=1000, min_frequency=3).merges == [("a", "b")]
    small = ByteLevelBPETokenizer.train(["ab ab ab cd"], vocab_size=1000, min_frequency=2)
    assert small.merges == [("a", "b"), ("Ġ", "ab")] and small.vocab_size == 259
    assert ByteLevelBPETokenizer.train(["ab ab ab cd"], vocab_size=258, min_frequency=1).merges == [("a", "b")]
    assert ByteLevelBPETokenizer.train(["ab"], vocab_size=257).merges == []


def test_train_keeps_end_of_text_out_of_the_merges():
    tok = ByteLevelBPETokenizer.train([f"one{EOS_TOKEN}two{EOS_TOKEN}"] * 20, vocab_size=300)
    assert not any("endoftext" in t or "<|" in t for t in tok.vocab[:-1])
    assert tok.encode(f"one{EOS_TOKEN}") == [tok.get_vocab()["one"], tok.eos_id]


def test_train_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size must be an int >= 257"):
        ByteLevelBPETokenizer.train(["abc"], vocab_size=256)
    with pytest.raises(ValueError, match="min_frequency must be an int >= 1"):
        ByteLevelBPETokenizer.train(["abc"], vocab_size=300, min_frequency=0)
    with pytest.raises(TypeError, match="got one str"):
        ByteLevelBPETokenizer.train("abc", vocab_size=300)
    with pytest.raises(TypeError, match="text 1 must be a str"):
        ByteLevelBPETokenizer.train(["abc", 5], vocab_size=300)
    with pytest.raises(ValueError, match="lone surrogate"):
        ByteLevelBPETokenizer.train(["ab\udc80"], vocab_size=300)


# ---- encoding and decoding -------------------------------------------------------------------------------------

def gpt2_bpe(token: str, ranks: dict) -> tuple:
    """GPT-2's bpe() from openai/gpt-2 src/encoder.py, verbatim apart from names: the reference."""
    word = tuple(token)
    pairs = set(zip(word[:-1], word[1:], strict=True))
    if not pairs:
        return word
    while True:
        bigram = min(pairs, key=lambda pair: ranks.get(pair, float("inf")))
        if bigram not in ranks:
            break
        first, second = bigram
        new_word, i = [], 0
        while i < len(word):
            try:
                j = word.index(first, i)
            except ValueError:
                new_word.extend(word[i:])
                break
            new_word.extend(word[i:j])
            i = j
            if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                new_word.append(first + second)
                i += 2
            else:
                new_word.append(word[i])
                i += 1
        word = tuple(new_word)
        if len(word) == 1:
            break
        pairs = set(zip(word[:-1], word[1:], strict=True))
    return word


def test_encode_equals_gpt2_reference(tok):
    ranks = {m: r for r, m in enumerate(tok.merges)}
    vocab = tok.get_vocab()
    for text in VARIED + CORPUS[:7]:
        expected = []
        for piece in split_special(text):
            if piece == EOS_TOKEN:
                expected.append(tok.eos_id)
            else:
                expected += [vocab[t] for w in pretokenize(piece) for t in gpt2_bpe(text_to_symbols(w), ranks)]
        assert tok.encode(text) == expected, text
        assert tok.encode(text) == expected  # second time from the cache


def test_encode_docstring_example():
    vocab = {c: i for i, c in enumerate(BYTE_ENCODER.values())}
    merges = [("o", "r"), ("l", "d"), ("Ġ", "w"), ("Ġw", "or"), ("Ġwor", "ld")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = ByteLevelBPETokenizer(vocab, merges)
    assert tok.tokenize(" world") == ["Ġworld"] and tok.tokenize(" wordl") == ["Ġwor", "d", "l"]
    assert tok.eos_id == len(vocab) and tok.vocab_size == len(vocab) + 1  # appended like GPT2Tokenizer does


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60), eos=st.booleans())
def test_round_trip_any_text(tok, text, eos):
    if eos:
        text = text[: len(text) // 2] + EOS_TOKEN + text[len(text) // 2:]
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


def test_decode_invalid_utf8_is_replaced(tok):
    byte_id = {b: tok.get_vocab()[c] for b, c in BYTE_ENCODER.items()}
    assert tok.decode([byte_id[0xC3]]) == "\ufffd"  # the first byte of "é" alone
    emoji = [byte_id[b] for b in "😀".encode()]
    assert tok.decode(emoji[:2] + [byte_id[ord("a")]]) == "\ufffda"
    assert tok.decode(emoji) == "😀"


def test_decode_special_tokens_and_arrays(tok):
    ids = tok.encode(f"hi{EOS_TOKEN}yo")
    assert tok.decode(ids) == f"hi{EOS_TOKEN}yo" and tok.decode(ids, skip_special_tokens=True) == "hiyo"
    assert tok.decode(np.array(ids, dtype=np.int64)) == f"hi{EOS_TOKEN}yo"
    assert "".join(tok.tokenize(" é")) == "ĠÃ©"
    assert tok.convert_ids_to_tokens([tok.eos_id]) == [EOS_TOKEN]


def test_decode_bad_ids(tok):
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 420\)"):
        tok.decode([5, 420])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="must be ints"):
        tok.decode([1.5])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="got a str"):
        tok.decode("abc")


def test_encode_bad_input(tok):
    with pytest.raises(ValueError, match="lone surrogate"):
        tok.encode("ok \ud800 no")
    with pytest.raises(TypeError, match="expected a str"):
        tok.encode(["a list"])


# ---- files -----------------------------------------------------------------------------------------------------

def test_save_and_load(tok, tmp_path):
    tok.save(tmp_path)
    lines = (tmp_path / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "#version: 0.2" and lines[1] == " ".join(tok.merges[0]) and lines[-1] == ""
    assert len(lines) == len(tok.merges) + 2
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert vocab == tok.get_vocab() and vocab[EOS_TOKEN] == tok.vocab_size - 1
    for again in (ByteLevelBPETokenizer.from_folder(tmp_path), load_tokenizer(tmp_path),
                  ByteLevelBPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")):
        assert again.vocab == tok.vocab and again.merges == tok.merges
        assert [again.encode(t) for t in VARIED] == [tok.encode(t) for t in VARIED]


def test_read_merges_formats(tmp_path):
    path = tmp_path / "merges.txt"
    path.write_bytes(b"#version: 0.2 - Trained by huggingface/tokenizers\r\na b\r\n\r\nab c\r\n")
    assert read_merges(path) == [("a", "b"), ("ab", "c")]
    path.write_text("a b\n", encoding="utf-8")  # no #version line: fine too
    assert read_merges(path) == [("a", "b")]


def _write(folder, vocab=None, merges="#version: 0.2\na b\n"):
    os.makedirs(folder, exist_ok=True)
    if vocab is None:
        vocab = {c: i for i, c in enumerate(BYTE_ENCODER.values())} | {"ab": 256}
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        f.write(vocab if isinstance(vocab, str) else json.dumps(vocab))
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write(merges)
    return folder


def test_load_a_well_formed_pair(tmp_path):
    tok = ByteLevelBPETokenizer.from_folder(_write(tmp_path / "ok"))
    assert tok.tokenize("abc") == ["ab", "c"] and tok.eos_id == 257


BYTES = {c: i for i, c in enumerate(BYTE_ENCODER.values())}


@pytest.mark.parametrize("vocab, merges, match", [
    (None, "#version: 0.2\na b c\n", r"line 2: expected a merge 'a b'"),
    (None, "#version: 0.2\nab\n", r"line 2: expected a merge"),
    (None, "a  b\n", r"line 1: expected a merge"),
    (None, "#version: 0.2\nx yz\n", r"merge 0 \('x' 'yz'\): \['yz', 'xyz'\] not in the vocabulary"),
    (BYTES, "#version: 0.2\na b\n", r"merge 0 \('a' 'b'\): \['ab'\] not in the vocabulary"),
    (None, "#version: 0.2\na b\na b\n", "merge 1 .* repeats merge 0"),
    ("[1, 2]", "", "holds a JSON list"),
    ("{not json", "", "is not UTF-8 JSON"),
    ("[" * 100000 + "]" * 100000, "", "is not UTF-8 JSON"),
    (BYTES | {"ab": "256"}, "", "the id of 'ab' must be an int"),
    (BYTES | {"ab": True}, "", "the id of 'ab' must be an int"),
    (BYTES | {"ab": 255}, "", "share the id 255"),
    (BYTES | {"ab": 300}, "", r"ids must be 0..256 without gaps; id 256 is missing"),
    ({c: i for c, i in BYTES.items() if c != "Ġ"} | {"ab": BYTES["Ġ"]}, "", r"1 of the 256 byte symbols are missing"),
    (BYTES | {"a b": 256}, "", r"token 'a b' \(id 256\) holds ' ', which is not one of GPT-2's 256 byte symbols"),
])
def test_load_errors(tmp_path, vocab, merges, match):
    folder = _write(tmp_path / "bad", vocab, merges)
    with pytest.raises(ValueError, match=match):
        ByteLevelBPETokenizer.from_folder(folder)


def test_load_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer folder not found"):
        ByteLevelBPETokenizer.from_folder(tmp_path / "nowhere")
    (tmp_path / "vocab.json").write_text("{}", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="lacks merges.txt"):
        ByteLevelBPETokenizer.from_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="merges file not found"):
        read_merges(tmp_path / "merges.txt")
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        read_vocab_json(tmp_path / "missing.json")
    (tmp_path / "merges.txt").write_bytes(b"#version\n\xff\xfe b\n")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        read_merges(tmp_path / "merges.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no tokenizer"):
        load_tokenizer(empty)


def test_constructor_checks_merges():
    with pytest.raises(ValueError, match="merge 0 must be a pair of token strings"):
        ByteLevelBPETokenizer(BYTES, [("a", "b", "c")])
    with pytest.raises(TypeError, match="token -> id mapping"):
        ByteLevelBPETokenizer(list(BYTES), [])


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                       max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(vocab=st.one_of(st.binary(max_size=40), json_values.map(json.dumps),
                       st.dictionaries(st.text(max_size=3), st.integers(-2, 300), max_size=5).map(
                           lambda d: json.dumps(BYTES | d))),
       merges=st.one_of(st.binary(max_size=40), st.lists(st.sampled_from(["a b", "ab c", "#version: 0.2", "", "x",
                                                                          "a  b", "Ġ a", "\r"]), max_size=4).map(
           lambda lines: "\n".join(lines).encode())))
def test_random_files_load_or_raise_value_error(vocab, merges):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "vocab.json"), "w" if isinstance(vocab, str) else "wb") as f:
            f.write(vocab)
        with open(os.path.join(folder, "merges.txt"), "wb") as f:
            f.write(merges)
        try:
            tok = ByteLevelBPETokenizer.from_folder(folder)
        except ValueError as e:
            assert "vocab.json" in str(e) or "merges.txt" in str(e) or "merge " in str(e)
        else:
            assert tok.decode(tok.encode("a b ab c")) == "a b ab c"
