"""``Parameter``, ``Module`` and ``Sequential``: the explicit forward / backward layer API.

A module's ``forward(x)`` keeps what its backward needs; ``backward(grad_output)``
returns the gradient w.r.t. the input and *adds* parameter gradients into
``param.grad`` (so gradients of a parameter used twice, or over several batches, sum).
Call ``zero_grad()`` between steps.  Attributes that are Parameters, Modules or
registered buffers are found by name, as in PyTorch, so ``state_dict()`` keys match
PyTorch's (``features.0.weight``, ``bn.running_mean``, ...).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..dispatch import device_of, get_backend, to_device, to_host

_rng = np.random.default_rng()


def manual_seed(seed: int):
    """Seed the generator that initializes parameters (and drives ``Dropout``)."""
    global _rng
    _rng = np.random.default_rng(seed)


def rng():
    return _rng


class Parameter:
    """A trainable array (``.data``) and its accumulated gradient (``.grad``)."""

    def __init__(self, data):
        self.data = data
        self.grad = None
        self.zero_grad()

    def zero_grad(self):
        """Zero ``.grad`` in place (allocated on ``.data``'s device when missing or moved)."""
        device = device_of(self.data)
        if self.grad is None or device_of(self.grad) != device or tuple(
                self.grad.shape) != tuple(self.data.shape) or self.grad.dtype != self.data.dtype:
            self.grad = get_backend(device).zeros(self.data.shape, self.data.dtype)
        elif device == "cpu":
            self.grad[...] = 0
        else:
            get_backend(device).kernels.fill(self.grad, 0.0)

    @property
    def shape(self):
        return tuple(self.data.shape)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: override ``forward`` and ``backward``."""

    input_grad = True  # False: fed with data, so backward need not return a grad input

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call Module.__init__() first")
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            object.__setattr__(self, name, value)  # a buffer stays a buffer when reassigned
            return
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """A non-trainable array saved in the state dict (e.g. ``running_mean``)."""
        object.__setattr__(self, name, array)
        self._buffers[name] = True

    _STATE = ("_parameters", "_buffers", "_modules")

    def __getstate__(self):
        """Pickling keeps parameters, buffers, submodules and settings, and drops what
        the last forward kept for its backward (the other ``_``-prefixed attributes)."""
        return {k: v for k, v in self.__dict__.items()
                if not k.startswith("_") or k in self._STATE}

    def release(self):
        """Drop what the last forward kept for its backward, in every submodule (the
        inputs of each layer: for inference on large arrays, that is most of the
        memory); a backward then needs another forward first.  Returns the module."""
        for _, m in self.named_modules():
            for k in [k for k in m.__dict__ if k.startswith("_") and k not in self._STATE]:
                del m.__dict__[k]
        return self

    # ------------------------------------------------------------------ calling
    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def input_requires_grad(self, flag=True):
        """Say whether this module's input needs a gradient (PyTorch: the input's
        ``requires_grad``).  With False, the first layer of the chain (through leading
        Sequential children) may skip its grad input, and ``backward`` then returns
        None: a conv fed with data saves that product, and its kernels' compile time."""
        object.__setattr__(self.first_layer(), "input_grad", bool(flag))
        return self

    def first_layer(self):
        """The module that sees this one's input first (through leading Sequentials)."""
        first = self
        while isinstance(first, Sequential) and len(first):
            first = first[0]
        return first

    # ------------------------------------------------------------------ traversal
    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix=""):
        for mod_name, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode=True):
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    # ------------------------------------------------------------------ devices
    def to(self, device=None, dtype=None):
        """Move every parameter and buffer to ``'cpu'`` or ``'cuda'`` and/or cast the
        floating ones to ``dtype`` (in place, as PyTorch: ``to('cuda')``,
        ``to(np.float64)``, ``to('cuda', np.float64)``).  Gradients are reset."""
        if device is not None and not isinstance(device, str):
            device, dtype = None, device  # to(dtype)
        if device not in (None, "cpu", "cuda"):
            raise ValueError(f"Module.to: device must be 'cpu' or 'cuda'; got {device!r}")
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype not in (np.float32, np.float64):  # what the kernels compute in
                raise TypeError(f"Module.to: dtype must be a float type, float32 or "
                                f"float64; got {dtype}")

        def convert(value, is_parameter):
            on = device or device_of(value)
            if dtype is not None and value.dtype.kind == "f" and value.dtype != dtype:
                value = np.asarray(to_host(value)).astype(dtype)
            if not is_parameter and not len(value.shape):
                return value  # 0-d counters (num_batches_tracked) stay on the host
            return to_device(value) if on == "cuda" else to_host(value)

        for _, m in self.named_modules():
            for p in m._parameters.values():
                p.data = convert(p.data, True)
                p.zero_grad()
            for name in m._buffers:
                object.__setattr__(m, name, convert(getattr(m, name), False))
        return self

    def double(self):
        """Floating parameters and buffers in float64 (in place)."""
        return self.to(dtype=np.float64)

    def float(self):
        """Floating parameters and buffers in float32 (in place)."""
        return self.to(dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def state_dict(self):
        """Name -> host copy of every parameter and buffer (PyTorch's names)."""
        out = OrderedDict()
        for mod_name, m in self.named_modules():
            dot = f"{mod_name}." if mod_name else ""
            for name, p in m._parameters.items():
                out[dot + name] = np.array(to_host(p.data))
            for name in m._buffers:
                out[dot + name] = np.array(to_host(getattr(m, name)))
        return out

    def load_state_dict(self, state, strict=True):
        """Copy arrays (NumPy, or anything ``np.asarray`` takes) into the model, by name."""
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected}")
        targets = {}
        for mod_name, m in self.named_modules():
            dot = f"{mod_name}." if mod_name else ""
            for name in list(m._parameters) + list(m._buffers):
                targets[dot + name] = (m, name)
        for key, value in state.items():
            if key not in targets:
                continue
            m, name = targets[key]
            current = m._parameters[name].data if name in m._parameters else getattr(m, name)
            value = np.asarray(value)
            if value.shape != tuple(current.shape):
                raise ValueError(f"load_state_dict: {key} must have shape "
                                 f"{tuple(current.shape)}; got {value.shape}")
            value = value.astype(current.dtype)
            if device_of(current) == "cuda" and value.ndim:
                value = to_device(value)
            if name in m._parameters:
                m._parameters[name].data = value
            else:
                object.__setattr__(m, name, value)
        return self

    def save(self, path):
        """Write the state dict to ``path`` (.npz)."""
        np.savez(path, **self.state_dict())

    def load(self, path):
        """Read a state dict written by :meth:`save`."""
        with np.load(path) as data:
            return self.load_state_dict({k: data[k] for k in data.files})

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            lines.append("  (" + name + "): " + repr(m).replace("\n", "\n  "))
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"

    def extra_repr(self):
        return ""


class Sequential(Module):
    """Modules applied in order; the backward runs them in reverse."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, grad_output):
        for m in reversed(self._modules.values()):
            grad_output = m.backward(grad_output)
        return grad_output

    def receptive_chain(self):
        return list(self._modules.values())
