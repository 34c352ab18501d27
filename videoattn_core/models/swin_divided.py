"""Divided space-time window attention: a Video Swin pyramid whose joint 3D windows are split into a spatial
step inside 2D windows of each frame and a temporal step across frames.

The seed code's design (its ``WindowAttention`` with ``temporal=True/False``, in the line of Swin-based video
adapters such as AIM, Yang et al., ICLR 2023), reproduced from its description; Liu et al., "Video Swin
Transformer" (CVPR 2022) gives everything else. The network is :mod:`~videoattn_core.models.swin3d` (same
patch embedding, stages, patch merging, final norm and pooled head, same parameter names) with these blocks on
the ``(B, T, H, W, C)`` token grid::

    x = x + attn(norm1(x), temporal=False)          # spatial: 2D windows of each frame
    x = x + attn(temporal_norm1(x), temporal=True)  # temporal: all frames at each spatial position
    x = x + mlp(norm2(x))

One :class:`DividedWindowAttention` per block serves both steps with the same ``qkv`` and ``proj`` (as the
seed's single module with a ``temporal`` flag does), so at equal width and depth the model has almost exactly
the parameters of Video Swin: per block, the 3D relative position bias table is replaced by

- ``relative_position_bias_table``: ``(2·Wh−1)(2·Ww−1) × heads``, the 2D Swin bias inside a ``window_size``
  (Wh, Ww) window; every second block shifts the windows by half a window (cyclic roll over H and W with the
  ``-100`` region mask), with the same clipping and padding rules as Video Swin
  (:mod:`~videoattn_core.models.windows`); a clipped window reads the bias of its own offsets;
- ``temporal_position_bias_table``: ``(2·T₀−1) × heads`` learned biases indexed by the frame offset
  (query frame − key frame), T₀ = ⌈num_frames / patch_size[0]⌉ token frames; on longer clips the offsets
  beyond ±(T₀−1) use the table's end rows;

plus a ``temporal_norm1`` LayerNorm. Patch merging is spatial only, so every stage attends over the same T
token frames. :meth:`DividedWindowAttention.flops` is the seed's analytic count of the attention products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from einops import rearrange
from torch import Tensor, nn

from ..config import hparam
from ..registry import register_family, register_preset
from ..weights.catalog.mvit_swin import SWIN_TV
from .layers import AttentionCore, AttentionLayout, DropPath, Linear, Mlp
from .swin3d import SwinTransformer3D, SwinTransformer3DConfig, checkpoint_hint
from .windows import position_bias, relative_position_index, window_attention


@dataclass(frozen=True)
class SwinDividedConfig(SwinTransformer3DConfig):
    """Video Swin hyperparameters with a 2D spatial window and a temporal bias over ``num_frames``."""

    family = "swin_divided"

    num_frames: int = hparam(32, "Frames of the clip the model is built for: the temporal bias table covers "
                                 "the offsets of its ⌈num_frames / patch_size[0]⌉ token frames. Longer clips "
                                 "reuse the end rows for larger offsets.", min=1, max=1024)
    window_size: tuple[int, ...] = hparam((7, 7), "Spatial attention window (height, width) in tokens inside "
                                                  "each frame; shifted blocks move it by half of it.",
                                          min=1, max=64, length=2)

    @property
    def temporal_tokens(self) -> int:
        return math.ceil(self.num_frames / self.patch_size[0])

    def shift_size(self, block: int) -> tuple[int, ...]:
        """Shift (frames, height, width) of block ``block`` of a stage: half the spatial window on odd blocks."""
        return (0, 0, 0) if block % 2 == 0 else (0, self.window_size[0] // 2, self.window_size[1] // 2)


class DividedWindowAttention(nn.Module):
    """The seed's ``WindowAttention``: one qkv/proj, used for spatial windows (``temporal=False``) or across
    frames (``temporal=True``), each with its own relative position bias and attention core."""

    def __init__(self, config: SwinDividedConfig, dim: int, num_heads: int, shift_size: tuple[int, ...]):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = (1, *config.window_size)  # a spatial window is a one-frame 3D window
        self.shift_size = tuple(shift_size)
        self.temporal_tokens = config.temporal_tokens
        scale = config.qk_scale or (dim // num_heads) ** -0.5
        self.qkv = Linear(dim, dim * 3, bias=config.qkv_bias)
        self.spatial_core = AttentionCore("space", scale, config.attn_drop_rate)
        self.temporal_core = AttentionCore("time", scale, config.attn_drop_rate)
        self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.drop_rate)
        wh, ww = config.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(self.window_size), persistent=False)
        self.temporal_position_bias_table = nn.Parameter(torch.zeros(2 * self.temporal_tokens - 1, num_heads))

    def extra_repr(self) -> str:
        return (f"window_size={self.window_size[1:]}, shift_size={self.shift_size[1:]}, num_heads={self.num_heads}, "
                f"temporal_tokens={self.temporal_tokens}")

    def relative_position_bias(self, window: tuple[int, int, int]) -> Tensor:
        """(1, heads, N, N) 2D bias of a (1, h, w) window; a clipped window indexes the table by its own offsets."""
        if window == self.window_size:
            index = self.relative_position_index
        else:
            index = relative_position_index(window, self.window_size).to(self.relative_position_index.device)
        return position_bias(self.relative_position_bias_table, index)

    def temporal_position_bias(self, frames: int) -> Tensor:
        """(1, heads, T, T) bias: entry [h, i, j] is the table's row for the frame offset i − j (clamped)."""
        limit = self.temporal_tokens - 1
        pos = torch.arange(frames, device=self.temporal_position_bias_table.device)
        offset = (pos[:, None] - pos[None, :]).clamp(-limit, limit)
        return self.temporal_position_bias_table[offset + limit].permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: Tensor, temporal: bool = False) -> Tensor:
        """``x (B, T, H, W, C)`` normalised grid → the attention branch on the same grid."""
        return self._temporal(x) if temporal else self._spatial(x)

    def _spatial(self, x: Tensor) -> Tensor:
        return window_attention(self, x, core=self.spatial_core, kind="space")

    def _temporal(self, x: Tensor) -> Tensor:
        b, t, h, w, _ = x.shape
        # projected on the grid as it lies (no copy of the tokens into (b h w) t order); q, k, v are views of it
        q, k, v = rearrange(self.qkv(x), "b t h w (three heads d) -> three (b h w) heads t d", three=3,
                            heads=self.num_heads)  # (B·H·W, heads, T, head_dim)
        layout = AttentionLayout("time", (t, h, w), groups="(b h w)", tokens="t")
        out = self.temporal_core(q, k, v, self.temporal_position_bias(t), layout)
        return self.proj_drop(self.proj(rearrange(out, "(b h w) heads t d -> b t h w (heads d)", b=b, h=h, w=w)))

    def flops(self, N: int, T: int, temporal: bool = False) -> int:
        """Multiply-accumulates of the attention products (q·kᵀ and attention·v; the seed code's count).

        Spatial (``temporal=False``): one window of ``N`` tokens in each of ``T`` frames, 2·dim·N²·T.
        Temporal: ``N`` spatial positions, each attending over ``T`` frames, 2·dim·N·T².
        The projections are nn.Linear layers, counted on their own."""
        if temporal:
            return 2 * self.dim * N * T * T
        return 2 * self.dim * N * N * T


