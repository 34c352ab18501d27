"""FIERY's temporal model: causal 3D convolutions that mix bird's-eye-view features across frames.

Hu et al., "FIERY: Future Instance Prediction in Bird's-Eye View from Surround Monocular Cameras", ICCV 2021.
Reproduces ``TemporalModel`` of wayveai/fiery (``fiery/models/temporal_model.py``) with the layers of
``fiery/layers/temporal.py`` (``CausalConv3d``, ``conv_1x1x1_norm_activated``, ``Bottleneck3D``,
``PyramidSpatioTemporalPooling``, ``TemporalBlock``), whose parameter names it keeps: an official state dict
(``model.0.convolution_paths.0.0.conv.weight``, ...) loads natively, and a full FIERY checkpoint is read by
stripping everything up to its ``temporal_model.`` prefix.

It is the convolutional answer to the question the attention families answer: how to mix information across
frames. ``receptive_field − 1`` temporal blocks each see two consecutive frames (a time kernel of 2, padded on
the left only, so no output step depends on a later frame), so the output at time t depends on frames
t − receptive_field + 1 … t. Each block has three convolution paths on half the channels (2×3×3, 1×3×3 and
1×1×1), an optional spatio-temporal pyramid pooling (average over the block's previous and current frame and
over the whole H×W map, 1×1×1 convolution to a third of the channels, upsampled back), a 1×1×1 aggregation and
a residual connection; ``n_spatial_layers_between_temporal_layers`` bottlenecks with 1×3×3 kernels follow each
block. Input ``(B, T, C, H, W)`` features (FIERY's layout, not the ``B C T H W`` of the video classifiers);
output the last ``T − receptive_field + 1`` steps, ``(B, T − receptive_field + 1, C_out, H, W)``.

There is no classification head: the explorer shows shapes, parameters and MACs, not predictions or attention.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig, hparam, require
from ..registry import register_family, register_preset
from ..weights.checkpoints import CheckpointLayout
from .layers import AvgPool3d

#: the kernels of a temporal block's two spatio-temporal convolution paths (official ``TemporalBlock.kernels``)
TEMPORAL_BLOCK_KERNELS = ((2, 3, 3), (1, 3, 3))
#: the kernel of the bottlenecks between temporal blocks
SPATIAL_KERNEL = (1, 3, 3)


@dataclass(frozen=True)
class FieryTemporalConfig(ModelConfig):
    """The arguments of the official ``TemporalModel`` (defaults: FIERY's nuScenes setting), plus the frame
    count the model is built for.

    FIERY's ``input_shape`` argument is the field ``input_hw`` here, because ``input_shape`` is the method every
    config has for the shape of the model's input tensor.
    """

    family = "fiery"
    input_layout = "B T C H W"
    has_head = False

    in_channels: int = hparam(70, "Channels of the input features (FIERY: 64 encoder channels + 6 for the ego "
                                  "motion).", min=1, max=4096)
    receptive_field: int = hparam(3, "Frames of temporal context: receptive_field − 1 temporal blocks, each "
                                     "seeing two consecutive frames.", min=1, max=64)
    input_hw: tuple[int, ...] = hparam((200, 200), "(H, W) of the feature maps the pyramid pooling is built "
                                                   "for (FIERY's input_shape; its window covers the whole map).",
                                       min=1, max=4096, length=2)
    start_out_channels: int = hparam(64, "Output channels of the first temporal block.", min=1, max=4096)
    extra_in_channels: int = hparam(0, "Channels added at each further temporal block.", min=0, max=1024)
    n_spatial_layers_between_temporal_layers: int = hparam(
        0, "Bottleneck layers with 1×3×3 kernels after each temporal block.", min=0, max=16)
    use_pyramid_pooling: bool = hparam(True, "Spatio-temporal pyramid pooling in each temporal block.")
    num_frames: int | None = hparam(None, "Frames per input sequence the model is built for (sets the default "
                                          "input shape); none means receptive_field, as FIERY feeds exactly "
                                          "the receptive field of past frames.", min=1, max=512, optional=True)

    def validate(self) -> None:
        if self.num_frames is not None:
            require(self.receptive_field <= self.num_frames,
                    f"receptive_field={self.receptive_field} is larger than num_frames={self.num_frames}: the "
                    f"temporal model needs at least receptive_field frames to produce one output step; choose "
                    f"receptive_field ≤ {self.num_frames} or num_frames ≥ {self.receptive_field}",
                    field="receptive_field")
        # each block splits its input into paths of in // 2 channels, and the pyramid pooling into in // 3
        least = 3 if self.use_pyramid_pooling else 2
        why = ("the convolution paths take in_channels // 2 channels and the pyramid pooling in_channels // 3"
               if self.use_pyramid_pooling else "the convolution paths take in_channels // 2 channels")
        for index, channels in enumerate(self.block_in_channels):
            name = "in_channels" if index == 0 else "start_out_channels"
            require(channels >= least,
                    f"{name}={getattr(self, name)} gives temporal block {index} only {channels} input channels; "
                    f"{why}, so every block needs at least {least}", field=name)
        if self.n_spatial_layers_between_temporal_layers and self.block_in_channels:
            require(self.start_out_channels >= 2,
                    f"start_out_channels={self.start_out_channels} is too few for the bottleneck layers, which "
                    f"work on start_out_channels // 2 channels; choose start_out_channels ≥ 2 or "
                    f"n_spatial_layers_between_temporal_layers=0", field="start_out_channels")

    @property
    def n_temporal_layers(self) -> int:
        return self.receptive_field - 1

    @property
    def block_in_channels(self) -> list[int]:
        """Input channels of each temporal block: ``in_channels``, then the previous block's output."""
        return [self.in_channels] + self.block_out_channels[:-1] if self.n_temporal_layers else []

    @property
    def block_out_channels(self) -> list[int]:
        """Output channels of each temporal block: ``start_out_channels`` growing by ``extra_in_channels``."""
        return [self.start_out_channels + i * self.extra_in_channels for i in range(self.n_temporal_layers)]

    @property
    def out_channels(self) -> int:
        out = self.block_out_channels
        return out[-1] if out else self.in_channels

    @property
    def frames(self) -> int:
        """The frame count the model is built for."""
        return self.num_frames if self.num_frames is not None else self.receptive_field

    def input_shape(self, frames: int | None = None, size: int | None = None, batch: int = 1) -> tuple[int, ...]:
        """``(batch, T, in_channels, H, W)``: ``frames`` defaults to :attr:`frames` (the receptive field unless
        ``num_frames`` is set); ``size`` gives a square ``size``×``size`` feature map, by default ``input_hw``
        (FIERY's 200×200 bird's-eye-view grid)."""
        t = frames if frames is not None else self.frames
        h, w = (size, size) if size is not None else self.input_hw
        return (batch, t, self.in_channels, h, w)


# --- layers (fiery/layers/temporal.py) -----------------------------------------------------------------------

def _relu() -> nn.ReLU:
    # the official ReLUs are in place; out of place here computes the same values and leaves the normalisation
    # output that forward hooks capture untouched
    return nn.ReLU()


def conv_1x1x1_norm_activated(in_channels: int, out_channels: int) -> nn.Sequential:
    """1×1×1 convolution without bias, BatchNorm, ReLU (names ``conv``, ``norm``, ``activation``)."""
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv3d(in_channels, out_channels, kernel_size=1, bias=False)),
        ("norm", nn.BatchNorm3d(out_channels)),
        ("activation", _relu()),
    ]))


