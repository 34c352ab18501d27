"""The one checkpoint loader: read any supported file safely, recognise its key layout, load it.

Files are read with ``torch.load(..., weights_only=True)`` or safetensors, so a checkpoint can never run code.
Each family declares the foreign layouts it understands when it registers (``checkpoint_layouts``, a tuple of
:class:`CheckpointLayout` defined next to the model, where the knowledge of its names lives); the model's own
names are the native layout. Containers are unwrapped here: ``{"model_state": ...}`` (PySlowFast and the
official TimeSformer), ``{"state_dict": ...}`` (mmaction, the official Video Swin), ``{"model": ...}``, and a
``module.`` prefix left by DistributedDataParallel.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from ..registry import family_of_model

StateDict = dict[str, Tensor]
_CONTAINER_KEYS = ("model_state", "state_dict", "model", "module", "model_ema")
_SHOW = 5


@dataclass(frozen=True)
class CheckpointLayout:
    """A foreign key layout: how to recognise it and how to rename its tensors into the model's names.

    ``convert(state_dict, config)`` returns a new dict in the native layout; derived buffers of the foreign
    layout (index tables and the like) are dropped there.
    """

    name: str
    detect: Callable[[StateDict], bool]
    convert: Callable[[StateDict, Any], StateDict]


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did."""

    source: str
    file_format: str
    layout: str
    tensors: int
    ignored: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        text = f"loaded {self.tensors} tensors from {self.source} ({self.file_format}, {self.layout} layout)"
        if self.ignored:
            text += f"; ignored {len(self.ignored)} derived entries"
        return text


def _read_bytes(data: bytes, name: str) -> tuple[Any, str]:
    if name.endswith(".safetensors") or data[8:9] == b"{":
        try:
            from safetensors.torch import load as load_safetensors
            return load_safetensors(data), "safetensors"
        except Exception as exc:  # safetensors raises its own error types
            if name.endswith(".safetensors"):
                raise CheckpointError(f"{name} is not a readable safetensors file: {exc}") from None
    return _torch_load(io.BytesIO(data), name), "torch"