class DividedSwinBlock(nn.Module):
    """Spatial window attention, temporal attention, MLP: three pre-norm residual branches."""

    def __init__(self, config: SwinDividedConfig, dim: int, num_heads: int, shift_size: tuple[int, ...],
                 drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = DividedWindowAttention(config, dim, num_heads, shift_size)
        self.temporal_norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), drop=config.drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, T, H, W, C)
        x = x + self.drop_path(self.attn(self.norm1(x), temporal=False))
        x = x + self.drop_path(self.attn(self.temporal_norm1(x), temporal=True))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinDividedST(SwinTransformer3D):
    """Video Swin with divided space-time window attention. Input ``(B, C, T, H, W)`` of any size; output
    logits ``(B, num_classes)``. Only the native layout is read (no published checkpoints exist)."""

    def make_block(self, config: SwinDividedConfig, dim: int, num_heads: int, shift_size: tuple[int, ...],
                   drop_path: float) -> nn.Module:
        return DividedSwinBlock(config, dim, num_heads, shift_size, drop_path)


register_family(SwinDividedConfig, SwinDividedST,
                paper="Divided space-time window attention (seed design) on Liu et al., Video Swin Transformer "
                      "(CVPR 2022)",
                repository="https://github.com/SwinTransformer/Video-Swin-Transformer",
                checkpoint_hint=checkpoint_hint,  # Video Swin's: the same names (only the native layout is read)
                readout=lambda config: "mean", channels_last_features=True,
                fallback_recipe=replace(SWIN_TV, source="no published weights: recipe of Video Swin ("
                                                        + SWIN_TV.source + ")"),
                # spatial windows split the tokens and patch merging shrinks them between stages: no token set runs
                # through every layer for attention rollout to follow
                rollout_unavailable=lambda config: ("windowed attention splits the tokens into windows and patch "
                                                    "merging changes the token set between stages, so no single "
                                                    "token set runs through every layer"))
register_preset("swin_divided_st_t", SwinDividedConfig(),
                "Divided space-time Swin-T: spatial 7×7 windows + temporal attention, the width and depth of "
                "swin3d_t; 32 frames × 224 px")
register_preset("swin_divided_st_s", SwinDividedConfig(depths=(2, 2, 18, 2)),
                "Divided space-time Swin-S: the width and depth of swin3d_s; 32 frames × 224 px")
register_preset("swin_divided_st_b", SwinDividedConfig(embed_dim=128, depths=(2, 2, 18, 2),
                                                       num_heads=(4, 8, 16, 32)),
                "Divided space-time Swin-B: the width and depth of swin3d_b; 32 frames × 224 px")
