"""FIERY's temporal model: shapes, causality, receptive field, parameter and MAC counts, checkpoints, configs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import videoattn_core as vac
from videoattn_core.models.fiery import (SPATIAL_KERNEL, TEMPORAL_BLOCK_KERNELS, BilinearResize, FieryTemporalConfig,
                                        PyramidSpatioTemporalPooling)


def analytic_macs(config: FieryTemporalConfig, frames: int | None = None, height: int | None = None,
                  width: int | None = None, batch: int = 1) -> dict[str, int]:
    """Multiply-accumulates of one forward pass, from the layer definitions (no tensors involved).

    ``conv``: every 3D convolution, ``out elements × in_channels × kernel volume`` (no groups here); the time
    axis keeps T steps through every block (causal padding), except the pyramid pooling's 1×1×1 convolution,
    which runs on the T + 1 pooled steps before the last one is dropped, over a grid of ⌊(H − h) / h⌋ + 1 ×
    ⌊(W − w) / w⌋ + 1 windows. ``resize``: the bilinear upsampling, 4 per output value (fvcore's convention).
    Average pooling counts zero (additions only, fvcore's convention), BatchNorm is left to the counter's norm
    rule.
    """
    _, t, _, h, w = config.input_shape(frames, None, batch)
    if height is not None:
        h = height
    if width is not None:
        w = width
    positions = batch * t * h * w
    conv = resize = 0
    for cin, cout in zip(config.block_in_channels, config.block_out_channels):
        half = cin // 2
        for kernel in TEMPORAL_BLOCK_KERNELS:
            kt, kh, kw = kernel
            conv += positions * cin * half + positions * half * half * kt * kh * kw
        conv += positions * cin * half  # the 1×1×1 path
        aggregation_in = 3 * half
        if config.use_pyramid_pooling:
            pool_h, pool_w = config.input_hw
            reduction = cin // 3
            pooled_positions = batch * (t + 1) * ((h - pool_h) // pool_h + 1) * ((w - pool_w) // pool_w + 1)
            conv += pooled_positions * cin * reduction
            resize += 4 * batch * reduction * t * h * w
            aggregation_in += reduction
        conv += positions * aggregation_in * cout
        if cout != cin:
            conv += positions * cin * cout  # the residual projection
        bottleneck = cout // 2
        kt, kh, kw = SPATIAL_KERNEL
        per_bottleneck = positions * (cout * bottleneck + bottleneck * bottleneck * kt * kh * kw + bottleneck * cout)
        conv += config.n_spatial_layers_between_temporal_layers * per_bottleneck
    return {"conv": conv, "resize": resize}


def _small(**overrides):
    base = dict(in_channels=12, start_out_channels=16, input_hw=(6, 8))
    base.update(overrides)
    return vac.build_model("fiery_temporal", **base)


def _randomise_norms(model: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms, so a test sees their effect."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


# --- the preset ---------------------------------------------------------------------------------------------

def test_preset_is_fiery_default_setting():
    assert "fiery_temporal" in vac.list_models()
    model = vac.build_model("fiery_temporal", device="meta")
    cfg = model.config
    # fiery/config.py: 64 encoder channels + 6 ego-motion channels, TIME_RECEPTIVE_FIELD 3, 200×200 BEV grid
    # (X/Y bounds ±50 m at 0.5 m), START_OUT_CHANNELS 64, EXTRA_IN_CHANNELS 0, INBETWEEN_LAYERS 0, pooling on
    assert (cfg.in_channels, cfg.receptive_field, cfg.input_hw) == (70, 3, (200, 200))
    assert (cfg.start_out_channels, cfg.extra_in_channels, cfg.n_spatial_layers_between_temporal_layers) == (64, 0, 0)
    assert cfg.use_pyramid_pooling
    assert type(cfg).has_head is False and type(cfg).input_layout == "B T C H W"
    assert sum(p.numel() for p in model.parameters()) == 98_473
    assert model.out_channels == 64
    assert cfg.input_shape() == (1, 3, 70, 200, 200)
    assert cfg.input_shape(frames=5, size=64, batch=2) == (2, 5, 70, 64, 64)
    assert cfg.replace(num_frames=6).input_shape() == (1, 6, 70, 200, 200)


def test_preset_runs_on_its_default_input_shape():
    model = vac.build_model("fiery_temporal", input_hw=(20, 20))  # the preset's network on a smaller grid
    x = torch.randn(model.config.input_shape(batch=2))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 1, 64, 20, 20) and torch.isfinite(out).all()


# --- shapes -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("receptive_field, frames, hw, extra, spatial, pooling", [
    (1, 3, (6, 8), 0, 0, True),
    (2, 2, (6, 8), 0, 0, True),
    (3, 5, (6, 8), 4, 1, True),
    (4, 4, (5, 7), 8, 2, False),
    (5, 9, (3, 4), 2, 0, True),
])
def test_output_shapes(receptive_field, frames, hw, extra, spatial, pooling):
    model = _small(receptive_field=receptive_field, input_hw=hw, extra_in_channels=extra,
                   n_spatial_layers_between_temporal_layers=spatial, use_pyramid_pooling=pooling)
    x = torch.randn(2, frames, 12, *hw)
    with torch.no_grad():
        out = model(x)
    channels = 16 + (receptive_field - 2) * extra if receptive_field > 1 else 12
    assert model.out_channels == channels
    assert out.shape == (2, frames - receptive_field + 1, channels, *hw)
    assert len(model.model) == (receptive_field - 1) * (1 + spatial)
    if receptive_field == 1:  # no temporal block: FIERY's identity temporal model
        assert torch.equal(out, x)


def test_larger_map_than_built_for_pools_tiles():
    model = _small(input_hw=(3, 4))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 12, 7, 9))  # a 2×2 grid of 3×4 pooling windows
    assert out.shape == (1, 1, 16, 7, 9)


# --- causality and receptive field --------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    dict(),
    dict(use_pyramid_pooling=False),
    dict(receptive_field=4, n_spatial_layers_between_temporal_layers=1, extra_in_channels=4),
])
def test_no_output_step_depends_on_a_later_frame(overrides):
    model = _randomise_norms(_small(**overrides))
    rf, frames = model.config.receptive_field, 8
    x = torch.randn(1, frames, 12, 6, 8)
    with torch.no_grad():
        base = model(x)
        for changed in range(rf, frames):
            y = x.clone()
            y[:, changed] += torch.randn_like(y[:, changed])
            out = model(y)
            # output index j is time rf − 1 + j
            before = changed - (rf - 1)
            torch.testing.assert_close(out[:, :before], base[:, :before], rtol=0, atol=0)
            assert not torch.allclose(out[:, before], base[:, before])


@pytest.mark.parametrize("overrides", [dict(), dict(receptive_field=4, n_spatial_layers_between_temporal_layers=1)])
def test_output_sees_exactly_receptive_field_frames(overrides):
    model = _randomise_norms(_small(**overrides))
    rf, frames = model.config.receptive_field, 9
    x = torch.randn(1, frames, 12, 6, 8)
    changed = 2
    y = x.clone()
    y[:, changed] += torch.randn_like(y[:, changed])
    with torch.no_grad():
        base, out = model(x), model(y)
    for j in range(out.shape[1]):
        time = rf - 1 + j
        sees = time - rf + 1 <= changed <= time
        assert sees != torch.equal(out[:, j], base[:, j]), f"output at time {time}"


def test_pyramid_pooling_averages_previous_and_current_frame_over_the_map():
    pooling = PyramidSpatioTemporalPooling(6, 2, [(2, 4, 5)]).eval()
    _randomise_norms(pooling)
    x = torch.randn(2, 6, 3, 4, 5)  # (B, C, T, H, W)
    with torch.no_grad():
        out = pooling(x)
        frame_means = x.mean(dim=(3, 4))  # (B, C, T)
        # the left padding is not counted: the first step averages frame 0 alone
        pooled = torch.stack([frame_means[:, :, 0]] + [(frame_means[:, :, t - 1] + frame_means[:, :, t]) / 2
                                                        for t in range(1, 3)], dim=2)
        conv = pooling.features[0].conv_bn_relu
        w = conv.conv.weight[:, :, 0, 0, 0]  # (2, 6)
        norm = conv.norm
        z = torch.einsum("oc,bct->bot", w, pooled)
        z = (z - norm.running_mean[:, None]) / torch.sqrt(norm.running_var[:, None] + norm.eps)
        expected = torch.relu(z * norm.weight[:, None] + norm.bias[:, None])
    assert out.shape == (2, 2, 3, 4, 5)
    torch.testing.assert_close(out, expected[..., None, None].expand(-1, -1, -1, 4, 5))


# --- parameters and MACs ------------------------------------------------------------------------------------

def _expected_parameters(in_channels, receptive_field, start, extra, spatial, pooling):
    """Parameters from FIERY's layer definitions: bias-free convolutions, each followed by a BatchNorm."""
    def conv_bn(cin, cout, volume=1):
        return cin * cout * volume + 2 * cout

    total, cin, cout = 0, in_channels, start
    for _ in range(receptive_field - 1):
        half = cin // 2
        total += conv_bn(cin, half) + conv_bn(half, half, 2 * 3 * 3)  # path 2×3×3
        total += conv_bn(cin, half) + conv_bn(half, half, 1 * 3 * 3)  # path 1×3×3
        total += conv_bn(cin, half)  # path 1×1×1
        aggregated = 3 * half
        if pooling:
            total += conv_bn(cin, cin // 3)
            aggregated += cin // 3
        total += conv_bn(aggregated, cout)
        if cout != cin:
            total += conv_bn(cin, cout)  # residual projection
        bottleneck = cout // 2
        total += spatial * (conv_bn(cout, bottleneck) + conv_bn(bottleneck, bottleneck, 9) + conv_bn(bottleneck, cout))
        cin, cout = cout, cout + extra
    return total


@pytest.mark.parametrize("in_channels, receptive_field, start, extra, spatial, pooling", [
    (70, 3, 64, 0, 0, True),
    (70, 3, 64, 0, 0, False),
    (12, 4, 16, 8, 2, True),
    (33, 5, 20, 3, 1, False),
    (9, 1, 16, 0, 0, True),
])
def test_parameter_count_from_layer_definitions(in_channels, receptive_field, start, extra, spatial, pooling):
    model = vac.build_model("fiery_temporal", device="meta", in_channels=in_channels,
                            receptive_field=receptive_field, start_out_channels=start, extra_in_channels=extra,
                            n_spatial_layers_between_temporal_layers=spatial, use_pyramid_pooling=pooling)
    expected = _expected_parameters(in_channels, receptive_field, start, extra, spatial, pooling)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("hw", [(6, 8), (13, 17)])
def test_convolution_macs_match_flop_counter_and_formula(hw):
    model = _small(receptive_field=3, extra_in_channels=4, n_spatial_layers_between_temporal_layers=1)
    macs, resize = [], []

    def conv_hook(module, inputs, output):
        volume = math.prod(module.kernel_size)
        macs.append(output.numel() * module.in_channels // module.groups * volume)

    def resize_hook(module, inputs, output):
        resize.append(module.flop_count(inputs, output))

    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            m.register_forward_hook(conv_hook)
        if isinstance(m, BilinearResize):
            m.register_forward_hook(resize_hook)
    x = torch.randn(2, 4, 12, *hw)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    assert sum(macs) > 0
    assert counter.get_total_flops() == 2 * sum(macs)  # FlopCounterMode counts a multiply-add as 2 FLOPs
    formula = analytic_macs(model.config, frames=4, height=hw[0], width=hw[1], batch=2)
    assert formula["conv"] == sum(macs)
    assert formula["resize"] == sum(resize) == 4 * 2 * (12 // 3 + 16 // 3) * 4 * hw[0] * hw[1]


def test_preset_macs_formula_matches_flop_counter_on_meta():
    model = vac.build_model("fiery_temporal", device="meta")
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(model.config.input_shape(), device="meta"))
    assert analytic_macs(model.config)["conv"] * 2 == counter.get_total_flops() == 22_650_503_632


# --- checkpoints --------------------------------------------------------------------------------------------

def test_state_dict_names_follow_the_official_module_tree():
    model = _small(receptive_field=3, extra_in_channels=4, n_spatial_layers_between_temporal_layers=1)
    names = {k for k, _ in model.named_parameters()}
    bn = ("weight", "bias")
    block0 = {f"model.0.{p}" for p in
              [f"convolution_paths.{i}.0.conv.weight" for i in (0, 1)]
              + [f"convolution_paths.{i}.0.norm.{b}" for i in (0, 1) for b in bn]
              + [f"convolution_paths.{i}.1.conv.weight" for i in (0, 1)]
              + [f"convolution_paths.{i}.1.norm.{b}" for i in (0, 1) for b in bn]
              + ["convolution_paths.2.conv.weight"] + [f"convolution_paths.2.norm.{b}" for b in bn]
              + ["pyramid_pooling.features.0.conv_bn_relu.conv.weight"]
              + [f"pyramid_pooling.features.0.conv_bn_relu.norm.{b}" for b in bn]
              + ["aggregation.0.conv.weight"] + [f"aggregation.0.norm.{b}" for b in bn]
              + ["projection.0.weight"] + [f"projection.1.{b}" for b in bn]}
    bottleneck1 = {f"model.1.layers.{layer}.{p}" for layer in ("conv_down_project", "conv", "conv_up_project")
                   for p in ("conv.weight", "norm.weight", "norm.bias")}
    assert block0 <= names and bottleneck1 <= names
    assert {k for k in names if k.startswith(("model.0.", "model.1."))} == block0 | bottleneck1
    assert "model.2.convolution_paths.0.1.conv.weight" in names and "model.3.layers.conv.conv.weight" in names
    assert model.model[0].convolution_paths[0][1].conv.weight.shape == (6, 6, 2, 3, 3)
    assert model.model[0].convolution_paths[1][1].conv.weight.shape == (6, 6, 1, 3, 3)
    assert model.model[1].layers.conv.conv.weight.shape == (8, 8, 1, 3, 3)


def _trained(model):
    _randomise_norms(model)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if p.ndim == 1 else 0.0))
    return model


def test_full_fiery_checkpoint_loads_through_its_temporal_model_prefix(tmp_path):
    source = _trained(_small())
    x = torch.randn(1, 3, 12, 6, 8)
    with torch.no_grad():
        expected = source(x)
    # a Lightning checkpoint of FIERY: the Fiery module is the trainer's `model`
    lightning = {"epoch": 19, "state_dict": {
        **{f"model.temporal_model.{k}": v for k, v in source.state_dict().items()},
        "model.encoder.depth_layer.weight": torch.zeros(3, 3, 1, 1),
        "model.decoder.segmentation_head.0.weight": torch.zeros(2, 4, 1, 1),
        "model.bev_resolution": torch.tensor([0.5, 0.5, 20.0]),
    }}
    path = tmp_path / "fiery.ckpt"
    torch.save(lightning, path)
    model = _small()
    report = vac.load_checkpoint(model, path)
    assert report.layout.startswith("FIERY")
    assert report.tensors == len(source.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)

    # the bare Fiery module's state dict, and the temporal model's own (native) names
    bare = _small()
    assert vac.load_checkpoint(bare, {f"temporal_model.{k}": v for k, v in source.state_dict().items()}
                               ).layout.startswith("FIERY")
    native = _small()
    assert vac.load_checkpoint(native, source.state_dict()).layout == "native"
    with torch.no_grad():
        torch.testing.assert_close(bare(x), expected)
        torch.testing.assert_close(native(x), expected)


def test_mismatching_checkpoint_says_which_config_fits():
    source = _small(in_channels=9, n_spatial_layers_between_temporal_layers=1, use_pyramid_pooling=False)
    model = _small()
    with pytest.raises(vac.CheckpointError) as info:
        vac.load_checkpoint(model, {f"model.temporal_model.{k}": v for k, v in source.state_dict().items()})
    message = str(info.value)
    assert "detected layout: FIERY" in message
    assert "in_channels=9" in message and "start_out_channels=16" in message
    assert "n_spatial_layers_between_temporal_layers=1" in message and "use_pyramid_pooling=False" in message


# --- configs and inputs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, field, words", [
    (dict(receptive_field=4, num_frames=3), "receptive_field", "larger than num_frames=3"),
    (dict(in_channels=0), "in_channels", "from 1"),
    (dict(start_out_channels=-8), "start_out_channels", "from 1"),
    (dict(in_channels=2), "in_channels", "at least 3"),
    (dict(in_channels=2, use_pyramid_pooling=False), "in_channels", None),
    (dict(in_channels=1, use_pyramid_pooling=False), "in_channels", "at least 2"),
    (dict(start_out_channels=2, receptive_field=3), "start_out_channels", "temporal block 1"),
    (dict(start_out_channels=1, receptive_field=2, n_spatial_layers_between_temporal_layers=1),
     "start_out_channels", "bottleneck"),
    (dict(extra_in_channels=-1), "extra_in_channels", "from 0"),
    (dict(receptive_field=0), "receptive_field", "from 1"),
    (dict(input_hw=(0, 200)), "input_hw", "tuple of integers of length 2"),
    (dict(input_hw=(200,)), "input_hw", "length 2"),
    (dict(use_pyramid_pooling="yes"), "use_pyramid_pooling", "true or false"),
    (dict(input_shape=(200, 200)), "input_shape", "known:"),
])
def test_impossible_configs_raise_config_error(overrides, field, words):
    if words is None:  # the same channels are fine without the pooling's in_channels // 3
        vac.build_model("fiery_temporal", device="meta", **overrides)
        return
    with pytest.raises(vac.ConfigError) as info:
        vac.build_model("fiery_temporal", device="meta", **overrides)
    assert info.value.field == field
    assert field in str(info.value) and words in str(info.value)


