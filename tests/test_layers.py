"""The shared layers' bfloat16 paths on the CPU (videoattn_core.models.layers): oneDNN's linear and patch cutting
as one product compute what ``F.linear`` and the convolution define."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
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
