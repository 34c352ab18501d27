"""Memory estimates: the live-tensor peak of a forward counted on the meta device, and refusals before anything is
allocated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import videoattn_core as vac
from videoattn_core.cost import growth, memory
from videoattn_core.inspection import categories
from videoattn_core.run import timing
from videoattn_core.attention import maps as attention_maps
from videoattn_core.cost.memory import LiveBytes, forward_peak_bytes, memory_plan


def test_live_bytes_follow_tensor_lifetimes_by_hand():
    # Linear(8→32) → GELU → Linear(32→8) on a (4, 8) input: fc1's output (512 B) is alive while GELU makes its own
    # (512 B), then freed before fc2 makes 128 B: the peak is 1024 B; weights and the input are not counted
    model = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8)).to("meta")
    x = torch.empty(4, 8, device="meta")
    tracker = LiveBytes([*model.parameters(), x])
    with torch.no_grad(), tracker:
        out = model(x)
        del out
    assert tracker.peak == 1024 and tracker.live == 0


def test_fused_attention_never_holds_the_attention_matrix_the_explicit_path_forms():
    # narrow tokens, many of them: the attention matrix outweighs everything else
    config = vac.get_config("timesformer_base", depth=1, attention_type="joint_space_time", img_size=128,
                            embed_dim=64, num_heads=8)
    fused = forward_peak_bytes(config)
    explicit = forward_peak_bytes(config, explicit_attention=True)
    tokens = 1 + 8 * 8 * 8  # CLS + T·H·W patches
    matrix = 8 * tokens * tokens * 4  # (1, heads, N, N) float32
    assert fused < matrix
    assert explicit - fused >= matrix  # logits and probabilities: at least one full matrix more
    assert forward_peak_bytes(config, dtype=torch.bfloat16) * 2 == pytest.approx(fused, rel=0.02)


def test_batch_scales_the_peak():
    config = vac.get_config("videomae_base", depth=2, img_size=64)
    one, two = forward_peak_bytes(config), forward_peak_bytes(config, batch=2)
    assert 1.9 * one <= two <= 2.1 * one


def test_memory_plan_refuses_before_allocating(monkeypatch):
    summary = vac.summarize("timesformer_base")
    live = summary.memory_estimate()["activations"]
    monkeypatch.setattr(memory, "_pinned", None)  # a process that has not set its allocator yet
    monkeypatch.setattr(memory, "_kept", False)
    monkeypatch.setattr(memory, "pin_allocator", lambda: setattr(memory, "_pinned", True) or True)
    monkeypatch.setattr(memory, "keep_allocator", lambda: not memory._pinned and (setattr(memory, "_kept", True) or True))
    monkeypatch.setattr(memory, "available_memory", lambda device: 10**12)  # plenty: freed memory is kept
    plan = memory_plan(summary, "cpu")
    assert plan["allocator"] == "kept" and memory._pinned is None and memory._kept
    assert plan["total_bytes"] == plan["loose_total_bytes"] == (
        plan["weights_bytes"] + plan["attention_bytes"] + int(live * memory.KEPT_ALLOCATOR_SLACK)
        + memory.UNPINNED_CPU_RUNTIME_RESERVE)
    tight = (plan["weights_bytes"] + plan["attention_bytes"] + int(live * memory.ALLOCATOR_SLACK)
             + memory.CPU_RUNTIME_RESERVE)
    assert tight < plan["loose_total_bytes"]
    margin = memory.MEMORY_MARGIN
    # the loose bound does not fit, the tight one does: planning pins the allocator and the run goes ahead
    monkeypatch.setattr(memory, "available_memory", lambda device: int(tight * margin) + 1)
    pinned = memory_plan(summary, "cpu")
    assert pinned["fits"] and pinned["allocator"] == "pinned" and memory._pinned is True
    assert pinned["total_bytes"] == tight and pinned["runtime_reserve_bytes"] == memory.CPU_RUNTIME_RESERVE
    assert pinned["activations_bytes"] == int(live * memory.ALLOCATOR_SLACK)
    # once pinned, the tight bound is the estimate even with plenty free
    monkeypatch.setattr(memory, "available_memory", lambda device: 10**12)
    assert memory_plan(summary, "cpu")["total_bytes"] == tight
    # neither fits: refused, saying what it needs and the margin
    monkeypatch.setattr(memory, "available_memory", lambda device: tight)
    refused = memory_plan(summary, "cpu")
    assert not refused["fits"] and "Refused before allocating anything" in refused["refusal"]
    assert f"× {margin:g} margin" in refused["refusal"]


def test_memory_plan_near_the_limit_first_gives_back_what_the_heaps_keep(monkeypatch):
    summary = vac.summarize("timesformer_base")
    monkeypatch.setattr(memory, "_pinned", None)
    monkeypatch.setattr(memory, "_kept", True)  # an earlier run left freed memory in the heaps
    monkeypatch.setattr(memory, "keep_allocator", lambda: True)
    monkeypatch.setattr(memory, "available_memory", lambda device: 10**12)
    loose = memory_plan(summary, "cpu")["loose_total_bytes"]
    released = []
    monkeypatch.setattr(memory, "release_kept_memory", lambda: released.append(True))
    free = iter([loose, 10**12])  # before and after the heaps give their memory back
    monkeypatch.setattr(memory, "available_memory", lambda device: next(free))
    plan = memory_plan(summary, "cpu")
    assert released and plan["fits"] and plan["allocator"] == "kept" and plan["free_bytes"] == 10**12


@pytest.mark.skipif(not memory.can_pin_allocator(), reason="glibc's allocator only")
def test_kept_allocator_serves_freed_memory_again_without_page_faults():
    """What planning sets far from the memory's limit: a freed 64 MiB tensor's pages serve the next one, where
    glibc's default maps and faults in every such tensor afresh (Swin's MLP activations are 77 MiB)."""
    code = (
        "import resource, sys, torch\n"
        "from videoattn_core.cost import memory\n"
        "if sys.argv[1] == 'kept':\n"
        "    assert memory.keep_allocator()\n"
        "for _ in range(3):  # the heap settles (glibc may place the second block afresh)\n"
        "    torch.empty(16 * 2**20).fill_(1)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(4):\n"
        "    torch.empty(16 * 2**20).fill_(1)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    root = Path(__file__).resolve().parents[1]
    faults = {mode: int(subprocess.run([sys.executable, "-c", code, mode], cwd=root, capture_output=True, text=True,
                                       check=True, env={**os.environ, "PYTHONPATH": str(root)}).stdout)
              for mode in ("kept", "default")}
    pages = 4 * 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert faults["default"] > pages // 2, faults
    assert faults["kept"] < pages // 20, faults


@pytest.mark.skipif(not memory.can_pin_allocator(), reason="glibc's allocator only")
def test_a_second_explanation_reuses_the_memory_the_first_left_in_the_heaps():
    """With the kept allocator (the app's and the command line's far from the memory's limit) an explanation's
    memory stays in the heaps for the next: a second relevance map faults in almost no new pages, where giving the
    memory back after each map made every map fault its whole working set in again. Counted as the process's minor
    page faults, in a process of its own."""
    code = (
        "import resource, torch\n"
        "import videoattn_core as vac\n"
        "from videoattn_core.attention.explanations import explain\n"
        "from videoattn_core.cost import memory\n"
        "assert memory.keep_allocator()\n"
        "torch.manual_seed(0)\n"
        "model = vac.build_model('timesformer_base', embed_dim=64, depth=2, num_heads=2, num_frames=8,\n"
        "                        img_size=128, patch_size=8, num_classes=5).eval()\n"
        "x = torch.randn(1, 3, 8, 128, 128)\n"
        "def faults():\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    explain(model, x, target=1)\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before\n"
        "print(faults(), faults())\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(root)}).stdout
    first, second = (int(v) for v in out.split())
    # the first map grows the heaps by its working set (~40 MiB); the second finds most of it there (seen: 0.05–0.3
    # of the first's faults; 0.8–1.0 when the memory was given back after each map)
    assert first > 5000, out
    assert second < first // 2, out


def test_memory_plan_without_a_pinnable_allocator_keeps_the_loose_bound(monkeypatch):
    summary = vac.summarize("timesformer_base")
    monkeypatch.setattr(memory, "_pinned", None)
    monkeypatch.setattr(memory, "_kept", False)
    monkeypatch.setattr(memory, "can_pin_allocator", lambda: False)
    loose = memory_plan(summary, "cpu")["loose_total_bytes"]
    monkeypatch.setattr(memory, "available_memory", lambda device: int(loose * memory.MEMORY_MARGIN) - 1)
    plan = memory_plan(summary, "cpu")
    assert plan["allocator"] == "default" and not plan["fits"] and plan["total_bytes"] == loose


def test_stage_tokens_follow_the_papers_stage_resolutions():
    # MViTv2-S at 16×224: patches of 2×4×4 pooled to 56², 28², 14², 7² per stage over 8 token frames, + CLS
    mvit = vac.summarize("mvit_v2_s")
    assert growth.stage_tokens(mvit) == [("stage 1", 8 * 56 * 56 + 1), ("stage 2", 8 * 28 * 28 + 1),
                                           ("stage 3", 8 * 14 * 14 + 1), ("stage 4", 8 * 7 * 7 + 1)]
    assert growth.stage_grids(mvit) == "8×56×56 → 8×28×28 → 8×14×14 → 8×7×7"
    assert growth.stage_tokens(vac.summarize("timesformer_base")) == [("stage 1", 8 * 14 * 14 + 1)]


def test_growth_curves_read_summaries_at_other_sizes():
    config = vac.get_config("timesformer_base", depth=1, img_size=64)
    series, dashed, current = growth.growth_curves(config, "frames")
    assert current == 8
    xs, totals = series["this config (divided_space_time): total"]
    assert xs == [2, 4, 8, 16, 32]
    assert totals == [float(vac.summarize(config, frames=x).macs) for x in xs]
    assert set(dashed) == {"joint_space_time: total", "joint_space_time: attention", "space_only: total",
                           "space_only: attention"}
    # joint attention over all T·H·W tokens grows faster with frames than divided attention does
    joint = dict(zip(*series["joint_space_time: attention"]))
    divided = dict(zip(*series["this config (divided_space_time): attention"]))
    assert joint[16] / joint[8] > divided[16] / divided[8] > 1.9
    assert "Doubling frames multiplies" in growth.growth_note(series, "frames")


def test_layer_kinds_and_window_tables():
    model = vac.build_model("swin3d_t", depths=(1, 1, 1, 1), num_frames=4, img_size=64)
    kinds = categories.attention_layer_kinds(model)
    assert kinds and set(kinds.values()) == {"window"}
    layer = next(iter(kinds))
    assert attention_maps.layer_window_frames(model, layer) == 8  # Swin-T's 8×7×7 window
    tables = attention_maps.layer_relative_tables(model, layer)
    assert tables and tables[0].panels["head 0"].shape == (13, 13)  # (2·7 − 1)² spatial offsets


def test_measure_forward_counts_weights_input_and_live_tensors():
    config = vac.get_config("videomae_base", depth=1, img_size=32, num_frames=4, patch_size=8)
    measured = timing.measure_forward(config)
    weights = vac.summarize(config).params * 4
    assert measured["time_s"] > 0 and measured["baseline_bytes"] >= weights
    assert measured["peak_bytes"] - measured["baseline_bytes"] == forward_peak_bytes(config, workspaces=False)


@pytest.mark.parametrize("preset,overrides", [
    ("timesformer_base", dict(depth=2, img_size=64)),
    ("mvit_v2_s", dict(num_frames=8, img_size=64)),
    ("swin3d_t", dict(num_frames=8, img_size=64)),
    ("videomae_base", dict(depth=2, img_size=64)),
    ("vivit_b", dict(depth=2, img_size=64, num_frames=8)),
    ("vjepa2_vitl", dict(depth=2, img_size=64, num_frames=4)),
])
def test_meta_estimate_equals_the_live_tensors_of_a_real_forward(preset, overrides):
    """The estimate runs on the meta device with the fused attention stood in for; a real CPU forward, counted the
    same way, runs the real kernels: the peaks must agree, so the stand-in holds what the kernels hold (and the
    meta tensors have the strides the workspaces are derived from)."""
    config = vac.get_config(preset, **overrides)
    model = vac.runtime.build_seeded(config).eval()
    x = torch.randn(config.input_shape())
    tracker = LiveBytes([*model.parameters(), *model.buffers(), x], workspaces=True)
    with torch.no_grad(), tracker:
        out = model(x)
        del out
    assert forward_peak_bytes(config) == tracker.peak > 0


@pytest.mark.parametrize("layout", ["(B, heads, N, d)", "(B, N, heads, d) seen transposed", "fused qkv"])
def test_meta_stand_in_for_fused_attention_returns_the_kernels_memory_layout(layout):
    """What follows the attention (the heads merged into channels) is a view or a copy depending on the memory the
    kernel returns; the meta stand-in must return the same strides as the real CPU kernel for the count to agree."""

    def inputs(device):
        if layout.startswith("(B, heads"):
            return [torch.randn(2, 3, 50, 16, device=device) for _ in range(3)]
        if layout.startswith("(B, N"):
            return [torch.randn(2, 50, 3, 16, device=device).transpose(1, 2) for _ in range(3)]
        return torch.randn(2, 50, 3 * 3 * 16, device=device).view(2, 50, 3, 3, 16).permute(2, 0, 3, 1, 4).unbind(0)

    real = F.scaled_dot_product_attention(*inputs("cpu"))
    with memory._FusedAttentionOnMeta():
        meta = F.scaled_dot_product_attention(*inputs("meta"))
    assert meta.device.type == "meta" and meta.shape == real.shape and meta.stride() == real.stride()


_KERNEL_WORKSPACES = r"""
import ctypes, json, torch
import torch.nn.functional as F
from videoattn_core.cost.memory import LiveBytes

# every block of 128 KiB or more mapped on its own and unmapped when freed: the resident memory follows the live
# tensors exactly, whatever the product's allocator settings
assert ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
torch.set_num_threads(1)

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

cases = {  # Swin's shifted windows, a layer norm over a transposed input, Video Swin's patch embedding, MViT's pooling
    "roll": (lambda x, w: torch.roll(x, (1, 2, 3), (1, 2, 3)), (2, 16, 64, 64, 32), (1,)),
    "layer_norm": (lambda x, w: F.layer_norm(x.transpose(1, 2), (x.shape[1],)), (8, 512, 2048), (1,)),
    "conv3d": (lambda x, w: F.conv3d(x, w, stride=(2, 4, 4)), (1, 3, 32, 224, 224), (96, 3, 2, 4, 4)),
    "depthwise_conv3d": (lambda x, w: F.conv3d(x, w, padding=1, groups=96), (1, 96, 8, 56, 56), (96, 1, 3, 3, 3)),
    # MViT's pooling on channels-last memory: the kernels read it as it lies and hold nothing but their outputs
    "channels_last_depthwise_conv3d": (lambda x, w: F.conv3d(x, w, padding=1, stride=(1, 2, 2), groups=96),
                                       (1, 96, 8, 56, 56), (96, 1, 3, 3, 3)),
    "channels_last_max_pool3d": (lambda x, w: F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1)),
                                 (1, 96, 8, 56, 56), (1,)),
}
out = {}
for name, (op, shape, weight_shape) in cases.items():
    layout = torch.channels_last_3d if name.startswith("channels_last") else torch.contiguous_format
    x, weight = torch.randn(shape).contiguous(memory_format=layout), torch.ones(weight_shape)
    with torch.no_grad():
        op(x, weight)  # the kernel's code paged in
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak resident memory reset to the current
        before = status("VmRSS")
        y = op(x, weight)
        measured = status("VmHWM") - before
        del y
        returned = status("VmRSS") - before
    meta_x = torch.empty(shape, device="meta").contiguous(memory_format=layout)
    meta_w = torch.empty(weight_shape, device="meta")
    counts = []
    for workspaces in (False, True):
        tracker = LiveBytes([meta_x, meta_w], workspaces=workspaces)
        with torch.no_grad(), tracker:
            result = op(meta_x, meta_w)
            del result
        counts.append(tracker.peak)
    out[name] = {"measured": measured, "returned": returned, "outputs": counts[0], "with_workspaces": counts[1]}
