"""MViT: multiscale vision transformers with pooling attention, versions 1 and 2.

Fan, Xiong, Mangalam, Li, Yan, Malik & Feichtenhofer, "Multiscale Vision Transformers", ICCV 2021;
Li, Wu, Fan, Mangalam, Xiong, Malik & Feichtenhofer, "MViTv2: Improved Multiscale Vision Transformers for
Classification and Detection", CVPR 2022.

Reproduces ``MViT`` of facebookresearch/SlowFast (``slowfast/models/video_model_builder.py``,
``slowfast/models/attention.py``), whose parameter names it keeps, and reads torchvision's
``mvit_v1_b``/``mvit_v2_s`` layout; the logits equal torchvision's (the parity fixtures).

A clip is cut into overlapping cubes by a Conv3d (kernel 3×7×7, stride 2×4×4), giving a T×H×W token grid
(8×56×56 at 16×224²) plus an optional CLS token. The blocks form stages; at the first block of every stage
after the first, the channels and heads are multiplied (``dim_mul``, ``head_mul``) and the queries are pooled
with ``stride_q``, which shrinks the grid (56² → 28² → 14² → 7²). Keys and values are pooled harder
(``stride_kv`` = 1×8×8 in the first stage, divided by ``stride_q`` at each stage start, so that keys stay on a
7×7 grid throughout). Every pooling is applied per head to the tokens laid back on their grid; the CLS token
bypasses it. Version 2 adds decomposed relative position terms (``rel_pos_spatial``, ``rel_pos_temporal``)
added to the attention logits, adds the pooled queries back to the attention output (``residual_pooling``)
and grows the channels inside the attention rather than in the MLP (``dim_mul_in_att``).

Tokens are ordered ``(t h w)`` after the CLS token, as the Conv3d output flattens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import ModelConfig, hparam, require
from ..errors import ConfigError
from ..registry import register_family, register_preset
from ..weights.checkpoints import CheckpointLayout, rename_keys
from .layers import (AttentionCore, AttentionLayout, AvgPool3d, DropPath, FactoredBias, Linear, Mlp,
                     check_video_input, drop_path_rates, split_qkv)

POOL_MODES = ("conv", "conv_unshared", "avg", "max")
Grid = tuple[int, int, int]


def round_width(width: float, multiplier: float, divisor: int = 1) -> int:
    """PySlowFast's channel rounding: ``width·multiplier`` to a multiple of ``divisor``, never below 90 %."""
    width *= multiplier
    out = max(divisor, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


def default_kernel(stride: tuple[int, ...]) -> tuple[int, ...]:
    """PySlowFast's kernel when none is configured: one more than the stride where it pools, 1 elsewhere."""
    return tuple(s + 1 if s > 1 else s for s in stride)


def pooled_size(size: int, kernel: int, stride: int) -> int:
    """Output length of a pooling (or depthwise conv) with padding ``kernel // 2`` over ``size`` positions."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def pooled_grid(grid: Grid, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Grid:
    return tuple(pooled_size(n, k, s) for n, k, s in zip(grid, kernel, stride))  # type: ignore[return-value]


def _fmt(grid: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in grid)


class GridError(ValueError):
    """The strides or kernels do not fit a token grid; ``field`` names the config field to change."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class BlockSpec:
    """Settings of one multiscale block, derived from the stage-level config (:meth:`MViTConfig.block_specs`)."""

    index: int
    dim: int  # input channels
    dim_out: int  # output channels
    att_dim: int  # channels inside the attention and the MLP input
    num_heads: int
    kernel_q: tuple[int, int, int]
    stride_q: tuple[int, int, int]
    kernel_kv: tuple[int, int, int]
    stride_kv: tuple[int, int, int]
    drop_path: float

    @property
    def pool_q(self) -> bool:
        """Queries are pooled unless kernel and stride are all 1 (then pooling is skipped, as in the seed code)."""
        return math.prod(self.kernel_q) > 1 or math.prod(self.stride_q) > 1

    @property
    def pool_kv(self) -> bool:
        return math.prod(self.kernel_kv) > 1 or math.prod(self.stride_kv) > 1

    @property
    def pool_skip(self) -> bool:
        """The residual is max-pooled (kernel stride+1) when the queries are strided."""
        return math.prod(self.stride_q) > 1


@dataclass(frozen=True)
class BlockGrids:
    """Token grids (T, H, W) of one block: its input, its pooled queries (= its output) and its keys/values."""

    input: Grid
    q: Grid
    kv: Grid


@dataclass(frozen=True)
class MViTConfig(ModelConfig):
    """Hyperparameters of PySlowFast's ``MViT`` (v1 and v2), stated per stage; per-block settings are derived."""

    family = "mvit"

    num_frames: int = hparam(16, "Frames the model is built for (sets the positional embedding and relative "
                                 "position table sizes).", min=1, max=512)
    img_size: int = hparam(224, "Input height and width in pixels the model is built for.", min=1, max=4096)
    in_chans: int = hparam(3, "Input channels.", min=1, max=16)
    num_classes: int = hparam(400, "Classes of the classification head.", min=1, max=100_000)
    patch_kernel: tuple[int, ...] = hparam((3, 7, 7), "Kernel (T, H, W) of the patch-embedding Conv3d.",
                                           length=3, min=1, max=64)
    patch_stride: tuple[int, ...] = hparam((2, 4, 4), "Stride (T, H, W) of the patch-embedding Conv3d.",
                                           length=3, min=1, max=64)
    patch_padding: tuple[int, ...] = hparam((1, 3, 3), "Padding (T, H, W) of the patch-embedding Conv3d.",
                                            length=3, min=0, max=64)
    embed_dim: int = hparam(96, "Channels of the first stage.", min=1, max=8192)
    num_heads: int = hparam(1, "Attention heads of the first stage.", min=1, max=256)
    depths: tuple[int, ...] = hparam((1, 2, 11, 2), "Blocks per stage. At the first block of every stage after "
                                                    "the first, channels grow by dim_mul, heads by head_mul, "
                                                    "and queries are pooled with stride_q.", min=1, max=128)
    dim_mul: float = hparam(2.0, "Channel multiplier at each stage transition.", min=0.25, max=8.0)
    head_mul: float = hparam(2.0, "Head-count multiplier at each stage transition.", min=0.25, max=8.0)
    stride_q: tuple[int, ...] = hparam((1, 2, 2), "Query pooling stride (T, H, W) at each stage transition; "
                                                  "it shrinks the token grid.", length=3, min=1, max=16)
    kernel_q: tuple[int, ...] | None = hparam((3, 3, 3), "Query pooling kernel (T, H, W); none means stride + 1 "
                                                         "where the stride pools.", length=3, min=1, max=15,
                                              optional=True)
    stride_kv: tuple[int, ...] = hparam((1, 8, 8), "Key/value pooling stride (T, H, W) of the first stage; it is "
                                                   "divided by stride_q at each stage transition (PySlowFast's "
                                                   "POOL_KV_STRIDE_ADAPTIVE), so keys keep one resolution.",
                                        length=3, min=1, max=64)
    kernel_kv: tuple[int, ...] | None = hparam((3, 3, 3), "Key/value pooling kernel (T, H, W); none means "
                                                          "stride + 1 where the stride pools.", length=3, min=1,
                                               max=15, optional=True)
    pool_q_every_block: bool = hparam(False, "Also pool queries (kernel_q, stride 1) in blocks that do not "
                                             "shrink the grid (MViTv2).")
    mode: str = hparam("conv", "Pooling operator: depthwise Conv3d per head followed by LayerNorm ('conv'), one "
                               "depthwise Conv3d over all channels ('conv_unshared', needs pool_first), average "
                               "or max pooling.", choices=POOL_MODES)
    pool_first: bool = hparam(False, "Pool the block input before the query/key/value projections (separate "
                                     "q, k, v linears) instead of pooling the projected q, k, v.")
    separate_qkv: bool = hparam(False, "Separate q, k, v linears instead of one fused qkv linear.")
    has_cls_embed: bool = hparam(True, "Prepend a CLS token (it bypasses pooling) and classify from it; "
                                       "otherwise classify from the mean of the tokens.")
    use_abs_pos: bool = hparam(True, "Absolute positional embedding added after the patch embedding (MViTv1).")
    sep_pos_embed: bool = hparam(True, "Absolute positional embedding factored into spatial, temporal and CLS "
                                       "parts (MViTv1); otherwise one table over all tokens.")
    rel_pos_spatial: bool = hparam(False, "Decomposed relative position terms along height and width (MViTv2).")
    rel_pos_temporal: bool = hparam(False, "Relative position term along time (MViTv2).")
    rel_pos_zero_init: bool = hparam(False, "Initialise the relative position tables to zero.")
    residual_pooling: bool = hparam(False, "Add the pooled queries to the attention output (MViTv2).")
    dim_mul_in_att: bool = hparam(False, "Grow the channels in the attention of a stage's first block (MViTv2) "
                                         "rather than in the MLP of the block before.")
    mlp_ratio: float = hparam(4.0, "MLP hidden width as a multiple of its input width.", min=0.0625, max=64.0)
    qkv_bias: bool = hparam(True, "Learned bias on the query/key/value projections.")
    drop_rate: float = hparam(0.0, "Dropout after embeddings, projections and MLP layers (training only).",
                              min=0.0, max=0.99)
    drop_path_rate: float = hparam(0.2, "Stochastic depth rate of the last block (training only).",
                                   min=0.0, max=0.99)
    head_drop_rate: float = hparam(0.5, "Dropout before the classifier (training only).", min=0.0, max=0.99)
    norm_eps: float = hparam(1e-6, "LayerNorm epsilon.", min=0.0, max=0.1)

    # --- derived settings ----------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return sum(self.depths)

    @property
    def stage_starts(self) -> tuple[int, ...]:
        """Index of the first block of every stage after the first (where dims, heads and the grid change)."""
        starts, total = [], 0
        for d in self.depths[:-1]:
            total += d
            starts.append(total)
        return tuple(starts)

    @property
    def patch_grid(self) -> Grid:
        """Token grid of the built input size."""
        return self.token_grid(self.num_frames, self.img_size, self.img_size)

    def token_grid(self, frames: int, height: int, width: int) -> Grid:
        """(T, H, W) token grid the patch embedding makes of a ``frames``×``height``×``width`` clip (sizes
        below 1 mean the patch kernel does not fit)."""
        return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in  # type: ignore[return-value]
                     zip((frames, height, width), self.patch_kernel, self.patch_stride, self.patch_padding))

    def block_specs(self) -> list[BlockSpec]:
        """Per-block channels, heads, pooling kernels and strides, expanded from the stage-level fields the way
        PySlowFast's ``MViT.__init__`` expands ``DIM_MUL``, ``HEAD_MUL``, ``POOL_Q_STRIDE``,
        ``POOL_KV_STRIDE_ADAPTIVE`` and ``POOL_KVQ_KERNEL``."""
        starts = set(self.stage_starts)
        dim_mul = [self.dim_mul if i in starts else 1.0 for i in range(self.depth + 1)]
        head_mul = [self.head_mul if i in starts else 1.0 for i in range(self.depth + 1)]
        rates = drop_path_rates(self.drop_path_rate, self.depth)
        ones = (1, 1, 1)
        heads, dim, stride_kv = self.num_heads, self.embed_dim, tuple(self.stride_kv)
        specs = []
        for i in range(self.depth):
            heads = round_width(heads, head_mul[i])
            if self.dim_mul_in_att:
                dim_out = round_width(dim, dim_mul[i], divisor=round_width(heads, head_mul[i]))
            else:
                dim_out = round_width(dim, dim_mul[i + 1], divisor=round_width(heads, head_mul[i + 1]))
            stride_q = tuple(self.stride_q) if i in starts else ones
            if i in starts:
                stride_kv = tuple(max(kv // s, 1) for kv, s in zip(stride_kv, stride_q))
            if i in starts or self.pool_q_every_block:
                kernel_q = tuple(self.kernel_q) if self.kernel_q is not None else default_kernel(stride_q)
            else:
                kernel_q = ones
            kernel_kv = tuple(self.kernel_kv) if self.kernel_kv is not None else default_kernel(stride_kv)
            specs.append(BlockSpec(
                index=i, dim=dim, dim_out=dim_out, att_dim=dim_out if self.dim_mul_in_att else dim,
                num_heads=heads, kernel_q=kernel_q, stride_q=stride_q,  # type: ignore[arg-type]
                kernel_kv=kernel_kv, stride_kv=stride_kv, drop_path=rates[i]))  # type: ignore[arg-type]
            dim = dim_out
        return specs

    @property
    def out_dim(self) -> int:
        return self.block_specs()[-1].dim_out

    def block_grids(self, grid: Grid | None = None) -> list[BlockGrids]:
        """Token grids of every block for a patch grid (default: the built one); raises :class:`GridError` when
        the strides or kernels do not fit it."""
        grid = self.patch_grid if grid is None else grid
        if min(grid) < 1:
            raise GridError(
                f"the patch embedding (kernel {_fmt(self.patch_kernel)}, stride {_fmt(self.patch_stride)}, "
                f"padding {_fmt(self.patch_padding)}) leaves a {_fmt(grid)} token grid: the kernel is larger "
                f"than the padded input; use a larger input or a smaller patch_kernel", field="patch_kernel")
        out = []
        for spec in self.block_specs():
            if spec.pool_skip and any(s > n for s, n in zip(spec.stride_q, grid)):
                raise GridError(
                    f"stride_q={_fmt(spec.stride_q)} at block {spec.index} does not fit the {_fmt(grid)} token "
                    f"grid there: the grid would shrink below 1 (grid // stride = "
                    f"{_fmt(tuple(n // s for n, s in zip(grid, spec.stride_q)))}); use fewer or smaller strides, "
                    f"or a larger input", field="stride_q")
            if self.mode == "avg":
                # average pooling refuses a kernel longer than the (unpadded) grid
                for pooled, kernel, name in ((spec.pool_q, spec.kernel_q, "kernel_q"),
                                             (spec.pool_kv, spec.kernel_kv, "kernel_kv")):
                    if pooled and any(k > n for k, n in zip(kernel, grid)):
                        raise GridError(
                            f"{name}={_fmt(kernel)} at block {spec.index} is larger than the {_fmt(grid)} token "
                            f"grid there, which mode='avg' does not allow; use a smaller {name}, another mode "
                            f"or a larger input", field=name)
            q = pooled_grid(grid, spec.kernel_q, spec.stride_q) if spec.pool_q else grid
            skip = pooled_grid(grid, default_kernel(spec.stride_q), spec.stride_q) if spec.pool_skip else grid
            if q != skip:
                raise GridError(
                    f"kernel_q={_fmt(spec.kernel_q)} with stride {_fmt(spec.stride_q)} at block {spec.index} turns "
                    f"the {_fmt(grid)} grid into {_fmt(q)} queries, but the skip connection into {_fmt(skip)}; use "
                    f"odd kernel_q values (padding is kernel // 2)", field="kernel_q")
            kv = pooled_grid(grid, spec.kernel_kv, spec.stride_kv) if spec.pool_kv else grid
            out.append(BlockGrids(grid, q, kv))
            grid = q
        return out

    def table_grids(self) -> list[Grid]:
        """Per block, the grid its relative-position tables are sized for, as torchvision and PySlowFast size them:
        the built input divided (floor) by the patch stride, then by each earlier block's query stride (at sizes
        such as 112 px smaller than the pooled grid, 7 → 3, not 4; the forward resizes a table to the offsets that
        occur)."""
        grid = tuple(n // s for n, s in zip((self.num_frames, self.img_size, self.img_size), self.patch_stride))
        grids = []
        for spec in self.block_specs():
            grids.append(grid)
            grid = tuple(n // s for n, s in zip(grid, spec.stride_q))
        return grids  # type: ignore[return-value]

    def validate(self) -> None:
        require(1 <= len(self.depths) <= 8,
                f"depths={self.depths} must list the blocks of 1 to 8 stages", field="depths")
        require(self.depth <= 128, f"depths={self.depths} add up to {self.depth} blocks; at most 128 are allowed",
                field="depths")
        require(self.mode != "conv_unshared" or self.pool_first,
                "mode='conv_unshared' pools all channels with one depthwise conv before the projections and "
                "needs pool_first=True", field="mode")
        for spec in self.block_specs():
            require(spec.att_dim % spec.num_heads == 0,
                    f"block {spec.index} has {spec.att_dim} attention channels and {spec.num_heads} heads: the "
                    f"channels must be divisible by the heads; choose embed_dim, num_heads, dim_mul and head_mul "
                    f"so that they are", field="num_heads")
            require(not (self.pool_first and self.mode == "conv") or spec.dim % spec.num_heads == 0,
                    f"pool_first with mode='conv' pools the {spec.dim} input channels of block {spec.index} per "
                    f"head, but they are not divisible by its {spec.num_heads} heads", field="pool_first")
        try:
            self.block_grids()
        except GridError as exc:
            raise ConfigError(f"at the built input size ({self.num_frames} frames × {self.img_size}²) {exc}",
                              field=exc.field) from None
        for spec, grid in zip(self.block_specs(), self.table_grids()):
            spatial = self.rel_pos_spatial and max(grid[1:]) // min(spec.stride_q[1], spec.stride_kv[1]) < 1
            if spatial or (self.rel_pos_temporal and grid[0] < 1):
                axis, field = ("height and width", "img_size") if spatial else ("time", "num_frames")
                raise ConfigError(
                    f"at the built input size ({self.num_frames} frames × {self.img_size}²) the relative position "
                    f"table along {axis} of block {spec.index} would be empty: the official code sizes it from the "
                    f"input divided (floor) by the patch stride {_fmt(self.patch_stride)} and the query strides "
                    f"before it, which leaves {_fmt(grid)} there; use a larger {field} or fewer query strides",
                    field=field)


# --- attention --------------------------------------------------------------------------------------------


def attention_pool(x: Tensor, pool: nn.Module | None, norm: nn.Module | None, grid: Grid,
                   has_cls: bool) -> Tensor:
    """Pool tokens ``x (B, heads, N, C)`` on their ``grid``; the CLS token bypasses the pooling and joins the
    normalisation (seed code ``attention_pool``)."""
    if pool is None:
        return x
    cls, x = (x[:, :, :1], x[:, :, 1:]) if has_cls else (None, x)
    b, n, _, c = x.shape
    # Pooled channels-last: the tokens (t h w) c of each head are the (T, H, W, C) memory of a channels_last_3d
    # volume, so the one copy made here is row by row rather than a transpose, and the output needs none.
    x = x.reshape(b * n, *grid, c).permute(0, 4, 1, 2, 3)  # (B·heads, C, T, H, W), channels-last memory
    x = pool(x.contiguous(memory_format=torch.channels_last_3d))  # (B·heads, C, T', H', W'), channels-last
    x = x.permute(0, 2, 3, 4, 1).reshape(b, n, -1, c)  # (B, heads, T'·H'·W', C)
    if cls is not None:
        x = torch.cat((cls, x), dim=2)
    return norm(x) if norm is not None else x


def _relative_table(table: Tensor, q_size: int, k_size: int) -> Tensor:
    """``(q_size, k_size, d)`` embeddings of the offsets between query and key positions along one axis.

    When the query and key grids differ, the coarser one's positions are scaled to the finer one's spacing;
    the table is resized (linearly) to the ``2·max − 1`` offsets that then occur (seed code ``get_rel_pos``)."""
    length = 2 * max(q_size, k_size) - 1
    if table.shape[0] != length:
        table = F.interpolate(table.t().unsqueeze(0), size=length, mode="linear").squeeze(0).t()
    q_ratio, k_ratio = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
    q_pos = torch.arange(q_size, device=table.device)[:, None] * q_ratio
    k_pos = (torch.arange(k_size, device=table.device)[None, :] + (1.0 - k_size)) * k_ratio
    return table[(q_pos - k_pos).long()]


def _key_selector(axes: list[int], k_grid: Grid, n_cls: int, dtype: torch.dtype,
                  device: torch.device) -> Tensor:
    """``(Σ k_a, n_cls + kt·kh·kw)`` 0/1 matrix: row block ``a`` (key axis ``axes[a]``, of length
    ``k_grid[axes[a]]``) has a 1 in key column ``(t, h, w)`` at that key's index along the axis; the CLS columns
    are zero."""
    coords = torch.cartesian_prod(*(torch.arange(n, device=device) for n in k_grid)).reshape(-1, 3)
    blocks = [F.one_hot(coords[:, axis], k_grid[axis]).t() for axis in axes]
    return F.pad(torch.cat(blocks), (n_cls, 0)).to(dtype)


class DecomposedRelPos(nn.Module):
    """MViTv2's decomposed relative position term, as an additive attention bias (Li et al. 2022, eq. 4).

    ``bias[i, j] = q_i · (R_h[h(i), h(j)] + R_w[w(i), w(j)] + R_t[t(i), t(j)])`` between the patch tokens of
    queries and keys; rows and columns of the CLS token get 0 (seed code ``cal_rel_pos_spatial`` and
    ``cal_rel_pos_temporal``). Its products live here so that :meth:`flop_count` can count them. Where the bias
    needs a gradient it is returned as a :class:`~videoattn_core.models.layers.FactoredBias`.
    """

    def __init__(self, has_cls: bool):
        super().__init__()
        self.has_cls = has_cls

    def forward(self, q: Tensor, rel_pos_h: Tensor | None, rel_pos_w: Tensor | None, rel_pos_t: Tensor | None,
                q_grid: Grid, k_grid: Grid) -> Tensor | FactoredBias:
        (qt, qh, qw), (kt, kh, kw) = q_grid, k_grid
        b, heads, _, d = q.shape
        r_q = q[:, :, 1:] if self.has_cls else q
        r_q = r_q.reshape(b, heads, qt, qh, qw, d)
        # the present terms, each (B, heads, qt, qh, qw, k) for its key axis (0: t, 1: h, 2: w)
        terms = []
        if rel_pos_h is not None:
            terms.append((torch.einsum("bythwc,hkc->bythwk", r_q, _relative_table(rel_pos_h, qh, kh)), 1))
        if rel_pos_w is not None:
            terms.append((torch.einsum("bythwc,wkc->bythwk", r_q, _relative_table(rel_pos_w, qw, kw)), 2))
        if rel_pos_t is not None:
            terms.append((torch.einsum("bythwc,tkc->bythwk", r_q, _relative_table(rel_pos_t, qt, kt)), 0))
        n_cls = int(self.has_cls)
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t, _ in terms)
        half = q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16)
        if (needs_grad or half) and not torch.compiler.is_compiling():
            # The bias as a product: each query's terms side by side (a zero row for the CLS token) times a 0/1
            # matrix whose column for key (t, h, w) picks that key's entries. With a gradient it stays factored
            # (the attention's backward takes the factors as more columns of q and k: no N_q x N_k bias nor
            # gradient is written). In half precision on the CPU the product writes it: a broadcast sum over key
            # axes of 7 to 28 entries runs far below the memory's speed there (5x slower at 56x56 queries); the
            # product accumulates in float32 and rounds once. Float32 and the meta device (where FLOPs are
            # counted) take the sum below.
            rows = F.pad(torch.cat([t.reshape(b, heads, qt * qh * qw, -1) for t, _ in terms], dim=-1),
                         (0, 0, n_cls, 0))
            bias = FactoredBias(rows, _key_selector([axis for _, axis in terms], k_grid, n_cls, rows.dtype,
                                                    rows.device))
            return bias if needs_grad else bias.dense()
        # shaped to broadcast over the key grid (kt, kh, kw)
        terms = [t.reshape(*t.shape[:-1], *[t.shape[-1] if axis == i else 1 for i in range(3)])
                 for t, axis in terms]
        # The (N_q, N_k) bias is the largest tensor of the block: written once, in place, by the last broadcast
        # sum (the smaller sums before it), with the CLS row and column zeroed around it.
        shape = (b, heads, qt, qh, qw, kt, kh, kw)
        if torch.compiler.is_compiling():
            # torch.compile takes no view for out=: the plain sum, laid out and padded for the CLS token (which
            # Inductor fuses into one kernel)
            bias = sum(terms[1:], terms[0]).expand(shape).reshape(b, heads, qt * qh * qw, kt * kh * kw)
            return F.pad(bias, (1, 0, 1, 0)) if self.has_cls else bias
        bias = q.new_empty(b, heads, n_cls + qt * qh * qw, n_cls + kt * kh * kw)  # (B, heads, N_q, N_k)
        grid_bias = bias[:, :, n_cls:, n_cls:].view(shape)
        head = sum(terms[1:-1], terms[0]) if len(terms) > 1 else q.new_zeros(())
        torch.add(head.expand(shape), terms[-1], out=grid_bias)
        if n_cls:  # after the sum, which touched every page in order: a column alone would fault one page per row
            bias[:, :, 0].zero_()
            bias[:, :, 1:, 0].zero_()
        return bias

    def flop_count(self, inputs: tuple, output: Tensor) -> int:
        """Multiply-accumulates of the three products ``q·R`` (fvcore counts each einsum as B·heads·N_q·d·k)."""
        q, rel_h, rel_w, rel_t, (qt, qh, qw), (kt, kh, kw) = inputs
        b, heads, _, d = q.shape
        per_key = (kh if rel_h is not None else 0) + (kw if rel_w is not None else 0) + (kt if rel_t is not None
                                                                                          else 0)
        return b * heads * qt * qh * qw * d * per_key


class MultiScaleAttention(nn.Module):
    """Multi-head pooling attention (seed code ``MultiScaleAttention``).

    Queries, keys and values are pooled on the token grid (per head, after the projection; or on the block
    input before separate projections with ``pool_first``), then attend through :class:`AttentionCore` with the
    relative position term as additive bias. Returns the output tokens and their (query) grid.
    """

    def __init__(self, config: MViTConfig, spec: BlockSpec, input_grid: Grid):
        super().__init__()
        dim, dim_out, heads = spec.dim, spec.att_dim, spec.num_heads
        self.num_heads, self.dim_out = heads, dim_out
        self.has_cls = config.has_cls_embed
        self.pool_first, self.mode = config.pool_first, config.mode
        head_dim = dim_out // heads

        if config.pool_first or config.separate_qkv:
            self.q = Linear(dim, dim_out, bias=config.qkv_bias)
            self.k = Linear(dim, dim_out, bias=config.qkv_bias)
            self.v = Linear(dim, dim_out, bias=config.qkv_bias)
        else:
            self.qkv = Linear(dim, dim_out * 3, bias=config.qkv_bias)
        self.proj = Linear(dim_out, dim_out)
        self.proj_drop = nn.Dropout(config.drop_rate)
        self.core = AttentionCore("pooled", head_dim ** -0.5)

        # channels each pooling sees: one head's (conv), all of them at once (conv_unshared)
        if config.pool_first:
            self.fold = 1 if config.mode == "conv_unshared" else heads
            pool_channels = dim // self.fold
        else:
            self.fold = heads
            pool_channels = head_dim
        self.pool_q, self.norm_q = self._pooling(config, spec.kernel_q, spec.stride_q, spec.pool_q, pool_channels)
        self.pool_k, self.norm_k = self._pooling(config, spec.kernel_kv, spec.stride_kv, spec.pool_kv,
                                                 pool_channels)
        self.pool_v, self.norm_v = self._pooling(config, spec.kernel_kv, spec.stride_kv, spec.pool_kv,
                                                 pool_channels)

        self.rel_pos = None
        if config.rel_pos_spatial or config.rel_pos_temporal:
            self.rel_pos = DecomposedRelPos(config.has_cls_embed)
        if config.rel_pos_spatial:
            # sized for the built grid as torchvision and PySlowFast track it (resized when the grids differ)
            size = max(input_grid[1:])
            q_size, kv_size = size // spec.stride_q[1], size // spec.stride_kv[1]
            length = 2 * max(q_size, kv_size) - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(length, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(length, head_dim))
        if config.rel_pos_temporal:
            self.rel_pos_t = nn.Parameter(torch.zeros(2 * input_grid[0] - 1, head_dim))
        self.residual_pooling = config.residual_pooling

    @staticmethod
    def _pooling(config: MViTConfig, kernel: tuple[int, ...], stride: tuple[int, ...], enabled: bool,
                 channels: int) -> tuple[nn.Module | None, nn.Module | None]:
        if not enabled:
            return None, None
        padding = tuple(k // 2 for k in kernel)
        if config.mode == "avg":
            return AvgPool3d(kernel, stride, padding), None
        if config.mode == "max":
            return nn.MaxPool3d(kernel, stride, padding), None
        conv = nn.Conv3d(channels, channels, kernel, stride=stride, padding=padding, groups=channels, bias=False)
        return conv, nn.LayerNorm(channels, eps=config.norm_eps)

    def _split(self, x: Tensor) -> Tensor:
        return rearrange(x, "b n (h d) -> b h n d", h=self.num_heads)

    def forward(self, x: Tensor, grid: Grid, q_grid: Grid, kv_grid: Grid) -> Tensor:
        # x: (B, N, C) with N = [1 +] T·H·W tokens ordered (t h w)
        if self.pool_first:
            x = rearrange(x, "b n (f c) -> b f n c", f=self.fold)  # (B, fold, N, C/fold)
            q = attention_pool(x, self.pool_q, self.norm_q, grid, self.has_cls)
            k = attention_pool(x, self.pool_k, self.norm_k, grid, self.has_cls)
            v = attention_pool(x, self.pool_v, self.norm_v, grid, self.has_cls)
            q, k, v = (rearrange(t, "b f n c -> b n (f c)") for t in (q, k, v))
            q, k, v = self._split(self.q(q)), self._split(self.k(k)), self._split(self.v(v))
        else:
            if hasattr(self, "qkv"):
                q, k, v = split_qkv(self.qkv(x), self.num_heads)
            else:
                q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
            # q, k, v: (B, heads, N, head_dim)
            q = attention_pool(q, self.pool_q, self.norm_q, grid, self.has_cls)
            k = attention_pool(k, self.pool_k, self.norm_k, grid, self.has_cls)
            v = attention_pool(v, self.pool_v, self.norm_v, grid, self.has_cls)

        bias = None
        if self.rel_pos is not None:
            bias = self.rel_pos(q, getattr(self, "rel_pos_h", None), getattr(self, "rel_pos_w", None),
                                getattr(self, "rel_pos_t", None), q_grid, kv_grid)
        layout = AttentionLayout("pooled", grid=grid, groups="b", tokens="(t h w)", cls=self.has_cls,
                                 q_grid=q_grid, kv_grid=kv_grid)
        out = self.core(q, k, v, bias, layout)  # (B, heads, N_q, head_dim)
        if self.residual_pooling:
            if self.has_cls:
                out = torch.cat((out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]), dim=2)
            else:
                out = out + q
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))


