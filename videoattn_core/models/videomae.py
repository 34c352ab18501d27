"""VideoMAE: a plain ViT over space-time tubelets, fine-tuned from masked-autoencoder pre-training.

Tong, Song, Wang & Wang, "VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised Video
Pre-Training", NeurIPS 2022. Reproduces ``VisionTransformer`` of MCG-NJU/VideoMAE (``modeling_finetune.py``),
whose parameter names it keeps, and reads the Hugging Face ``VideoMAEForVideoClassification`` layout (the names
in the files on the Hub, and those a transformers ≥ 5 model saves).

A clip is cut into non-overlapping tubelets of ``tubelet_size`` frames × ``patch_size``² pixels by a strided
Conv3d, giving a (T/2)×(H/16)×(W/16) token grid (8×14×14 = 1568 tokens at 16×224²) flattened ``(t h w)``. A fixed
sin-cos table over the flat token index is added (no CLS token, no learned position), then every block runs
joint space-time attention over all tokens. The query/key/value projection has no bias of its own: learned
biases are added to q and v, none to k. The classifier reads the mean of the tokens after ``fc_norm``
(``use_mean_pooling``), or the first token after a final ``norm``.

The two published implementations differ in their LayerNorm epsilons, which changes logits measurably: the
official code uses 1e-6 everywhere (timm-style ``partial(nn.LayerNorm, eps=1e-6)``); Hugging Face uses
``config.layer_norm_eps`` (1e-12 on the Hub) in the blocks and for the final norm, and PyTorch's default 1e-5 for
``fc_norm``. ``norm_eps`` and ``fc_norm_eps`` carry them; :func:`hf_config_overrides` sets the Hugging Face
values from a ``config.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from ..config import ModelConfig, hparam, require_multiple
from ..errors import CheckpointError
from ..registry import HFMapping, register_family, register_preset
from ..weights.checkpoints import CheckpointLayout, hf_config_fields, rename_keys, require_hf_activation
from .layers import (AttentionCore, AttentionLayout, Conv3d, DropPath, Linear, Mlp, check_video_input,
                     drop_path_rates, split_qkv)

#: PyTorch's default LayerNorm epsilon, which Hugging Face's ``fc_norm`` keeps (it is built without an eps)
TORCH_LAYER_NORM_EPS = 1e-5


@dataclass(frozen=True)
class VideoMAEConfig(ModelConfig):
    """Hyperparameters of the official fine-tuning ``VisionTransformer`` (VideoMAE)."""

    family = "videomae"

    img_size: int = hparam(224, "Input height and width in pixels the model is built for.", min=1, max=4096)
    patch_size: int = hparam(16, "Side of the square patches each tubelet covers.", min=1, max=256)
    tubelet_size: int = hparam(2, "Frames per tubelet (the temporal stride of the patch embedding).", min=1,
                               max=64)
    in_chans: int = hparam(3, "Input channels.", min=1, max=16)
    num_frames: int = hparam(16, "Frames the model is built for.", min=1, max=512)
    num_classes: int = hparam(400, "Classes of the classification head.", min=1, max=100_000)
    embed_dim: int = hparam(768, "Token width.", min=1, max=8192)
    depth: int = hparam(12, "Number of transformer blocks.", min=1, max=128)
    num_heads: int = hparam(12, "Attention heads per block; must divide embed_dim.", min=1, max=256)
    mlp_ratio: float = hparam(4.0, "MLP hidden width as a multiple of embed_dim.", min=0.0625, max=64.0)
    qkv_bias: bool = hparam(True, "Learned biases on the query and value projections (the key has none).")
    qk_scale: float | None = hparam(None, "Attention logit scale; none means head_dim^-0.5.", min=0.0,
                                    optional=True)
    use_mean_pooling: bool = hparam(True, "Classify the mean of all tokens after fc_norm; off: the first token "
                                          "after a final norm.")
    norm_eps: float = hparam(1e-6, "LayerNorm epsilon of the blocks and the final norm (official 1e-6; Hugging "
                                   "Face config.layer_norm_eps, 1e-12 on the Hub).", min=0.0, max=0.1)
    fc_norm_eps: float = hparam(1e-6, "LayerNorm epsilon of fc_norm (official 1e-6; Hugging Face PyTorch's "
                                      "default 1e-5).", min=0.0, max=0.1)
    drop_rate: float = hparam(0.0, "Dropout after projections and MLP layers (training only).", min=0.0, max=0.99)
    attn_drop_rate: float = hparam(0.0, "Dropout on attention probabilities (training only).", min=0.0, max=0.99)
    drop_path_rate: float = hparam(0.1, "Stochastic depth rate of the last block (training only; the fine-tuning "
                                        "default).", min=0.0, max=0.99)
    fc_drop_rate: float = hparam(0.0, "Dropout before the head (training only).", min=0.0, max=0.99)

    def validate(self) -> None:
        require_multiple(self, "embed_dim", "num_heads", heads=True)
        require_multiple(self, "img_size", "patch_size")
        require_multiple(self, "num_frames", "tubelet_size")

    @property
    def grid(self) -> tuple[int, int, int]:
        """The (T, H, W) token grid of the input the model is built for."""
        g = self.img_size // self.patch_size
        return self.num_frames // self.tubelet_size, g, g

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


def sinusoid_table(positions: int, dim: int) -> Tensor:
    """``(positions, dim)`` fixed position table of Vaswani et al.: channel pair (2i, 2i+1) holds
    sin, cos of ``pos / 10000^(2i/dim)``. Computed in float64 as the official numpy code does, then float32."""
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    pair = torch.div(torch.arange(dim), 2, rounding_mode="floor").to(torch.float64)
    angle = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * pair / dim)  # (positions, dim)
    table = torch.empty_like(angle)
    table[:, 0::2] = angle[:, 0::2].sin()
    table[:, 1::2] = angle[:, 1::2].cos()
    return table.float()


class Attention(nn.Module):
    """Multi-head self-attention; the qkv projection has no bias, learned ``q_bias`` and ``v_bias`` are added
    (official ``Attention``). A key bias would add ``q·b_k`` to a whole row of logits, which the softmax
    cancels, so leaving it out loses nothing."""

    def __init__(self, config: VideoMAEConfig):
        super().__init__()
        dim, self.num_heads = config.embed_dim, config.num_heads
        self.qkv = Linear(dim, dim * 3, bias=False)
        if config.qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.core = AttentionCore("joint", config.qk_scale or config.head_dim ** -0.5, config.attn_drop_rate)
        self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.drop_rate)

    def forward(self, x: Tensor, layout: AttentionLayout) -> Tensor:
        # x: (B, N, C), tokens (t h w)
        bias = None  # the q and v biases around a zero k bias, added by the matrix product itself
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        qkv = self.qkv(x, bias)  # (B, N, 3·C)
        q, k, v = split_qkv(qkv, self.num_heads)
        out = self.core(q, k, v, None, layout)  # (B, heads, N, head_dim)
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))


class Block(nn.Module):
    """Pre-norm transformer block (official ``Block`` without layer scale)."""

    def __init__(self, config: VideoMAEConfig, drop_path: float):
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = Attention(config)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), drop=config.drop_rate)

    def forward(self, x: Tensor, layout: AttentionLayout) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), layout))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping tubelets by a strided Conv3d (kernel = stride = tubelet × patch × patch)."""

    def __init__(self, config: VideoMAEConfig):
        super().__init__()
        kernel = (config.tubelet_size, config.patch_size, config.patch_size)
        self.proj = Conv3d(config.in_chans, config.embed_dim, kernel, stride=kernel)

    def forward(self, x: Tensor) -> Tensor:
        # token-major in memory: a channel-major view here would make every later residual sum channel-major
        # too (an elementwise op keeps its first input's layout), and every LayerNorm copy it back
        return rearrange(self.proj(x), "b c t h w -> b (t h w) c").contiguous()  # (B, T'·H'·W', C)


