"""The course text's fine-tuning example (Sections 4.2-4.5) line by line, with minitransformer for transformers.

The course text                                         here
----------------------------------------------------    ------------------------------------------------------
from transformers import BertTokenizer, \\               from minitransformer.tokenizers import
    BertForSequenceClassification                            WordPieceTokenizer as BertTokenizer
import torch                                            from minitransformer import backend (arrays: NumPy/CuPy)
BertTokenizer.from_pretrained('bert-base-uncased')      BertTokenizer.from_pretrained(minilm_folder())
BertForSequenceClassification.from_pretrained(...)      the same call, on the all-MiniLM-L6-v2 folder
texts = [2 sentences]; labels = [1, 0]                  the project's sentiment training set (599 sentences)
tokenizer(texts, return_tensors='pt', padding=True,     tokenizer(texts, padding=True, truncation=True)
          truncation=True)['input_ids']                     ['input_ids']  -> (N, T) int64 array
torch.tensor(labels)                                    backend.asarray(labels, dtype="int64")
Adam(model.parameters(), lr=1e-5)                       minitransformer.optim.Adam, the same arguments
torch.nn.CrossEntropyLoss()                             minitransformer.nn.losses.CrossEntropyLoss()
loss.backward()                                         model.backward(loss_fn.backward()): no autograd here,
                                                        the loss's backward gives dlogits, the model's the rest
loss.item()                                             float(loss)
torch.argmax(test_outputs.logits, dim=-1)               test_outputs.logits.argmax(axis=-1)

As in the course text, the model stays in the eval mode that from_pretrained returns (no dropout), each
epoch is ONE step on the whole training set, and the shapes are the same: input_ids (N, T), logits (N, 2),
predictions (M,). Three full-batch steps at lr 1e-5 move the weights very little, so the held-out accuracy
printed at the end stays near what the random new classifier gives; ``--batch-size 16`` splits each epoch
into mini-batches (an inner loop the text does not have) and shows that the same code learns.

Measured on the 2-core CPU (busy: other jobs shared it): the text's loop, 3 full-batch steps on the 778
training sentences (input_ids (778, 17)), loss 0.6931 -> 0.6919, held-out accuracy 55.0%, 61 CPU seconds,
3.1 GB peak memory (one batch of 778); with --batch-size 16, loss 0.652 -> 0.074, held-out accuracy
81.0%, 277 CPU seconds, 0.7 GB.

    python examples/course_text_finetune.py                    # the text's loop: 3 full-batch steps
    python examples/course_text_finetune.py --batch-size 16    # 3 epochs of mini-batches
    python examples/course_text_finetune.py --limit 8 --test-limit 4    # seconds (the test suite runs this)
"""

from __future__ import annotations

import argparse
import random
import time

from minitransformer import backend
from minitransformer.data.finetune_sets import load_sentiment
from minitransformer.models import BertForSequenceClassification
from minitransformer.nn.losses import CrossEntropyLoss
from minitransformer.optim import Adam
from minitransformer.pretrained import minilm_folder
from minitransformer.tokenizers import WordPieceTokenizer as BertTokenizer


def main(argv=None) -> dict:
    """Run the example; returns what a test checks (shapes, losses, predictions, accuracy)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training sentences")
    parser.add_argument("--test-limit", type=int, default=None, help="score only the first N held-out sentences")
    parser.add_argument("--batch-size", type=int, default=0, help="0: one full batch per epoch, as the text")
    parser.add_argument("--epochs", type=int, default=3, help="num_epochs (the text: 3)")
    args = parser.parse_args(argv)
    backend.manual_seed(0)  # the new classifier layer's weights
    t0 = time.perf_counter()

    # 4.2 Load the pre-trained model
    tokenizer = BertTokenizer.from_pretrained(minilm_folder())
    model = BertForSequenceClassification.from_pretrained(minilm_folder())

    # 4.3 Prepare the data
    train = load_sentiment("train")
    if args.limit is not None:  # a small slice with both labels
        positive, negative = [x for x in train if x[1] == 1], [x for x in train if x[1] == 0]
        train = positive[:(args.limit + 1) // 2] + negative[:args.limit // 2]
    random.Random(0).shuffle(train)  # the file lists positives first: mix them for mini-batches
    texts = [text for text, _ in train]
    labels = [label for _, label in train]  # 1 for positive, 0 for negative
    input_ids = tokenizer(texts, padding=True, truncation=True)['input_ids']  # (N, T)
    labels = backend.asarray(labels, dtype="int64")  # (N,)
    print(f"input_ids: {tuple(input_ids.shape)}, labels: {tuple(labels.shape)}")

    # 4.4 Fine-tune
    optimizer = Adam(model.parameters(), lr=1e-5)
    loss_fn = CrossEntropyLoss()

    num_epochs = args.epochs
    losses = []
    batch = args.batch_size or len(texts)
    for epoch in range(num_epochs):
        for i in range(0, len(texts), batch):  # one pass when batch == len(texts): the text's loop
            ids, y = input_ids[i:i + batch], labels[i:i + batch]  # (B, T), (B,)
            optimizer.zero_grad()
            outputs = model(ids, labels=y)
            loss = loss_fn(outputs.logits, y)
            model.backward(loss_fn.backward())  # loss.backward()
            optimizer.step()
        losses.append(float(loss))
        print(f'Epoch {epoch + 1}, Loss: {float(loss)}')
    logits_shape = tuple(outputs.logits.shape)

    # 4.5 Evaluate
    test_texts = ['This is a test text.']
    test_input_ids = tokenizer(test_texts, padding=True, truncation=True)['input_ids']
    test_outputs = model(test_input_ids)
    test_predictions = test_outputs.logits.argmax(axis=-1)
    print(f'Predictions: {test_predictions}')

    # ... and on the held-out sentences (not in the text): accuracy of the same argmax prediction
    held_out = load_sentiment("test")[:args.test_limit]
    correct = 0
    for i in range(0, len(held_out), 64):
        chunk = held_out[i:i + 64]
        ids = tokenizer([text for text, _ in chunk], padding=True, truncation=True)['input_ids']  # (b, T)
        predictions = backend.to_numpy(model(ids).logits.argmax(axis=-1)).tolist()  # (b,)
        correct += sum(int(p == y) for p, (_, y) in zip(predictions, chunk, strict=True))
    accuracy = correct / len(held_out)
    seconds = time.perf_counter() - t0
    print(f"held-out accuracy: {accuracy:.1%} of {len(held_out)} sentences ({seconds:.0f} s)")
    return {"input_ids_shape": tuple(input_ids.shape), "labels_shape": tuple(labels.shape), "losses": losses,
            "logits_shape": logits_shape, "test_logits_shape": tuple(test_outputs.logits.shape),
            "test_predictions": backend.to_numpy(test_predictions).tolist(), "accuracy": accuracy,
            "seconds": seconds}


if __name__ == "__main__":
    main()