class MultiScaleBlock(nn.Module):
    """Pooling attention and MLP with pre-norm residuals (seed code ``MultiScaleBlock``).

    When the queries are strided, the residual is max-pooled to the same grid. When the channels change, the
    residual is projected from the normalised input: before attention with ``dim_mul_in_att`` (MViTv2), before
    the MLP otherwise (MViTv1).
    """

    def __init__(self, config: MViTConfig, spec: BlockSpec, input_grid: Grid):
        super().__init__()
        self.has_cls = config.has_cls_embed
        self.dim_mul_in_att = config.dim_mul_in_att
        self.norm1 = nn.LayerNorm(spec.dim, eps=config.norm_eps)
        self.attn = MultiScaleAttention(config, spec, input_grid)
        self.drop_path = DropPath(spec.drop_path)
        self.norm2 = nn.LayerNorm(spec.att_dim, eps=config.norm_eps)
        self.mlp = Mlp(spec.att_dim, int(spec.att_dim * config.mlp_ratio), spec.dim_out, drop=config.drop_rate)
        if spec.dim != spec.dim_out:
            self.proj = Linear(spec.dim, spec.dim_out)
        self.pool_skip = None
        if spec.pool_skip:
            kernel = default_kernel(spec.stride_q)
            self.pool_skip = nn.MaxPool3d(kernel, spec.stride_q, tuple(k // 2 for k in kernel))

    def forward(self, x: Tensor, grids: BlockGrids) -> Tensor:
        # x: (B, N, C) -> (B, N', C'), N' = [1 +] the tokens of grids.q
        x_norm = self.norm1(x)
        x_attn = self.attn(x_norm, grids.input, grids.q, grids.kv)
        if self.dim_mul_in_att and hasattr(self, "proj"):
            x = self.proj(x_norm)
        x = attention_pool(x.unsqueeze(1), self.pool_skip, None, grids.input, self.has_cls).squeeze(1)
        x = x + self.drop_path(x_attn)
        x_norm = self.norm2(x)
        x_mlp = self.mlp(x_norm)
        if not self.dim_mul_in_att and hasattr(self, "proj"):
            x = self.proj(x_norm)
        return x + self.drop_path(x_mlp)


class PatchEmbed(nn.Module):
    """Overlapping space-time cubes by a Conv3d; output tokens ``(B, T·H·W, C)`` ordered ``(t h w)``."""

    def __init__(self, config: MViTConfig):
        super().__init__()
        self.proj = nn.Conv3d(config.in_chans, config.embed_dim, config.patch_kernel, stride=config.patch_stride,
                              padding=config.patch_padding)

    def forward(self, x: Tensor) -> Tensor:
        return rearrange(self.proj(x), "b c t h w -> b (t h w) c")


class TransformerBasicHead(nn.Module):
    """Dropout and a linear classifier (PySlowFast ``TransformerBasicHead``; logits, no softmax)."""

    def __init__(self, dim: int, num_classes: int, drop: float):
        super().__init__()
        self.dropout = nn.Dropout(drop)
        self.projection = Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(self.dropout(x))


class MViT(nn.Module):
    """MViT v1/v2 classifier. Input ``(B, C, T, H, W)``; output logits ``(B, num_classes)``.

    Other input sizes are accepted when the strides fit their token grid; the absolute positional embedding
    is then resized (trilinear, as PySlowFast does) and the relative position tables interpolated.
    """

    def __init__(self, config: MViTConfig):
        super().__init__()
        self.config = config
        dim = config.embed_dim
        t, h, w = config.patch_grid
        self.patch_embed = PatchEmbed(config)
        if config.has_cls_embed:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        if config.use_abs_pos:
            if config.sep_pos_embed:
                self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, dim))
                self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, dim))
                if config.has_cls_embed:
                    self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, dim))
            else:
                self.pos_embed = nn.Parameter(torch.zeros(1, t * h * w + int(config.has_cls_embed), dim))
        self.pos_drop = nn.Dropout(config.drop_rate)
        self.blocks = nn.ModuleList(MultiScaleBlock(config, spec, table_grid)  # relative-position table sizes
                                    for spec, table_grid in zip(config.block_specs(), config.table_grids()))
        self.norm = nn.LayerNorm(config.out_dim, eps=config.norm_eps)
        self.head = TransformerBasicHead(config.out_dim, config.num_classes, config.head_drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        # truncated normal embeddings and linear weights, zero biases, unit LayerNorms (torchvision, PySlowFast)
        if self.patch_embed.proj.weight.is_meta:
            return
        for name, p in self.named_parameters():
            if name.startswith(("cls_token", "pos_embed")):
                nn.init.trunc_normal_(p, std=0.02)
            elif name.rsplit(".", 1)[-1] in ("rel_pos_h", "rel_pos_w", "rel_pos_t"):
                if self.config.rel_pos_zero_init:
                    nn.init.zeros_(p)
                else:
                    nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _abs_pos_embed(self, grid: Grid) -> Tensor:
        """(1, [1 +] T·H·W, C) absolute positional embedding for ``grid``, resized (trilinear) when it differs
        from the built grid."""
        built = self.config.patch_grid
        if self.config.sep_pos_embed:
            # entry t·H·W + s is temporal[t] + spatial[s]
            pos = (self.pos_embed_spatial.repeat(1, built[0], 1)
                   + torch.repeat_interleave(self.pos_embed_temporal, built[1] * built[2], dim=1))
            cls_pos = self.pos_embed_class if self.config.has_cls_embed else None
        else:
            n_cls = int(self.config.has_cls_embed)
            pos, cls_pos = self.pos_embed[:, n_cls:], self.pos_embed[:, :n_cls] if n_cls else None
        if tuple(grid) != tuple(built):
            pos = rearrange(pos, "1 (t h w) c -> 1 c t h w", t=built[0], h=built[1], w=built[2])
            pos = rearrange(F.interpolate(pos, size=grid, mode="trilinear"), "1 c t h w -> 1 (t h w) c")
        return torch.cat((cls_pos, pos), dim=1) if cls_pos is not None else pos

    def grids_for(self, x: Tensor) -> list[BlockGrids]:
        """Per-block token grids for input ``x``; raises ``ValueError`` saying what is expected when ``x`` does
        not fit the model."""
        cfg = self.config
        b, t, height, width = check_video_input(x, channels=cfg.in_chans)
        try:
            return cfg.block_grids(cfg.token_grid(t, height, width))
        except GridError as exc:
            built = cfg.input_shape(batch=b)
            raise ValueError(
                f"expected a float tensor (B, C, T, H, W) such as {built}: an input of {t} frames × "
                f"{height}×{width} px does not fit this model: {exc}") from None

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` clip → ``(B, C')`` normalised CLS feature (or mean token without CLS)."""
        grids = self.grids_for(x)
        x = self.patch_embed(x)  # (B, T·H·W, C)
        if self.config.has_cls_embed:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if self.config.use_abs_pos:
            x = x + self._abs_pos_embed(grids[0].input)
        x = self.pos_drop(x)  # (B, [1 +] T·H·W, C)
        for block, g in zip(self.blocks, grids):
            x = block(x, g)
        x = self.norm(x)
        return x[:, 0] if self.config.has_cls_embed else x.mean(dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_hint(state: dict[str, Tensor], wrong: list[str], config: MViTConfig) -> list[str]:
    """Say which hyperparameters would make a mismatching checkpoint fit."""
    cfg, hints = config, []
    if "head.projection.weight" in wrong:
        hints.append(f"num_classes={state['head.projection.weight'].shape[0]}")
    if "pos_embed_temporal" in wrong:
        hints.append(f"num_frames={state['pos_embed_temporal'].shape[1] * cfg.patch_stride[0]}")
    if "pos_embed_spatial" in wrong:
        hints.append(f"img_size={round(state['pos_embed_spatial'].shape[1] ** 0.5) * cfg.patch_stride[1]}")
    if any(k.endswith("rel_pos_h") for k in state) and not cfg.rel_pos_spatial:
        hints.append("use_abs_pos=False, rel_pos_spatial=True, rel_pos_temporal=True (an MViTv2 checkpoint)")
    return hints


# --- checkpoint layouts -------------------------------------------------------------------------------------

_TORCHVISION_RULES = [
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^pos_encoding\.class_token$", "cls_token"),
    (r"^pos_encoding\.spatial_pos$", "pos_embed_spatial"),
    (r"^pos_encoding\.temporal_pos$", "pos_embed_temporal"),
    (r"^pos_encoding\.class_pos$", "pos_embed_class"),
    (r"^blocks\.(\d+)\.attn\.pool_([qkv])\.pool\.", r"blocks.\1.attn.pool_\2."),
    (r"^blocks\.(\d+)\.attn\.pool_([qkv])\.norm_act\.0\.", r"blocks.\1.attn.norm_\2."),
    (r"^blocks\.(\d+)\.attn\.project\.0\.", r"blocks.\1.attn.proj."),
    (r"^blocks\.(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^blocks\.(\d+)\.mlp\.3\.", r"blocks.\1.mlp.fc2."),
    (r"^blocks\.(\d+)\.project\.", r"blocks.\1.proj."),
    (r"^head\.1\.", "head.projection."),
]
# torchvision keeps the CLS token and the positional tables without PySlowFast's leading (1, 1) / (1,) axes
_LEADING_ONES = {"cls_token": 3, "pos_embed_spatial": 3, "pos_embed_temporal": 3, "pos_embed_class": 3}


def _from_torchvision(state: dict[str, Tensor], config: MViTConfig | None) -> dict[str, Tensor]:
    out = rename_keys(state, _TORCHVISION_RULES)
    for key, ndim in _LEADING_ONES.items():
        if key in out and out[key].ndim < ndim:
            value = out[key]
            out[key] = value.reshape((1,) * (ndim - value.ndim) + tuple(value.shape))
    return out


CHECKPOINT_LAYOUTS = (
    CheckpointLayout(
        "torchvision (mvit_v1_b / mvit_v2_s)",
        detect=lambda sd: any(k.startswith(("conv_proj.", "pos_encoding.")) for k in sd),
        convert=_from_torchvision),
)


register_family(MViTConfig, MViT,
                paper="Fan et al., Multiscale Vision Transformers (ICCV 2021); Li et al., MViTv2: Improved "
                      "Multiscale Vision Transformers for Classification and Detection (CVPR 2022)",
                repository="https://github.com/facebookresearch/SlowFast",
                checkpoint_layouts=CHECKPOINT_LAYOUTS, checkpoint_hint=checkpoint_hint,
                paper_views=5,  # Fan et al. 2021 / Li et al. 2022, Kinetics tables: 5 clips × 1 crop
                readout=lambda config: "cls" if config.has_cls_embed else "mean")

_V2 = dict(use_abs_pos=False, rel_pos_spatial=True, rel_pos_temporal=True, residual_pooling=True,
           dim_mul_in_att=True, pool_q_every_block=True)
register_preset("mvit_v1_b", MViTConfig(),
                "MViT-B (v1), 16 frames × 224 px, sampling rate 4 (torchvision mvit_v1_b)")
register_preset("mvit_v1_b_32x3", MViTConfig(num_frames=32, drop_path_rate=0.3),
                "MViT-B (v1), 32 frames × 224 px, sampling rate 3")
register_preset("mvit_v2_s", MViTConfig(**_V2),
                "MViTv2-S, 16 frames × 224 px, sampling rate 4 (torchvision mvit_v2_s)")
register_preset("mvit_v2_b", MViTConfig(depths=(2, 3, 16, 3), drop_path_rate=0.3, num_frames=32, **_V2),
                "MViTv2-B, 32 frames × 224 px, sampling rate 3")
