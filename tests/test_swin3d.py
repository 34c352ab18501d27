"""Video Swin: parity with torchvision's swin3d_t, both checkpoint layouts, other input sizes against an
independent computation, the shifted-window mask, published sizes and costs, configs and inputs."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

import official_keys
import videoattn_core as vac
from videoattn_core.attention.maps import capture_all
from reference import Reference, assert_both_paths_match, relative_error
from videoattn_core.models.layers import AttentionCore
from videoattn_core.models.windows import (
    MASK_VALUE, batched_windows, grouped_windows, layout_groups, position_bias, relative_position_index,
    shift_attention_mask, shifted_window_order,
)


@pytest.fixture(scope="module")
def fixture():
    ref = Reference("swin3d_t")
    return ref, ref.state_dict()


@pytest.fixture(scope="module")
def _loaded(fixture):
    model = vac.build_model("swin3d_t")
    report = vac.load_checkpoint(model, fixture[1])
    assert report.layout.startswith("torchvision")
    return model


@pytest.fixture
def torchvision_model(_loaded):
    """swin3d_t with the fixture's weights read from torchvision's layout, fused attention on."""
    yield vac.set_fused_attention(_loaded, True)
    vac.set_fused_attention(_loaded, True)


def test_logits_match_torchvision_swin3d_t(fixture, torchvision_model):
    ref, _ = fixture
    model = torchvision_model
    assert sum(p.numel() for p in model.parameters()) == ref.params == 28_158_070
    fused = assert_both_paths_match(model, ref)
    assert fused.argmax(1).tolist() == ref.logits.argmax(1).tolist()


def test_official_checkpoint_with_the_official_names_loads():
    """What the official (mmaction) training saves: {"meta": ..., "state_dict": {"backbone.<name>", "cls_head.fc_cls.*"}}
    with the persistent relative_position_index buffers, the names exactly as the official SwinTransformer3D and
    I3DHead have them for Swin-T, patch 2×4×4, window 8×7×7 (tests/data/official_keys)."""
    official = official_keys.load("video_swin_swin_tiny_patch244_window877")
    assert official["parameters"] == 28_158_070

    def native_name(key):
        return key.removeprefix("backbone.") if key.startswith("backbone.") else \
            "head." + key.removeprefix("cls_head.fc_cls.")

    official_keys.assert_official_checkpoint_loads(
        vac.build_model("swin3d_t"), official["keys"], lambda state: {"meta": {"epoch": 30}, "state_dict": state},
        native_name, "official (SwinTransformer/Video-Swin-Transformer, mmaction)", torch.randn(1, 3, 4, 64, 64))


# --- an independent computation: global attention over the padded grid, with a block mask --------------------

def _reference_window_attention(x, state, prefix, heads, window, shift):
    """Window attention computed in the original (unrolled) coordinates as one attention over all tokens of the
    padded grid, keys outside a query's (shifted) window excluded: no roll, no window partition."""
    b, t, h, w, c = x.shape
    size = (t, h, w)
    window, shift = list(window), list(shift)
    for axis in range(3):
        if size[axis] <= window[axis]:
            window[axis], shift[axis] = size[axis], 0
    padded = [math.ceil(s / wd) * wd for s, wd in zip(size, window)]
    canvas = x.new_zeros(b, *padded, c)
    canvas[:, :t, :h, :w] = x
    tokens = canvas.reshape(b, -1, c)  # (B, L, C), original order

    coords = torch.stack(torch.meshgrid(*(torch.arange(p) for p in padded), indexing="ij"), -1).reshape(-1, 3)
    rolled = (coords - torch.tensor(shift)) % torch.tensor(padded)  # where each token sits after the roll
    wrapped = coords < torch.tensor(shift)  # tokens that the roll carried from the start to the end
    win_id = rolled // torch.tensor(window)
    in_win = rolled % torch.tensor(window)
    same_window = (win_id[:, None] == win_id[None, :]).all(-1)
    same_region = (wrapped[:, None] == wrapped[None, :]).all(-1)

    # relative position bias, read as the official code does: the flat in-window index n of the clipped window
    # is looked up in the full (8, 7, 7) window's coordinates
    full = (8, 7, 7)
    n = (in_win[:, 0] * window[1] + in_win[:, 1]) * window[2] + in_win[:, 2]
    full_coords = torch.stack((n // (full[1] * full[2]), (n // full[2]) % full[1], n % full[2]), -1).int()
    row = torch.zeros(len(n), len(n), dtype=torch.int32)
    for axis in range(3):
        row = row * (2 * full[axis] - 1) + (full_coords[:, None, axis] - full_coords[None, :, axis] + full[axis] - 1)
    row = row.long()
    region_mask = torch.zeros(row.shape).masked_fill_(~same_region, MASK_VALUE)

    qkv = F.linear(tokens, state[prefix + "attn.qkv.weight"], state[prefix + "attn.qkv.bias"])
    q, k, v = qkv.reshape(b, -1, 3, heads, c // heads).permute(2, 3, 0, 1, 4)  # (3, heads, B, L, d)
    table = state[prefix + "attn.relative_position_bias_table"]
    out = []
    for head in range(heads):  # one head at a time keeps the (L, L) matrices small
        bias = (table[row, head] + region_mask).masked_fill_(~same_window, float("-inf"))
        attn = (q[head] @ k[head].transpose(-2, -1)) * (c // heads) ** -0.5 + bias  # (B, L, L)
        out.append(attn.softmax(-1) @ v[head])
    out = torch.cat(out, -1)  # (B, L, C), heads concatenated
    out = F.linear(out, state[prefix + "attn.proj.weight"], state[prefix + "attn.proj.bias"])
    return out.reshape(b, *padded, c)[:, :t, :h, :w]


def _reference_swin3d_t(state, x):
    """torchvision swin3d_t from its own state dict, window attention by :func:`_reference_window_attention`."""
    def ln(y, name):
        return F.layer_norm(y, y.shape[-1:], state[name + ".weight"], state[name + ".bias"], 1e-5)

    t, h, w = x.shape[2:]
    x = F.pad(x, (0, -w % 4, 0, -h % 4, 0, -t % 2))
    x = F.conv3d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=(2, 4, 4))
    x = ln(x.permute(0, 2, 3, 4, 1), "patch_embed.norm")
    for stage, (depth, heads) in enumerate(zip((2, 2, 6, 2), (3, 6, 12, 24))):
        for block in range(depth):
            p = f"features.{2 * stage}.{block}."
            shift = (0, 0, 0) if block % 2 == 0 else (4, 3, 3)
            x = x + _reference_window_attention(ln(x, p + "norm1"), state, p, heads, (8, 7, 7), shift)
            y = F.gelu(F.linear(ln(x, p + "norm2"), state[p + "mlp.0.weight"], state[p + "mlp.0.bias"]))
            x = x + F.linear(y, state[p + "mlp.3.weight"], state[p + "mlp.3.bias"])
        if stage < 3:
            p = f"features.{2 * stage + 1}."
            x = F.pad(x, (0, 0, 0, x.shape[3] % 2, 0, x.shape[2] % 2))
            parts = [x[:, :, i::2, j::2] for j in (0, 1) for i in (0, 1)]
            x = F.linear(ln(torch.cat(parts, -1), p + "norm"), state[p + "reduction.weight"])
    x = ln(x, "norm").mean(dim=(1, 2, 3))
    return F.linear(x, state["head.weight"], state["head.bias"])


@pytest.mark.parametrize("shape", [
    (2, 3, 9, 116, 76),  # token grid 5×29×19: T clipped, H and W padded; a stage with H shifted and W clipped
    (1, 3, 18, 46, 30),  # 9×12×8 (H, W not multiples of the patch): T shifted and padded to 16; later H, W clipped
    (2, 3, 32, 56, 56),  # 16×14×14: whole windows shifted on all three axes, two clips (windows grouped by mask)
])
@pytest.mark.parametrize("weight_seed", [1, 2])
def test_other_input_sizes_match_an_independent_computation(fixture, torchvision_model, shape, weight_seed):
    """At the fixture's weight seed and at another (our model re-read from torchvision's layout)."""
    ref, state = fixture
    model = torchvision_model
    if weight_seed != 1:
        state = ref.state_dict(weight_seed=weight_seed)
        model = vac.build_model("swin3d_t")
        assert vac.load_checkpoint(model, state).layout.startswith("torchvision")
    x = torch.randn(shape)
    with torch.no_grad():
        expected = _reference_swin3d_t(state, x)
        fused = model(x)
        vac.set_fused_attention(model, False)
        explicit = model(x)
    assert fused.shape == (shape[0], 400)
    assert relative_error(fused, expected) <= 1e-5
    assert relative_error(explicit, expected) <= 1e-5


# --- the shifted-window mask ---------------------------------------------------------------------------------

def _small(**overrides):
    base = dict(embed_dim=16, depths=(2,), num_heads=(2,), window_size=(2, 4, 4), num_classes=7)
    base.update(overrides)
    return vac.build_model("swin3d_t", **base)


def _captured(model, x):
    return capture_all(model, x)


def test_no_query_attends_across_regions_the_cyclic_shift_joined():
    model = _small()
    with torch.no_grad():  # a large bias so that masked logits would otherwise win
        for block in model.layers[0].blocks:
            block.attn.relative_position_bias_table.normal_(0, 3)
    plain, shifted = _captured(model, torch.randn(1, 3, 8, 32, 32))  # token grid 4×8×8, window 2×4×4
    assert shifted.layout.shift == (1, 2, 2) and plain.layout.shift == (0, 0, 0)

    for capture in (plain, shifted):
        layout = capture.layout
        grid, window = torch.tensor(layout.padded_grid), torch.tensor(layout.window)
        n_windows = (grid // window).tolist()
        origin = torch.stack(torch.meshgrid(*(torch.arange(n) for n in n_windows), indexing="ij"), -1)
        origin = origin.reshape(-1, 1, 3) * window  # (nW, 1, 3) corner of each window on the rolled grid
        offset = torch.stack(torch.meshgrid(*(torch.arange(w) for w in layout.window), indexing="ij"), -1)
        position = origin + offset.reshape(1, -1, 3)  # (nW, N, 3)
        original = (position + torch.tensor(layout.shift)) % grid  # where each token was in the video
        # two tokens of a window were neighbours in the video iff they are less than a window apart on each axis
        joined = ((original[:, :, None] - original[:, None, :]).abs() >= window).any(-1)  # (nW, N, N)
        probs = capture.probs  # (nW, heads, N, N)
        across = probs.masked_select(joined[:, None])
        within = probs.masked_fill(joined[:, None], 0).sum(-1)
        if capture is plain:
            assert not joined.any()
        else:
            assert joined.any()
            assert across.max() < 1e-30
        torch.testing.assert_close(within, torch.ones_like(within))


def test_shift_mask_matches_the_slice_construction():
    """The region rule of the official code: label three slices per axis of the padded grid, mask differences."""
    for grid, window, shift in [((4, 14, 14), (2, 7, 7), (1, 3, 3)), ((8, 12, 9), (8, 4, 3), (0, 2, 1))]:
        labels = torch.zeros(grid)
        count = 0
        slices = [(slice(0, -w), slice(-w, -s), slice(-s, None)) for w, s in zip(window, shift)]
        for st in slices[0]:
            for sh in slices[1]:
                for sw in slices[2]:
                    labels[st, sh, sw] = count
                    count += 1
        nt, nh, nw = (g // w for g, w in zip(grid, window))
        windows = labels.reshape(nt, window[0], nh, window[1], nw, window[2]).permute(0, 2, 4, 1, 3, 5)
        windows = windows.reshape(nt * nh * nw, -1)
        expected = (windows[:, None, :] != windows[:, :, None]).float() * -100.0
        torch.testing.assert_close(shift_attention_mask(grid, window, shift), expected, rtol=0, atol=0)


@pytest.mark.parametrize("size, window, shift, batch", [
    ((4, 14, 14), (2, 7, 7), (1, 3, 3), 2), ((16, 56, 56), (8, 7, 7), (4, 3, 3), 1), ((8, 12, 9), (8, 4, 3), (0, 2, 1), 3),
    ((3, 15, 13), (2, 7, 7), (1, 3, 3), 2),  # padded to 4×21×14
])
def test_grouped_windows_hold_each_window_once_with_its_own_mask(size, window, shift, batch):
    """The fused path's window order: every (clip, window) of the padded grid once, runs of windows that share a
    mask, the unmasked first, and ``scatter`` undoing ``gather`` for the tokens of the unpadded grid."""
    grouped = grouped_windows(size, window, shift, torch.device("cpu"), torch.float32)
    gather, scatter, sizes = batched_windows(grouped, batch)
    grid = tuple(-(-s // w) * w for s, w in zip(size, window))
    n, tokens = math.prod(window), math.prod(grid)
    masks = shift_attention_mask(grid, window, shift)  # (nW, N, N), windows in (nt nh nw) order
    order, _ = shifted_window_order(grid, window, shift)
    assert sorted(gather.tolist()) == list(range(batch * tokens))
    unpadded = torch.arange(batch * tokens).view(batch, *grid)[:, :size[0], :size[1], :size[2]].reshape(-1)
    assert torch.equal(gather[scatter], unpadded)
    assert sum(sizes) == batch * masks.shape[0] and len(sizes) <= 8
    assert not grouped.masks[0].any() and all(m.any() for m in grouped.masks[1:])
    first_rows = order.view(-1, n)[:, 0].tolist()  # a window is known by its first token
    rows = gather.view(-1, n)
    in_layout = layout_groups(grouped, batch)  # where a gradient sink is told each group sits: (b nw)
    start = 0
    for mask, size in zip(grouped.masks, sizes):
        for j, group in enumerate(rows[start:start + size], start):
            clip, first = divmod(int(group[0]), tokens)
            index = first_rows.index(first)
            assert torch.equal(group - clip * tokens, order.view(-1, n)[index])
            torch.testing.assert_close(masks[index], mask, rtol=0, atol=0)
            assert int(in_layout[j]) == clip * masks.shape[0] + index
        start += size


@pytest.mark.parametrize("size", [64, 60])  # token grids 4×16×16 (whole windows) and 4×15×15 (padded to 16×16)
def test_fused_path_never_repeats_a_bias_per_window(size):
    """The relative position bias and each region mask reach the fused kernel once, broadcast over the windows
    that share them: no ``(windows, heads, N, N)`` tensor is written (it was a fifth of swin3d_t's time)."""
    masks = []

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is F.scaled_dot_product_attention:
                masks.append((args[0].shape[0], kwargs["attn_mask"].shape))
            return func(*args, **kwargs)

    model = _small(depths=(2, 2), num_heads=(2, 4), window_size=(2, 4, 4)).eval()
    with torch.no_grad(), Spy():
        model(torch.randn(2, 3, 8, size, size))  # then 4×8×8
    assert masks and all(shape[0] == 1 for _, shape in masks)
    assert sum(groups for groups, _ in masks) == 2 * 2 * (2 * 4 * 4 + 2 * 2 * 2)  # clips · blocks · windows


def test_window_and_shift_clipped_to_small_maps():
    model = _small(depths=(2, 2), num_heads=(2, 4), window_size=(8, 7, 7))
    captures = _captured(model, torch.randn(1, 3, 6, 40, 64))  # grids 3×10×16 then 3×5×8
    assert [c.layout.window for c in captures] == [(3, 7, 7), (3, 7, 7), (3, 5, 7), (3, 5, 7)]
    assert [c.layout.shift for c in captures] == [(0, 0, 0), (0, 3, 3), (0, 0, 0), (0, 0, 3)]
    assert [c.layout.padded_grid for c in captures] == [(3, 14, 21), (3, 14, 21), (3, 5, 14), (3, 5, 14)]
    assert captures[1].layout.grid == (3, 10, 16) and captures[1].probs.shape == (2 * 3, 2, 147, 147)


def test_sdpa_and_explicit_paths_agree_with_batch_and_padding():
    model = _small(depths=(2, 2), num_heads=(2, 4), window_size=(2, 3, 3))
    x = torch.randn(3, 3, 7, 36, 28)
    with torch.no_grad():
        fused = model(x)
        vac.set_fused_attention(model, False)
        explicit = model(x)
        single = model(x[1:2])
    assert fused.shape == (3, 7)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(single, explicit[1:2], rtol=1e-5, atol=1e-5)


# --- catalog --------------------------------------------------------------------------------------------------

def _frame_uniform_test_indices(total: int, clip_len: int) -> list[int]:
    """Video-Swin-Transformer mmaction/datasets/pipelines/loading.py, SampleFrames with frame_uniform=True in test
    mode (get_seq_frames): clip_len segments of (total − 1) / clip_len frames, the middle of each."""
    seg = (total - 1) / clip_len
    return [(int(np.round(seg * i)) + int(np.round(seg * (i + 1)))) // 2 for i in range(clip_len)]


def test_ssv2_recipe_reads_what_the_sthv2_config_reads():
    """configs/recognition/swin/swin_base_patch244_window1677_sthv2.py, test_pipeline: SampleFrames(clip_len=32,
    frame_interval=2, num_clips=1, frame_uniform=True, test_mode=True) (frame_uniform ignores frame_interval),
    Resize(-1, 224), ThreeCrop(224): one clip of 32 uniformly spread frames × 3 crops."""
    from videoattn_core.clips.sampling import clip_indices

    entry = vac.get_entry("swin3d_b.official_ssv2")
    r = entry.recipe
    assert (r.num_frames, r.sampling, r.clips, r.crops, r.resize, r.crop) == (32, "uniform", 1, 3, 224, 224)
    assert (r.resampling, r.clip_rule) == ("mmaction", "mmaction")
    assert "SampleFrames(clip_len=32, frame_interval=2, num_clips=1, frame_uniform=True" in r.source
    assert "clip_len=1" not in r.source and "1 temporal clip × 3 spatial crops" in entry.metrics_protocol
    for total in (33, 48, 97, 250):
        assert clip_indices(total, 32, r.sampling_rate, rule=r.clip_rule) == _frame_uniform_test_indices(total, 32)


# --- published sizes and costs -------------------------------------------------------------------------------

def test_published_parameter_counts():
    counts = {"swin3d_t": 28_158_070, "swin3d_s": 49_816_678, "swin3d_b": 88_048_984}
    for name, expected in counts.items():
        model = vac.build_model(name, device="meta")
        assert sum(p.numel() for p in model.parameters()) == expected, name
    large = vac.build_model("swin3d_l", device="meta")
    assert round(sum(p.numel() for p in large.parameters()) / 1e6, 1) == 197.0


def _fvcore_gmacs(model, shape):
    """Multiply-accumulates as fvcore counts them (linear, conv, attention products, 5 per normalised element),
    from the shapes every leaf module sees."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        elif isinstance(module, nn.Conv3d):
            total += output.numel() * math.prod(module.weight.shape[1:])
        elif isinstance(module, nn.LayerNorm):
            total += inputs[0].numel() * 5
        elif isinstance(module, AttentionCore):
            q, k, v = inputs[:3]
            total += q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * (q.shape[3] + v.shape[3])

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        out = model(torch.zeros(shape, device="meta"))
    for handle in handles:
        handle.remove()
    assert out.shape == (shape[0], model.config.num_classes)
    return total / 1e9


@pytest.mark.parametrize("name, frames, gmacs", [
    ("swin3d_t", 16, 44.03), ("swin3d_t", 32, 88.06), ("swin3d_s", 16, 83.06), ("swin3d_b", 16, 140.96),
    ("swin3d_l", 32, 604),
])
def test_published_costs(name, frames, gmacs):
    model = vac.build_model(name, device="meta")
    assert model.config.input_shape() == (1, 3, 32, 224, 224)
    assert _fvcore_gmacs(model, (1, 3, frames, 224, 224)) == pytest.approx(gmacs, rel=2e-3)


# --- configs, inputs, checkpoints ----------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, field, words", [
    (dict(num_heads=(3, 6, 12)), "num_heads", "one entry per stage"),
    (dict(embed_dim=100), "num_heads", "does not divide"),
    (dict(window_size=(7, 7)), "window_size", "of length 3"),
    (dict(patch_size=(2, 0, 4)), "patch_size", "from 1"),
    (dict(depths=()), "depths", "1 to 8 stages"),
    (dict(depths=(2, 2, 0, 2)), "depths", "from 1"),
    (dict(drop_path_rate=1.5), "drop_path_rate", "from 0.0 to 0.99"),
])
def test_impossible_configs_raise_config_error(overrides, field, words):
    with pytest.raises(vac.ConfigError) as info:
        vac.build_model("swin3d_t", device="meta", **overrides)
    assert info.value.field == field
    assert field in str(info.value) and words in str(info.value)


@pytest.mark.parametrize("x", [torch.randn(3, 8, 32, 32), torch.randn(1, 1, 8, 32, 32),
                               torch.zeros(1, 3, 8, 32, 32, dtype=torch.uint8)])
def test_wrong_input_says_what_is_expected(x):
    with pytest.raises(ValueError, match=r"expected a float tensor \(B, C, T, H, W\) with C=3"):
        _small()(x)


def test_native_state_dict_has_official_names_and_no_derived_buffers():
    keys = set(vac.build_model("swin3d_t", device="meta").state_dict())
    for name in ("patch_embed.proj.weight", "patch_embed.norm.weight", "layers.0.blocks.1.norm1.weight",
                 "layers.0.blocks.1.attn.qkv.weight", "layers.0.blocks.1.attn.proj.bias",
                 "layers.0.blocks.1.attn.relative_position_bias_table", "layers.3.blocks.1.mlp.fc2.weight",
                 "layers.2.downsample.reduction.weight", "layers.2.downsample.norm.bias", "norm.weight",
                 "head.weight"):
        assert name in keys
    assert not any("relative_position_index" in k for k in keys)
    assert "layers.3.downsample.reduction.weight" not in keys


def test_mismatching_checkpoint_names_the_fitting_hyperparameters():
    base = vac.build_model("swin3d_b", device="meta", num_classes=600).state_dict()
    with pytest.raises(vac.CheckpointError) as info:
        vac.load_checkpoint(vac.build_model("swin3d_t", device="meta"), base)
    message = str(info.value)
    assert "num_classes=600" in message and "embed_dim=128" in message
    assert "depths=(2, 2, 18, 2)" in message and "num_heads=(4, 8, 16, 32)" in message


_LARGEST_SUMMARY = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a regression fails here, not by exhausting the machine
import videoattn_core as vac
for preset in ("swin3d_t", "swin_divided_st_t"):
    specs = {s.name: s for s in vac.get_config(preset).field_specs()}
    summary = vac.summarize(preset, num_frames=specs["num_frames"].max, img_size=specs["img_size"].max)
    assert summary.macs > 0
# this process's peak resident memory (ru_maxrss would count the forked test worker's pages from before exec)
print(next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def test_a_summary_at_the_largest_sizes_allowed_needs_no_token_tables():
    """The Model page summarises on the meta device; the window index tables are real tensors of 8 bytes a token
    elsewhere, and at 1024 frames × 4096² (5·10⁸ tokens) they took tens of GB and killed the server. On the meta
    device they are empty tensors of the right shape: the whole summary stays well under 4 GB of address space."""
    done = subprocess.run([sys.executable, "-c", _LARGEST_SUMMARY], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) < 1500  # peak MB: about 1150 measured (swin_divided_st_t; swin3d_t alone 420)


def test_meta_window_tables_have_the_real_ones_shapes_and_counts():
    size, window, shift = (3, 15, 13), (2, 7, 7), (1, 3, 3)
    real = grouped_windows(size, window, shift, torch.device("cpu"), torch.float32)
    meta = grouped_windows(size, window, shift, torch.device("meta"), torch.float32)
    assert meta.gather.is_meta and meta.scatter.is_meta and meta.masks.is_meta
    assert (meta.gather.shape, meta.scatter.shape, meta.masks.shape, meta.counts) == \
        (real.gather.shape, real.scatter.shape, real.masks.shape, real.counts)
    grid = (4, 14, 14)
    for ours, theirs in zip(shifted_window_order(grid, window, shift, torch.device("meta")),
                            shifted_window_order(grid, window, shift)):
        assert ours.is_meta and ours.shape == theirs.shape and ours.dtype == theirs.dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_position_bias_reads_the_table_as_the_official_code(dtype):
    """The window bias is the official lookup ``table[index.view(-1)].view(N, N, heads).permute(2, 0, 1)``, bitwise
    in every dtype (half precision is gathered in float32 on the CPU: a faster path that must not change a value),
    and the table's gradient flows through it."""
    window = (2, 3, 4)
    index = relative_position_index(window)
    n, heads = index.shape[0], 5
    rows = math.prod(2 * w - 1 for w in window)
    table = torch.randn(rows, heads, generator=torch.Generator().manual_seed(0)).to(dtype)
    official = table[index.reshape(-1)].view(n, n, heads).permute(2, 0, 1).unsqueeze(0)
    bias = position_bias(table, index)
    assert bias.dtype == dtype and bias.is_contiguous()
    assert torch.equal(bias, official)

    table.requires_grad_(True)
    weights = torch.randn(official.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    (position_bias(table, index).float() * weights.float()).sum().backward()
    expected = torch.zeros(rows, heads, dtype=torch.float64).index_add_(
        0, index.reshape(-1), weights.double()[0].permute(1, 2, 0).reshape(-1, heads))
    torch.testing.assert_close(table.grad.double(), expected, rtol=1e-2 if dtype != torch.float32 else 1e-6,
                               atol=1e-2 if dtype != torch.float32 else 1e-6)
