"""Byte-level BPE vs Hugging Face: transformers' GPT2Tokenizer and the ``tokenizers`` trainer.

No download: the ``tokenizers`` package trains a byte-level BPE on a corpus written here and saves GPT-2's
two files (``vocab.json``, ``merges.txt``); our tokenizer and ``GPT2Tokenizer`` read the same files and
must give the same ids. In the other direction our trainer's files load into ``GPT2Tokenizer``.

In transformers 5, ``GPT2Tokenizer`` is the ``tokenizers``-backed class (its regex runs in Oniguruma,
ours in the ``regex`` package). The two regex engines carry different Unicode versions, so on code points
unassigned in Python's Unicode database (category Cn: e.g. ``regex`` counts all of plane 3 as letters)
their pre-tokenizations may differ; the random texts below are therefore drawn from assigned characters.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.tokenizers import EOS_TOKEN, ByteLevelBPETokenizer
from minitransformer.tokenizers.byte_level import pretokenize, text_to_symbols
from tests.conftest import require

CORPUS_LINES = [
    "The quick brown fox jumps over the lazy dog. The dog didn't mind; it's lazy, they're sure.",
    "We'll see what you've done, I'm told. She'd say the fox'll run.  Twice   spaced\ttabbed\t\tline",
    "Café, naïve, résumé, façade, Ångström, crème brûlée, jalapeño, smörgåsbord, Straße, Øresund.",
    "中文字符和日本語のテキスト、한국어 텍스트。漢字かな交じり文です。",
    "Emoji: 😀 🎉 👍🏽 ❤️ 🇫🇷 🧑‍💻 and the snowman ☃ with a ★.",
    "Digits 0123456789, pi 3.14159, 1,000,000 people, $12.50, 50%, 2024-01-01T10:30:00Z.",
    "Punctuation!? (parens) [brackets] {braces} <angle> @#$%^&*_+=|\\~` «quotes» “curly” — dash… ¿¡",
    "Привет, мир! Γειά σου κόσμε! مرحبا بالعالم नमस्ते दुनिया",
    "def f(x):\n    return x ** 2  # squares\n\n\nclass A:\n    pass\n",
]
CORPUS = [f"{line} {i}" if i % 3 else line.upper() for i in range(40) for line in CORPUS_LINES]

VARIED = [
    "Hello world! It's a naïve café's résumé; don't you think? I'm sure they've we'll he'd you're.",
    "Accents: àéîõü ÀÉÎÕÜ ñ ç ß ø å æ œ; decomposed e\u0301 a\u030a; Vietnamese: Tiếng Việt có dấu.",
    "Emoji 😀😃😄 👨‍👩‍👧‍👦 👍🏻👍🏿 🇯🇵🇺🇸 ❤️‍🔥 and rare ones 🦜🪐🫠.",
    "CJK 你好，世界！こんにちは世界 안녕하세요 세계 中文，日本語と한국어が混ざる。",
    "Whitespace runs:  two   three    four\t\ttabs \t mixed\n\nnewlines\r\nCRLF\u00a0nbsp\u3000ideographic",
    "   leading spaces and trailing spaces   ",
    "trailing tab\t",
    "trailing newlines\n\n\n",
    "  \n \t ",
    "Contractions: 's 't 're 've 'm 'll 'd, DON'T CAN'T, rock'n'roll, 'quoted', o'clock, ''",
    "Digits: 0 12 345 6789 1234567890 3.14 1e-10 ½ ² ³ ① Ⅻ ١٢٣ ४५६",
    "Punctuation: ... !!! ??? --- *** ((nested)) [x] {y} <z> @#$%^&*_+=|\\~` ¿¡ «» “” ‘’ — – …",
    "Mixed123abc456 abc_def-ghi.jkl/mno?p=q&r=s#t https://example.com/path?q=1 user@mail.org",
    f"two documents{EOS_TOKEN}the second one{EOS_TOKEN}",
    f"{EOS_TOKEN}{EOS_TOKEN} <|endoftext <|endoftext|x",
    "Control \x00\x01\x07\x1b chars, zero\u200bwidth, soft\u00adhyphen, bom\ufeff, replacement\ufffd",
    "",
    "a",
    " ",
]

ASSIGNED = st.characters(codec="utf-8", exclude_categories=["Cn"])


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """vocab.json + merges.txt trained by the ``tokenizers`` package's byte-level BPE on CORPUS."""
    tokenizers = require("tokenizers")
    folder = tmp_path_factory.mktemp("hf_bpe")
    trainer = tokenizers.ByteLevelBPETokenizer()
    trainer.train_from_iterator(CORPUS, vocab_size=700, min_frequency=2, special_tokens=[EOS_TOKEN],
                                show_progress=False)
    trainer.save_model(str(folder))
    return folder