def test_receptive_field_within_num_frames_is_accepted():
    cfg = vac.get_config("fiery_temporal", receptive_field=4, num_frames=4)
    assert cfg.input_shape() == (1, 4, 70, 200, 200)


@pytest.mark.parametrize("shape, words", [
    ((1, 2, 12, 6, 8), "T ≥ 3"),  # fewer frames than the receptive field
    ((1, 3, 11, 6, 8), "C=12"),
    ((1, 12, 3, 6, 8), "C=12"),  # B C T H W given instead of B T C H W
    ((1, 3, 12, 5, 8), "H ≥ 6 and W ≥ 8"),  # smaller than the pyramid pooling's window
    ((3, 12, 6, 8), r"\(B, T, C, H, W\)"),
])
def test_wrong_input_says_what_is_expected(shape, words):
    model = _small()
    with pytest.raises(ValueError, match=words):
        model(torch.randn(*shape))


def test_integer_input_rejected_and_small_maps_fine_without_pooling():
    with pytest.raises(ValueError, match="float tensor"):
        _small()(torch.zeros(1, 3, 12, 6, 8, dtype=torch.uint8))
    with torch.no_grad():
        out = _small(use_pyramid_pooling=False)(torch.randn(1, 3, 12, 2, 3))
    assert out.shape == (1, 1, 16, 2, 3)
