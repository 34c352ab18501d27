"""V-JEPA 2: a ViT with 3D rotary position embeddings, read out by an attentive pooler.

Assran et al., "V-JEPA 2: Self-Supervised Video Models Enable Understanding, Prediction and Planning", 2025.
Reproduces the frozen-evaluation classifier of facebookresearch/vjepa2: the encoder ``VisionTransformer``
(``src/models/vision_transformer.py``, ``use_rope=True``) followed by ``AttentiveClassifier``
(``src/models/attentive_pooler.py``), whose parameter names it keeps, and reads the Hugging Face
``VJEPA2ForVideoClassification`` layout (``facebook/vjepa2-*-ssv2``, ``*-diving48``).

Encoder. A Conv3d cuts the clip into tubelets of ``tubelet_size × patch_size²`` (no position embedding is
added); the tokens are ordered ``(t h w)`` (width fastest). Every block is pre-norm self-attention over all
T'·H'·W' tokens, then an MLP; a final LayerNorm follows.

RoPE (``src/models/utils/modules.py``, ``RoPEAttention`` and ``rotate_queries_or_keys``). After the q/k
projection, each head's channels are split into three equal, even-sized parts ``s = 2·⌊⌊head_dim/3⌋/2⌋``
(20 of ViT-L's 64): channels ``[0, s)`` are rotated by the token's frame index t, ``[s, 2s)`` by its row y,
``[2s, 3s)`` by its column x; the remaining ``head_dim − 3s`` channels pass unrotated. Positions are integer
indices on the input's own token grid (so a clip of any length or size gets positions 0…T'−1, 0…H'−1,
0…W'−1). Within a part of ``s`` channels, frequencies are ``ω_j = 10000^(−j/(s/2))``, ``j < s/2``; the
rotation pairs adjacent channels (2i, 2i+1) → (x₂ᵢ·cos − x₂ᵢ₊₁·sin, x₂ᵢ₊₁·cos + x₂ᵢ·sin), but the angle of
channel c is ``pos·ω_(c mod s/2)``, not ``pos·ω_(⌊c/2⌋)``: the official code repeats the frequency vector
instead of interleaving it (its comments call this a known quirk kept for the pretrained weights). q and k are
rotated, v is not; the attention itself is the plain scaled softmax (scale head_dim^−½).

Attentive pooler. ``pooler_depth`` standard pre-norm self-attention blocks (no RoPE) over the encoder tokens,
then one cross-attention block: a learned query token attends over the T'·H'·W' tokens (keys and values from
the LayerNorm of the tokens; the query itself is not normalised; no output projection), a residual on the query,
and a pre-norm MLP. The query's output feeds the linear classifier. The official eval config counts
``num_probe_blocks = pooler_depth + 1``.

The Hugging Face files also carry the JEPA predictor (the network that predicts masked tokens during
pretraining; 22.1 M parameters with ViT-L). Classification never runs it; it is built (``predictor_depth``) so
that these files load whole and the parameter count is the published one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from ..config import ModelConfig, hparam, require, require_multiple
from ..registry import HFMapping, register_family, register_preset
from ..weights.checkpoints import CheckpointLayout, hf_config_fields, rename_keys, require_hf_activation
from .layers import (AttentionCore, AttentionLayout, Conv3d, DropPath, Linear, Mlp, check_video_input,
                     drop_path_rates)

ROPE_BASE = 10000.0  # the θ of the frequencies ω_j = θ^(−j/(s/2))


@dataclass(frozen=True)
class VJEPA2Config(ModelConfig):
    """Hyperparameters of the official ``VisionTransformer`` (with RoPE) and ``AttentiveClassifier``."""

    family = "vjepa2"

    img_size: int = hparam(256, "Input height and width in pixels (the crop of the published evaluation).",
                           min=1, max=4096)
    num_frames: int = hparam(16, "Frames per clip of the published evaluation (RoPE positions follow the "
                                 "actual input, so other frame counts run too).", min=1, max=512)
    patch_size: int = hparam(16, "Side of the square patches.", min=1, max=256)
    tubelet_size: int = hparam(2, "Frames per tubelet (temporal patch size).", min=1, max=32)
    in_chans: int = hparam(3, "Input channels.", min=1, max=16)
    num_classes: int = hparam(174, "Classes of the linear classifier.", min=1, max=100_000)
    embed_dim: int = hparam(1024, "Token width (ViT-L 1024, ViT-H 1280, ViT-g 1408).", min=1, max=8192)
    depth: int = hparam(24, "Encoder blocks.", min=1, max=128)
    num_heads: int = hparam(16, "Attention heads of the encoder; must divide embed_dim.", min=1, max=256)
    mlp_ratio: float = hparam(4.0, "Encoder MLP hidden width as a multiple of embed_dim (ViT-g: 48/11).",
                              min=0.0625, max=64.0)
    qkv_bias: bool = hparam(True, "Learned bias on the encoder's query/key/value projection.")
    norm_eps: float = hparam(1e-6, "LayerNorm epsilon of the encoder and the predictor.", min=0.0, max=0.1)
    drop_path_rate: float = hparam(0.0, "Stochastic depth rate of the last encoder block (training only).",
                                   min=0.0, max=0.99)
    pooler_depth: int = hparam(3, "Self-attention blocks of the attentive pooler before its cross-attention "
                                  "(the official num_probe_blocks minus one).", min=0, max=64)
    pooler_num_heads: int | None = hparam(
        None, "Attention heads of the pooler; none means num_heads (as the Hugging Face port does).",
        min=1, max=256, optional=True)
    pooler_norm_eps: float = hparam(1e-6, "LayerNorm epsilon of the pooler (Hugging Face: layer_norm_eps; the "
                                          "official AttentiveClassifier uses nn.LayerNorm's 1e-5).",
                                    min=0.0, max=0.1)
    predictor_depth: int = hparam(12, "Blocks of the pretraining predictor carried in the checkpoints (never "
                                      "run for classification); 0 leaves it out.", min=0, max=128)
    predictor_embed_dim: int = hparam(384, "Token width of the predictor.", min=1, max=8192)
    predictor_num_heads: int = hparam(12, "Attention heads of the predictor.", min=1, max=256)
    predictor_mask_tokens: int = hparam(10, "Learned mask tokens of the predictor.", min=1, max=256)

    def validate(self) -> None:
        require_multiple(self, "embed_dim", "num_heads", heads=True)
        require(self.head_dim >= 6,
                f"num_heads={self.num_heads} leaves {self.head_dim} channels per head; 3D RoPE needs at least 6 "
                f"(two per axis)", field="num_heads")
        require(self.embed_dim % self.pooler_heads == 0,
                f"embed_dim={self.embed_dim} is not divisible by pooler_num_heads={self.pooler_heads}; choose "
                f"a divisor of embed_dim", field="pooler_num_heads")
        require(self.predictor_embed_dim % self.predictor_num_heads == 0
                and self.predictor_embed_dim // self.predictor_num_heads >= 6,
                f"predictor_embed_dim={self.predictor_embed_dim} must be divisible by predictor_num_heads="
                f"{self.predictor_num_heads} into heads of at least 6 channels", field="predictor_num_heads")
        require_multiple(self, "img_size", "patch_size")
        require_multiple(self, "num_frames", "tubelet_size")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def pooler_heads(self) -> int:
        return self.pooler_num_heads or self.num_heads


# --- 3D rotary position embedding ---------------------------------------------------------------------------

def rope_part(head_dim: int) -> int:
    """Channels per axis rotated by 3D RoPE: the largest even number ≤ head_dim / 3 (official ``d_dim``)."""
    return 2 * ((head_dim // 3) // 2)


def rope_tables(grid: tuple[int, int, int], head_dim: int, device=None) -> tuple[Tensor, Tensor]:
    """``(cos, sin)``, each ``(T'·H'·W', 3·s)``, for tokens ordered ``(t h w)`` on ``grid``.

    Channel block a ∈ (t, y, x) of ``s = rope_part(head_dim)`` channels gets angle ``pos_a · ω_(c mod s/2)``:
    the official frequency layout (repeated, not interleaved)."""
    t, h, w = grid
    part = rope_part(head_dim)
    omega = torch.arange(part // 2, dtype=torch.float32, device=device) / (part / 2.0)
    omega = 1.0 / ROPE_BASE ** omega  # (s/2,)
    positions = torch.stack(torch.meshgrid(
        torch.arange(t, device=device), torch.arange(h, device=device), torch.arange(w, device=device),
        indexing="ij"), dim=-1).reshape(-1, 3).float()  # (N, 3): (t, y, x) of each token in (t h w) order
    angles = positions[:, :, None] * omega  # (N, 3, s/2)
    angles = torch.cat((angles, angles), dim=-1).flatten(1)  # (N, 3·s): each axis' s/2 angles twice
    return angles.cos(), angles.sin()


def full_width(cos: Tensor, sin: Tensor, head_dim: int) -> tuple[Tensor, Tensor]:
    """``(cos, signed_sin)``, each ``(N, head_dim)``, from :func:`rope_tables`: the unrotated channels get cos 1
    and sin 0 (so they pass exactly), and the sine carries the rotation's signs, −sin on channel 2i and +sin on
    2i+1, so that a rotation is ``x·cos + swap(x)·signed_sin`` with ``swap`` exchanging each pair."""
    rest = head_dim - cos.shape[-1]
    cos = torch.cat((cos, cos.new_ones(cos.shape[0], rest)), dim=-1)
    sign = torch.tensor([-1.0, 1.0], dtype=sin.dtype, device=sin.device).repeat(sin.shape[-1] // 2)
    return cos, torch.cat((sin * sign, sin.new_zeros(sin.shape[0], rest)), dim=-1)


def turn(x: Tensor, cos: Tensor, signed_sin: Tensor) -> Tensor:
    """``x·cos + swap(x)·signed_sin`` over the last axis (tables of :func:`full_width`, broadcast to ``x``):
    (x₀, x₁) → (x₀·cos − x₁·sin, x₁·cos + x₀·sin) on every channel pair, in two passes over ``x``."""
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x₁, x₀) per pair
    return (x * cos).addcmul_(swapped, signed_sin)


# --- blocks ---------------------------------------------------------------------------------------------------

class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (official ``Attention`` / ``RoPEAttention``);
    with ``rope`` the queries and keys are rotated by the tokens' (t, y, x) before the attention core."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, rope: bool):
        super().__init__()
        self.num_heads = num_heads
        self.rope = rope
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.core = AttentionCore("joint", (dim // num_heads) ** -0.5)
        self.proj = Linear(dim, dim)

    def forward(self, x: Tensor, grid: tuple[int, int, int], rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        # x: (B, T'·H'·W', C), tokens ordered (t h w)
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, -1))  # (B, N, 3, heads, d)
        qk, v = qkv[:, :, :2], qkv[:, :, 2]
        if self.rope:
            qk = turn(qk, *rope)  # q and k turned together, tables (N, 1, 1, d)
        q, k = qk.transpose(1, 3).unbind(2)  # (B, heads, N, d) views
        v = v.transpose(1, 2)
        out = self.core(q, k, v, None, AttentionLayout("joint", grid, "b", "(t h w)"))  # (B, heads, N, d)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class Block(nn.Module):
    """Pre-norm transformer block (official ``Block``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, eps: float, rope: bool,
                 drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias, rope)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, grid: tuple[int, int, int], rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), grid, rope))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CrossAttention(nn.Module):
    """Learned queries attend over the video's tokens; no output projection (official ``CrossAttention``)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = Linear(dim, dim)
        self.kv = Linear(dim, dim * 2)
        self.core = AttentionCore("cross", (dim // num_heads) ** -0.5)

    def forward(self, queries: Tensor, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        # queries: (B, Q, C) learned tokens; x: (B, T'·H'·W', C) tokens ordered (t h w)
        q = rearrange(self.q(queries), "b q (h d) -> b h q d", h=self.num_heads)
        k, v = rearrange(self.kv(x), "b n (two h d) -> two b h n d", two=2, h=self.num_heads)
        layout = AttentionLayout("cross", grid, "b", "(t h w)", queries=queries.shape[1])
        return rearrange(self.core(q, k, v, None, layout), "b h q d -> b q (h d)")  # (B, Q, C)


class CrossAttentionBlock(nn.Module):
    """Cross-attention from the queries to the normalised tokens, residual on the queries, then a pre-norm MLP
    (official ``CrossAttentionBlock``)."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.xattn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, dim * 4)

    def forward(self, queries: Tensor, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        queries = queries + self.xattn(queries, self.norm1(x), grid)
        return queries + self.mlp(self.norm2(queries))


class AttentivePooler(nn.Module):
    """Self-attention blocks over the tokens, then one learned query cross-attends to them (official
    ``AttentivePooler`` with ``complete_block=True``)."""

    def __init__(self, config: VJEPA2Config):
        super().__init__()
        dim, heads, eps = config.embed_dim, config.pooler_heads, config.pooler_norm_eps
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        # registered in the order they run (the official class registers the cross-attention first)
        self.blocks = nn.ModuleList(Block(dim, heads, 4.0, True, eps, rope=False)
                                    for _ in range(config.pooler_depth))
        self.cross_attention_block = CrossAttentionBlock(dim, heads, eps)

    def forward(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        for block in self.blocks:
            x = block(x, grid)
        queries = self.query_tokens.repeat(x.shape[0], 1, 1)
        return self.cross_attention_block(queries, x, grid)  # (B, 1, C)


class _CarriedBlock(nn.Module):
    """The weights of one predictor ``Block`` under their official names (norm1, attn.qkv, attn.proj, norm2,
    mlp.fc1/fc2). Never run, so it holds no attention core: the inspection lists only attention that runs."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = nn.Module()
        self.attn.qkv = Linear(dim, dim * 3)
        self.attn.proj = Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, dim * 4)


class Predictor(nn.Module):
    """The pretraining predictor's weights (official ``VisionTransformerPredictor`` with RoPE; width
    ``predictor_embed_dim``, ``predictor_num_heads`` heads): carried so that the published files load whole and
    count as published, never run by the classifier."""

    def __init__(self, config: VJEPA2Config):
        super().__init__()
        dim = config.predictor_embed_dim
        self.predictor_embed = Linear(config.embed_dim, dim)
        self.mask_tokens = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, dim))
                                            for _ in range(config.predictor_mask_tokens))
        self.predictor_blocks = nn.ModuleList(_CarriedBlock(dim, config.norm_eps)
                                              for _ in range(config.predictor_depth))
        self.predictor_norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.predictor_proj = Linear(dim, config.embed_dim)


class PatchEmbed3D(nn.Module):
    """Tubelets of ``tubelet_size × patch_size²`` embedded by a strided Conv3d (official ``PatchEmbed3D``)."""

    def __init__(self, config: VJEPA2Config):
        super().__init__()
        kernel = (config.tubelet_size, config.patch_size, config.patch_size)
        self.proj = Conv3d(config.in_chans, config.embed_dim, kernel, stride=kernel)

    def forward(self, x: Tensor) -> Tensor:
        # token-major in memory: a channel-major view here would make every later residual sum channel-major
        # too (an elementwise op keeps its first input's layout), and every LayerNorm copy it back
        return rearrange(self.proj(x), "b c t h w -> b (t h w) c").contiguous()  # (B, T'·H'·W', C)


class VJEPA2(nn.Module):
    """V-JEPA 2 encoder + attentive classifier. Input ``(B, C, T, H, W)``; output logits ``(B, num_classes)``.

    T must be a multiple of ``tubelet_size`` and H, W multiples of ``patch_size``; RoPE positions are taken
    from the input's token grid, so any such clip runs without resizing anything.
    """

    def __init__(self, config: VJEPA2Config):
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed3D(config)
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, config.mlp_ratio, config.qkv_bias, config.norm_eps, rope=True,
                  drop_path=p)
            for p in drop_path_rates(config.drop_path_rate, config.depth))
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.pooler = AttentivePooler(config)
        self.linear = Linear(dim, config.num_classes)
        self.linear.inspection_category = "head"
        if config.predictor_depth:
            self.predictor = Predictor(config)
        self._init_weights()

    def _init_weights(self) -> None:
        # the official initialisation: truncated normal (std 0.02) for linear and conv weights and the query
        # token, zero biases; the checkpoints overwrite all of it
        if self.pooler.query_tokens.is_meta:
            return
        nn.init.trunc_normal_(self.pooler.query_tokens, std=0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` clip → ``(B, T'·H'·W', C)`` normalised encoder tokens, ordered ``(t h w)``."""
        cfg = self.config
        p = cfg.patch_size
        _, t, height, width = check_video_input(x, channels=cfg.in_chans, multiple_hw=(p, p),
                                                multiple_t=cfg.tubelet_size, min_t=cfg.tubelet_size,
                                                min_hw=(p, p))
        grid = (t // cfg.tubelet_size, height // p, width // p)
        rope = rope_tables(grid, cfg.head_dim, device=x.device)
        # full-width tables, once per forward, broadcast over (N, 2, heads, d)
        rope = tuple(table[:, None, None].to(x.dtype) for table in full_width(*rope, cfg.head_dim))
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x, grid, rope)
        return self.norm(x)

    def forward_head(self, tokens: Tensor, grid: tuple[int, int, int]) -> Tensor:
        return self.linear(self.pooler(tokens, grid)[:, 0])

    def forward(self, x: Tensor) -> Tensor:
        p, tubelet = self.config.patch_size, self.config.tubelet_size
        grid = (x.shape[2] // tubelet, x.shape[3] // p, x.shape[4] // p) if x.ndim == 5 else None
        return self.forward_head(self.forward_features(x), grid)


def checkpoint_hint(state: dict[str, Tensor], wrong: list[str], config: VJEPA2Config) -> list[str]:
    """The structure a mismatching checkpoint was saved from, read off its tensors (the loader reports
    shape mismatches, not a different block count, so every derivable field is named)."""
    hints = []
    if "linear.weight" in state:
        hints.append(f"num_classes={state['linear.weight'].shape[0]}")
    if "patch_embed.proj.weight" in state:
        dim, _, tubelet, patch, _ = state["patch_embed.proj.weight"].shape
        hints.append(f"embed_dim={dim}, tubelet_size={tubelet}, patch_size={patch}")
    if "blocks.0.mlp.fc1.weight" in state:
        hidden, dim = state["blocks.0.mlp.fc1.weight"].shape
        hints.append(f"mlp_ratio={hidden / dim:g}")
    for field, prefix in (("depth", "blocks."), ("pooler_depth", "pooler.blocks."),
                          ("predictor_depth", "predictor.predictor_blocks.")):
        indices = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
        hints.append(f"{field}={max(indices) + 1 if indices else 0}")
    return hints


# --- checkpoint layouts -------------------------------------------------------------------------------------

_HF_RENAMES = [
    (r"^vjepa2\.encoder\.embeddings\.patch_embeddings\.proj\.", "patch_embed.proj."),
    (r"^vjepa2\.encoder\.layer\.(\d+)\.attention\.proj\.", r"blocks.\1.attn.proj."),
    (r"^vjepa2\.encoder\.layer\.(\d+)\.attention\.", r"blocks.\1.attn."),
    (r"^vjepa2\.encoder\.layer\.(\d+)\.", r"blocks.\1."),
    (r"^vjepa2\.encoder\.layernorm\.", "norm."),
    (r"^vjepa2\.predictor\.embeddings\.predictor_embeddings\.", "predictor.predictor_embed."),
    (r"^vjepa2\.predictor\.embeddings\.mask_tokens$", "predictor.mask_tokens"),
    (r"^vjepa2\.predictor\.layer\.(\d+)\.attention\.proj\.", r"predictor.predictor_blocks.\1.attn.proj."),
    (r"^vjepa2\.predictor\.layer\.(\d+)\.attention\.", r"predictor.predictor_blocks.\1.attn."),
    (r"^vjepa2\.predictor\.layer\.(\d+)\.", r"predictor.predictor_blocks.\1."),
    (r"^vjepa2\.predictor\.layernorm\.", "predictor.predictor_norm."),
    (r"^vjepa2\.predictor\.proj\.", "predictor.predictor_proj."),
    (r"^pooler\.self_attention_layers\.(\d+)\.layer_norm1\.", r"pooler.blocks.\1.norm1."),
    (r"^pooler\.self_attention_layers\.(\d+)\.layer_norm2\.", r"pooler.blocks.\1.norm2."),
    (r"^pooler\.self_attention_layers\.(\d+)\.self_attn\.out_proj\.", r"pooler.blocks.\1.attn.proj."),
    (r"^pooler\.self_attention_layers\.(\d+)\.self_attn\.", r"pooler.blocks.\1.attn."),
    (r"^pooler\.self_attention_layers\.(\d+)\.", r"pooler.blocks.\1."),
    (r"^pooler\.cross_attention_layer\.layer_norm1\.", "pooler.cross_attention_block.norm1."),
    (r"^pooler\.cross_attention_layer\.layer_norm2\.", "pooler.cross_attention_block.norm2."),
    (r"^pooler\.cross_attention_layer\.cross_attn\.q_proj\.", "pooler.cross_attention_block.xattn.q."),
    (r"^pooler\.cross_attention_layer\.cross_attn\.", "pooler.cross_attention_block.xattn."),
    (r"^pooler\.cross_attention_layer\.", "pooler.cross_attention_block."),
    (r"^classifier\.", "linear."),
]

# The port keeps q, k, v (and the cross-attention's k, v) as separate projections; the official code fuses them,
# rows in this order: (names in the port, fused name).
_FUSED = {
    ("query", "key", "value"): "qkv",      # encoder and predictor blocks
    ("q_proj", "k_proj", "v_proj"): "qkv",  # pooler self-attention blocks
    ("k_proj", "v_proj"): "kv",            # pooler cross-attention
}
_SPLIT = re.compile(r"^(?P<owner>.+\.(?:attn|xattn))\.(?P<part>query|key|value|q_proj|k_proj|v_proj)\."
                    r"(?P<kind>weight|bias)$")


def _from_huggingface(state: dict[str, Tensor], config: VJEPA2Config) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    split: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, value in rename_keys(state, _HF_RENAMES).items():
        found = _SPLIT.match(key)
        if found:
            split.setdefault((found["owner"], found["kind"]), {})[found["part"]] = value
        elif key == "predictor.mask_tokens":  # (M, 1, 1, D) stacked → M parameters of (1, 1, D)
            out.update({f"predictor.mask_tokens.{i}": token for i, token in enumerate(value)})
        else:
            out[key] = value
    for (owner, kind), parts in split.items():
        order = next((o for o in _FUSED if set(o) == set(parts)), None)
        if order is None:  # an incomplete set stays as it is: the loader then names what is missing
            out.update({f"{owner}.{name}.{kind}": t for name, t in parts.items()})
        else:
            out[f"{owner}.{_FUSED[order]}.{kind}"] = torch.cat([parts[name] for name in order], dim=0)
    return out


CHECKPOINT_LAYOUTS = (
    CheckpointLayout(
        "Hugging Face (VJEPA2ForVideoClassification)",
        detect=lambda sd: any(k.startswith("vjepa2.") for k in sd),
        convert=_from_huggingface),
)


_HF_CONFIG_FIELDS = {  # Hugging Face VJEPA2Config -> our field
    "crop_size": "img_size", "patch_size": "patch_size", "tubelet_size": "tubelet_size", "in_chans": "in_chans",
    "hidden_size": "embed_dim", "num_hidden_layers": "depth", "num_attention_heads": "num_heads",
    "mlp_ratio": "mlp_ratio", "qkv_bias": "qkv_bias", "layer_norm_eps": "norm_eps", "num_pooler_layers": "pooler_depth",
    "pred_hidden_size": "predictor_embed_dim", "pred_num_hidden_layers": "predictor_depth",
    "pred_num_attention_heads": "predictor_num_heads", "pred_num_mask_tokens": "predictor_mask_tokens",
}


def hf_config_overrides(hf_config: dict) -> dict:
    """Config fields a Hugging Face ``VJEPA2Config`` (``config.json``) implies; ``{}`` for another model type.

    ``frames_per_clip`` is the pretraining clip length (64), not what the classifier reads, so it sets nothing; the
    Hugging Face pooler uses the encoder's heads and its ``layer_norm_eps``."""
    if hf_config.get("model_type", "vjepa2") != "vjepa2":
        return {}
    require_hf_activation(hf_config, ("gelu",))
    out = hf_config_fields(hf_config, _HF_CONFIG_FIELDS)
    out["pooler_num_heads"] = None
    if "layer_norm_eps" in hf_config:
        out["pooler_norm_eps"] = hf_config["layer_norm_eps"]
    return out


_HF_DEFAULTS = {  # transformers' VJEPA2Config defaults, for fields a config.json leaves out
    "patch_size": 16, "crop_size": 256, "tubelet_size": 2, "hidden_size": 1024, "in_chans": 3,
    "num_attention_heads": 16, "num_hidden_layers": 24, "mlp_ratio": 4.0, "layer_norm_eps": 1e-6,
    "qkv_bias": True, "hidden_act": "gelu", "num_pooler_layers": 3, "pred_hidden_size": 384,
    "pred_num_attention_heads": 12, "pred_num_hidden_layers": 12, "pred_num_mask_tokens": 10}
register_family(VJEPA2Config, VJEPA2,
                paper="Assran et al., V-JEPA 2: Self-Supervised Video Models Enable Understanding, Prediction "
                      "and Planning (2025)",
                repository="https://github.com/facebookresearch/vjepa2",
                checkpoint_layouts=CHECKPOINT_LAYOUTS, checkpoint_hint=checkpoint_hint,
                # video_preprocessor_config.json, read with torchvision's resize (BaseVideoProcessor)
                hf=HFMapping(("VJEPA2ForVideoClassification",), "vjepa2", _HF_CONFIG_FIELDS, _HF_DEFAULTS,
                             hf_config_overrides, processor_class="VJEPA2VideoProcessor", video_processor=True))

_VITG = dict(embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11, pooler_num_heads=16)
register_preset("vjepa2_vitl", VJEPA2Config(),
                "V-JEPA 2 ViT-L/16 + attentive probe, Something-Something v2 (174 classes), 16 frames × 256 px")
register_preset("vjepa2_vitl_diving48", VJEPA2Config(num_frames=32, num_classes=48),
                "V-JEPA 2 ViT-L/16 + attentive probe, Diving48 (48 classes), 32 frames × 256 px")
register_preset("vjepa2_vitg_384", VJEPA2Config(img_size=384, num_frames=64, **_VITG),
                "V-JEPA 2 ViT-g/16 + attentive probe, Something-Something v2 (174 classes), 64 frames × 384 px")
register_preset("vjepa2_vitg_384_diving48", VJEPA2Config(img_size=384, num_frames=32, num_classes=48, **_VITG),
                "V-JEPA 2 ViT-g/16 + attentive probe, Diving48 (48 classes), 32 frames × 384 px")
