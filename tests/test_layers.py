"""The shared layers' bfloat16 paths on the CPU (videoattn_core.models.layers): oneDNN's linear and patch cutting
as one product compute what ``F.linear`` and the convolution define."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from videoattn_core.models import layers

native = pytest.mark.skipif(not layers.onednn_bfloat16(), reason="this CPU has no native bfloat16 (AMX, AVX-512 BF16)")


def _ops(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {event.name for event in prof.events()}


def _linear(in_features: int = 96, out_features: int = 160, bias: bool = True) -> layers.Linear:
    torch.manual_seed(0)
    return layers.Linear(in_features, out_features, bias=bias).to(torch.bfloat16)


@native
@pytest.mark.parametrize("shape", [(37, 96), (2, 50, 96)], ids=["2d", "3d"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_in_bfloat16_equals_f_linear(shape, bias):
    layer = _linear(bias=bias)
    x = torch.randn(shape).to(torch.bfloat16)
    with torch.no_grad():
        assert "mkldnn::_linear_pointwise" in _ops(lambda: layer(x))
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))


@native
def test_linear_in_bfloat16_on_a_strided_input_rounds_the_exact_product_once():
    """``F.linear`` on a strided 3-d input multiplies, rounds, adds the bias and rounds again; the oneDNN linear
    adds the bias to the float32 sums and rounds once."""
    layer = _linear()
    x = torch.randn(50, 2, 96).to(torch.bfloat16).transpose(0, 1)
    with torch.no_grad():
        out = layer(x)
    exact = F.linear(x.double(), layer.weight.double(), layer.bias.double())
    assert ((out.double() - exact).abs() <= exact.abs() * 2 ** -8 + 1e-6).all()


@native
def test_linear_adds_the_bias_it_is_given_instead_of_its_own():
    layer = _linear()
    x, other = torch.randn(4, 96).to(torch.bfloat16), torch.randn(160).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(layer(x, other), F.linear(x, layer.weight, other))
    assert torch.equal(layer.float()(x.float(), other.float()), F.linear(x.float(), layer.weight, other.float()))


def test_linear_keeps_f_linear_in_float32_with_autograd_and_on_meta():
    layer = _linear().float()
    x = torch.randn(5, 96)
    with torch.no_grad():
        assert "mkldnn::_linear_pointwise" not in _ops(lambda: layer(x))
    bf16 = _linear()
    x16 = torch.randn(5, 96, dtype=torch.bfloat16, requires_grad=True)
    bf16(x16).sum().backward()  # the oneDNN op has no backward: with autograd the call takes F.linear
    assert x16.grad is not None and x16.grad.shape == x16.shape
    with torch.device("meta"):
        meta = layers.Linear(96, 160)
    assert meta(torch.empty(3, 96, device="meta")).shape == (3, 160)


def _exact_conv(conv, x: torch.Tensor) -> torch.Tensor:
    convolve = F.conv3d if x.dim() == 5 else F.conv2d
    return convolve(x.double(), conv.weight.double(), conv.bias.double(), stride=conv.stride)


@native
@pytest.mark.parametrize("kind, kernel, shape", [
    (layers.Conv3d, (2, 16, 16), (2, 3, 4, 32, 48)),
    (layers.Conv3d, (1, 4, 4), (1, 3, 3, 8, 12)),
    (layers.Conv2d, (16, 16), (3, 3, 32, 64)),
], ids=["tubelet", "swin", "frame"])
def test_a_patch_cutting_convolution_in_bfloat16_is_one_product_with_the_convolutions_sums(kind, kernel, shape):
    torch.manual_seed(0)
    conv = kind(3, 24, kernel, stride=kernel).to(torch.bfloat16)
    x = torch.randn(shape).to(torch.bfloat16)
    with torch.no_grad():
        ops = _ops(lambda: conv(x))
        out = conv(x)
    assert "mkldnn::_linear_pointwise" in ops and not any("convolution" in op for op in ops)
    exact = _exact_conv(conv, x)
    assert out.shape == exact.shape and out.dtype == torch.bfloat16
    # the sums of the definition, accumulated in float32, rounded once to bfloat16 (8 bits: half a unit is 2⁻⁹)
    assert ((out.double() - exact).abs() <= exact.abs() * 2 ** -8 + 1e-6).all()
    tokens = out.flatten(2).transpose(1, 2)  # what the families do next: token-major, a view
    assert tokens.is_contiguous()


@native
def test_other_convolutions_keep_pytorchs_kernel():
    torch.manual_seed(0)
    overlapping = layers.Conv3d(3, 8, (3, 7, 7), stride=(2, 4, 4), padding=(1, 3, 3)).to(torch.bfloat16)
    patches = layers.Conv3d(3, 8, (2, 4, 4), stride=(2, 4, 4)).to(torch.bfloat16)
    ragged = torch.randn(1, 3, 5, 18, 16).to(torch.bfloat16)  # not whole patches: the convolution drops the rest
    empty = torch.randn(0, 3, 4, 16, 16).to(torch.bfloat16)
    with torch.no_grad():
        for conv, x in ((overlapping, torch.randn(1, 3, 4, 16, 16).to(torch.bfloat16)), (patches, ragged),
                        (patches, empty)):
            assert "mkldnn::_linear_pointwise" not in _ops(lambda: conv(x))
            assert torch.equal(conv(x), F.conv3d(x, conv.weight, conv.bias, conv.stride, conv.padding))


# --- attention in bfloat16 ----------------------------------------------------------------------------------------

def _exact_attention(q, k, v, bias, scale):
    """The definition, in float64: softmax(q·kᵀ·scale + bias)·v."""
    logits = (q.double() @ k.double().transpose(-2, -1)) * scale
    if bias is not None:
        logits = logits + bias.double()
    return logits.softmax(-1) @ v.double()


@native
@pytest.mark.parametrize("block_bytes", [4 << 20, 6000], ids=["default-blocks", "row-blocks"])
@pytest.mark.parametrize("shape,n_k,bias_shape", [
    ((2, 3, 50, 32), 50, None),  # several whole (group, head) pairs a block
    ((1, 4, 300, 16), 120, (1, 4, 300, 120)),  # pooled keys, a bias per head
    ((6, 2, 24, 16), 24, (6, 1, 1, 24)),  # a bias per group, broadcast over heads and rows
    ((3, 2, 40, 16), 40, (1, 2, 40, 40)),  # one bias for every group
], ids=["plain", "pooled-bias", "group-bias", "shared-bias"])
def test_blocked_attention_in_bfloat16_computes_the_definition(monkeypatch, block_bytes, shape, n_k, bias_shape):
    """Within a few bfloat16 roundings of the float64 definition, and no further from it than ~4× the fused
    kernel's bfloat16 result; ``row-blocks`` cuts one (group, head)'s rows into blocks of a few rows."""
    monkeypatch.setattr(layers, "_LOGIT_BLOCK_BYTES", block_bytes)
    g = torch.Generator().manual_seed(0)
    groups, heads, n_q, d = shape
    q, k, v = (torch.randn(groups, heads, n, d, generator=g) for n in (n_q, n_k, n_k))
    bias = torch.randn(bias_shape, generator=g) if bias_shape else None
    scale = d ** -0.5
    exact = _exact_attention(q, k, v, bias, scale)
    qb, kb, vb = (t.to(torch.bfloat16) for t in (q, k, v))
    bb = bias.to(torch.bfloat16) if bias is not None else None
    out = layers.blocked_attention(qb, kb, vb, bb, scale)
    fused = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=bb, scale=scale)
    assert out.shape == exact.shape and out.dtype == torch.bfloat16
    assert out.transpose(1, 2).is_contiguous()  # the fused kernel's layout: heads merge as a view
    error, fused_error = ((t.double() - exact).abs().max().item() for t in (out, fused))
    assert error < 0.02 * exact.abs().max().item()
    assert error < 4 * fused_error + 1e-3


@native
def test_attention_core_takes_the_blocked_path_in_bfloat16_inference_where_the_fused_kernel_is_slow(monkeypatch):
    core = layers.AttentionCore("joint", scale=0.25)
    q, k, v = (torch.randn(1, 2, 64, 16).to(torch.bfloat16) for _ in range(3))

    def fused(*tensors) -> bool:
        ops = _ops(lambda: core(*tensors))
        assert any("flash_attention" in op for op in ops) != ("aten::_softmax" in ops)
        return any("flash_attention" in op for op in ops)

    monkeypatch.setattr(layers, "fused_attention_slow_in_bfloat16", lambda: True)  # AVX-512 BF16 without AMX
    with torch.no_grad():
        assert not fused(q, k, v)
        assert fused(q.float(), k.float(), v.float())  # float32 keeps the fused kernel (the exactness promises)
    assert fused(*(t.detach().requires_grad_() for t in (q, k, v)))  # autograd too (the kernel has a backward)
    assert fused(q, k, v)  # grad mode, even with nothing to differentiate (as oneDNN's linear: inference only)
    monkeypatch.setattr(layers, "fused_attention_slow_in_bfloat16", lambda: False)  # AMX: the kernel's own products
    with torch.no_grad():
        assert fused(q, k, v)


def test_the_fused_kernel_counts_as_slow_in_bfloat16_only_without_amx(monkeypatch):
    layers.fused_attention_slow_in_bfloat16.cache_clear()
    monkeypatch.setattr(layers, "onednn_bfloat16", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert not layers.fused_attention_slow_in_bfloat16()
    layers.fused_attention_slow_in_bfloat16.cache_clear()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert layers.fused_attention_slow_in_bfloat16()
    layers.fused_attention_slow_in_bfloat16.cache_clear()
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # a PyTorch that cannot tell: the fused kernel
    assert not layers.fused_attention_slow_in_bfloat16()
    layers.fused_attention_slow_in_bfloat16.cache_clear()


def test_blocked_attention_of_no_queries_or_no_groups_is_empty():
    for shape in [(1, 2, 0, 8), (0, 2, 5, 8)]:
        q = torch.zeros(shape, dtype=torch.bfloat16)
        assert layers.blocked_attention(q, q, q, None, 0.5).shape == shape


def _two_linears() -> tuple[layers.Linear, layers.Linear]:
    torch.manual_seed(0)
    first, second = layers.Linear(96, 80), layers.Linear(80, 64)  # PyTorch's initialisation: nonzero biases
    return first.to(torch.bfloat16).eval(), second.to(torch.bfloat16).eval()


def _exact_pair(x: torch.Tensor, first: nn.Linear, second: nn.Linear) -> torch.Tensor:
    def f(t, layer):
        return F.linear(t, layer.weight.double(), None if layer.bias is None else layer.bias.double())
    return f(f(x.double(), first), second)


def _relative(ours: torch.Tensor, exact: torch.Tensor) -> float:
    return float((ours.double() - exact).norm() / exact.norm())


@native
@pytest.mark.parametrize("biases", [(True, True), (True, False), (False, True), (False, False)])
def test_composed_linear_is_the_two_layers_map(biases):
    torch.manual_seed(0)
    first = layers.Linear(96, 80, bias=biases[0]).to(torch.bfloat16).eval()
    second = layers.Linear(80, 64, bias=biases[1]).to(torch.bfloat16).eval()
    x = torch.randn(3, 37, 96).to(torch.bfloat16)
    composed = layers.ComposedLinear()
    with torch.no_grad():
        parameters = composed.parameters(x, first, second)
        out = composed.apply(x, parameters)
        two = second(first(x))
    exact = _exact_pair(x, first, second)
    assert out.shape == two.shape == (3, 37, 64) and out.dtype == torch.bfloat16
    assert _relative(out, exact) <= 2 * _relative(two, exact) + 1e-3


@native
def test_composed_linear_follows_changes_to_its_layers():
    first, second = _two_linears()
    composed = layers.ComposedLinear()
    x = torch.randn(5, 96).to(torch.bfloat16)

    def checked():
        parameters = composed.parameters(x, first, second)
        exact = _exact_pair(x, first, second)
        assert _relative(composed.apply(x, parameters), exact) <= 2 * _relative(second(first(x)), exact) + 1e-3
        return parameters

    with torch.no_grad():
        a = checked()
        assert composed.parameters(x, first, second) is a  # derived once, then reused
        first.weight.mul_(2)  # in place
        b = checked()
        assert b is not a
        second.load_state_dict({"weight": torch.randn(64, 80) / 9, "bias": torch.randn(64)})
        c = checked()
        assert c is not b
        first.bias = nn.Parameter(torch.randn(80).to(torch.bfloat16))  # replaced
        assert checked() is not c
    assert copy.deepcopy(composed)._value is None and pickle.loads(pickle.dumps(composed))._value is None


def test_composed_linear_leaves_the_two_layers_where_they_must_run():
    first, second = _two_linears()
    composed = layers.ComposedLinear()
    x = torch.randn(5, 96).to(torch.bfloat16)
    assert composed.parameters(x, first, second) is None  # grad mode: autograd needs both layers
    with torch.no_grad():
        float32 = [copy.deepcopy(layer).float() for layer in (first, second)]
        assert composed.parameters(x.float(), *float32) is None  # float32
        first.train()
        assert composed.parameters(x, first, second) is None  # training: dropout may sit between them
        first.eval()
        handle = second.register_forward_hook(lambda *args: None)
        assert composed.parameters(x, first, second) is None  # a hook must see both calls
        handle.remove()
        handle = nn.modules.module.register_module_forward_pre_hook(lambda *args: None)
        assert composed.parameters(x, first, second) is None
        handle.remove()
        assert (composed.parameters(x, first, second) is not None) == layers.onednn_bfloat16()


onednn = pytest.mark.skipif(not (torch.backends.mkldnn.is_available()
                                 and hasattr(torch.ops.mkldnn, "_linear_pointwise")), reason="no oneDNN here")


@pytest.fixture
def onednn_float32(monkeypatch):
    """oneDNN's float32 linear taken as the faster (as measured on AMD CPUs), whatever this machine measures."""
    monkeypatch.setattr(layers, "onednn_float32_faster", lambda: True)


