"""The attention backward that relevance runs (``AttentionCore.gradient_sink``, ``layers.attention_backward``)
against autograd through the explicit definition ``softmax(q·kᵀ·scale + bias)·v``: the same gradients of q, k, v
and of a bias that needs one, and the same ∇A ⊙ A, on hand-made calls and on every attention family's calls."""

from __future__ import annotations

import pytest
import torch

import videoattn_core as vac
from videoattn_core.attention.capture import gradient_sinks
from videoattn_core.models import layers
from videoattn_core.models.layers import AttentionCore, FactoredBias, GroupedBias

G, HEADS, NQ, NK, D = 5, 3, 7, 9, 4


def _explicit(q, k, v, bias, scale):
    logits = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + (bias.dense() if isinstance(bias, (GroupedBias, FactoredBias)) else bias)
    probs = logits.softmax(-1)
    return probs @ v, probs


def _bias(kind: str):
    gen = torch.Generator().manual_seed(5)
    if kind == "dense, with a gradient":
        return torch.randn(G, HEADS, NQ, NK, dtype=torch.double, generator=gen).requires_grad_()
    if kind == "broadcast over groups":
        return torch.randn(HEADS, NQ, NK, dtype=torch.double, generator=gen)
    if kind == "one per group and query row, with a gradient":
        return torch.randn(G, 1, NQ, NK, dtype=torch.double, generator=gen).requires_grad_()
    if kind == "grouped runs (shifted windows)":
        return GroupedBias(tuple(torch.randn(1, HEADS, NQ, NK, dtype=torch.double, generator=gen) for _ in "ab"),
                           (2, 3))
    if kind == "factored (MViTv2's relative positions), with a gradient":  # a zero column, as for a CLS key
        rows = torch.randn(G, HEADS, NQ, 3, dtype=torch.double, generator=gen).requires_grad_()
        cols = torch.nn.functional.pad(torch.randint(0, 2, (3, NK - 1), generator=gen).double(), (1, 0))
        return FactoredBias(rows, cols)
    return None


@pytest.mark.parametrize("block_bytes", [4 << 20, 100], ids=["one block", "a few rows per block"])
@pytest.mark.parametrize("bias_kind", ["none", "dense, with a gradient", "broadcast over groups",
                                       "one per group and query row, with a gradient",
                                       "grouped runs (shifted windows)",
                                       "factored (MViTv2's relative positions), with a gradient"])
@pytest.mark.parametrize("q_needs_grad", [True, False])
def test_gradients_and_grad_times_probs_equal_autograds(bias_kind, block_bytes, q_needs_grad, monkeypatch):
    monkeypatch.setattr(layers, "_BLOCK_BYTES", block_bytes)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(G, HEADS, n, D, dtype=torch.double, generator=gen) for n in (NQ, NK, NK))
    q.requires_grad_(q_needs_grad)
    k.requires_grad_()
    v.requires_grad_()
    bias = _bias(bias_kind)
    core = AttentionCore("joint", 0.7)
    seen = {}

    def sink(layout, shape):
        assert shape == (G, HEADS, NQ, NK)
        seen["grad_probs"] = torch.full(shape, float("nan"), dtype=torch.double)

        def blocks(groups, rows, grad_probs):
            seen["grad_probs"][groups, :, rows] = grad_probs
            grad_probs.zero_()  # the block is the sink's to overwrite
        return blocks

    core.gradient_sink = sink
    out = core(q, k, v, bias)
    expected, probs = _explicit(q, k, v, bias, 0.7)
    torch.testing.assert_close(out, expected)
    d_out = torch.randn(out.shape, dtype=torch.double, generator=gen)
    bias_tensor = bias.rows if isinstance(bias, FactoredBias) else bias
    inputs = [t for t in (q, k, v, bias_tensor) if isinstance(t, torch.Tensor) and t.requires_grad]
    got = torch.autograd.grad(out, inputs, d_out)
    *want, d_probs = torch.autograd.grad(expected, inputs + [probs], d_out)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(seen["grad_probs"], d_probs * probs)


