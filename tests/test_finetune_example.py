"""examples/course_text_finetune.py: the course text's loop runs on a tiny slice with the text's shapes."""

import math
from pathlib import Path

from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "course_text_finetune.py"


def _load():
    return load_script("examples/course_text_finetune.py")


def test_course_text_example_on_a_tiny_slice(capsys):
    result = _load().main(["--limit", "6", "--test-limit", "4"])
    N, T = result["input_ids_shape"]
    assert N == 6 and result["labels_shape"] == (6,)
    assert result["logits_shape"] == (6, 2)  # the whole set in one step per epoch, as the text
    assert result["test_logits_shape"] == (1, 2) and len(result["test_predictions"]) == 1
    assert result["test_predictions"][0] in (0, 1)
    assert len(result["losses"]) == 3 and all(math.isfinite(x) for x in result["losses"])
    assert result["losses"][2] < result["losses"][0]  # three Adam steps on the same batch lower its loss
    assert 0.0 <= result["accuracy"] <= 1.0
    out = capsys.readouterr().out
    assert "Epoch 1, Loss: " in out and "Epoch 3, Loss: " in out and "Predictions: [" in out


def test_course_text_example_follows_the_text():
    source = SCRIPT.read_text()
    for line in ("tokenizer = BertTokenizer.from_pretrained(", "model = BertForSequenceClassification.from_pretrained(",
                 "input_ids = tokenizer(texts, padding=True, truncation=True)['input_ids']",
                 "optimizer = Adam(model.parameters(), lr=1e-5)", "loss_fn = CrossEntropyLoss()",
                 "optimizer.zero_grad()", "outputs = model(ids, labels=y)", "loss = loss_fn(outputs.logits, y)",
                 "optimizer.step()", "print(f'Epoch {epoch + 1}, Loss: {float(loss)}')",
                 "test_texts = ['This is a test text.']", "test_predictions = test_outputs.logits.argmax(axis=-1)",
                 "print(f'Predictions: {test_predictions}')"):
        assert line in source, line
    assert _load().main.__doc__
