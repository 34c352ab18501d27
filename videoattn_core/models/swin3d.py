"""Video Swin Transformer: self-attention inside shifted 3D windows of a hierarchical token pyramid.

Liu, Ning, Cao, Wei, Zhang, Lin & Hu, "Video Swin Transformer", CVPR 2022. Reproduces the backbone of
SwinTransformer/Video-Swin-Transformer (``mmaction/models/backbones/swin_transformer.py``), whose parameter names
it keeps, with the average-pooled linear head of its ``I3DHead`` (``cls_head.fc_cls``) named ``head``; reads the
official checkpoints and torchvision's ``swin3d_t/s/b`` layout (``features.{2i}.j`` blocks, ``features.{2i+1}``
patch merging), and computes torchvision's logits.

The network, on channels-last token grids ``(B, T, H, W, C)``:

- ``patch_embed``: the clip is zero-padded at the end of T, H and W to multiples of ``patch_size`` (2, 4, 4),
  cut by a strided Conv3d, then LayerNorm-ed;
- stages of blocks ``x + attn(norm1(x))``, ``x + mlp(norm2(x))``; the attention works inside windows of
  ``window_size`` (8, 7, 7) tokens, every second block on windows shifted by half a window (a cyclic roll of the
  grid and a ``-100`` mask between regions the roll brought together), with a learned bias per relative offset
  from a ``(2·Wt−1)(2·Wh−1)(2·Ww−1) × heads`` table;
- between stages, patch merging concatenates each 2×2 spatial neighbourhood (channel order x0 = (even, even),
  x1 = (odd, even), x2 = (even, odd), x3 = (odd, odd) in (h, w)), LayerNorms and halves it: width doubles,
  H and W halve, T stays;
- a final LayerNorm, the average over all tokens, and a linear head.

Inputs of any size are accepted, with the rules both reference implementations share (see
:mod:`~videoattn_core.models.windows`): per block, the window and shift are clipped to the feature map where the
map is no longer than the window, and the map is zero-padded to a multiple of the window (after ``norm1``, so
padding tokens take part as keys). When a window is clipped, its relative position bias is read as the top-left
``N × N`` block of the full window's index (``relative_position_index[:N, :N]``), exactly as both do; this is
the true relative bias when only the time axis is clipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import ModelConfig, hparam, require
from ..registry import register_family, register_preset
from ..weights.checkpoints import CheckpointLayout, rename_keys
from .layers import AttentionCore, Conv3d, DropPath, Linear, Mlp, check_video_input, drop_path_rates
from .windows import position_bias, relative_position_index, window_attention


@dataclass(frozen=True)
class SwinTransformer3DConfig(ModelConfig):
    """Hyperparameters of the official ``SwinTransformer3D`` backbone with its average-pooled linear head."""

    family = "swin3d"

    num_frames: int = hparam(32, "Frames of the clip the preset is evaluated on (the paper's 32-frame views; "
                                 "torchvision's fixture uses 16). The network accepts any frame count.",
                             min=1, max=1024)
    img_size: int = hparam(224, "Height and width in pixels of the clip the preset is evaluated on. Any size "
                                "is accepted (padded to the patch and window grids).", min=1, max=4096)
    in_chans: int = hparam(3, "Input channels.", min=1, max=16)
    num_classes: int = hparam(400, "Classes of the classification head.", min=1, max=100_000)
    patch_size: tuple[int, ...] = hparam((2, 4, 4), "Patch (frames, height, width) cut by the Conv3d embedding.",
                                         min=1, max=64, length=3)
    embed_dim: int = hparam(96, "Token width of the first stage; it doubles at every later stage.",
                            min=1, max=4096)
    depths: tuple[int, ...] = hparam((2, 2, 6, 2), "Blocks in each stage (one entry per stage).", min=1, max=64)
    num_heads: tuple[int, ...] = hparam((3, 6, 12, 24), "Attention heads in each stage; stage i's width "
                                                        "embed_dim·2^i must be divisible by it.", min=1, max=256)
    window_size: tuple[int, ...] = hparam((8, 7, 7), "Attention window (frames, height, width) in tokens; "
                                                     "shifted blocks move it by half of it.",
                                          min=1, max=64, length=3)
    mlp_ratio: float = hparam(4.0, "MLP hidden width as a multiple of the block width.", min=0.0625, max=64.0)
    qkv_bias: bool = hparam(True, "Learned bias on the query/key/value projection.")
    qk_scale: float | None = hparam(None, "Attention logit scale; none means head_dim^-0.5.", min=0.0,
                                    optional=True)
    patch_norm: bool = hparam(True, "LayerNorm after the patch embedding (on in every published model).")
    drop_rate: float = hparam(0.0, "Dropout after the embedding, projections and MLP layers (training only).",
                              min=0.0, max=0.99)
    attn_drop_rate: float = hparam(0.0, "Dropout on attention probabilities (training only).", min=0.0, max=0.99)
    drop_path_rate: float = hparam(0.1, "Stochastic depth rate of the last block (training only).",
                                   min=0.0, max=0.99)
    norm_eps: float = hparam(1e-5, "LayerNorm epsilon.", min=0.0, max=0.1)

    def validate(self) -> None:
        require(1 <= len(self.depths) <= 8,
                f"depths={self.depths} must list the blocks of 1 to 8 stages", field="depths")
        require(len(self.num_heads) == len(self.depths),
                f"num_heads={self.num_heads} must have one entry per stage, like depths={self.depths} "
                f"({len(self.depths)} entries)", field="num_heads")
        for stage, heads in enumerate(self.num_heads):
            width = self.stage_dim(stage)
            require(width % heads == 0,
                    f"stage {stage} is {width} wide (embed_dim·2^{stage}), which num_heads[{stage}]={heads} "
                    f"does not divide; choose num_heads among the divisors of each stage's width",
                    field="num_heads")

    def stage_dim(self, stage: int) -> int:
        return self.embed_dim * 2 ** stage

    @property
    def num_features(self) -> int:
        return self.stage_dim(len(self.depths) - 1)

    def shift_size(self, block: int) -> tuple[int, ...]:
        """Shift of block ``block`` of a stage: none for even blocks, half the window for odd ones."""
        return (0, 0, 0) if block % 2 == 0 else tuple(w // 2 for w in self.window_size)


class PatchEmbed3D(nn.Module):
    """Conv3d patch embedding; the clip is zero-padded at the end of T, H, W to multiples of the patch."""

    def __init__(self, config: SwinTransformer3DConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.proj = Conv3d(config.in_chans, config.embed_dim, config.patch_size, stride=config.patch_size)
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps) if config.patch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, T, H, W) → (B, T', H', W', C')
        pt, ph, pw = (-size % patch for size, patch in zip(x.shape[2:], self.patch_size))
        if pt or ph or pw:
            x = F.pad(x, (0, pw, 0, ph, 0, pt))
        # channels-last in memory, not a permuted view: the residual sums that follow keep the first input's layout
        x = rearrange(self.proj(x), "b c t h w -> b t h w c").contiguous()
        return self.norm(x) if self.norm is not None else x


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside (shifted) 3D windows with a relative position bias (official names).

    Takes the normalised grid ``(B, T, H, W, C)`` and returns the attention branch on the same grid; the
    clipping, padding, roll, window partition and their inverses happen here.
    """

    def __init__(self, config: SwinTransformer3DConfig, dim: int, num_heads: int, shift_size: tuple[int, ...]):
        super().__init__()
        self.num_heads = num_heads
        self.window_size = tuple(config.window_size)
        self.shift_size = tuple(shift_size)
        head_dim = dim // num_heads
        self.qkv = Linear(dim, dim * 3, bias=config.qkv_bias)
        self.core = AttentionCore("window", config.qk_scale or head_dim ** -0.5, config.attn_drop_rate)
        self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.drop_rate)
        rows = math.prod(2 * w - 1 for w in self.window_size)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, num_heads))  # (2Wt−1)(2Wh−1)(2Ww−1), heads
        self.register_buffer("relative_position_index", relative_position_index(self.window_size), persistent=False)

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, shift_size={self.shift_size}, num_heads={self.num_heads}"

    def relative_position_bias(self, window: tuple[int, int, int]) -> Tensor:
        """(1, heads, N, N) bias of a window of ``window`` tokens; a clipped window reads the top-left N × N
        block of the full window's index, as the official code and torchvision do."""
        n = math.prod(window)
        return position_bias(self.relative_position_bias_table, self.relative_position_index[:n, :n])

    def forward(self, x: Tensor) -> Tensor:
        return window_attention(self, x, core=self.core, kind="window")


