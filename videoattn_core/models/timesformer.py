"""TimeSformer: space-time attention over frame patches.

Bertasius, Wang & Torresani, "Is Space-Time Attention All You Need for Video Understanding?", ICML 2021.
Reproduces ``VisionTransformer`` of facebookresearch/TimeSformer (``timesformer/models/vit.py``), whose
parameter names it keeps, and reads the Hugging Face ``TimesformerForVideoClassification`` layout.

Tokens follow the official order: after the CLS token, patch tokens are ordered ``(h w t)`` (the frame index
runs fastest). Three attention schemes (``attention_type``):

- ``divided_space_time``: per block, temporal attention across the T frames at each patch position, a
  ``temporal_fc`` projection, then spatial attention within each frame with the CLS token repeated per frame
  and averaged back;
- ``joint_space_time``: one attention over all T·H·W patches;
- ``space_only``: frames attended independently, their tokens averaged after the blocks.

The seed code's variant adds a learned relative temporal position bias to the temporal attention
(``temporal_relative_bias``): a ``(2·T−1, num_heads)`` table indexed by the frame offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import ModelConfig, hparam, require, require_multiple
from ..registry import HFMapping, register_family, register_preset
from ..weights.checkpoints import CheckpointLayout, hf_config_fields, rename_keys, require_hf_activation
from .layers import (AttentionCore, AttentionLayout, ComposedLinear, Conv2d, DropPath, Linear, Mlp,
                     check_video_input, drop_path_rates, inference, split_qkv)

ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")


@dataclass(frozen=True)
class TimeSformerConfig(ModelConfig):
    """Hyperparameters of the official ``VisionTransformer`` (TimeSformer), plus the seed code's variant."""

    family = "timesformer"

    img_size: int = hparam(224, "Input height and width in pixels the model is built for (sets the positional "
                                "embedding grid).", min=1, max=4096)
    patch_size: int = hparam(16, "Side of the square patches each frame is cut into.", min=1, max=256)
    in_chans: int = hparam(3, "Input channels.", min=1, max=16)
    num_frames: int = hparam(8, "Frames the model is built for (sets the time embedding length).", min=1, max=512)
    num_classes: int = hparam(400, "Classes of the classification head.", min=1, max=100_000)
    embed_dim: int = hparam(768, "Token width.", min=1, max=8192)
    depth: int = hparam(12, "Number of transformer blocks.", min=1, max=128)
    num_heads: int = hparam(12, "Attention heads per block; must divide embed_dim.", min=1, max=256)
    mlp_ratio: float = hparam(4.0, "MLP hidden width as a multiple of embed_dim.", min=0.0625, max=64.0)
    qkv_bias: bool = hparam(True, "Learned bias on the query/key/value projection.")
    qk_scale: float | None = hparam(None, "Attention logit scale; none means head_dim^-0.5.", min=0.0,
                                    optional=True)
    drop_rate: float = hparam(0.0, "Dropout after embeddings, projections and MLP layers (training only).",
                              min=0.0, max=0.99)
    attn_drop_rate: float = hparam(0.0, "Dropout on attention probabilities (training only).", min=0.0, max=0.99)
    drop_path_rate: float = hparam(0.1, "Stochastic depth rate of the last block (training only).",
                                   min=0.0, max=0.99)
    norm_eps: float = hparam(1e-6, "LayerNorm epsilon.", min=0.0, max=0.1)
    attention_type: str = hparam("divided_space_time", "How attention spans space and time.",
                                 choices=ATTENTION_TYPES)
    temporal_relative_bias: bool = hparam(False, "Seed-code variant: learned relative temporal position bias "
                                                 "in the temporal attention (divided_space_time only).")

    def validate(self) -> None:
        require_multiple(self, "embed_dim", "num_heads", heads=True)
        require_multiple(self, "img_size", "patch_size")
        require(not self.temporal_relative_bias or self.attention_type == "divided_space_time",
                f"temporal_relative_bias needs attention_type='divided_space_time' (it biases the temporal "
                f"attention), got attention_type={self.attention_type!r}", field="temporal_relative_bias")

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (official ``Attention``).

    With ``relative_frames`` set, a ``(2·T−1, heads)`` table of learned biases indexed by the frame offset
    i − j (query frame i, key frame j: the seed code's ``coords[:, None] - coords[None, :] + T - 1``, the sign of
    Swin's relative positions) is added to the logits; offsets beyond the built range are clamped.
    """

    def __init__(self, config: TimeSformerConfig, kind: str, relative_frames: int | None = None):
        super().__init__()
        dim, self.num_heads = config.embed_dim, config.num_heads
        self.qkv = Linear(dim, dim * 3, bias=config.qkv_bias)
        self.core = AttentionCore(kind, config.qk_scale or config.head_dim ** -0.5, config.attn_drop_rate)
        self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.drop_rate)
        self.relative_frames = relative_frames
        if relative_frames:
            self.relative_position_bias_table = nn.Parameter(torch.zeros(2 * relative_frames - 1, self.num_heads))

    def relative_bias(self, frames: int) -> Tensor:
        """(heads, T, T) bias: entry [h, i, j] is the table's row for offset i − j (clamped to the table)."""
        pos = torch.arange(frames, device=self.relative_position_bias_table.device)
        offset = (pos[:, None] - pos[None, :]).clamp(-(self.relative_frames - 1), self.relative_frames - 1)
        return self.relative_position_bias_table[offset + self.relative_frames - 1].permute(2, 0, 1)

    def forward(self, x: Tensor, layout: AttentionLayout, project: bool = True) -> Tensor:
        """x: (G, N, C) with G groups of N tokens. Without ``project``, the heads' outputs side by side, before
        ``proj`` (which the caller then applies, composed with what follows it)."""
        q, k, v = split_qkv(self.qkv(x), self.num_heads)
        bias = self.relative_bias(x.shape[1]).unsqueeze(0) if self.relative_frames else None
        out = rearrange(self.core(q, k, v, bias, layout), "g h n d -> g n (h d)")  # core: (G, heads, N, head_dim)
        return self.proj_drop(self.proj(out)) if project else out


class Block(nn.Module):
    """One TimeSformer block (official ``Block``)."""

    def __init__(self, config: TimeSformerConfig, drop_path: float):
        super().__init__()
        self.attention_type = config.attention_type
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        kind = {"divided_space_time": "space", "joint_space_time": "joint", "space_only": "space"}
        self.attn = Attention(config, kind[config.attention_type])
        if config.attention_type == "divided_space_time":
            self.temporal_norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
            self.temporal_attn = Attention(
                config, "time", relative_frames=config.num_frames if config.temporal_relative_bias else None)
            self.temporal_fc = Linear(dim, dim)
            self.temporal_fc.inspection_category = "attention"  # projects the temporal attention's residual
            self.temporal_projection = ComposedLinear()  # temporal_fc ∘ temporal_attn.proj, at inference
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), drop=config.drop_rate)

    def forward(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        t, h, w = grid
        if self.attention_type != "divided_space_time":
            # joint: x (B, 1 + H·W·T, C); space_only: x (B·T, 1 + H·W, C)
            if self.attention_type == "joint_space_time":
                layout = AttentionLayout("joint", grid, "b", "(h w t)", cls=True)
            else:
                layout = AttentionLayout("space", grid, "(b t)", "(h w)", cls=True)
            x = x + self.drop_path(self.attn(self.norm1(x), layout))
            return x + self.drop_path(self.mlp(self.norm2(x)))

        # x: (B, 1 + H·W·T, C), patch tokens ordered (h w t)
        if inference():
            return self._divided_inference(x, grid)
        cls, patches = x[:, :1], x[:, 1:]
        b = x.shape[0]

        # temporal attention across frames at each patch position
        xt = rearrange(patches, "b (h w t) c -> (b h w) t c", h=h, w=w, t=t)
        res = self.temporal_attn(self.temporal_norm1(xt), AttentionLayout("time", grid, "(b h w)", "t"))
        res = self.drop_path(res)
        res = rearrange(res, "(b h w) t c -> b (h w t) c", b=b, h=h, w=w)
        patches = patches + self.temporal_fc(res)

        # spatial attention within each frame; the CLS token joins every frame and is averaged back
        xs = rearrange(patches, "b (h w t) c -> (b t) (h w) c", h=h, w=w, t=t)
        xs = torch.cat((cls.repeat_interleave(t, dim=0), xs), dim=1)  # (B·T, 1 + H·W, C)
        res = self.attn(self.norm1(xs), AttentionLayout("space", grid, "(b t)", "(h w)", cls=True))
        res = self.drop_path(res)
        res_cls = rearrange(res[:, 0], "(b t) c -> b t c", t=t).mean(dim=1, keepdim=True)
        res_patches = rearrange(res[:, 1:], "(b t) (h w) c -> b (h w t) c", t=t, h=h, w=w)

        x = torch.cat((cls, patches), dim=1) + torch.cat((res_cls, res_patches), dim=1)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _divided_inference(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """The divided block of :meth:`forward` without autograd, with one copy per token reordering: the same
        sums, written into preallocated buffers (``out=``) instead of concatenated and rearranged copies."""
        t, h, w = grid
        b, n, c = x.shape  # n = 1 + H·W·T
        cls, patches = x[:, :1], x[:, 1:]

        # temporal attention: (b h w) t c is a view of the (h w t)-ordered patches; its output projection and
        # temporal_fc are one product where they can be (ComposedLinear: bfloat16 on oneDNN, eval mode, no hooks)
        xt = patches.reshape(b * h * w, t, c)
        composed = self.temporal_projection.parameters(xt, self.temporal_attn.proj, self.temporal_fc)
        res = self.temporal_attn(self.temporal_norm1(xt), AttentionLayout("time", grid, "(b h w)", "t"),
                                 project=composed is None)
        res = self.temporal_fc(self.drop_path(res)) if composed is None else ComposedLinear.apply(res, composed)
        out = x.new_empty(b, n, c)  # the block's output after attention, filled in place below
        torch.add(patches, res.view(b, n - 1, c), out=out[:, 1:])
        patches = out[:, 1:].view(b, h * w, t, c)

        # spatial attention: one (b t) (1 + h w) c buffer, the CLS token in front of every frame
        xs = x.new_empty(b, t, 1 + h * w, c)
        xs[:, :, 0] = cls
        xs[:, :, 1:] = patches.transpose(1, 2)
        xs = xs.view(b * t, 1 + h * w, c)
        res = self.drop_path(self.attn(self.norm1(xs), AttentionLayout("space", grid, "(b t)", "(h w)", cls=True)))
        res = res.view(b, t, 1 + h * w, c)
        torch.add(cls, res[:, :, :1].mean(dim=1), out=out[:, :1])
        patches += res[:, :, 1:].transpose(1, 2)
        return out + self.drop_path(self.mlp(self.norm2(out)))


class PatchEmbed(nn.Module):
    """Each frame cut into non-overlapping patches by a strided Conv2d."""

    def __init__(self, config: TimeSformerConfig):
        super().__init__()
        self.proj = Conv2d(config.in_chans, config.embed_dim, config.patch_size, stride=config.patch_size)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(rearrange(x, "b c t h w -> (b t) c h w"))  # (B·T, C, H', W')
        return x.flatten(2).transpose(1, 2)  # (B·T, H'·W', C)


class TimeSformer(nn.Module):
    """TimeSformer classifier. Input ``(B, C, T, H, W)``; output logits ``(B, num_classes)``.

    Any frame count and any H, W that are multiples of ``patch_size`` are accepted; the positional and time
    embeddings are then resized by nearest-neighbour interpolation, as the official code does.
    """

    def __init__(self, config: TimeSformerConfig):
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.grid_size ** 2 + 1, dim))
        self.pos_drop = nn.Dropout(config.drop_rate)
        if config.attention_type != "space_only":
            self.time_embed = nn.Parameter(torch.zeros(1, config.num_frames, dim))
            self.time_drop = nn.Dropout(config.drop_rate)
        self.blocks = nn.ModuleList(Block(config, p) for p in drop_path_rates(config.drop_path_rate, config.depth))
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.head = Linear(dim, config.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # the official initialisation: truncated normal for embeddings and linear weights, zero biases, and
        # temporal_fc zeroed in every block but the first
        if self.cls_token.is_meta:
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for block in list(self.blocks)[1:]:
            if hasattr(block, "temporal_fc"):
                nn.init.zeros_(block.temporal_fc.weight)
                nn.init.zeros_(block.temporal_fc.bias)

    def _pos_embed(self, h: int, w: int) -> Tensor:
        """(1, 1 + H·W, C) positional embedding for an H×W patch grid, resized (nearest) when it differs."""
        g = self.config.grid_size
        if (h, w) == (g, g):
            return self.pos_embed
        cls_pos, grid_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid_pos = rearrange(grid_pos, "1 (gh gw) c -> 1 c gh gw", gh=g, gw=g)
        grid_pos = F.interpolate(grid_pos, size=(h, w), mode="nearest")
        return torch.cat((cls_pos, rearrange(grid_pos, "1 c h w -> 1 (h w) c")), dim=1)

    def _time_embed(self, t: int) -> Tensor:
        """(1, T, C) time embedding, resized (nearest) when the frame count differs from the built one."""
        if t == self.time_embed.shape[1]:
            return self.time_embed
        return F.interpolate(self.time_embed.transpose(1, 2), size=t, mode="nearest").transpose(1, 2)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` clip → ``(B, C)`` normalised CLS feature."""
        p = self.config.patch_size
        b, t, height, width = check_video_input(x, channels=self.config.in_chans, multiple_hw=(p, p),
                                                min_hw=(p, p))
        h, w = height // p, width // p
        grid = (t, h, w)

        x = self.patch_embed(x)  # (B·T, H·W, C)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.pos_drop(x + self._pos_embed(h, w))  # (B·T, 1 + H·W, C)

        if self.config.attention_type != "space_only":
            cls = x[::t, :1]  # the CLS of each clip's first frame (all frames carry the same one)
            x = rearrange(x[:, 1:], "(b t) n c -> (b n) t c", t=t)
            x = self.time_drop(x + self._time_embed(t))
            x = rearrange(x, "(b n) t c -> b (n t) c", b=b)
            x = torch.cat((cls, x), dim=1)  # (B, 1 + H·W·T, C), patches ordered (h w t)

        for block in self.blocks:
            x = block(x, grid)

        if self.config.attention_type == "space_only":
            x = rearrange(x, "(b t) n c -> b t n c", t=t).mean(dim=1)  # frames averaged
        return self.norm(x)[:, 0]

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_hint(state: dict[str, Tensor], wrong: list[str], config: TimeSformerConfig) -> list[str]:
    """Say which hyperparameters would make a mismatching checkpoint fit."""
    hints = []
    if "head.weight" in wrong:
        hints.append(f"num_classes={state['head.weight'].shape[0]}")
    if "time_embed" in wrong:
        hints.append(f"num_frames={state['time_embed'].shape[1]}")
    if "pos_embed" in wrong and "patch_embed.proj.weight" in state:
        n, patch = state["pos_embed"].shape[1] - 1, state["patch_embed.proj.weight"].shape[-1]
        hints.append(f"img_size={round(n ** 0.5) * patch}")
    if not any(k.startswith("blocks.0.temporal") for k in state) and "time_embed" not in state:
        hints.append("attention_type='space_only'")
    return hints


# --- checkpoint layouts -------------------------------------------------------------------------------------

_HF_RULES = [
    (r"^timesformer\.embeddings\.cls_token$", "cls_token"),
    (r"^timesformer\.embeddings\.position_embeddings$", "pos_embed"),
    (r"^timesformer\.embeddings\.time_embeddings$", "time_embed"),
    (r"^timesformer\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.attention\.attention\.qkv\.", r"blocks.\1.attn.qkv."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.temporal_attention\.attention\.qkv\.", r"blocks.\1.temporal_attn.qkv."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.temporal_attention\.output\.dense\.", r"blocks.\1.temporal_attn.proj."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.temporal_dense\.", r"blocks.\1.temporal_fc."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.temporal_layernorm\.", r"blocks.\1.temporal_norm1."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (r"^timesformer\.encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^timesformer\.layernorm\.", "norm."),
    (r"^classifier\.", "head."),
]

_HF_CONFIG_FIELDS = {  # Hugging Face TimesformerConfig -> our field
    "image_size": "img_size", "patch_size": "patch_size", "num_channels": "in_chans", "num_frames": "num_frames",
    "hidden_size": "embed_dim", "num_hidden_layers": "depth", "num_attention_heads": "num_heads",
    "layer_norm_eps": "norm_eps", "qkv_bias": "qkv_bias", "attention_type": "attention_type",
}


def hf_config_overrides(hf_config: dict) -> dict:
    """Config fields a Hugging Face ``TimesformerConfig`` (``config.json``) implies; ``{}`` for another model. Only
    the exact GELU is built (``hidden_act`` "gelu"): another activation is a :class:`ConfigError`."""
    if hf_config.get("model_type", "timesformer") != "timesformer":
        return {}
    require_hf_activation(hf_config, ("gelu",))
    out = hf_config_fields(hf_config, _HF_CONFIG_FIELDS)
    if hf_config.get("intermediate_size") and hf_config.get("hidden_size"):
        out["mlp_ratio"] = float(hf_config["intermediate_size"]) / float(hf_config["hidden_size"])
    return out


_HF_DEFAULTS = {  # transformers' TimesformerConfig defaults, for fields a config.json leaves out
    "image_size": 224, "patch_size": 16, "num_channels": 3, "num_frames": 8, "hidden_size": 768,
    "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "layer_norm_eps": 1e-6, "qkv_bias": True, "attention_type": "divided_space_time"}
CHECKPOINT_LAYOUTS = (
    # official .pyth files: {"model_state": {"model.blocks.0...": ...}} (the container is unwrapped by the loader)
    CheckpointLayout(
        "official (facebookresearch/TimeSformer)",
        detect=lambda sd: all(k.startswith("model.") for k in sd),
        convert=lambda sd, cfg: {k[len("model."):]: v for k, v in sd.items()}),
    CheckpointLayout(
        "Hugging Face (TimesformerForVideoClassification)",
        detect=lambda sd: any(k.startswith("timesformer.") for k in sd),
        convert=lambda sd, cfg: rename_keys(sd, _HF_RULES)),
)


register_family(TimeSformerConfig, TimeSformer,
                paper="Bertasius et al., Is Space-Time Attention All You Need for Video Understanding? (ICML 2021)",
                repository="https://github.com/facebookresearch/TimeSformer",
                checkpoint_layouts=CHECKPOINT_LAYOUTS, checkpoint_hint=checkpoint_hint,
                hf=HFMapping(("TimesformerForVideoClassification",), "timesformer", _HF_CONFIG_FIELDS, _HF_DEFAULTS,
                             hf_config_overrides,
                             processor_class="VideoMAEImageProcessor"),  # what the Hub's repositories name
                paper_views=3,  # Bertasius et al. 2021, Table 1/6: 1 clip × 3 spatial crops ("0.59 TFLOPs × 3 views")
                # space-only: the frames' CLS tokens, averaged after the blocks
                readout=lambda config: "frame_cls" if config.attention_type == "space_only" else "cls",
                token_order="(h w t)")
register_preset("timesformer_base", TimeSformerConfig(),
                "TimeSformer (ViT-B/16, divided space-time), 8 frames × 224 px")
register_preset("timesformer_hr", TimeSformerConfig(num_frames=16, img_size=448),
                "TimeSformer-HR, 16 frames × 448 px")
register_preset("timesformer_l", TimeSformerConfig(num_frames=96),
                "TimeSformer-L, 96 frames × 224 px")