print(json.dumps(out))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak-RSS reset")
def test_kernel_workspaces_bound_what_the_process_holds_while_the_kernel_runs():
    """In a fresh process whose allocator unmaps every freed tensor, the resident growth while one kernel runs is measured
    (peak RSS reset, then VmHWM): the kernels hold more than their outputs (roll over 3 dims: 2 intermediates; the
    layer norm: a contiguous copy; the convolutions: oneDNN's reorders), the workspaces derived from the shapes
    on the meta device bound it within 1.5×, and the memory is returned when freed."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", _KERNEL_WORKSPACES], cwd=root, capture_output=True, text=True,
                          timeout=300, check=True)
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    mib = 2**20
    for name, row in rows.items():
        if name.startswith("channels_last"):  # nothing but the outputs, counted so and measured so
            assert row["with_workspaces"] == row["outputs"] and row["measured"] <= row["outputs"] + mib, (name, row)
            assert row["returned"] < mib, (name, row)
            continue
        assert row["measured"] > row["outputs"] + 4 * mib, (name, row)  # the kernel holds more than its output
        assert row["measured"] <= row["with_workspaces"] + mib, (name, row)  # the derived workspace bounds it
        assert row["with_workspaces"] <= 1.5 * row["measured"], (name, row)
        assert row["returned"] < mib, (name, row)  # freed tensors are unmapped, not kept in a heap
