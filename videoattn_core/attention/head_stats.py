"""Per-layer, per-head attention statistics: the "mean attention distance" of Dosovitskiy et al. (ViT, ICLR
2021, Fig. 7), split for video into space (pixels) and time (frames), plus entropy and attention to CLS.

For a query i of head h, the distance is Σⱼ aᵢⱼ·dᵢⱼ over the patch keys j, with the attention renormalised over
those patch keys (a CLS key has no position); dᵢⱼ is measured between token centres on the input clip: pixels
in space (a token of a pooled or merged grid covers input_size / grid_size pixels), frames in time (a tubelet
covers several). It is averaged over the patch queries (padding and learned queries left out). Entropy
−Σ aᵢⱼ log aᵢⱼ (nats) is over all keys, averaged over all real queries; "to CLS" is the attention the patch
queries give the CLS key (NaN without one). Layers are attention calls in execution order; a layer with fewer
heads than the widest one (MViT) is NaN-padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..models.layers import AttentionLayout, CapturedAttention
from .capture import capturing
from .targets import input_thw
from .maps import CLS, token_coordinates


@dataclass
class HeadStats:
    """``(layers, heads)`` arrays; ``layers`` names each attention call by the module that owns it."""

    layers: list[str]
    kinds: list[str]
    space_px: np.ndarray
    time_frames: np.ndarray
    entropy: np.ndarray
    to_cls: np.ndarray


def _positions(coords: Tensor, grid: tuple[int, int, int], size: tuple[int, int, int]) -> Tensor:
    """Token centres ``(..., 3)`` as (frame, y px, x px) on the input clip; NaN for CLS/padding tokens."""
    t_n, h_n, w_n = grid
    c = coords.clamp(min=0)
    cell = torch.stack((c // (h_n * w_n), (c // w_n) % h_n, c % w_n), dim=-1).double()
    scale = torch.tensor([size[0] / t_n, size[1] / h_n, size[2] / w_n], dtype=torch.float64)
    pos = (cell + 0.5) * scale
    return torch.where((coords >= 0)[..., None], pos, torch.tensor(float("nan")))


def layer_statistics(captured: CapturedAttention, size: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The four statistics of one attention call, each ``(heads,)``, on an input clip of ``size`` (T, H, W)."""
    layout: AttentionLayout = captured.layout
    probs = captured.probs.detach().float()  # (G, heads, Nq, Nk), batch 1
    q = token_coordinates(layout, 1)
    k = token_coordinates(layout, 1, keys=True)
    pq = _positions(q, layout.q_grid or layout.grid, size)  # (G, Nq, 3)
    pk = _positions(k, layout.kv_grid or layout.grid, size)  # (G, Nk, 3)
    diff = (pq[:, :, None, :] - pk[:, None, :, :]).float()  # (G, Nq, Nk, 3)
    space = diff[..., 1:].pow(2).sum(-1).sqrt().nan_to_num(0.0)
    time = diff[..., 0].abs().nan_to_num(0.0)
    del diff
    patch_q, patch_k, real_q = q >= 0, (k >= 0).float(), q != -1  # -1: padding
    is_cls = (k == CLS).float()
    n_patch_q = int(patch_q.sum())
    heads = probs.shape[1]
    out = {key: np.full(heads, np.nan) for key in ("space_px", "time_frames", "entropy", "to_cls")}
    for h in range(heads):  # one head at a time: a (G, Nq, Nk) map is the largest temporary
        p = probs[:, h]
        on_patches = p * patch_k[:, None, :]
        renorm = on_patches / on_patches.sum(-1, keepdim=True).clamp(min=1e-30)
        entropy = -(p * p.clamp(min=1e-30).log()).sum(-1)  # (G, Nq)
        out["entropy"][h] = float(entropy[real_q].double().mean())
        if n_patch_q:
            out["space_px"][h] = float((renorm * space).sum(-1)[patch_q].double().mean())
            out["time_frames"][h] = float((renorm * time).sum(-1)[patch_q].double().mean())
            if is_cls.any():
                out["to_cls"][h] = float((p * is_cls[:, None, :]).sum(-1)[patch_q].double().mean())
    return out


def head_statistics(model: nn.Module, x: Tensor) -> HeadStats:
    """Run ``model`` once on the first clip of ``x`` and return every attention call's head statistics.

    Each call is reduced as it is captured, so no attention map outlives its layer."""
    size = input_thw(model, x)
    reduce = lambda c: (c.layout.kind, layer_statistics(c, size))  # noqa: E731
    with capturing(model, reduce=reduce, eval_mode=True) as records, torch.no_grad():
        model(x[:1])
    names = [name.rsplit(".", 1)[0] for name, _ in records]
    kinds = [kind for _, (kind, _) in records]
    rows = [stats for _, (_, stats) in records]
    if not rows:
        raise ValueError("this model has no attention layers, so no head statistics")
    heads = max(len(r["entropy"]) for r in rows)

    def stack(key: str) -> np.ndarray:
        out = np.full((len(rows), heads), np.nan)
        for i, row in enumerate(rows):
            out[i, :len(row[key])] = row[key]
        return out

    return HeadStats(names, kinds, stack("space_px"), stack("time_frames"), stack("entropy"), stack("to_cls"))