@pytest.fixture(scope="module")
def pair(hf_folder):
    transformers = require("transformers")
    return ByteLevelBPETokenizer.from_folder(hf_folder), transformers.GPT2Tokenizer.from_pretrained(str(hf_folder))


@pytest.fixture(scope="module")
def ours_trained_pair(tmp_path_factory):
    transformers = require("transformers")
    folder = tmp_path_factory.mktemp("our_bpe")
    ours = ByteLevelBPETokenizer.train(CORPUS, vocab_size=700)
    ours.save(folder)
    return ours, transformers.GPT2Tokenizer.from_pretrained(str(folder))


def test_the_files_are_a_real_bpe(pair):
    ours, theirs = pair
    assert ours.vocab_size == len(theirs) == 700 and len(ours.merges) > 400
    assert ours.eos_id == theirs.eos_token_id == 0  # the tokenizers trainer puts special tokens first


@pytest.mark.parametrize("text", VARIED)
def test_encode_equals_gpt2_tokenizer(pair, text):
    ours, theirs = pair
    ids = ours.encode(text)
    assert ids == theirs.encode(text)
    assert ours.tokenize(text) == theirs.convert_ids_to_tokens(ids)
    assert ours.decode(ids) == theirs.decode(ids) == text


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ASSIGNED, max_size=40))
def test_encode_equals_gpt2_tokenizer_random_text(pair, text):
    ours, theirs = pair
    assert ours.encode(text) == theirs.encode(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list(" \t\n\r\x0b\x0c\u00a0\u3000\u2028 'sdtmlrevéa1!中😀")), max_size=25))
def test_whitespace_and_contractions_equal_gpt2_tokenizer(pair, text):
    ours, theirs = pair
    assert ours.encode(text) == theirs.encode(text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ASSIGNED, max_size=40))
def test_pretokenize_equals_tokenizers_byte_level(text):
    tokenizers = require("tokenizers")
    expected = [w for w, _ in tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]
    assert [text_to_symbols(w) for w in pretokenize(text)] == expected


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(0, 699), max_size=12))
def test_decode_any_ids_equals_gpt2_tokenizer(pair, ids):
    ours, theirs = pair  # random ids cut characters apart: both replace invalid UTF-8 with U+FFFD
    assert ours.decode(ids) == theirs.decode(ids)


@pytest.mark.parametrize("text", VARIED)
def test_our_trained_files_load_in_gpt2_tokenizer(ours_trained_pair, text):
    ours, theirs = ours_trained_pair
    assert len(theirs) == ours.vocab_size == 700 and theirs.eos_token_id == ours.eos_id == 699
    ids = ours.encode(text)
    assert ids == theirs.encode(text)
    assert theirs.decode(ids) == text


def test_our_trainer_learns_the_merges_of_the_tokenizers_trainer(hf_folder):
    """Same corpus, same vocabulary size: the same merges in the same order (same tie rule)."""
    theirs = ByteLevelBPETokenizer.from_folder(hf_folder)
    ours = ByteLevelBPETokenizer.train(CORPUS, vocab_size=700)
    assert ours.merges == theirs.merges
    assert sorted(ours.vocab) == sorted(theirs.vocab)
