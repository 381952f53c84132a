"""The reference answers of a student copy, stored at make time: ``OUT_DIR/.exercises/reference.npz``.

One ``.npz`` (no pickle): the arrays as ``a0, a1, ...`` and an ``index``
entry, UTF-8 JSON (``backend.encode_text``), that says which array is which::

    {"format": 1, "version": "0.1.0", "exercises": ["linear", ...],
     "probes": {"linear: B=2, T=3": {"outputs": {"dW": "a3", ...},
                                     "mistakes": {"dW": [["message", "a9"], ...]}}}}

``check`` uses it where it cannot compute the answers itself: in the
student's own install, which has no solutions.
"""

from __future__ import annotations

import json

from .. import __version__, backend
from ..fileio import atomic_write

__all__ = ["FORMAT", "load_reference", "save_reference"]

FORMAT = 1


def save_reference(path, data: dict, exercises) -> None:
    """Write ``data`` (``grading.reference_data``'s result) for ``exercises`` to ``path``, atomically."""
    arrays, probes = {}, {}

    def put(a) -> str:
        key = f"a{len(arrays)}"
        arrays[key] = backend.to_numpy(a)
        return key

    for probe_key, entry in data.items():
        probes[probe_key] = {
            "outputs": {name: put(a) for name, a in entry["outputs"].items()},
            "mistakes": {name: [[msg, put(a)] for msg, a in items] for name, items in entry["mistakes"].items()},
        }
    index = {"format": FORMAT, "version": __version__, "exercises": list(exercises), "probes": probes}
    arrays["index"] = backend.encode_text(json.dumps(index))
    with atomic_write(path) as f:
        backend.save_npz(f, arrays)


def load_reference(path) -> tuple[dict, dict]:
    """Read what ``save_reference`` wrote: ``(data, index)`` with ``data`` shaped like ``reference_data``'s.

    Raises:
        ValueError: a file that is not such an archive (named in the message).
    """
    try:
        arrays = backend.load_npz(path)
        index = json.loads(backend.decode_text(arrays.pop("index")))
        if index.get("format") != FORMAT:
            raise ValueError(f"format {index.get('format')!r}, expected {FORMAT}")
        data = {
            key: {"outputs": {n: arrays[k] for n, k in entry["outputs"].items()},
                  "mistakes": {n: [(msg, arrays[k]) for msg, k in items] for n, items in entry["mistakes"].items()}}
            for key, entry in index["probes"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a reference file of `minitransformer exercises make` ({e})") from None
    return data, index
