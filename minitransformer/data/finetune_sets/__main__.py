"""``python -m minitransformer.data.finetune_sets``: regenerate the generated data files of this folder."""

from . import write_generated

if __name__ == "__main__":
    for path in write_generated():
        print(f"wrote {path}")
