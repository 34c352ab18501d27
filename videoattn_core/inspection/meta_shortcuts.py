"""Shortcuts that make a meta-device forward cheap: the standard leaves of a freshly built meta model answer with
their output's shape only, and elementwise arithmetic, ``torch.cat``, integer ``torch.arange`` and
``F.interpolate`` to a given size on meta tensors are answered from shapes and promoted dtypes instead of PyTorch's
Python reference implementations. Used by :func:`~videoattn_core.inspection.summarize`; the summaries they give
equal those without them (tests/test_summary_cache.py).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..models.layers import AttentionCore, Linear


_SAME_SHAPE_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Dropout,
                     nn.Identity, nn.GELU, nn.ReLU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softmax)


def shape_only_forwards(model: nn.Module) -> None:
    """Give the standard leaves of a freshly built meta model forwards that only produce the output shape.

    PyTorch computes meta outputs of layer norm, linear and attention through Python decompositions (a few
    milliseconds each); a summary needs only the shape, which these layers determine from the input's. Only
    exact standard types are replaced (a subclass or a module with its own ``flop_count`` keeps its forward),
    the input is still checked as the real layer checks it, and the model is private to :func:`summarize`.
    """
    for module in model.modules():
        kind = type(module)
        if kind is nn.Linear or kind is Linear:
            module.forward = _linear_shape.__get__(module)
        elif kind is AttentionCore:
            module.forward = _attention_shape
        elif kind in _SAME_SHAPE_TYPES:
            if kind is nn.LayerNorm:
                module.forward = _layer_norm_shape.__get__(module)
            else:
                module.forward = _same_shape
        elif kind.__name__ == "DropPath" and kind.__module__.endswith("models.layers"):
            module.forward = _same_shape


def _same_shape(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    return x


def _linear_shape(self: nn.Linear, x: Tensor, bias: Tensor | None = None) -> Tensor:
    if x.shape[-1] != self.in_features:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({tuple(x.shape)} and "
                           f"{self.in_features}x{self.out_features})")
    return x.new_empty((*x.shape[:-1], self.out_features))


def _layer_norm_shape(self: nn.LayerNorm, x: Tensor) -> Tensor:
    n = len(self.normalized_shape)
    if tuple(x.shape[x.ndim - n:]) != tuple(self.normalized_shape):
        raise RuntimeError(f"layer norm over {tuple(self.normalized_shape)} got input {tuple(x.shape)}")
    return x


def _attention_shape(q: Tensor, k: Tensor, v: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise RuntimeError(f"attention q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not fit")
    return q.new_empty((*torch.broadcast_shapes(q.shape[:-1], k.shape[:-2] + q.shape[-2:-1]), v.shape[-1]))


#: the binary elementwise functions :class:`MetaElementwise` answers, and how their result dtype is found
_BINARY = {f: "div" if "div" in f.__name__ else "arith" for f in (
    torch.add, torch.sub, torch.mul, torch.div, torch.true_divide, Tensor.add, Tensor.sub, Tensor.mul, Tensor.div,
    Tensor.__add__, Tensor.__radd__, Tensor.__sub__, Tensor.__rsub__, Tensor.__mul__, Tensor.__rmul__,
    Tensor.__truediv__, Tensor.__rtruediv__)}
_INTEGRAL = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class MetaElementwise(TorchFunctionMode):
    """Shapes of ``+ - * /``, ``torch.cat`` and integer ``torch.arange`` on the meta device without PyTorch's
    Python reference kernels.

    On the meta device PyTorch computes an elementwise result through its Python references (type promotion,
    broadcasting and stride logic in Python, about a millisecond per operation), which makes most of a summary's
    forward. The result's shape is the broadcast of the operands' shapes and its dtype their promoted dtype
    (``torch.result_type``; true division of integers gives the default float dtype); a concatenation's shape is
    its inputs' with the sizes along ``dim`` added, its dtype their promoted one; ``arange`` of Python integers
    has ``ceil((end - start) / step)`` int64 elements. This mode returns those directly. Anything else — other devices, keyword arguments (``alpha``, ``rounding_mode``, ``out``), operands
    that are not tensors or Python numbers, a subtraction of booleans, shapes that do not broadcast — goes to
    PyTorch unchanged, so errors are PyTorch's own. The result is contiguous where PyTorch's might keep a permuted
    layout; shapes, which are all a summary reads, are the same.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kind = _BINARY.get(func)
        out = None
        if kind is not None and not kwargs and len(args) == 2:
            out = _meta_binary(kind, func, *args)
        elif func is torch.cat:
            out = _meta_cat(*args, **(kwargs or {}))
        elif func is torch.arange:
            out = _meta_arange(*args, **(kwargs or {}))
        elif func is F.interpolate:
            out = _meta_interpolate(*args, **(kwargs or {}))
        return out if out is not None else func(*args, **(kwargs or {}))


