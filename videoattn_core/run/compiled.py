"""``torch.compile`` as an opt-in: ``build_model(..., compile=True)``, ``load_model`` of a plan with ``compile``,
``vac.predict(..., compile=True)`` and the command line's ``--compile``.

:class:`CompiledModel` wraps the eager model as ``_orig_mod`` (the attribute name ``torch.compile``'s own wrapper
uses) and runs its forward through ``torch.compile``. Compilation is lazy: it happens on the first forward (and
again for a new input shape). Inductor, the default backend, writes C++ kernels on the CPU, so a C++ compiler
must be installed; without one :func:`compile_model` raises a :class:`~videoattn_core.errors.ConfigError` at once.
Anything that fails while compiling (an unsupported op, a compiler error) makes the model fall back to its eager
forward for good, with a :class:`CompileFallbackWarning` that says why — never a traceback.

Captures and inspections work on the eager module (:func:`videoattn_core.attention.capture.eager_module`): the compiled
graph has no sinks and no hooks, so while a capture sink or a forward hook sits on the model, its forward runs
eagerly.
"""

from __future__ import annotations

import os
import shutil
import warnings
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, VideoAttnError


class CompileFallbackWarning(UserWarning):
    """``torch.compile`` failed for a model, which now runs its eager forward."""


def cpp_compiler() -> str | None:
    """The C++ compiler Inductor would call on the CPU (``$CXX``, else ``g++``, ``c++`` or ``clang++`` on the PATH)."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else []
    for name in candidates + ["g++", "c++", "clang++"]:
        found = shutil.which(name)
        if found:
            return found
    return None


def _compile_errors() -> tuple[type[BaseException], ...]:
    from torch._dynamo.exc import TorchDynamoException

    errors: list[type[BaseException]] = [TorchDynamoException]
    try:
        from torch._inductor.exc import CppCompileError

        errors.append(CppCompileError)
    except ImportError:  # pragma: no cover - older layouts
        pass
    return tuple(errors)


class CompiledModel(nn.Module):
    """A model whose forward runs through ``torch.compile``; ``_orig_mod`` is the eager model (its attributes, such
    as ``config``, read through). ``fallback_reason`` is ``None`` while the compiled forward is in use, else why
    compilation failed."""

    def __init__(self, model: nn.Module, **compile_options: Any):
        super().__init__()
        self._orig_mod = model
        # not a submodule: the compiled callable must not register the model a second time
        object.__setattr__(self, "_compiled", torch.compile(model, **compile_options))
        self.fallback_reason: str | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["_orig_mod"], name)

    def _instrumented(self) -> bool:
        """A capture or gradient sink or a forward hook sits on the eager model: only the eager forward sees them."""
        from ..models.layers import AttentionCore, watched

        modules = list(self._orig_mod.modules())
        return watched(*modules) or any(
            isinstance(m, AttentionCore) and (m.sink is not None or m.gradient_sink is not None) for m in modules)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.fallback_reason is not None or self._instrumented():
            return self._orig_mod(*args, **kwargs)
        try:
            return self._compiled(*args, **kwargs)
        except VideoAttnError:
            raise
        except _compile_errors() as exc:
            out = self._orig_mod(*args, **kwargs)  # an error of the input itself propagates from here, as eager
            cause = getattr(exc, "inner_exception", None) or exc  # a backend's own error, not dynamo's wrapper
            first = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
            self.fallback_reason = f"{type(cause).__name__}: {first[:300]}" if first else type(cause).__name__
            warnings.warn(f"torch.compile failed ({self.fallback_reason}); the model runs its eager forward",
                          CompileFallbackWarning, stacklevel=2)
            return out


def compile_model(model: nn.Module, device: torch.device | str | None = None, **compile_options: Any) -> nn.Module:
    """``model`` with its forward compiled (see the module docstring); ``device`` is where it will run (the CPU
    needs a C++ compiler). A model that is already compiled is returned as it is."""
    if isinstance(model, CompiledModel) or hasattr(model, "_orig_mod"):
        return model
    dev = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    if dev.type == "meta":
        raise ConfigError("compile=True needs a model with weights; a meta-device model has none", field="compile")
    if dev.type == "cpu" and cpp_compiler() is None:
        raise ConfigError("compile=True needs a C++ compiler on the CPU (torch.compile writes C++ kernels), and none "
                          "was found (g++, c++, clang++ or $CXX); install one (apt-get install g++) or run without "
                          "compile", field="compile")
    return CompiledModel(model, **compile_options)