@onednn
@pytest.mark.parametrize("shape", [(100, 96), (2, 50, 96)], ids=["2d", "3d"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_in_float32_where_onednn_is_faster_computes_the_product(onednn_float32, shape, bias):
    layer = _linear(bias=bias).float()
    x = torch.randn(shape)
    with torch.no_grad():
        assert "mkldnn::_linear_pointwise" in _ops(lambda: layer(x))
        out = layer(x)
    exact = F.linear(x.double(), layer.weight.double(), layer.bias.double() if bias else None)
    assert out.dtype == torch.float32 and out.shape == exact.shape
    assert float((out.double() - exact).norm() / exact.norm()) < 1e-6  # float32 sums (BLAS: ≈ 2e-7 here)


@onednn
def test_linear_in_float32_through_onednn_has_the_gradients_of_f_linear(onednn_float32):
    layer = _linear().float()
    x = torch.randn(2, 50, 96)
    for needs in [(True, True, True), (True, False, False), (False, True, True)]:
        expected, got = [], []
        for path in ("onednn", "f.linear"):
            xi = x.clone().requires_grad_(needs[0])
            layer.weight.requires_grad_(needs[1])
            layer.bias.requires_grad_(needs[2])
            layer.zero_grad()
            out = layer(xi) if path == "onednn" else F.linear(xi, layer.weight, layer.bias)
            grad_out = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
            out.backward(grad_out)
            grads = [t.grad for t, need in zip((xi, layer.weight, layer.bias), needs) if need]
            (got if path == "onednn" else expected).append(grads)
            if path == "onednn":
                assert "mkldnn::_linear_pointwise" in _ops(lambda: layer(x.clone().requires_grad_(needs[0])))
        for a, b in zip(got[0], expected[0]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@onednn
def test_linear_in_float32_keeps_f_linear_for_few_rows_a_strided_weight_and_where_onednn_is_not_faster(
        monkeypatch, onednn_float32):
    layer = _linear().float()
    with torch.no_grad():
        assert "mkldnn::_linear_pointwise" not in _ops(lambda: layer(torch.randn(3, 96)))  # a classifier's rows
        strided = _linear().float()
        strided.weight = nn.Parameter(torch.randn(96, 160).t())  # oneDNN's reference kernel: 100s of times slower
        assert "mkldnn::_linear_pointwise" not in _ops(lambda: strided(torch.randn(100, 96)))
        monkeypatch.setattr(layers, "onednn_float32_faster", lambda: False)
        assert "mkldnn::_linear_pointwise" not in _ops(lambda: layer(torch.randn(100, 96)))


def _choice_with_one_path_wrapped(monkeypatch, path: str, wrap) -> bool:
    """:func:`layers.onednn_float32_faster`'s choice, measured afresh, with one product (``"F"``: PyTorch's
    ``F.linear``; ``"onednn"``) wrapped by ``wrap``."""
    layers.onednn_float32_faster.cache_clear()
    try:
        with monkeypatch.context() as patch:
            if path == "F":
                patch.setattr(layers.F, "linear", wrap(F.linear))
            else:
                patch.setattr(layers, "_onednn_linear", wrap(layers._onednn_linear))
            return layers.onednn_float32_faster()
    finally:
        layers.onednn_float32_faster.cache_clear()


@onednn
def test_onednn_float32_counts_as_faster_only_when_measured_faster(monkeypatch):
    def slowed(call):
        def slow(*args, **kwargs):  # CPU time, which the measurement counts (a sleep is not)
            for _ in range(4):
                call(*args, **kwargs)
            return call(*args, **kwargs)
        return slow

    assert _choice_with_one_path_wrapped(monkeypatch, "onednn", slowed) is False
    assert _choice_with_one_path_wrapped(monkeypatch, "F", slowed) is True


@onednn
def test_onednn_float32_measurement_counts_one_threads_cpu_time(monkeypatch):
    """Every process on a machine must choose alike, loaded or not: the measurement runs on one thread (the count
    restored after) and counts CPU time, so time off the CPU — here a sleep, on a loaded machine a thread waiting
    for a core — does not make a path look slower."""
    import time

    threads_seen = []

    def asleep(call):
        def slow(*args, **kwargs):
            threads_seen.append(torch.get_num_threads())
            time.sleep(0.02)
            return call(*args, **kwargs)
        return slow

    before = torch.get_num_threads()
    choices = [_choice_with_one_path_wrapped(monkeypatch, path, asleep) for path in ("F", "onednn")]
    # counted, the sleeps (20x the product) would make oneDNN faster with the BLAS asleep and slower the other way
    assert choices[0] is choices[1]
    assert threads_seen and set(threads_seen) == {1}
    assert torch.get_num_threads() == before


@onednn
@pytest.mark.parametrize("block_bytes", [4 << 20, 6000], ids=["default-blocks", "row-blocks"])
@pytest.mark.parametrize("shape,n_k,bias_shape", [
    ((2, 3, 50, 32), 50, None),
    ((1, 4, 300, 16), 120, (1, 4, 300, 120)),  # pooled keys, a bias per head
    ((6, 2, 24, 16), 24, (6, 1, 1, 24)),  # a bias per group, broadcast over heads and rows
    ((3, 2, 40, 16), 40, (1, 2, 40, 40)),  # one bias for every group
], ids=["plain", "pooled-bias", "group-bias", "shared-bias"])
def test_pairwise_attention_in_float32_computes_the_definition(monkeypatch, block_bytes, shape, n_k, bias_shape):
    """Within float32 rounding of the float64 definition (as the fused kernel is); ``row-blocks`` cuts each pair's
    rows into blocks of a few rows. q, k and v are strided views, as a fused projection's output gives them."""
    monkeypatch.setattr(layers, "_LOGIT_BLOCK_BYTES", block_bytes)
    g = torch.Generator().manual_seed(0)
    groups, heads, n_q, d = shape
    q = torch.randn(groups, n_q, heads, d, generator=g).transpose(1, 2)
    k, v = torch.randn(2, groups, n_k, heads, d, generator=g).transpose(2, 3).unbind(0)
    bias = torch.randn(bias_shape, generator=g) if bias_shape else None
    scale = d ** -0.5
    exact = _exact_attention(q, k, v, bias, scale)
    out = layers.pairwise_attention(q, k, v, bias, scale)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    assert out.shape == exact.shape and out.dtype == torch.float32
    assert out.transpose(1, 2).is_contiguous()  # the fused kernel's layout: heads merge as a view
    error, fused_error = ((t.double() - exact).abs().max().item() for t in (out, fused))
    assert error < 1e-5 * exact.abs().max().item() and error < 4 * fused_error + 1e-6


@onednn
def test_attention_core_takes_the_pairwise_path_in_float32_inference_for_large_pairs(monkeypatch, onednn_float32):
    core = layers.AttentionCore("joint", scale=0.25)
    q, k, v = (torch.randn(1, 2, 300, 16) for _ in range(3))
    bias = layers.GroupedBias((torch.randn(1, 2, 300, 300),), (1,))

    def pairwise(*tensors) -> bool:
        ops = _ops(lambda: core(*tensors))
        return "mkldnn::_linear_pointwise" in ops and not any("flash_attention" in op for op in ops)

    monkeypatch.setattr(layers, "_PAIR_MACS", 300 * 300 * 16)
    with torch.no_grad():
        assert pairwise(q, k, v) and pairwise(q, k, v, bias)
        torch.testing.assert_close(core(q, k, v, bias), F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.parts[0], scale=0.25), rtol=1e-5, atol=1e-6)
        assert not pairwise(q[:, :, :299], k, v)  # a smaller pair: the fused kernel
    assert not pairwise(*(t.requires_grad_() for t in (q, k, v)))  # autograd: the fused kernel and its backward
    monkeypatch.setattr(layers, "onednn_float32_faster", lambda: False)
    with torch.no_grad():
        assert not pairwise(q.detach(), k.detach(), v.detach())
