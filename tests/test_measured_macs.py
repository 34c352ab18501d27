"""Measured MACs of an inspection are FlopCounterMode's count of a meta replica of the model: they must be what the
same counter measures on the real forward, module by module, and follow the model when it changes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import videoattn_core as vac
from test_inspection import SMALL, _small, _small_id
from videoattn_core.inspection import measured
from videoattn_core.inspection.measured import _flop_counter
from videoattn_core.models import layers


def _per_module(result) -> dict[str, tuple[int | None, int | None]]:
    return {r.name: (r.measured_macs, r.measured_macs_total) for r in result.layers}


@pytest.mark.parametrize("case", SMALL, ids=[_small_id(c) for c in SMALL])
def test_meta_replica_counts_what_the_real_forward_counts(case, monkeypatch):
    model, x = _small(case)
    layer = vac.attention_layers(model)[:1]
    replica = vac.inspect(model, x, layer)
    counter = _flop_counter()
    with torch.no_grad(), counter:
        model(x)
    assert replica.measured_macs == counter.get_total_flops() // 2 > 0
    # per module: the count on the real forward (what inspect did before the replica)
    monkeypatch.setattr(measured, "_counted_on_meta", lambda model, x: None)
    real = vac.inspect(model, x, layer)
    assert _per_module(replica) == _per_module(real)
    assert real.measured_macs == replica.measured_macs


def test_measured_macs_follow_a_changed_model_and_input():
    model, x = _small(SMALL[0])
    first = vac.inspect(model, x)
    model.head = nn.Linear(model.head.in_features, 37)  # a new head: another count, not the cached one
    second = vac.inspect(model, x)
    head = {r.name: r for r in second.layers}["head"]
    assert head.measured_macs == head.macs == x.shape[0] * model.head.in_features * 37
    assert second.measured_macs - first.measured_macs == x.shape[0] * model.head.in_features * (37 - 10)
    one = vac.inspect(model, x[:1])  # another input shape: counted for that shape
    assert {r.name: r for r in one.layers}["head"].measured_macs == model.head.in_features * 37


@pytest.mark.skipif(not layers.onednn_bfloat16(), reason="this CPU has no native bfloat16 (AMX, AVX-512 BF16)")
def test_a_bfloat16_forward_on_oneDNNs_linear_counts_what_its_meta_replica_counts(monkeypatch):
    """bfloat16 inference on such a CPU takes oneDNN's linear (layers.Linear), which the real forward's counter must
    count as the meta replica counts F.linear."""
    model, x = _small(SMALL[0])
    model, x = model.to(torch.bfloat16), x.to(torch.bfloat16)
    replica = vac.inspect(model, x)
    monkeypatch.setattr(measured, "_counted_on_meta", lambda model, x: None)
    real = vac.inspect(model, x)
    assert real.measured_macs == replica.measured_macs > 0
    assert _per_module(real) == _per_module(replica)