class CausalConv3d(nn.Module):
    """3D convolution padded ``kernel_t − 1`` frames on the left only (and 'same' in space), so the output at
    time t sees frames t − kernel_t + 1 … t; then BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int, int] = (2, 3, 3),
                 dilation: tuple[int, int, int] = (1, 1, 1), bias: bool = False):
        super().__init__()
        time_pad = (kernel_size[0] - 1) * dilation[0]
        height_pad = (kernel_size[1] - 1) * dilation[1] // 2
        width_pad = (kernel_size[2] - 1) * dilation[2] // 2
        # F.pad order: (W left, W right, H top, H bottom, T front, T back)
        self.pad = nn.ConstantPad3d((width_pad, width_pad, height_pad, height_pad, time_pad, 0), 0.0)
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.norm = nn.BatchNorm3d(out_channels)
        self.activation = _relu()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.norm(self.conv(self.pad(x))))


class Bottleneck3D(nn.Module):
    """1×1×1 down-projection to half the channels, a causal convolution, 1×1×1 up-projection, plus a residual
    (projected by a 1×1×1 convolution and BatchNorm when the channel count changes)."""

    def __init__(self, in_channels: int, out_channels: int | None = None,
                 kernel_size: tuple[int, int, int] = (2, 3, 3), dilation: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        out_channels = out_channels or in_channels
        bottleneck_channels = in_channels // 2
        self.layers = nn.Sequential(OrderedDict([
            ("conv_down_project", conv_1x1x1_norm_activated(in_channels, bottleneck_channels)),
            ("conv", CausalConv3d(bottleneck_channels, bottleneck_channels, kernel_size, dilation)),
            ("conv_up_project", conv_1x1x1_norm_activated(bottleneck_channels, out_channels)),
        ]))
        self.projection = None
        if out_channels != in_channels:
            self.projection = nn.Sequential(nn.Conv3d(in_channels, out_channels, kernel_size=1, bias=False),
                                            nn.BatchNorm3d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        skip = self.projection(x) if self.projection is not None else x
        return self.layers(x) + skip


class BilinearResize(nn.Module):
    """Bilinear resize of ``(B, C, T, h, w)`` to ``(B, C, T, H, W)``, each (channel, frame) map on its own
    (``align_corners=False``, as FIERY)."""

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        b, c, t, h, w = x.shape
        x = F.interpolate(x.reshape(b, c * t, h, w), size=size, mode="bilinear", align_corners=False)
        return x.reshape(b, c, t, *size)

    def flop_count(self, inputs: tuple, output: Tensor) -> int:
        """fvcore's count for ``upsample_bilinear2d``: 4 multiply-adds (one per neighbour) per output value."""
        return 4 * output.numel()