def _meta_cat(tensors: Any = None, dim: int = 0, **rest: Any) -> Tensor | None:
    if rest or not isinstance(tensors, (list, tuple)) or not tensors or isinstance(dim, bool) \
            or not isinstance(dim, int):
        return None
    if any(not isinstance(t, Tensor) or t.device.type != "meta" or t.ndim == 0 or t.is_complex() for t in tensors):
        return None
    ndim = tensors[0].ndim
    if not -ndim <= dim < ndim or any(t.ndim != ndim for t in tensors):
        return None  # including legacy empty (0,) inputs: PyTorch's rules
    dim %= ndim
    first = tensors[0].shape
    if any(t.shape[:dim] != first[:dim] or t.shape[dim + 1:] != first[dim + 1:] for t in tensors):
        return None
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    shape = (*first[:dim], sum(t.shape[dim] for t in tensors), *first[dim + 1:])
    return torch.empty(shape, dtype=dtype, device="meta")


def _meta_arange(*args: Any, device: Any = None, **rest: Any) -> Tensor | None:
    if rest or device is None or torch.device(device).type != "meta" or not 1 <= len(args) <= 3 \
            or any(isinstance(v, bool) or not isinstance(v, int) for v in args):
        return None
    start, end, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
    if step == 0 or (end - start) * step < 0:  # PyTorch refuses these: its message
        return None
    return torch.empty(-((start - end) // step), dtype=torch.int64, device="meta")


#: the modes of ``F.interpolate`` and the number of input dimensions each takes (batch and channels included)
_INTERPOLATE_DIMS = {"nearest": (3, 4, 5), "nearest-exact": (3, 4, 5), "area": (3, 4, 5), "linear": (3,),
                     "bilinear": (4,), "bicubic": (4,), "trilinear": (5,)}
_INTERPOLATING = ("linear", "bilinear", "bicubic", "trilinear")  # the modes that take ``align_corners``


def _meta_interpolate(input: Any = None, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                      align_corners: Any = None, recompute_scale_factor: Any = None,
                      antialias: bool = False) -> Tensor | None:
    """``F.interpolate`` to an explicit ``size`` of a floating meta tensor: ``(N, C, *size)`` (MViT resizes its
    relative position tables so at every input size the growth curves visit). Any other use, including those
    PyTorch refuses (``align_corners`` with a non-interpolating mode, ``recompute_scale_factor`` with a size),
    goes to PyTorch."""
    if not isinstance(input, Tensor) or input.device.type != "meta" or not input.is_floating_point() \
            or scale_factor is not None or recompute_scale_factor is not None or antialias \
            or input.ndim not in _INTERPOLATE_DIMS.get(mode, ()) or 0 in input.shape \
            or (align_corners is not None and mode not in _INTERPOLATING):
        return None
    spatial = input.ndim - 2
    sizes = [size] * spatial if isinstance(size, int) and not isinstance(size, bool) else size
    if not isinstance(sizes, (list, tuple)) or len(sizes) != spatial \
            or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in sizes):
        return None
    return torch.empty((*input.shape[:2], *sizes), dtype=input.dtype, device="meta")


def _meta_binary(kind: str, func: Any, a: Any, b: Any) -> Tensor | None:
    tensors = [v for v in (a, b) if isinstance(v, Tensor)]
    if not tensors or any(t.device.type != "meta" or t.is_complex() for t in tensors):
        return None
    if any(not isinstance(v, (Tensor, bool, int, float)) for v in (a, b)):
        return None
    try:
        dtype = torch.result_type(a, b)
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    except (RuntimeError, TypeError):
        return None
    if dtype == torch.bool and func in (torch.sub, Tensor.sub, Tensor.__sub__, Tensor.__rsub__):
        return None
    if kind == "div" and dtype in _INTEGRAL:
        dtype = torch.get_default_dtype()
    return torch.empty(shape, dtype=dtype, device="meta")