class VideoMAE(nn.Module):
    """VideoMAE classifier. Input ``(B, C, T, H, W)``; output logits ``(B, num_classes)``.

    Other frame counts and sizes (multiples of ``tubelet_size`` and ``patch_size``) are accepted: the fixed
    position table is then the one a model built for that input has (the table over its token count), so the
    logits equal those of such a model with the same weights.
    """

    def __init__(self, config: VideoMAEConfig):
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed(config)
        t, h, w = config.grid
        # fixed, as in the official code (not a parameter, not saved): recomputed for other token counts
        self.register_buffer("pos_embed", sinusoid_table(t * h * w, dim)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(config, p) for p in drop_path_rates(config.drop_path_rate, config.depth))
        if config.use_mean_pooling:
            self.fc_norm = nn.LayerNorm(dim, eps=config.fc_norm_eps)
        else:
            self.norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.fc_dropout = nn.Dropout(config.fc_drop_rate)
        self.head = Linear(dim, config.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # the official initialisation: truncated normal linear weights, zero biases
        if self.head.weight.is_meta:
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _pos_embed(self, tokens: int) -> Tensor:
        """(1, N, C) fixed position table for N tokens."""
        if tokens == self.pos_embed.shape[1]:
            return self.pos_embed
        return sinusoid_table(tokens, self.config.embed_dim)[None].to(self.pos_embed.device)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` clip → ``(B, C)`` pooled, normalised feature."""
        cfg = self.config
        p = cfg.patch_size
        _, t, height, width = check_video_input(x, channels=cfg.in_chans, multiple_hw=(p, p), min_hw=(p, p),
                                                multiple_t=cfg.tubelet_size, min_t=cfg.tubelet_size)
        grid = (t // cfg.tubelet_size, height // p, width // p)
        x = self.patch_embed(x)  # (B, T'·H'·W', C), tokens (t h w)
        x = x + self._pos_embed(x.shape[1]).to(x.dtype)
        layout = AttentionLayout("joint", grid, "b", "(t h w)")
        for block in self.blocks:
            x = block(x, layout)
        if cfg.use_mean_pooling:
            return self.fc_norm(x.mean(dim=1))
        return self.norm(x)[:, 0]

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(self.fc_dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_hint(state: dict[str, Tensor], wrong: list[str], config: VideoMAEConfig) -> list[str]:
    """Say which hyperparameters would make a mismatching checkpoint fit."""
    found: dict[str, Any] = {}
    if "head.weight" in state:
        found["num_classes"], found["embed_dim"] = state["head.weight"].shape
    blocks = {int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    if blocks:
        found["depth"] = max(blocks) + 1
    if "patch_embed.proj.weight" in state:
        kernel = state["patch_embed.proj.weight"].shape
        found["tubelet_size"], found["patch_size"] = kernel[2], kernel[3]
    if "fc_norm.weight" in state or "norm.weight" in state:
        found["use_mean_pooling"] = "fc_norm.weight" in state
    if "blocks.0.attn.qkv.weight" in state:
        found["qkv_bias"] = "blocks.0.attn.q_bias" in state
    hints = [f"{k}={v}" for k, v in found.items() if getattr(config, k) != v]
    if hints:
        hints[-1] += " (num_heads cannot be read from the weights: take it from the checkpoint's config)"
    return hints


# --- checkpoint layouts -------------------------------------------------------------------------------------
# The official checkpoints carry the native names under "model" or "module" (unwrapped by the loader). Hugging
# Face splits qkv into query/key/value and names the q/v biases q_bias/v_bias on disk; transformers ≥ 5 loads
# them as query.bias/value.bias (and may save a key.bias, which the softmax cancels: see Attention).

_HF_PREFIX = r"^videomae\.encoder\.layer\.(\d+)\."
_HF_RULES = [
    (r"^videomae\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (_HF_PREFIX + r"attention\.attention\.(?:q_bias|query\.bias)$", r"blocks.\1.attn.q_bias"),
    (_HF_PREFIX + r"attention\.attention\.(?:v_bias|value\.bias)$", r"blocks.\1.attn.v_bias"),
    (_HF_PREFIX + r"attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (_HF_PREFIX + r"layernorm_before\.", r"blocks.\1.norm1."),
    (_HF_PREFIX + r"layernorm_after\.", r"blocks.\1.norm2."),
    (_HF_PREFIX + r"intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (_HF_PREFIX + r"output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^videomae\.layernorm\.", "norm."),
    (r"^fc_norm\.", "fc_norm."),
    (r"^classifier\.", "head."),
]
_HF_QKV = re.compile(_HF_PREFIX + r"attention\.attention\.(query|key|value)\.weight$")
_HF_KEY_BIAS = _HF_PREFIX + r"attention\.attention\.key\.bias$"


def _from_hf(state: dict[str, Tensor], config: VideoMAEConfig) -> dict[str, Tensor]:
    """Hugging Face names → native: query/key/value weights stacked into ``qkv`` (in that order)."""
    parts: dict[int, dict[str, Tensor]] = {}
    rest = {}
    for key, value in state.items():
        m = _HF_QKV.match(key)
        if m:
            parts.setdefault(int(m[1]), {})[m[2]] = value
        else:
            rest[key] = value
    out = rename_keys(rest, _HF_RULES, drop=(_HF_KEY_BIAS,))
    for layer, found in parts.items():
        missing = [n for n in ("query", "key", "value") if n not in found]
        if missing:
            raise CheckpointError(f"the Hugging Face checkpoint has layer {layer}'s attention without its "
                                  f"{', '.join(missing)} weight")
        out[f"blocks.{layer}.attn.qkv.weight"] = torch.cat([found["query"], found["key"], found["value"]], dim=0)
    return out


CHECKPOINT_LAYOUTS = (
    CheckpointLayout(
        "Hugging Face (VideoMAEForVideoClassification)",
        detect=lambda sd: any(k.startswith("videomae.") for k in sd),
        convert=_from_hf),
)


_HF_CONFIG_FIELDS = {  # Hugging Face VideoMAEConfig -> our field
    "image_size": "img_size", "patch_size": "patch_size", "num_channels": "in_chans", "num_frames": "num_frames",
    "tubelet_size": "tubelet_size", "hidden_size": "embed_dim", "num_hidden_layers": "depth",
    "num_attention_heads": "num_heads", "qkv_bias": "qkv_bias", "qv_bias": "qkv_bias",
    "use_mean_pooling": "use_mean_pooling", "layer_norm_eps": "norm_eps",
}
#: transformers' VideoMAEConfig defaults, for fields a config.json leaves out
_HF_DEFAULTS = {"image_size": 224, "patch_size": 16, "num_channels": 3, "num_frames": 16, "tubelet_size": 2,
                "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                "hidden_act": "gelu", "layer_norm_eps": 1e-12, "use_mean_pooling": True}


def hf_config_overrides(hf_config: dict[str, Any] | None) -> dict[str, Any]:
    """Config fields a Hugging Face ``VideoMAEConfig`` (``config.json``) implies, including the epsilons its
    implementation uses (``layer_norm_eps`` in the blocks and final norm, PyTorch's 1e-5 in ``fc_norm``).
    The q/v bias switch is ``qkv_bias`` in the files on the Hub and ``qv_bias`` in transformers ≥ 5. Only the
    exact GELU is built (``hidden_act`` "gelu"): another activation is a :class:`ConfigError`.

    Returns ``{}`` for a config of another model type."""
    if not isinstance(hf_config, dict) or hf_config.get("model_type", "videomae") != "videomae":
        return {}
    require_hf_activation(hf_config, ("gelu",))
    out = hf_config_fields(hf_config, _HF_CONFIG_FIELDS)
    out.setdefault("norm_eps", 1e-12)  # VideoMAEConfig's default
    out["fc_norm_eps"] = TORCH_LAYER_NORM_EPS
    if hf_config.get("intermediate_size") and hf_config.get("hidden_size"):
        out["mlp_ratio"] = float(hf_config["intermediate_size"]) / float(hf_config["hidden_size"])
    return out


register_family(VideoMAEConfig, VideoMAE,
                paper="Tong et al., VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised "
                      "Video Pre-Training (NeurIPS 2022)",
                repository="https://github.com/MCG-NJU/VideoMAE",
                checkpoint_layouts=CHECKPOINT_LAYOUTS, checkpoint_hint=checkpoint_hint,
                hf=HFMapping(("VideoMAEForVideoClassification",), "videomae", _HF_CONFIG_FIELDS, _HF_DEFAULTS,
                             hf_config_overrides, processor_class="VideoMAEImageProcessor"),
                # the classifier reads the mean of the tokens (fc_norm), or the first token after a final norm
                paper_views=15,  # Kinetics-400 protocol of the paper (Table 6, "180×5×3"): 5 clips × 3 crops
                readout=lambda config: "mean" if config.use_mean_pooling else "first")
register_preset("videomae_s", VideoMAEConfig(embed_dim=384, num_heads=6),
                "VideoMAE ViT-S/16, tubelet 2, 16 frames × 224 px")
register_preset("videomae_base", VideoMAEConfig(),
                "VideoMAE ViT-B/16, tubelet 2, 16 frames × 224 px")
register_preset("videomae_l", VideoMAEConfig(embed_dim=1024, depth=24, num_heads=16),
                "VideoMAE ViT-L/16, tubelet 2, 16 frames × 224 px")
register_preset("videomae_h", VideoMAEConfig(embed_dim=1280, depth=32, num_heads=16),
                "VideoMAE ViT-H/16, tubelet 2, 16 frames × 224 px")
