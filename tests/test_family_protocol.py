"""The family protocol: a family is its model file and its registration, nothing else.

A toy family is registered here — a config, a small ViT without a CLS token whose classifier reads the first
token, tokens ordered ``(h w t)``, a foreign checkpoint layout and a fitting hint — and, with no other module
edited, it gets summaries, inspection, relevance, rollout and Grad-CAM, its checkpoint layout and its hint, and the
views of its paper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from einops import rearrange
from torch import nn

import videoattn_core as vac
from videoattn_core import registry
from videoattn_core.weights.checkpoints import CheckpointLayout, rename_keys
from videoattn_core.config import ModelConfig, hparam
from videoattn_core.errors import CheckpointError
from videoattn_core.models.layers import AttentionCore, AttentionLayout


@dataclass(frozen=True)
class ToyConfig(ModelConfig):
    family = "toy_protocol"

    img_size: int = hparam(16, "Frame size.", min=1, max=64)
    num_frames: int = hparam(4, "Frames.", min=1, max=16)
    patch: int = hparam(8, "Patch side.", min=1, max=16)
    embed_dim: int = hparam(16, "Token width.", min=2, max=64)
    depth: int = hparam(2, "Blocks.", min=1, max=4)
    num_classes: int = hparam(5, "Classes.", min=1, max=10)


class ToyBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.core = AttentionCore("joint", (dim // 2) ** -0.5, 0.0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(self.norm(x)), "b n (three h d) -> three b h n d", three=3, h=2)
        out = self.core(q, k, v, None, AttentionLayout("joint", grid, "b", "(h w t)"))
        return x + self.proj(rearrange(out, "b h n d -> b n (h d)"))


class Toy(nn.Module):
    """Patches of every frame, tokens ``(h w t)``, joint attention, the first token classified."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Conv3d(3, config.embed_dim, (1, config.patch, config.patch), (1, config.patch, config.patch))
        self.blocks = nn.ModuleList(ToyBlock(config.embed_dim) for _ in range(config.depth))
        self.head = nn.Linear(config.embed_dim, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)  # (B, C, T, H', W')
        grid = tuple(x.shape[2:])
        x = rearrange(x, "b c t h w -> b (h w t) c")
        for block in self.blocks:
            x = block(x, grid)
        return self.head(x[:, 0])


def _hint(state, wrong, config):
    return [f"num_classes={state['head.weight'].shape[0]}"] if "head.weight" in wrong else []


@pytest.fixture(scope="module")
def toy():
    layout = CheckpointLayout("toy-foreign", detect=lambda sd: any(k.startswith("toy.") for k in sd),
                              convert=lambda sd, cfg: rename_keys(sd, [(r"^toy\.", "")]))
    family = registry.register_family(ToyConfig, Toy, paper="A toy paper (2026)", repository="nowhere",
                                      checkpoint_layouts=(layout,), checkpoint_hint=_hint, paper_views=6,
                                      readout=lambda config: "first", token_order="(h w t)")
    registry.register_preset("toy_protocol_base", ToyConfig(), "a toy")
    yield family
    registry._PRESETS.pop("toy_protocol_base")
    registry._FAMILIES.pop("toy_protocol")


def test_a_registered_family_gets_every_view_of_the_core(toy):
    summary = vac.summarize("toy_protocol_base")
    model = vac.build_model("toy_protocol_base")
    assert summary.params == sum(p.numel() for p in model.parameters())
    assert summary.views == 6  # its paper's test views, as registered
    x = torch.randn(1, 3, 4, 16, 16)
    result = vac.inspect(model, x, attention_layers=["blocks.0.core"])
    assert result.attention["blocks.0.core"].probs.shape == (1, 2, 16, 16)

    for method in ("relevance", "rollout", "gradcam"):
        explanation = vac.explain(model, x, method=method)
        assert explanation.tokens.shape == (4, 2, 2) and np.isfinite(explanation.tokens).all()
    # rollout starts from the first token, as the family declares: the first (h w t) token is frame 0's top-left
    probs = [c.probs[0].double().mean(0) for c in _captures(model, x)]
    row = torch.eye(16, dtype=torch.float64)[0]
    for p in reversed(probs):
        row = row @ (0.5 * torch.eye(16, dtype=torch.float64) + 0.5 * p)
    want = rearrange(row / row.sum(), "(h w t) -> t h w", h=2, w=2, t=4).numpy()
    np.testing.assert_allclose(vac.explain(model, x, method="rollout").tokens, want, rtol=1e-5, atol=1e-7)


def _captures(model, x):
    from videoattn_core.attention.capture import capturing

    with torch.no_grad(), capturing(model, eval_mode=True) as records:
        model(x)
    return [c for _, c in records]


def test_a_registered_family_reads_its_checkpoint_layout_and_hints(toy):
    source = vac.build_model("toy_protocol_base")
    foreign = {f"toy.{k}": v for k, v in source.state_dict().items()}
    target = vac.build_model("toy_protocol_base")
    report = vac.load_checkpoint(target, foreign)
    assert report.layout == "toy-foreign"
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    other = vac.build_model("toy_protocol_base", num_classes=3)
    with pytest.raises(CheckpointError, match=re.escape("the checkpoint fits a model built with num_classes=5")):
        vac.load_checkpoint(other, foreign)


def test_the_core_names_no_family():
    """The core's modules outside the family files hold no family's name: what a family needs is declared in its
    registration."""
    from pathlib import Path

    core = Path(vac.__file__).parent
    names = [f.name for f in vac.list_families() if f.name != "toy_protocol"]
    pattern = re.compile(r"""["'](%s)["']""" % "|".join(names))
    offenders = []
    for module in ("attention/explanations.py", "attention/relevance.py", "attention/gradcam.py",
                   "attention/targets.py", "attention/maps.py", "weights/checkpoints.py", "inspection/summary.py",
                   "weights/hf_reading.py", "weights/hub.py", "run/runtime.py", "weights/lookup.py"):
        text = (core / module).read_text()
        offenders += [f"{module}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not offenders, offenders


def test_a_family_catalog_file_is_found_without_editing_the_catalog(tmp_path, monkeypatch):
    """The catalog lists the entries of every module of its package: a new family's catalog file is one more file
    (here in a folder added to the package's path), named nowhere else."""
    from videoattn_core.weights import catalog
    from videoattn_core.weights.catalog.records import IMAGENET_MEAN, IMAGENET_STD

    (tmp_path / "toy_protocol.py").write_text(
        "from videoattn_core.weights.catalog.records import Recipe, WeightsEntry\n\n"
        "def entries():\n"
        f"    recipe = Recipe(8, 4, 256, 224, {IMAGENET_MEAN!r}, {IMAGENET_STD!r}, source='a toy')\n"
        "    return [WeightsEntry('toy_protocol_base.k400', 'toy_protocol_base', 'official', 'kinetics400', recipe,\n"
        "                         'toy', url='http://127.0.0.1/toy.pth')]\n")
    before = [e.name for e in catalog.build_catalog()]
    monkeypatch.setattr(catalog, "__path__", [*catalog.__path__, str(tmp_path)])
    after = [e.name for e in catalog.build_catalog()]
    assert after == [*before, "toy_protocol_base.k400"]