def _torch_load(source: Any, name: str) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch names the global it refused ("GLOBAL builtins.print was not an allowed global", "unsupported
        # GLOBAL posix.mkdir whose module posix is blocked"); a file that is no pickle at all names none
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise CheckpointError(
                f"{name} was refused: it asks to import {found.group(1)}, a Python object "
                f"other than tensors and plain containers, which could run code when loaded. Only weights are "
                f"accepted (torch.save of a state dict, or safetensors); nothing from the file was run.") from None
        raise CheckpointError(
            f"{name} is not a readable checkpoint (expected a PyTorch .pth/.pyth/.bin file, a .safetensors "
            f"file or a Hugging Face model directory): the file is not a PyTorch pickle") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, KeyError,
            IndexError, TypeError) as exc:
        raise CheckpointError(
            f"{name} is not a readable checkpoint (expected a PyTorch .pth/.pyth/.bin file, a .safetensors "
            f"file or a Hugging Face model directory): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


def _read_directory(path: Path) -> tuple[Any, str, dict[str, Any]]:
    meta: dict[str, Any] = {}
    config_file = path / "config.json"
    if config_file.is_file():
        try:
            meta["config"] = json.loads(config_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{config_file} is not valid JSON: {exc}") from None
    for name in ("model.safetensors", "pytorch_model.bin", "model.pth"):
        if (path / name).is_file():
            obj, fmt = _read_file(path / name)
            return obj, f"{fmt} ({name} in a directory)", meta
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise CheckpointError(f"{index} is not a valid shard index: {exc}") from None
            merged: dict[str, Any] = {}
            for shard in shards:
                # a bare file name: the name is checked, not where it resolves to (the Hugging Face cache links a
                # snapshot's files to blobs in another folder)
                if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
                    raise CheckpointError(f"{index} names a shard outside its directory: {shard!r}")
                obj, _ = _read_file(path / shard)
                merged.update(obj)
            return merged, f"sharded ({len(shards)} files)", meta
    raise CheckpointError(f"{path} is a directory without model.safetensors, pytorch_model.bin or a shard index")


def _read_file(path: Path) -> tuple[Any, str]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
            return load_file(str(path)), "safetensors"
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None
    return _torch_load(str(path), str(path)), "torch"


def _unwrap(obj: Any, source: str) -> StateDict:
    """Find the state dict inside the containers training scripts save, and keep only its tensors."""
    for _ in range(3):
        if not isinstance(obj, dict):
            break
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None or any(isinstance(v, Tensor) and k in _CONTAINER_KEYS for k, v in obj.items()):
            break
        obj = inner
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a dict of named tensors")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(f"{source} holds no named tensors")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def read_checkpoint(source: str | Path | bytes) -> tuple[StateDict, str, dict[str, Any]]:
    """Read a checkpoint file, directory or in-memory bytes; return ``(tensors, file_format, metadata)``.

    ``metadata`` carries a Hugging Face ``config.json`` when one sits beside the weights."""
    meta: dict[str, Any] = {}
    if isinstance(source, (bytes, bytearray)):
        obj, fmt = _read_bytes(bytes(source), "the uploaded checkpoint")
        name = "the uploaded checkpoint"
    else:
        path = Path(source)
        name = str(path)
        if path.is_dir():
            obj, fmt, meta = _read_directory(path)
        else:
            obj, fmt = _read_file(path)
    return _unwrap(obj, name), fmt, meta


def _short(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOW])
    return shown + (f", … ({len(names) - _SHOW} more)" if len(names) > _SHOW else "")


def load_checkpoint(model: nn.Module, source: str | Path | bytes | StateDict) -> LoadReport:
    """Load a checkpoint into ``model``, whatever its layout (native, or one its family declares).

    Raises :class:`CheckpointError` listing missing, unexpected and wrongly shaped keys (the first few of
    each) and the layout that was detected, when the checkpoint does not fit the model.
    """
    if isinstance(source, dict):
        state, fmt, meta, name = _unwrap(source, "the state dict"), "state dict", {}, "a state dict"
    else:
        state, fmt, meta = read_checkpoint(source)
        name = "the uploaded checkpoint" if isinstance(source, (bytes, bytearray)) else str(source)

    family = family_of_model(model)
    config = getattr(model, "config", None)
    expected = model.state_dict()
    layout_name = "native"
    if not set(state) <= set(expected):
        for layout in family.checkpoint_layouts if family is not None else ():
            if layout.detect(state):
                state = layout.convert(state, config)
                layout_name = layout.name
                break

    derived = {n for n, _ in model.named_buffers() if n not in expected}
    ignored = sorted(k for k in state if k in derived)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and k not in derived]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{name} does not fit {type(model).__name__} (detected layout: {layout_name})"]
        if missing:
            parts.append(f"missing {len(missing)}: {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {_short(unexpected)}")
        if wrong:
            shapes = [f"{k} checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong]
            parts.append(f"wrong shape {len(wrong)}: {_short(shapes)}")
        hint = family.checkpoint_hint if family is not None else None
        settings = hint(state, wrong, config) if hint is not None else []
        if settings:
            parts.append("the checkpoint fits a model built with " + ", ".join(settings))
        raise CheckpointError("; ".join(parts))

    with torch.no_grad():
        for key, value in expected.items():
            value.copy_(state[key])
    return LoadReport(source=name, file_format=fmt, layout=layout_name, tensors=len(expected),
                      ignored=ignored, metadata=meta)


def rename_keys(state: StateDict, rules: list[tuple[str, str]], *, drop: tuple[str, ...] = ()) -> StateDict:
    """Rename keys by regular-expression rules applied in order (the first match wins); drop keys matching
    any pattern in ``drop``. The building block of every layout's ``convert``."""
    compiled = [(re.compile(p), r) for p, r in rules]
    dropped = [re.compile(p) for p in drop]
    out: StateDict = {}
    for key, value in state.items():
        if any(d.search(key) for d in dropped):
            continue
        new = key
        for pattern, repl in compiled:
            if pattern.search(key):
                new = pattern.sub(repl, key)
                break
        out[new] = value
    return out


def hf_config_fields(hf_config: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """Config fields from a Hugging Face ``config.json``: ``fields`` maps its names to ours; the class count comes
    from ``id2label`` (else ``num_labels``). The families' ``hf_config_overrides`` build on this."""
    out = {ours: hf_config[theirs] for theirs, ours in fields.items() if theirs in hf_config}
    if isinstance(hf_config.get("id2label"), dict) and hf_config["id2label"]:
        out["num_classes"] = len(hf_config["id2label"])
    elif isinstance(hf_config.get("num_labels"), int) and hf_config["num_labels"] > 0:
        out["num_classes"] = hf_config["num_labels"]
    return out


def require_hf_activation(hf_config: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """A Hugging Face ``hidden_act`` the family builds, else a :class:`ConfigError` naming the field."""
    act = hf_config.get("hidden_act", allowed[0])
    if act not in allowed:
        raise ConfigError(f"config.json hidden_act={act!r} is not allowed: this family builds "
                          f"{' or '.join(repr(a) for a in allowed)}", field="hidden_act")
