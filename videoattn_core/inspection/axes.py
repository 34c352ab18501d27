"""Axis meanings of the tensors of one forward (``LayerRecord.input_layout`` / ``output_layout``), derived from
the attention calls' layouts and the model's input layout (the rules are in the package docstring)."""

from __future__ import annotations

import math

from torch import nn

from ..cost.flops import CONV_TRANSPOSE_TYPES, CONV_TYPES
from ..models.layers import AttentionCore
from .recorder import Call

_AXIS_NAMES = {"b": "B", "t": "T", "h": "H", "w": "W", "nt": "nT", "nh": "nH", "nw": "nW"}


def _pattern_axes(pattern: str) -> list[str]:
    return pattern.replace("(", " ").replace(")", " ").split()


def _pattern_label(pattern: str, cls: bool = False) -> str:
    axes = [_AXIS_NAMES.get(a, a) for a in _pattern_axes(pattern)]
    body = "·".join(axes)
    if cls:
        return f"(1+{body})"
    return f"({body})" if len(axes) > 1 else body


class AxisNamer:
    """Names the axes of the tensors of one forward (see the module docstring for the rules).

    The group and token counts of each attention call are read off its actual ``q`` and ``k`` shapes, and the
    names off its :class:`AttentionLayout` patterns, so nothing depends on how a family names its einops axes.
    """

    def __init__(self, calls: list[Call], batch: int, input_shape: tuple[int, ...], input_layout: str,
                 has_head: bool = True):
        self.batch = batch
        self.has_head = has_head
        self.input_shape = tuple(input_shape)
        self.input_layout = input_layout
        self.core_calls = [c for c in calls if c.layout is not None and len(c.input_shapes) >= 2
                           and len(c.input_shapes[0]) == 4]
        grids: list[tuple[int, ...]] = []
        for c in self.core_calls:
            lay = c.layout
            for g in (lay.grid, lay.q_grid, lay.kv_grid, lay.padded_grid):
                if g is not None and tuple(g) not in grids:
                    grids.append(tuple(g))
        axes = input_layout.split()
        if len(axes) == len(self.input_shape) and {"T", "H", "W"} <= set(axes):
            pixel = tuple(self.input_shape[axes.index(a)] for a in ("T", "H", "W"))
            if pixel not in grids:
                grids.append(pixel)
        self.grids = grids
        self.frames = {g[0] for g in grids}
        self.planes = {(g[1], g[2]) for g in grids}

    def _context(self, call: Call) -> list[Call]:
        """Attention calls to try first: those inside ``call``, then the last one before it, then the rest."""
        inside = [c for c in self.core_calls if call.order <= c.order < call.end_order]
        before = [c for c in self.core_calls if c.order < call.order][-1:]
        return list({id(c): c for c in inside + before + self.core_calls}.values())

    def _core_siblings(self, call: Call) -> list[Call]:
        """Attention calls made by the module that made ``call`` (its parent's other children)."""
        parent = call.parent
        if parent is None:
            return []
        return [c for c in self.core_calls if c.parent is parent]

    @staticmethod
    def _core_candidates(c: Call) -> list[tuple[str, str, int, int]]:
        """(groups label, tokens label, groups, tokens) one attention call explains, queries and keys."""
        lay = c.layout
        q, k = c.input_shapes[0], c.input_shapes[1]
        glabel = _pattern_label(lay.groups)
        with_cls, without = _pattern_label(lay.tokens, lay.cls), _pattern_label(lay.tokens)
        out = []
        for n in dict.fromkeys((q[2], k[2])):
            out.append((glabel, with_cls, q[0], n))
            if lay.cls:
                out.append((glabel, without, q[0], n - 1))
        return out

    def name(self, shape: tuple[int, ...] | None, call: Call, *, is_input: bool) -> str:
        if shape is None:
            return ""
        shape = tuple(shape)
        module = call.module
        if isinstance(module, AttentionCore) and call.layout is not None and len(shape) == 4:
            lay = call.layout
            return f"{_pattern_label(lay.groups)} heads {_pattern_label(lay.tokens, lay.cls)} d"
        if shape == self.input_shape:
            return self.input_layout
        if call.parent is None and not is_input and len(shape) == 2 and self.has_head:
            return "B classes"
        b = self.batch
        context = self._context(call) if len(shape) in (3, 4, 5) else []
        if isinstance(module, (*CONV_TYPES, *CONV_TRANSPOSE_TYPES, nn.modules.batchnorm._BatchNorm)):
            dims = len(shape) - 2
            lead = "B"
            # pooling convolutions of pooled attention run per head: (B·heads, head_dim, T, H, W)
            if any(shape[0] == b * c.input_shapes[0][1] and shape[1] == c.input_shapes[0][3] for c in context[:2]) \
                    and any(isinstance(p.module, AttentionCore) for p in self._core_siblings(call)):
                lead = "(B·heads)"
            elif shape[0] != b and dims == 2 and shape[0] % b == 0:
                lead = "(B·T)"
            channels = "d" if lead == "(B·heads)" else "C"
            return {3: f"{lead} {channels} T H W", 2: f"{lead} {channels} H W", 1: f"{lead} {channels} L"}.get(dims, "")
        if len(shape) == 3:
            for c in context:
                for glabel, nlabel, g, n in self._core_candidates(c):
                    if shape[0] == g and shape[1] == n:
                        return f"{glabel} {nlabel} C"
            for grid in self.grids:
                n = math.prod(grid)
                if shape[0] == b and shape[1] in (n, n + 1):
                    return "B (1+T·H·W) C" if shape[1] == n + 1 else "B (T·H·W) C"
            return ""
        if len(shape) == 4:
            for c in context:
                q = c.input_shapes[0]
                for glabel, nlabel, g, n in self._core_candidates(c):
                    if shape[0] == g and shape[1] == q[1] and shape[2] == n:
                        last = "d" if shape[3] == q[3] else next(
                            (lab for _, lab, _, m in self._core_candidates(c) if m == shape[3]), "d")
                        return f"{glabel} heads {nlabel} {last}"
            if shape[0] % b == 0 and (shape[2], shape[3]) in self.planes:
                return "(B·T) C H W" if shape[0] != b else "B C H W"
            return ""
        if len(shape) == 5 and shape[0] == b:
            if shape[2:] in self.grids:
                return "B C T H W"
            if shape[1:4] in self.grids:
                return "B T H W C"
            if (shape[3], shape[4]) in self.planes:
                return self.input_layout if self.input_layout.split()[1] == "T" else "B C T H W"
            return ""
        if len(shape) == 2 and shape[0] == b:
            return "B C"
        return ""
