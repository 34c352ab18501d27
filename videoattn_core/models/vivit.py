"""ViViT: a video vision transformer over tubelet tokens, in its four attention models.

Arnab, Dehghani, Heigold, Sun, Lučić & Schmid, "ViViT: A Video Vision Transformer", ICCV 2021. Reproduces
google-research/scenic ``scenic/projects/vivit/model.py`` (``ViViT``, ``SpaceTimeViViT``, ``Encoder``,
``EncoderFactorizedSelfAttentionBlock``, ``model_utils.factorized_dot_product_attention``) and reads the Hugging
Face ``VivitForVideoClassification`` layout (model 1), on-disk names and the renamed ones of transformers ≥ 5.

A clip is cut into non-overlapping ``t×h×w`` tubelets by a strided Conv3d (2×16×16 in the paper), giving
tokens ordered ``(t h w)`` on a T'×H'×W' grid. ``attention_type`` picks the model, named as Scenic names it:

- ``spacetime`` (model 1): one CLS token, a learned positional embedding over all ``1 + T'·H'·W'`` tokens, and
  joint attention over all of them in every block; the classifier reads the final layer norm's CLS token.
- ``factorized_encoder`` (model 2): a spatial encoder runs on each frame separately (``B·T'`` groups of
  ``1 + H'·W'`` tokens, its own CLS and positional embedding, ``depth`` blocks, its own final norm); each frame's
  CLS output then forms a sequence of T' tokens for a temporal encoder (its own CLS and positional embedding,
  ``temporal_depth`` blocks, final norm), whose CLS token is classified.
- ``factorized_self_attention_block`` (model 3): each block runs attention over time (at each position), then
  over space (within each frame), each sub-block with its own layer norm and residual, then one MLP;
  ``attention_order`` sets which comes first (Scenic's block default: time first).
- ``factorized_dot_product_attention`` (model 4): one q/k/v projection per block; the first half of the heads
  attends over time, the second half over space, and the two halves are concatenated before the output
  projection.

Models 3 and 4 have no CLS token: as in Scenic (which refuses a token classifier for them) the final normed
tokens are averaged ("gap"). Scenic's MLP uses ``flax.linen.gelu``, whose default is the tanh approximation;
the Hugging Face conversion says ``gelu_fast``, the same function: ``activation`` defaults to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from einops import rearrange
from torch import Tensor, nn

from ..config import ModelConfig, hparam, require
from ..registry import HFMapping, register_family, register_preset
from ..weights.catalog.vivit import VIVIT_RECIPE
from ..weights.checkpoints import CheckpointLayout, hf_config_fields, rename_keys, require_hf_activation
from .layers import (AttentionCore, AttentionLayout, Conv3d, DropPath, Linear, Mlp, check_video_input,
                     drop_path_rates)

ATTENTION_TYPES = ("spacetime", "factorized_encoder", "factorized_self_attention_block",
                   "factorized_dot_product_attention")
ATTENTION_ORDERS = ("time_space", "space_time")
ACTIVATIONS = ("gelu_tanh", "gelu")
CLASSIFIERS = ("token", "gap")
_NO_TOKEN = ("factorized_self_attention_block", "factorized_dot_product_attention")


@dataclass(frozen=True)
class ViViTConfig(ModelConfig):
    """Hyperparameters of Scenic's ``ViViT`` / ``SpaceTimeViViT`` (names follow Scenic's configs where they can)."""

    family = "vivit"

    attention_type: str = hparam("spacetime", "ViViT model: 1 spacetime (joint attention), 2 factorized_encoder "
                                              "(spatial then temporal encoder), 3 factorized_self_attention_block, "
                                              "4 factorized_dot_product_attention.", choices=ATTENTION_TYPES)
    img_size: int = hparam(224, "Input height and width in pixels the model is built for (sets the positional "
                                "embedding).", min=1, max=4096)
    num_frames: int = hparam(32, "Frames the model is built for (sets the positional embedding).", min=1, max=512)
    tubelet_size: tuple[int, ...] = hparam((2, 16, 16), "Tubelet (frames, height, width) cut by the Conv3d "
                                                        "embedding.", min=1, max=256, length=3)
    in_chans: int = hparam(3, "Input channels.", min=1, max=16)
    num_classes: int = hparam(400, "Classes of the classification head.", min=1, max=100_000)
    embed_dim: int = hparam(768, "Token width (Scenic hidden_size).", min=1, max=8192)
    depth: int = hparam(12, "Transformer blocks (of the spatial encoder for factorized_encoder).", min=1, max=128)
    temporal_depth: int = hparam(4, "Blocks of the temporal encoder (factorized_encoder only).", min=1, max=128)
    num_heads: int = hparam(12, "Attention heads per block; must divide embed_dim (and be even for "
                                "factorized_dot_product_attention).", min=1, max=256)
    mlp_dim: int = hparam(3072, "Hidden width of each block's MLP (Scenic mlp_dim, HF intermediate_size).",
                          min=1, max=65536)
    qkv_bias: bool = hparam(True, "Learned bias on the query/key/value projections.")
    activation: str = hparam("gelu_tanh", "MLP activation: gelu_tanh is the tanh approximation (Flax nn.gelu's "
                                          "default, HF gelu_fast); gelu is the exact erf form.",
                             choices=ACTIVATIONS)
    attention_order: str = hparam("time_space", "Order of the two attentions of a factorized_self_attention_block "
                                                "(Scenic attention_order).", choices=ATTENTION_ORDERS)
    classifier: str | None = hparam(None, "What the head reads: the CLS token or the average of all tokens (gap); "
                                          "none means the model's own (token for models 1 and 2, gap for 3 and "
                                          "4).", choices=CLASSIFIERS, optional=True)
    norm_eps: float = hparam(1e-6, "LayerNorm epsilon.", min=0.0, max=0.1)
    drop_rate: float = hparam(0.0, "Dropout after embeddings, projections and MLP layers (training only).",
                              min=0.0, max=0.99)
    attn_drop_rate: float = hparam(0.0, "Dropout on attention probabilities (training only).", min=0.0, max=0.99)
    drop_path_rate: float = hparam(0.0, "Stochastic depth rate of the last block (training only).",
                                   min=0.0, max=0.99)

    def validate(self) -> None:
        require(self.embed_dim % self.num_heads == 0,
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; choose num_heads "
                f"among the divisors of embed_dim", field="num_heads")
        require(self.attention_type != "factorized_dot_product_attention" or self.num_heads % 2 == 0,
                f"num_heads={self.num_heads} is odd; factorized_dot_product_attention gives half of the heads to "
                f"time and half to space, so num_heads must be even", field="num_heads")
        t, h, w = self.tubelet_size
        require(self.img_size % h == 0 and self.img_size % w == 0,
                f"img_size={self.img_size} is not divisible by the tubelet's height and width "
                f"{h}×{w}; img_size must be a multiple of both", field="img_size")
        require(self.num_frames % t == 0,
                f"num_frames={self.num_frames} is not divisible by the tubelet's {t} frames; num_frames must be "
                f"a multiple of tubelet_size[0]", field="num_frames")
        require(self.classifier != "token" or self.attention_type not in _NO_TOKEN,
                f"classifier='token' is not available for attention_type={self.attention_type!r}: models 3 and "
                f"4 have no CLS token (Scenic refuses it); use 'gap' or none", field="classifier")

    @property
    def pooling(self) -> str:
        """``token`` or ``gap``: the classifier actually used."""
        return self.classifier or ("gap" if self.attention_type in _NO_TOKEN else "token")

    @property
    def grid(self) -> tuple[int, int, int]:
        """The (T', H', W') token grid of the built input size."""
        t, h, w = self.tubelet_size
        return self.num_frames // t, self.img_size // h, self.img_size // w

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


def _mlp(config: ViViTConfig) -> Mlp:
    mlp = Mlp(config.embed_dim, config.mlp_dim, drop=config.drop_rate)
    mlp.act = nn.GELU(approximate="tanh" if config.activation == "gelu_tanh" else "none")
    return mlp


class Attention(nn.Module):
    """Multi-head self-attention with separate query/key/value projections (Flax ``MultiHeadDotProductAttention``,
    HF ``VivitSelfAttention``), one :class:`AttentionCore` of the given kind."""

    def __init__(self, config: ViViTConfig, kind: str | None):
        super().__init__()
        dim, self.num_heads = config.embed_dim, config.num_heads
        self.query = Linear(dim, dim, bias=config.qkv_bias)
        self.key = Linear(dim, dim, bias=config.qkv_bias)
        self.value = Linear(dim, dim, bias=config.qkv_bias)
        if kind is not None:  # subclasses with several cores make their own
            self.core = AttentionCore(kind, config.head_dim ** -0.5, config.attn_drop_rate)
        self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.drop_rate)

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # x: (G, N, C) -> q, k, v each (G, heads, N, head_dim)
        return tuple(rearrange(p(x), "g n (h d) -> g h n d", h=self.num_heads)
                     for p in (self.query, self.key, self.value))

    def forward(self, x: Tensor, layout: AttentionLayout) -> Tensor:
        q, k, v = self.heads(x)
        out = self.core(q, k, v, None, layout)  # (G, heads, N, head_dim)
        return self.proj_drop(self.proj(rearrange(out, "g h n d -> g n (h d)")))