class PyramidSpatioTemporalPooling(nn.Module):
    """For each pool size ``(2, h, w)``: average over the previous and current frame and h×w windows (stride
    ``(1, h, w)``, the left time padding not counted in the average), 1×1×1 convolution + BatchNorm + ReLU to
    ``reduction_channels``, the step the right padding adds dropped, and a bilinear resize back to H×W."""

    def __init__(self, in_channels: int, reduction_channels: int, pool_sizes: list[tuple[int, int, int]]):
        super().__init__()
        features = []
        for pool_size in pool_sizes:
            if pool_size[0] != 2:
                # PyTorch pads at most half the kernel, and one frame of left padding needs a time kernel of 2
                raise ValueError(f"the time kernel of the pyramid pooling must be 2, got pool size {pool_size}")
            features.append(nn.Sequential(OrderedDict([
                ("avgpool", AvgPool3d(pool_size, stride=(1, *pool_size[1:]), padding=(pool_size[0] - 1, 0, 0),
                                      count_include_pad=False)),
                ("conv_bn_relu", conv_1x1x1_norm_activated(in_channels, reduction_channels)),
            ])))
        self.features = nn.ModuleList(features)
        self.resize = BilinearResize()

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        # the pooling's padding of one frame on both ends gives T + 1 steps; the last one would see frame T
        pooled = [self.resize(f(x)[:, :, :-1], (h, w)) for f in self.features]  # each (B, C_red, T, H, W)
        return torch.cat(pooled, dim=1)


