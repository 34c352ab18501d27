"""Grad-CAM (Selvaraju et al., ICCV 2017) on one layer's output: channel weights = the gradient averaged over the
(T, H, W) positions, map = ReLU(Σ weights · activations)."""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.layers import AttentionCore
from .capture import capture_names, capturing
from .targets import Grid, family_of, target_score


def gradcam_layers(model: nn.Module) -> list[str]:
    """Layers Grad-CAM can use, in execution order: the blocks that hold an attention (V-JEPA 2's pooler and
    predictor left out), or the layers the family declares (FIERY's temporal blocks and bottlenecks)."""
    declared = family_of(model).layers
    if declared is not None:
        return declared(model)
    names = []
    for parent_name, parent in model.named_modules():
        if isinstance(parent, nn.ModuleList) and not parent_name.startswith(("pooler", "predictor")):
            names += [f"{parent_name}.{i}" for i, block in enumerate(parent)
                      if any(isinstance(m, AttentionCore) for m in block.modules())]
    return names


def default_gradcam_layer(model: nn.Module) -> str:
    """The last-but-one block (the last block's input): after the last block, patch tokens no longer reach a
    CLS token, so their gradient there is zero; FIERY: its last layer."""
    layers = gradcam_layers(model)
    if not layers:
        raise ValueError("this model has no layer Grad-CAM can use")
    return layers[-1] if family_of(model).layers is not None or len(layers) == 1 else layers[-2]


def feature_map(model: nn.Module, out: Tensor, grid: Grid | None) -> Tensor:
    """A layer's output (first clip) as ``(C, T′, H′, W′)``."""
    if out.ndim == 5:  # Swin keeps (B, T, H, W, C); convolutions (B, C, T, H, W)
        return out[0].permute(3, 0, 1, 2) if family_of(model).channels_last_features else out[0]
    if out.ndim != 3 or grid is None:
        raise ValueError(f"Grad-CAM needs a layer whose output lies on the token grid; got shape {tuple(out.shape)}")
    t, h, w = grid
    if out.shape[0] == t > 1:  # one group per frame (space-only TimeSformer, ViViT's spatial encoder)
        return rearrange(out[:, out.shape[1] - h * w:], "t (h w) c -> c t h w", h=h)
    tokens = out[0, out.shape[1] - t * h * w:]  # drop a CLS token
    order = family_of(model).token_order
    return rearrange(tokens, f"{order} c -> c t h w", t=t, h=h, w=w)


def gradcam(model: nn.Module, x: Tensor, target: int | None, layer: str | None):
    layer = layer or default_gradcam_layer(model)
    modules = dict(model.named_modules())
    if layer not in modules or layer not in gradcam_layers(model):
        raise ConfigError(f"layer={layer!r} is not a layer Grad-CAM can use; choose one of "
                          f"{', '.join(gradcam_layers(model))}", field="layer")
    saved: list[Tensor] = []

    def start_graph(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
        """The layer's output as the graph's leaf: the backward runs from the score to here, no further."""
        saved.append(output.detach().requires_grad_(True))
        return saved[-1]

    # the layouts of the layer's own attention calls (the token grid it hands on); every other layer keeps its
    # fused kernel, and nothing before the layer enters the autograd graph
    inside = [n for n in capture_names(model).values() if n == layer or n.startswith(layer + ".")]
    with capturing(model, list(dict.fromkeys(inside)), reduce=lambda c: c.layout, eval_mode=True) as records, \
            torch.enable_grad():
        handle = modules[layer].register_forward_hook(start_graph)
        try:
            out = model(x)
            target, score = target_score(model, out, target)
            (grad,) = torch.autograd.grad(score, saved[0])
        finally:
            handle.remove()
    layouts = [c for _, c in records]
    grid = (layouts[-1].q_grid or layouts[-1].grid) if layouts else None
    acts, grads = feature_map(model, saved[0].detach(), grid), feature_map(model, grad, grid)
    weights = grads.float().mean(dim=(1, 2, 3))  # (C,)
    cam = torch.relu(torch.einsum("c,cthw->thw", weights, acts.float()))
    return cam.cpu().numpy(), target, score, out, layer
