"""Parameter and Module: the containers every layer builds on.

A ``Parameter`` is a pair of arrays, ``data`` and ``grad``. A ``Module`` holds
parameters and child modules as attributes and finds them by walking its
attributes, as PyTorch does, so ``model.parameters()``, ``zero_grad()``,
``state_dict()`` and ``to()`` work on any composition of layers.

What a Module does NOT do is differentiate: each layer writes ``forward`` and
``backward`` by hand. ``forward`` keeps what backward needs in ``self._cache``;
``backward(dy)`` takes it back (``self._pop_cache()``), *adds* the parameter
gradients into ``p.grad`` (so tied and reused weights are right), and returns
the gradients of the inputs.
"""

from __future__ import annotations

from collections.abc import Iterator

from .. import backend
from . import finite
from .grad_mode import _NO_GRAD, is_grad_enabled, no_grad  # noqa: F401  (the last two: their old home)

__all__ = ["Module", "ModuleList", "Parameter"]

class Parameter:
    """A trainable array and its gradient (same shape, dtype and device).

    Args:
        data: the array, (any shape).
    """

    def __init__(self, data):
        self.data = data  # (...)
        self.grad = backend.get_array_module(data).zeros(data.shape, dtype=data.dtype)  # (...) pages mapped when used

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def zero_grad(self) -> None:
        self.grad[...] = 0.0

    def __repr__(self) -> str:
        return f"Parameter(shape={tuple(self.shape)}, dtype={self.dtype})"


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and children as attributes in ``__init__`` and
    implement ``forward`` and ``backward``. Calling the module calls forward.
    """

    def __init__(self):
        self.training = True
        self._cache = None

    # -- the forward/backward contract --------------------------------------

    def __call__(self, *args, **kwargs):
        out = finite.checked_call(self, args, kwargs) if finite.enabled else self.forward(*args, **kwargs)  # nn/finite
        if _NO_GRAD[0]:
            self._cache = None  # no_grad(): nothing kept for a backward
        return out

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, dy):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def _pop_cache(self):
        """Take (and consume) the cache of the last forward; raise if there is none, e.g. on a second backward."""
        cache = self._cache
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward (or twice after one forward, "
                               "or after a forward inside no_grad()): run forward first")
        self._cache = None
        return cache

    # -- walking the tree ---------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted_name, Parameter)`` for this module and its children.

        A parameter shared by two modules (tied weights) is yielded once,
        under the first name found.
        """
        seen: set[int] = set()
        for name, p in self._named_parameters_all(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters_all(self, prefix: str):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value._named_parameters_all(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def num_parameters(self) -> int:
        """Number of trainable scalars (tied weights counted once)."""
        return sum(int(p.data.size) for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def clear_cache(self) -> None:
        """Drop what every forward kept for backward (after inference, to free its memory)."""
        for m in self.modules():
            m._cache = None

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- saving, loading, moving -------------------------------------------

    def state_dict(self) -> dict:
        """``{dotted_name: host NumPy array}`` copies of every parameter."""
        return {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays from ``state`` into the parameters, checking keys and shapes.

        With ``strict=True`` (the default) any missing or unexpected key is an
        error that lists them all. A shape mismatch is always an error. Values
        are cast to each parameter's dtype and put on its device.
        """
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if strict and (missing or unexpected):
            raise KeyError(
                f"state_dict does not match {type(self).__name__}: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        values = {name: backend.to_numpy(state[name]) for name in params if name in state}
        bad = [
            f"shape mismatch for {name!r}: model expects {tuple(params[name].shape)}, "
            f"state_dict has {tuple(v.shape)}"
            for name, v in values.items()
            if tuple(v.shape) != tuple(params[name].shape)
        ]
        if bad:  # checked before any copy, so a failed load leaves the model unchanged
            raise ValueError("; ".join(bad))
        for name, value in values.items():
            p = params[name]
            xp = backend.get_array_module(p.data)
            p.data[...] = xp.asarray(value, dtype=p.dtype)

    def to(self, device: str | None = None, dtype=None) -> Module:
        """Move parameters to a backend (``"numpy"``/``"cpu"`` or ``"cupy"``/``"cuda"``)
        and/or cast them to ``dtype``; gradients follow and are reset to zero.
        Returns ``self`` so calls chain: ``Linear(4, 3).to(dtype="float64")``.
        """
        names = {"cpu": "numpy", "numpy": "numpy", "cuda": "cupy", "gpu": "cupy", "cupy": "cupy"}
        if device is not None and device not in names:
            raise ValueError(f"unknown device {device!r}: expected one of {sorted(names)}")
        if dtype is not None and backend.dtype(dtype) not in (backend.dtype("float32"), backend.dtype("float64")):
            raise TypeError(f"{type(self).__name__}.to: dtype must be float32 or float64, got {backend.dtype(dtype)}")
        for m in self.modules():
            for _name, value in list(vars(m).items()):
                if isinstance(value, Parameter):
                    _move(value, names.get(device), dtype)
            m._cache = None
            m._on_to(names.get(device), dtype)
        return self

    def _on_to(self, device, dtype) -> None:
        """Hook for modules that keep non-parameter arrays (buffers) to move."""

    def double(self) -> Module:
        return self.to(dtype="float64")

    def __repr__(self) -> str:
        children = ", ".join(name for name, _ in self.named_children())
        return f"{type(self).__name__}({children})"


def move_array(a, device: str | None, dtype=None):
    """Move one array to a backend by name and/or cast it (also for buffers)."""
    if device == "numpy":
        a = backend.to_numpy(a)
    elif device == "cupy":
        a = backend._import_cupy().asarray(a)
    if dtype is not None:
        a = a.astype(backend.dtype(dtype), copy=False)
    return a


def _move(p: Parameter, device: str | None, dtype) -> None:
    """Move a parameter in place; a tied Parameter is one object, so it stays tied."""
    p.data = move_array(p.data, device, dtype)
    p.grad = backend.get_array_module(p.data).zeros(p.data.shape, dtype=p.data.dtype)


class ModuleList(Module):
    """An ordered list of child modules (``layers.0``, ``layers.1``, ...)."""

    def __init__(self, modules):
        super().__init__()
        self._items = list(modules)
        for i, m in enumerate(self._items):
            setattr(self, str(i), m)

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]