class TemporalBlock(nn.Module):
    """Convolution paths 2×3×3, 1×3×3 (each after a 1×1×1 projection to half the channels) and 1×1×1, with the
    optional pyramid pooling, concatenated, aggregated by a 1×1×1 convolution, plus a residual."""

    def __init__(self, in_channels: int, out_channels: int | None = None, use_pyramid_pooling: bool = False,
                 pool_sizes: list[tuple[int, int, int]] | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.half_channels = in_channels // 2
        self.out_channels = out_channels or in_channels
        self.use_pyramid_pooling = use_pyramid_pooling

        paths: list[nn.Module] = [
            nn.Sequential(conv_1x1x1_norm_activated(in_channels, self.half_channels),
                          CausalConv3d(self.half_channels, self.half_channels, kernel_size=kernel))
            for kernel in TEMPORAL_BLOCK_KERNELS]
        paths.append(conv_1x1x1_norm_activated(in_channels, self.half_channels))
        self.convolution_paths = nn.ModuleList(paths)
        aggregation_channels = len(paths) * self.half_channels

        if use_pyramid_pooling:
            if not pool_sizes:
                raise ValueError("the pyramid pooling needs pool_sizes, a list of (2, h, w) kernels")
            reduction_channels = in_channels // 3
            self.pyramid_pooling = PyramidSpatioTemporalPooling(in_channels, reduction_channels, pool_sizes)
            aggregation_channels += len(pool_sizes) * reduction_channels

        self.aggregation = nn.Sequential(conv_1x1x1_norm_activated(aggregation_channels, self.out_channels))
        self.projection = None
        if self.out_channels != in_channels:
            self.projection = nn.Sequential(nn.Conv3d(in_channels, self.out_channels, kernel_size=1, bias=False),
                                            nn.BatchNorm3d(self.out_channels))

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, T, H, W)
        branches = [path(x) for path in self.convolution_paths]
        if self.use_pyramid_pooling:
            branches.append(self.pyramid_pooling(x))
        residual = self.aggregation(torch.cat(branches, dim=1))
        skip = self.projection(x) if self.projection is not None else x
        return skip + residual


# --- the model (fiery/models/temporal_model.py) --------------------------------------------------------------

class TemporalModel(nn.Module):
    """FIERY's temporal model. Input ``(B, T, C, H, W)`` features with ``T ≥ receptive_field``; output
    ``(B, T − receptive_field + 1, out_channels, H, W)``, the steps that see a full receptive field.

    With pyramid pooling, H and W must be at least ``input_hw``: the pooling window is ``input_hw``, so on the
    built size it averages the whole map (on a larger map it averages ``input_hw`` tiles, as the official code
    does).
    """

    def __init__(self, config: FieryTemporalConfig):
        super().__init__()
        self.config = config
        self.receptive_field = config.receptive_field
        h, w = config.input_hw
        pool_sizes = [(2, h, w)] if config.use_pyramid_pooling else None
        layers: list[nn.Module] = []
        for block_in, block_out in zip(config.block_in_channels, config.block_out_channels):
            layers.append(TemporalBlock(block_in, block_out, use_pyramid_pooling=config.use_pyramid_pooling,
                                        pool_sizes=pool_sizes))
            layers.extend(Bottleneck3D(block_out, block_out, kernel_size=SPATIAL_KERNEL)
                          for _ in range(config.n_spatial_layers_between_temporal_layers))
        self.out_channels = config.out_channels
        # one flat Sequential of blocks and bottlenecks, as the official code builds it: names model.0, model.1, …
        self.model = nn.Sequential(*layers)

    def check_input(self, x: Tensor) -> tuple[int, int, int, int]:
        """Check that ``x`` is a ``(B, T, C, H, W)`` float tensor the model can take; return ``(B, T, H, W)``.

        Raises ``ValueError`` stating the expected layout and sizes."""
        cfg = self.config
        expected = (f"expected a float tensor (B, T, C, H, W) of feature maps with C={cfg.in_channels} and "
                    f"T ≥ {cfg.receptive_field} (the receptive field)")
        min_h, min_w = cfg.input_hw if cfg.use_pyramid_pooling and cfg.n_temporal_layers else (1, 1)
        if cfg.use_pyramid_pooling and cfg.n_temporal_layers:
            expected += f", H ≥ {min_h} and W ≥ {min_w} (the pyramid pooling's window, input_hw)"
        if not isinstance(x, Tensor) or x.ndim != 5 or not x.is_floating_point():
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{expected}; got {got}")
        b, t, c, h, w = x.shape
        if c != cfg.in_channels or t < cfg.receptive_field or h < min_h or w < min_w:
            raise ValueError(f"{expected}; got shape {tuple(x.shape)}")
        return b, t, h, w

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        x = x.permute(0, 2, 1, 3, 4)  # (B, C, T, H, W) for the 3D convolutions
        x = self.model(x)
        x = x.permute(0, 2, 1, 3, 4).contiguous()  # (B, T, C_out, H, W)
        return x[:, self.receptive_field - 1:]  # the steps that see a full receptive field