class SwinTransformerBlock3D(nn.Module):
    """``x + attn(norm1(x))`` then ``x + mlp(norm2(x))`` on a ``(B, T, H, W, C)`` grid (official names)."""

    def __init__(self, config: SwinTransformer3DConfig, dim: int, num_heads: int, shift_size: tuple[int, ...],
                 drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = WindowAttention3D(config, dim, num_heads, shift_size)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), drop=config.drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2×2 spatial patch merging: ``(B, T, H, W, C)`` → ``(B, T, ⌈H/2⌉, ⌈W/2⌉, 2C)``; odd H or W are
    zero-padded at the end first."""

    def __init__(self, config: SwinTransformer3DConfig, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=config.norm_eps)
        self.reduction = Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2:4]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        # channel blocks x0..x3 = (h even, w even), (h odd, w even), (h even, w odd), (h odd, w odd)
        x = rearrange(x, "b t (h dh) (w dw) c -> b t h w (dw dh c)", dh=2, dw=2)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One stage: its blocks, then (except in the last stage) patch merging (official ``BasicLayer``)."""

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class SwinTransformer3D(nn.Module):
    """Video Swin classifier. Input ``(B, C, T, H, W)`` of any size; output logits ``(B, num_classes)``."""


    def __init__(self, config: SwinTransformer3DConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed3D(config)
        self.pos_drop = nn.Dropout(config.drop_rate)
        rates = iter(drop_path_rates(config.drop_path_rate, sum(config.depths)))
        layers = []
        for stage, (depth, heads) in enumerate(zip(config.depths, config.num_heads)):
            dim = config.stage_dim(stage)
            blocks = [self.make_block(config, dim, heads, config.shift_size(i), next(rates)) for i in range(depth)]
            last = stage == len(config.depths) - 1
            layers.append(BasicLayer(blocks, None if last else PatchMerging(config, dim)))
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(config.num_features, eps=config.norm_eps)
        self.head = Linear(config.num_features, config.num_classes)
        self._init_weights()

    def make_block(self, config: SwinTransformer3DConfig, dim: int, num_heads: int, shift_size: tuple[int, ...],
                   drop_path: float) -> nn.Module:
        return SwinTransformerBlock3D(config, dim, num_heads, shift_size, drop_path)

    def _init_weights(self) -> None:
        # the official initialisation: truncated normal (std 0.02) for linear weights and bias tables
        if self.head.weight.is_meta:
            return
        for name, param in self.named_parameters():
            if name.endswith("position_bias_table"):
                nn.init.trunc_normal_(param, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def check_input(self, x: Tensor) -> None:
        check_video_input(x, channels=self.config.in_chans)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` clip → ``(B, C')`` average of the normalised last-stage tokens."""
        self.check_input(x)
        x = self.pos_drop(self.patch_embed(x))  # (B, T', H', W', C)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=(1, 2, 3))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_hint(state: dict[str, Tensor], wrong: list[str], config: SwinTransformer3DConfig) -> list[str]:
    """Say which hyperparameters would make a mismatching (native-named) checkpoint fit."""
    found: dict[str, object] = {}
    if "head.weight" in state:
        found["num_classes"] = state["head.weight"].shape[0]
    if "patch_embed.proj.weight" in state:
        weight = state["patch_embed.proj.weight"]
        found["embed_dim"] = weight.shape[0]
        found["patch_size"] = tuple(weight.shape[2:])
    found["patch_norm"] = "patch_embed.norm.weight" in state
    blocks: dict[int, int] = {}
    heads: dict[int, int] = {}
    for key, value in state.items():
        m = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table$", key)
        if m:
            stage, block = int(m[1]), int(m[2])
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
            heads[stage] = value.shape[1]
    if blocks and sorted(blocks) == list(range(len(blocks))):
        found["depths"] = tuple(blocks[s] for s in range(len(blocks)))
        found["num_heads"] = tuple(heads[s] for s in range(len(heads)))
    hints = [f"{k}={v}" for k, v in found.items() if getattr(config, k) != v]
    return hints


# --- checkpoint layouts -------------------------------------------------------------------------------------

_DERIVED = (r"relative_position_index$", r"attn_mask$")


def _from_official(state: dict[str, Tensor], config: SwinTransformer3DConfig) -> dict[str, Tensor]:
    """mmaction ``{"state_dict": {"backbone.…", "cls_head.fc_cls.…"}}`` → native names."""
    return rename_keys(state, [(r"^backbone\.", ""), (r"^cls_head\.fc_cls\.", "head.")], drop=_DERIVED)


def _from_torchvision(state: dict[str, Tensor], config: SwinTransformer3DConfig) -> dict[str, Tensor]:
    """torchvision ``SwinTransformer3d``: ``features.{2i}.j.…`` blocks of stage i, ``features.{2i+1}.…`` its patch
    merging, ``mlp.0``/``mlp.3`` the MLP layers → native names."""
    out = {}
    for key, value in rename_keys(state, [], drop=_DERIVED).items():
        m = re.match(r"features\.(\d+)\.(.*)$", key)
        if m:
            index, rest = int(m[1]), m[2]
            if index % 2 == 0:
                block, rest = rest.split(".", 1)
                rest = re.sub(r"^mlp\.0\.", "mlp.fc1.", re.sub(r"^mlp\.3\.", "mlp.fc2.", rest))
                key = f"layers.{index // 2}.blocks.{block}.{rest}"
            else:
                key = f"layers.{index // 2}.downsample.{rest}"
        out[key] = value
    return out


CHECKPOINT_LAYOUTS = (
    CheckpointLayout("official (SwinTransformer/Video-Swin-Transformer, mmaction)",
                     detect=lambda sd: any(k.startswith(("backbone.", "cls_head.")) for k in sd),
                     convert=_from_official),
    CheckpointLayout("torchvision (SwinTransformer3d)",
                     detect=lambda sd: any(k.startswith("features.") for k in sd),
                     convert=_from_torchvision),
)


register_family(SwinTransformer3DConfig, SwinTransformer3D,
                paper="Liu et al., Video Swin Transformer (CVPR 2022)",
                repository="https://github.com/SwinTransformer/Video-Swin-Transformer",
                checkpoint_layouts=CHECKPOINT_LAYOUTS, checkpoint_hint=checkpoint_hint,
                paper_views=12,  # Liu et al. 2022 (Video Swin), Table 1: 4 clips × 3 crops
                readout=lambda config: "mean", channels_last_features=True)
register_preset("swin3d_t", SwinTransformer3DConfig(),
                "Video Swin-T (torchvision swin3d_t): 96 wide, depths 2-2-6-2, window 8×7×7; 32 frames × 224 px")
register_preset("swin3d_s", SwinTransformer3DConfig(depths=(2, 2, 18, 2)),
                "Video Swin-S (torchvision swin3d_s): 96 wide, depths 2-2-18-2, window 8×7×7; 32 frames × 224 px")
register_preset("swin3d_b", SwinTransformer3DConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
                "Video Swin-B (torchvision swin3d_b): 128 wide, depths 2-2-18-2, window 8×7×7; 32 frames × 224 px")
register_preset("swin3d_l", SwinTransformer3DConfig(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
                "Video Swin-L: 192 wide, depths 2-2-18-2, window 8×7×7; 32 frames × 224 px")
