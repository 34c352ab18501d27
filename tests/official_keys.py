"""The official repositories' checkpoint key lists (``tests/data/official_keys``), taken from their module
definitions (each file's ``source`` says which repository, commit and files), and a check that a checkpoint with
exactly those names loads.

The names are data here, never derived from this project's ``state_dict``: if the native names drifted from the
official repositories, these checks fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

import videoattn_core as vac

DATA = Path(__file__).resolve().parent / "data" / "official_keys"


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def official_state(entries: list[dict], seed: int = 11) -> dict[str, torch.Tensor]:
    """Random tensors under the official names and shapes; derived buffers (index tables) as int64 zeros, which a
    loader must ignore whatever their values."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for entry in entries:
        if entry["kind"] == "param":
            state[entry["name"]] = torch.randn(entry["shape"], generator=g) * 0.02
        else:
            state[entry["name"]] = torch.zeros(entry["shape"], dtype=torch.long)
    return state


def assert_official_checkpoint_loads(model: torch.nn.Module, entries: list[dict], wrap: Callable[[dict], dict],
                                     native_name: Callable[[str], str], layout: str, x: torch.Tensor) -> None:
    """:func:`official_state` in the official container (``wrap``) loads into ``model``: the layout is detected,
    every tensor of the model is filled with the official tensor of the corresponding name (``native_name`` states
    the correspondence: the container's prefixes), derived buffers are ignored, and the logits equal those of the
    same model given the same values under its native names."""
    state = official_state(entries)
    params = {e["name"]: state[e["name"]] for e in entries if e["kind"] == "param"}
    buffers = [e["name"] for e in entries if e["kind"] == "buffer"]

    derived = {name: b.clone() for name, b in model.named_buffers()}
    _poison(model)
    report = vac.load_checkpoint(model, wrap(state))
    assert report.layout == layout
    ours = model.state_dict()
    assert report.tensors == len(ours) == len(params)
    # the official file's derived buffers (zeros here) are dropped or reported ignored, never copied in
    assert set(report.ignored) <= {native_name(n) for n in buffers}
    assert {native_name(n) for n in buffers} <= set(derived)
    assert all(torch.equal(b, derived[name]) for name, b in model.named_buffers())
    assert sorted(ours) == sorted(native_name(n) for n in params)  # one to one, nothing left unfilled
    for name, value in params.items():
        assert torch.equal(ours[native_name(name)], value), name
    assert all(torch.isfinite(v).all() for v in ours.values())
    with torch.no_grad():
        official = model(x)
        _poison(model)
        assert vac.load_checkpoint(model, {native_name(k): v for k, v in params.items()}).layout == "native"
        torch.testing.assert_close(official, model(x), rtol=0, atol=0)


def build_unfilled(name: str, **overrides) -> torch.nn.Module:
    """The model with uninitialised parameters (built on the meta device, then given CPU storage), which the tests
    here fill from a checkpoint anyway; initialising 120 M parameters would take seconds. Models with buffers are
    built normally, since their buffers are derived at construction."""
    model = vac.build_model(name, device="meta", **overrides)
    if any(True for _ in model.buffers()):
        return vac.build_model(name, **overrides)
    return model.to_empty(device="cpu")


def _poison(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