class FactorizedDotProductAttention(Attention):
    """Model 4 (Scenic ``factorized_dot_product_attention``): the heads split in two halves over one q/k/v
    projection; the first half attends over time at each position (``(B·H'·W')`` groups of T' tokens), the second
    over space within each frame (``(B·T')`` groups of H'·W' tokens). Each half is its own attention core."""

    def __init__(self, config: ViViTConfig):
        super().__init__(config, None)
        scale = config.head_dim ** -0.5
        self.time_core = AttentionCore("time", scale, config.attn_drop_rate)
        self.space_core = AttentionCore("space", scale, config.attn_drop_rate)

    def forward(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        t, h, w = grid
        q, k, v = self.heads(x)  # x: (B, T'·H'·W', C) ordered (t h w); q, k, v: (B, heads, T'·H'·W', d)
        half = self.num_heads // 2
        to_time = "b k (t h w) d -> (b h w) k t d"
        to_space = "b k (t h w) d -> (b t) k (h w) d"
        time = self.time_core(*(rearrange(a[:, :half], to_time, t=t, h=h, w=w) for a in (q, k, v)), None,
                              AttentionLayout("time", grid, "(b h w)", "t"))
        space = self.space_core(*(rearrange(a[:, half:], to_space, t=t, h=h, w=w) for a in (q, k, v)), None,
                                AttentionLayout("space", grid, "(b t)", "(h w)"))
        time = rearrange(time, "(b h w) k t d -> b k (t h w) d", h=h, w=w)
        space = rearrange(space, "(b t) k (h w) d -> b k (t h w) d", t=t, h=h)
        out = torch.cat((time, space), dim=1)  # heads: time half first, as Scenic concatenates them
        return self.proj_drop(self.proj(rearrange(out, "b k n d -> b n (k d)")))


class Block(nn.Module):
    """Pre-norm transformer block (Scenic ``EncoderBlock``, HF ``VivitLayer``): attention then MLP, each with
    its layer norm and residual. Model 4 swaps in :class:`FactorizedDotProductAttention`."""

    def __init__(self, config: ViViTConfig, drop_path: float, kind: str = "joint"):
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.factorized = config.attention_type == "factorized_dot_product_attention"
        self.attn = FactorizedDotProductAttention(config) if self.factorized else Attention(config, kind)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = _mlp(config)

    def forward(self, x: Tensor, layout: AttentionLayout) -> Tensor:
        attn = self.attn(self.norm1(x), layout.grid if self.factorized else layout)
        x = x + self.drop_path(attn)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class FactorizedSelfAttentionBlock(nn.Module):
    """Model 3 (Scenic ``EncoderFactorizedSelfAttentionBlock``): attention over time at each position and over
    space within each frame, in ``attention_order``, each with its own layer norm and residual, then one MLP.
    Scenic applies no stochastic depth in this block; neither does this one."""

    def __init__(self, config: ViViTConfig):
        super().__init__()
        dim = config.embed_dim
        self.order = config.attention_order.split("_")  # ["time", "space"] or ["space", "time"]
        self.norm_time = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn_time = Attention(config, "time")
        self.norm_space = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn_space = Attention(config, "space")
        self.norm_mlp = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = _mlp(config)

    def forward(self, x: Tensor, layout: AttentionLayout) -> Tensor:
        grid = layout.grid
        t, h, w = grid
        b = x.shape[0]
        for axis in self.order:  # x: (B, T'·H'·W', C) ordered (t h w)
            if axis == "time":
                xt = rearrange(x, "b (t h w) c -> (b h w) t c", t=t, h=h, w=w)
                xt = xt + self.attn_time(self.norm_time(xt), AttentionLayout("time", grid, "(b h w)", "t"))
                x = rearrange(xt, "(b h w) t c -> b (t h w) c", b=b, h=h, w=w)
            else:
                xs = rearrange(x, "b (t h w) c -> (b t) (h w) c", t=t, h=h, w=w)
                xs = xs + self.attn_space(self.norm_space(xs), AttentionLayout("space", grid, "(b t)", "(h w)"))
                x = rearrange(xs, "(b t) (h w) c -> b (t h w) c", b=b, h=h)
        return x + self.mlp(self.norm_mlp(x))


class Encoder(nn.Module):
    """Scenic ``Encoder`` with what ``ViViT`` puts around it: an optional CLS token in front, a learned
    positional embedding over all ``cls + tokens`` positions, the blocks, and the final layer norm
    (``encoder_norm``). ``layout`` tells the blocks where the tokens of each group sit."""

    def __init__(self, config: ViViTConfig, tokens: int, depth: int, kind: str = "joint"):
        super().__init__()
        dim = config.embed_dim
        self.has_cls = config.pooling == "token"
        if self.has_cls:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + self.has_cls, dim))
        self.pos_drop = nn.Dropout(config.drop_rate)
        if config.attention_type == "factorized_self_attention_block":
            blocks = [FactorizedSelfAttentionBlock(config) for _ in range(depth)]
        else:
            blocks = [Block(config, p, kind) for p in drop_path_rates(config.drop_path_rate, depth)]
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)

    def forward(self, x: Tensor, layout: AttentionLayout) -> Tensor:
        """``(G, N, C)`` tokens → ``(G, cls + N, C)`` normalised outputs."""
        if self.has_cls:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if x.shape[1] != self.pos_embed.shape[1]:
            raise ValueError(f"the learned positional embedding holds {self.pos_embed.shape[1]} positions, the "
                             f"input gives {x.shape[1]} tokens")
        x = self.pos_drop(x + self.pos_embed)
        for block in self.blocks:
            x = block(x, layout)
        return self.norm(x)

    def pool(self, x: Tensor) -> Tensor:
        """``(G, N, C)`` → ``(G, C)``: the CLS token, or the mean of all tokens (Scenic ``gap``)."""
        return x[:, 0] if self.has_cls else x.mean(dim=1)