def checkpoint_hint(state: dict[str, Tensor], wrong: list[str], config: FieryTemporalConfig) -> list[str]:
    """Say which hyperparameters would make a mismatching checkpoint fit."""
    hints = []
    first_path = state.get("model.0.convolution_paths.0.0.conv.weight")
    if first_path is not None:
        hints.append(f"in_channels={first_path.shape[1]}")
    aggregation = state.get("model.0.aggregation.0.conv.weight")
    if aggregation is not None:
        hints.append(f"start_out_channels={aggregation.shape[0]}")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.convolution_paths\.", k))}
    layers = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.", k))}
    if blocks:
        hints.append(f"receptive_field={len(blocks) + 1}")
        hints.append(f"n_spatial_layers_between_temporal_layers={(len(layers) - len(blocks)) // len(blocks)}")
    if state and "model.0.convolution_paths.0.0.conv.weight" in state:
        pooling = any(".pyramid_pooling." in k for k in state)
        hints.append(f"use_pyramid_pooling={pooling}")
    return hints


# --- checkpoint layouts -------------------------------------------------------------------------------------

_FIERY_PREFIX = re.compile(r"^(?:.*\.)?temporal_model\.")

CHECKPOINT_LAYOUTS = (
    # a full FIERY checkpoint (Lightning: {"state_dict": {"model.temporal_model.model.0...": ...}}, or the bare
    # Fiery module's state dict with "temporal_model.model.0..."): keep the temporal model's sub-dict
    CheckpointLayout(
        "FIERY (wayveai/fiery, full model)",
        detect=lambda sd: any(_FIERY_PREFIX.match(k) for k in sd),
        convert=lambda sd, cfg: {_FIERY_PREFIX.sub("", k, count=1): v for k, v in sd.items()
                                 if _FIERY_PREFIX.match(k)}),
)


register_family(FieryTemporalConfig, TemporalModel,
                paper="Hu et al., FIERY: Future Instance Prediction in Bird's-Eye View from Surround Monocular "
                      "Cameras (ICCV 2021)",
                repository="https://github.com/wayveai/fiery",
                checkpoint_layouts=CHECKPOINT_LAYOUTS, checkpoint_hint=checkpoint_hint,
                layers=lambda model: [f"model.{i}" for i in range(len(model.model))])
register_preset("fiery_temporal", FieryTemporalConfig(),
                "FIERY temporal model (nuScenes setting): 3 frames of 70-channel 200×200 bird's-eye-view "
                "features → 64 channels, with spatio-temporal pyramid pooling")
