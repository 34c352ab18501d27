"""Memory estimates: the live-tensor peak of a forward counted on the meta device, and refusals before anything is
allocated."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import videoattn_core as vac
from videoattn_core import analysis
from videoattn_core.analysis import _LiveBytes, forward_peak_bytes, memory_plan


def test_live_bytes_follow_tensor_lifetimes_by_hand():
    # Linear(8→32) → GELU → Linear(32→8) on a (4, 8) input: fc1's output (512 B) is alive while GELU makes its own
    # (512 B), then freed before fc2 makes 128 B: the peak is 1024 B; weights and the input are not counted
    model = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8)).to("meta")
    x = torch.empty(4, 8, device="meta")
    tracker = _LiveBytes([*model.parameters(), x])
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
    plan = memory_plan(summary, "cpu")
    assert plan["total_bytes"] == (plan["weights_bytes"] + plan["activations_bytes"] + plan["attention_bytes"]
                                   + plan["runtime_reserve_bytes"])
    assert plan["activations_bytes"] == int(summary.memory_estimate()["activations"] * analysis.ALLOCATOR_SLACK)
    monkeypatch.setattr(analysis, "available_memory", lambda device: plan["total_bytes"])  # fits without margin
    refused = memory_plan(summary, "cpu")
    assert not refused["fits"] and "Refused before allocating anything" in refused["refusal"]
    assert f"× {vac.runtime.MEMORY_MARGIN:g} margin" in refused["refusal"]
    monkeypatch.setattr(analysis, "available_memory", lambda device: 2 * plan["total_bytes"])
    assert memory_plan(summary, "cpu")["fits"]