def test_groups_ordered_by_bias_run_are_reported_in_the_layouts_order():
    """Shifted windows run grouped by mask (``GroupedBias.groups`` says where each sits in the layout): a sink
    receives each block under the layout's group indices."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(G, HEADS, n, D, dtype=torch.double, generator=gen).requires_grad_() for n in (NQ, NK, NK))
    bias = GroupedBias(tuple(torch.randn(1, HEADS, NQ, NK, dtype=torch.double, generator=gen) for _ in "ab"), (2, 3),
                       groups=torch.tensor([3, 0, 4, 1, 2]))
    core, seen = AttentionCore("window", 0.7), torch.full((G, HEADS, NQ, NK), float("nan"), dtype=torch.double)

    def blocks(groups, rows, grad_probs):
        seen[groups, :, rows] = grad_probs

    core.gradient_sink = lambda layout, shape: blocks
    out = core(q, k, v, bias)
    expected, probs = _explicit(q, k, v, bias, 0.7)
    d_out = torch.randn(out.shape, dtype=torch.double, generator=gen)
    (d_probs,) = torch.autograd.grad(expected, [probs], d_out)
    out.backward(d_out)
    torch.testing.assert_close(seen[bias.groups], d_probs * probs)


def test_an_attention_that_nothing_before_needs_a_gradient_still_reports():
    """Relevance takes no gradient with respect to the clip: the first attention's q, k, v need none, and it still
    reports ∇A ⊙ A (the graph starts there)."""
    q, k, v = (torch.randn(1, 2, 6, 4) for _ in range(3))
    core, seen = AttentionCore("joint", 0.5), []
    core.gradient_sink = lambda layout, shape: (lambda groups, rows, p: seen.append(p.clone()))
    out = core(q, k, v)
    assert out.requires_grad
    out.sum().backward()
    assert len(seen) == 1 and seen[0].shape == (1, 2, 6, 6)


FAMILIES = {
    "timesformer divided": ("timesformer_base", dict(embed_dim=32, depth=2, num_heads=2, num_frames=4, img_size=24,
                                                     patch_size=8, num_classes=5), (4, 24, 24)),
    "swin3d shifted windows": ("swin3d_t", dict(depths=(2, 2, 1, 1), window_size=(2, 3, 3), num_frames=8,
                                                img_size=48), (8, 48, 48)),
    "mvit v2 pooled, relative positions": ("mvit_v2_s", dict(depths=(1, 2, 1, 1), img_size=64, num_frames=4),
                                           (4, 64, 64)),
    "vivit factorised dot product": ("vivit_b", dict(attention_type="factorized_dot_product_attention", embed_dim=32, depth=2,
                                                     num_heads=4, mlp_dim=48, num_frames=8, img_size=48,
                                                     tubelet_size=(2, 16, 16), num_classes=7), (8, 48, 48)),
    "v-jepa 2 with its pooler": ("vjepa2_vitl", dict(embed_dim=48, depth=2, num_heads=3, num_frames=4, img_size=32,
                                                     patch_size=8, num_classes=7, pooler_depth=1, predictor_depth=1,
                                                     predictor_embed_dim=24, predictor_num_heads=2), (4, 32, 32)),
    "swin divided space-time": ("swin_divided_st_t", dict(embed_dim=16, depths=(2, 2), num_heads=(2, 4),
                                                          window_size=(4, 4), num_frames=8, num_classes=7),
                                (8, 64, 64)),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_familys_calls_report_autograds_grad_times_probs(family):
    preset, overrides, shape = FAMILIES[family]
    torch.manual_seed(0)
    model = vac.build_model(preset, **overrides).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(2))
    target = 1

    # autograd on the explicit path: every call's probabilities kept in the graph
    probs: list[torch.Tensor] = []
    cores = [m for m in model.modules() if isinstance(m, AttentionCore)]
    for core in cores:
        core.sink, core.capture_graph = (lambda c: probs.append(c.probs)), True
    try:
        logit = model(x.requires_grad_())[0, target]
    finally:
        for core in cores:
            core.sink, core.capture_graph = None, False
    want = [(g * p).sum(1) for p, g in zip(probs, torch.autograd.grad(logit, probs))]

    # the gradient sinks: the fused forward, ∇A ⊙ A from the backward, summed over heads
    got: list[torch.Tensor] = []

    def on_call(name, layout, shape):
        got.append(torch.full((shape[0], *shape[2:]), float("nan")))
        mine = got[-1]

        def blocks(groups, rows, grad_probs):
            mine[groups, rows] = grad_probs.sum(1)
        return blocks

    with torch.no_grad():
        fused = model(x.detach())[0, target]
    with gradient_sinks(model, on_call), torch.enable_grad():
        logit = model(x.detach())[0, target]
        logit.backward()
    # the model's own logit: the forward runs the fused kernel (MViT's relative position term is summed in another
    # order when it needs a gradient)
    torch.testing.assert_close(logit.detach(), fused, rtol=1e-5, atol=0)
    assert len(got) == len(want) > 1
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * float(b.detach().abs().max()))