class ViViT(nn.Module):
    """ViViT classifier. Input ``(B, C, T, H, W)`` of exactly the built ``num_frames`` and ``img_size`` (the
    learned positional embeddings fix the token grid); output logits ``(B, num_classes)``."""


    def __init__(self, config: ViViTConfig):
        super().__init__()
        self.config = config
        t, h, w = config.grid
        self.patch_embed = Conv3d(config.in_chans, config.embed_dim, config.tubelet_size,
                                  stride=config.tubelet_size)
        self.patch_embed.inspection_category = "embedding"
        if config.attention_type == "factorized_encoder":
            self.spatial = Encoder(config, h * w, config.depth, kind="space")
            self.temporal = Encoder(config, t, config.temporal_depth, kind="time")
        else:
            self.encoder = Encoder(config, t * h * w, config.depth)
        self.head = Linear(config.embed_dim, config.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # Scenic: positional embeddings normal(0.02) (BERT), CLS tokens zero; linear layers as timm's ViT
        if self.patch_embed.weight.is_meta:
            return
        for m in self.modules():
            if isinstance(m, Encoder):
                nn.init.trunc_normal_(m.pos_embed, std=0.02)
            elif isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` clip → ``(B, C)`` pooled, normalised feature."""
        cfg = self.config
        pt, ph, pw = cfg.tubelet_size
        b, frames, height, width = check_video_input(x, channels=cfg.in_chans, multiple_hw=(ph, pw),
                                                     multiple_t=pt, min_t=pt, min_hw=(ph, pw))
        if (frames, height, width) != (cfg.num_frames, cfg.img_size, cfg.img_size):
            fix = f" — build it with num_frames={frames}, img_size={height}" if height == width else ""
            raise ValueError(f"this ViViT is built for {cfg.num_frames} frames of {cfg.img_size}×{cfg.img_size} px "
                             f"(its learned positional embedding fixes the token grid); got {frames} frames of "
                             f"{height}×{width} px{fix}")
        grid = cfg.grid
        t, h, w = grid
        x = self.patch_embed(x)  # (B, C, T', H', W')

        if cfg.attention_type == "factorized_encoder":
            x = rearrange(x, "b c t h w -> (b t) (h w) c")
            x = self.spatial(x, AttentionLayout("space", grid, "(b t)", "(h w)", cls=self.spatial.has_cls))
            x = rearrange(self.spatial.pool(x), "(b t) c -> b t c", b=b)  # one token per frame
            # the temporal encoder's tokens stand for whole frames: a T'×1×1 grid
            x = self.temporal(x, AttentionLayout("time", (t, 1, 1), "b", "(t h w)", cls=self.temporal.has_cls))
            return self.temporal.pool(x)

        x = rearrange(x, "b c t h w -> b (t h w) c")
        x = self.encoder(x, AttentionLayout("joint", grid, "b", "(t h w)", cls=self.encoder.has_cls))
        return self.encoder.pool(x)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_hint(state: dict[str, Tensor], wrong: list[str], config: ViViTConfig) -> list[str]:
    """Say which hyperparameters would make a mismatching checkpoint fit."""
    hints = []
    if "head.weight" in wrong:
        hints.append(f"num_classes={state['head.weight'].shape[0]}")
    if any(k.startswith("spatial.") for k in state):
        hints.append("attention_type='factorized_encoder'")
    elif any(".attn_time." in k for k in state):
        hints.append("attention_type='factorized_self_attention_block'")
    elif "encoder.cls_token" in state:
        hints.append("attention_type='spacetime'")
    pos = state.get("encoder.pos_embed")
    if "encoder.pos_embed" in wrong and pos is not None:
        tokens = pos.shape[1] - ("encoder.cls_token" in state)
        hints.append(f"num_frames and img_size giving {tokens} tubelets (T'·H'·W'; 3136 = 16·14·14 for 32 "
                     f"frames of 224 px with 2×16×16 tubelets)")
    return hints


# --- checkpoint layouts -------------------------------------------------------------------------------------
# Hugging Face VivitForVideoClassification (model 1): on-disk names ``vivit.encoder.layer.N.attention.attention
# .query`` ...; transformers ≥ 5 (ViT modular code) loads them as ``vivit.layers.N.attention.q_proj`` ... . Both
# are read. The pooler (``vivit.pooler.dense``) is absent: the classifier reads the layer-normed CLS token.

_LAYER = r"^vivit\.(?:encoder\.layer|layers)\.(\d+)\."
_HF_RULES = [
    (r"^vivit\.embeddings\.cls_token$", "encoder.cls_token"),
    (r"^vivit\.embeddings\.position_embeddings$", "encoder.pos_embed"),
    (r"^vivit\.embeddings\.patch_embeddings\.projection\.", "patch_embed."),
    (_LAYER + r"attention\.(?:attention\.query|q_proj)\.", r"encoder.blocks.\1.attn.query."),
    (_LAYER + r"attention\.(?:attention\.key|k_proj)\.", r"encoder.blocks.\1.attn.key."),
    (_LAYER + r"attention\.(?:attention\.value|v_proj)\.", r"encoder.blocks.\1.attn.value."),
    (_LAYER + r"attention\.(?:output\.dense|o_proj|out_proj)\.", r"encoder.blocks.\1.attn.proj."),
    (_LAYER + r"(?:intermediate\.dense|mlp\.fc1|mlp\.up_proj)\.", r"encoder.blocks.\1.mlp.fc1."),
    (_LAYER + r"(?:output\.dense|mlp\.fc2|mlp\.down_proj)\.", r"encoder.blocks.\1.mlp.fc2."),
    (_LAYER + r"layernorm_before\.", r"encoder.blocks.\1.norm1."),
    (_LAYER + r"layernorm_after\.", r"encoder.blocks.\1.norm2."),
    (r"^vivit\.layernorm\.", "encoder.norm."),
    (r"^classifier\.", "head."),
]

CHECKPOINT_LAYOUTS = (
    CheckpointLayout(
        "Hugging Face (VivitForVideoClassification)",
        detect=lambda sd: any(k.startswith("vivit.") for k in sd),
        convert=lambda sd, cfg: rename_keys(sd, _HF_RULES, drop=(r"^vivit\.pooler\.",))),
)


_HF_CONFIG_FIELDS = {  # Hugging Face VivitConfig -> our field
    "image_size": "img_size", "num_frames": "num_frames", "num_channels": "in_chans", "hidden_size": "embed_dim",
    "num_hidden_layers": "depth", "num_attention_heads": "num_heads", "intermediate_size": "mlp_dim",
    "qkv_bias": "qkv_bias", "layer_norm_eps": "norm_eps", "tubelet_size": "tubelet_size",
}
#: transformers' activations that are the tanh approximation of GELU (gelu_fast, gelu_new, gelu_pytorch_tanh are
#: the same function), and the exact one
_HF_ACTIVATIONS = {"gelu_fast": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                   "gelu": "gelu"}


def hf_config_overrides(hf_config: dict) -> dict:
    """Config fields a Hugging Face ``VivitConfig`` (``config.json``) implies: model 1 (spatio-temporal attention)
    read out by the layer-normed CLS token, as ``VivitForVideoClassification`` is; ``{}`` for another model."""
    if hf_config.get("model_type", "vivit") != "vivit":
        return {}
    require_hf_activation(hf_config, tuple(_HF_ACTIVATIONS))
    out = hf_config_fields(hf_config, _HF_CONFIG_FIELDS)
    if isinstance(out.get("tubelet_size"), list):
        out["tubelet_size"] = tuple(out["tubelet_size"])
    if "hidden_act" in hf_config:
        out["activation"] = _HF_ACTIVATIONS[hf_config["hidden_act"]]
    out.update(attention_type="spacetime", classifier=None)
    return out


_HF_DEFAULTS = {  # transformers' VivitConfig defaults, for fields a config.json leaves out
    "image_size": 224, "num_frames": 32, "tubelet_size": [2, 16, 16], "num_channels": 3, "hidden_size": 768,
    "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu_fast",
    "layer_norm_eps": 1e-6, "qkv_bias": True}


def _readout(config: ViViTConfig) -> str:
    if config.attention_type == "factorized_encoder":
        return "encoder_cls"  # each frame's CLS from the spatial encoder, read by the temporal encoder's CLS
    return "mean" if config.pooling == "gap" else "cls"


def _rollout_unavailable(config: ViViTConfig) -> str | None:
    """Why attention rollout of the CLS token does not apply to this model, or None."""
    if config.attention_type == "factorized_encoder":
        return ("the temporal encoder attends over the frames' CLS tokens, not over the patch grid, so no "
                "single token set runs through every layer")
    if config.pooling == "gap":
        return "this model has no CLS token: its classifier averages all tokens (global average pooling)"
    return None


register_family(ViViTConfig, ViViT,
                paper="Arnab et al., ViViT: A Video Vision Transformer (ICCV 2021)",
                repository="https://github.com/google-research/scenic/tree/main/scenic/projects/vivit",
                checkpoint_layouts=CHECKPOINT_LAYOUTS, checkpoint_hint=checkpoint_hint,
                hf=HFMapping(("VivitForVideoClassification",), "vivit", _HF_CONFIG_FIELDS, _HF_DEFAULTS,
                             hf_config_overrides, processor_class="VivitImageProcessor"),
                paper_views=12,  # Arnab et al. 2021, §4.1 and the Scenic model zoo: 4 temporal clips × 3 crops
                readout=_readout, rollout_unavailable=_rollout_unavailable,
                fallback_recipe=replace(VIVIT_RECIPE, source="no published PyTorch weights for this model: recipe "
                                                             "of ViViT-B/16x2 (" + VIVIT_RECIPE.source + ")"))
_LARGE = dict(embed_dim=1024, depth=24, num_heads=16, mlp_dim=4096)
register_preset("vivit_b", ViViTConfig(),
                "ViViT-B/16x2, model 1 (spatio-temporal attention), 32 frames × 224 px — the Hugging Face "
                "google/vivit-b-16x2-kinetics400 shape")
register_preset("vivit_l", ViViTConfig(**_LARGE),
                "ViViT-L/16x2, model 1 (spatio-temporal attention), 32 frames × 224 px")
register_preset("vivit_b_fe", ViViTConfig(attention_type="factorized_encoder"),
                "ViViT-B/16x2, model 2 (factorised encoder: 12 spatial + 4 temporal layers), 32 frames × 224 px")
register_preset("vivit_l_fe", ViViTConfig(attention_type="factorized_encoder", temporal_depth=24, **_LARGE),
                "ViViT-L/16x2, model 2 (factorised encoder: 24 spatial + 24 temporal layers, Scenic's "
                "vivit_large_factorised_encoder config), 32 frames × 224 px")
register_preset("vivit_b_fsa", ViViTConfig(attention_type="factorized_self_attention_block"),
                "ViViT-B/16x2, model 3 (factorised self-attention, time then space), 32 frames × 224 px")
register_preset("vivit_b_fdp", ViViTConfig(attention_type="factorized_dot_product_attention"),
                "ViViT-B/16x2, model 4 (factorised dot-product attention), 32 frames × 224 px")
