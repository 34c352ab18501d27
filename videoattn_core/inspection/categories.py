"""Which part of the network a module is (for breakdown charts), and which attention layers can be captured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from ..attention.capture import attention_owners, capture_names
from ..cost.flops import CONV_TRANSPOSE_TYPES, CONV_TYPES, NORM_TYPES
from ..models.layers import AttentionCore
from .recorder import Call

if TYPE_CHECKING:
    from .records import LayerRecord

CATEGORIES = ("attention", "mlp", "embedding", "norm", "head", "conv", "pooling", "other")


def categorise(records: list[LayerRecord], model: nn.Module, calls_by_name: dict[str, list[Call]]) -> None:
    """Fill ``category``: a module's own ``inspection_category`` if it states one, else by what it is and where
    it sits — inside an attention layer, an MLP (``mlp``/``ffn`` in its path), a normalization, an embedding
    (``embed`` in its path, or a convolution before the first attention), the head (``head``/``classifier`` in
    its path, or a linear layer after the last attention), pooling, convolution, other."""
    modules = dict(model.named_modules())
    owner_names = set(attention_owners(model))
    core_orders = [c.order for calls in calls_by_name.values() for c in calls if isinstance(c.module, AttentionCore)]
    first_core = min(core_orders) if core_orders else None
    last_core = max(core_orders) if core_orders else None
    pooling = (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._MaxPoolNd,
               nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
    for rec in records:
        module = modules.get(rec.name)
        declared = getattr(module, "inspection_category", None)
        if isinstance(declared, str):
            rec.category = declared
            continue
        parts = rec.name.split(".") if rec.name else []
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        calls = calls_by_name.get(rec.name, [])
        order = calls[0].order if calls else None
        if isinstance(module, AttentionCore) or prefixes & owner_names:
            rec.category = "attention"
        elif any(p.startswith(("mlp", "ffn", "feed_forward")) for p in parts):
            rec.category = "mlp"
        elif isinstance(module, (*NORM_TYPES, nn.modules.batchnorm._BatchNorm)):
            rec.category = "norm"
        elif any("embed" in p or p in ("stem", "conv_proj") for p in parts):
            rec.category = "embedding"
        elif any(p.startswith("head") or p in ("classifier", "cls_head", "fc_cls") for p in parts):
            rec.category = "head"
        elif isinstance(module, pooling):
            rec.category = "pooling"
        elif isinstance(module, (*CONV_TYPES, *CONV_TRANSPOSE_TYPES)):
            before = first_core is not None and order is not None and order < first_core
            rec.category = "embedding" if before else "conv"
        elif isinstance(module, nn.Linear) and last_core is not None and order is not None and order > last_core:
            rec.category = "head"
        elif rec.name == "" and any(k in n for n, _ in module.named_parameters(recurse=False)
                                    for k in ("embed", "token", "pos")):
            rec.category = "embedding"
        else:
            rec.category = "other"


def attention_layers(model: nn.Module) -> list[str]:
    """Names (as in ``model.named_modules()``) of the attention layers :func:`inspect` can capture, in module
    order: each module with one :class:`AttentionCore` as a direct child (``blocks.5.attn``,
    ``blocks.5.temporal_attn``), or the cores themselves where a module holds several
    (``layers.0.blocks.1.attn.spatial_core``, ``...attn.temporal_core``)."""
    return list(dict.fromkeys(capture_names(model).values()))


def attention_layer_kinds(model: nn.Module) -> dict[str, str]:
    """Each capturable attention layer with the kind(s) of attention it computes (space, time, joint, ...)."""
    modules = dict(model.named_modules())
    return {name: "+".join(sorted({m.kind for m in modules[name].modules() if isinstance(m, AttentionCore)}))
            for name in attention_layers(model)}
