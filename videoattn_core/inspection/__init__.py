"""The inspection engine: everything the app and the command line show about a model.

Two entry points, both working for every registered family through the same mechanism (forward hooks on
every module, the :class:`~videoattn_core.models.layers.AttentionCore` of each attention, and the per-module
MAC formulas of :mod:`videoattn_core.cost.flops`):

- :func:`summarize` — static: the model is built on the meta device (no memory for weights, no arithmetic),
  one forward runs on a meta clip, and each module call is recorded with its shapes, their axis meaning, its
  parameters and its analytic MACs.
- :func:`inspect` — measured: one real forward of a given model on a given clip, with the same records plus
  measured wall time and measured MACs (``torch.utils.flop_counter.FlopCounterMode``), and the softmax
  probabilities of the attention layers asked for.

Counting conventions (see :mod:`videoattn_core.cost.flops`): ``macs`` are multiply-accumulates counted as fvcore
counts them (linear, matmul/einsum, conv, normalization; softmax, activations, additions and pooling count
zero) — the number papers print as "FLOPs"; ``flops`` is 2 × ``macs``, the convention of
``FlopCounterMode``. Papers report per-view figures and multiply by the number of test views (clips × crops);
``Summary.views`` carries that multiplier.

Axis meanings (``LayerRecord.input_layout`` / ``output_layout``) are derived, not declared per family:

1. an ``AttentionCore`` call knows its :class:`AttentionLayout` (passed by the family at the call): q/k/v are
   ``{groups} heads {tokens} d`` written from the layout's einops patterns, e.g. ``(B·T) heads (1+H·W) d``,
   ``(B·H·W) heads T d``, ``(B·nW) heads (wt·wh·ww) d``;
2. a tensor with the model input's shape has the config's ``input_layout`` (``B C T H W``, FIERY ``B T C H W``);
3. convolutions and batch norms follow PyTorch's channels-first convention (``B C T H W``, ``(B·T) C H W`` when
   the batch axis holds frames, ``B C H W``, ``B C L``; ``(B·heads) d T H W`` for the per-head pooling
   convolutions of an attention);
4. any other ``(G, N, C)`` or ``(G, heads, N, d)`` tensor is matched against the group and token counts of the
   attention calls of the forward — read off their actual q and k shapes, so pooled q/kv grids, windows and
   CLS tokens count right — trying the calls made inside the module first, then the last one before it, then
   the rest; failing that, ``B (T·H·W) C`` on any grid seen; ``(B, T, H, W, C)`` tensors on a known grid are
   ``B T H W C`` (Video Swin);
5. anything left is ``B C`` for two axes (``B classes`` for a classifier's output), or empty when nothing
   fits. Letters name axes, not sizes: ``T H W`` is whichever token grid the tensor is on (it changes between
   MViT stages), ``nW`` counts windows and ``wt wh ww`` index positions inside a window.

A module can state its own ``inspection_category`` (attribute) and its own MACs (``flop_count(inputs,
output)``, see :func:`videoattn_core.cost.flops.module_macs`); nothing else is special-cased.

For the app::

    s = vac.summarize("mvit_v2_s", frames=16, size=224, depths=(1, 2, 11, 2))
    s.params, s.macs, s.flops, s.views, s.input_shape      # totals, per view
    s.to_rows()                                            # one dict per module (LayerRecord fields + "layout")
    s.breakdown()                                          # {"params": {category: n}, "macs": {...}}
    s.memory_estimate(dtype_bytes=4, batch=1)              # {"weights", "activations", "attention", "total"}
    names = vac.attention_layers(model)                    # capturable layers
    r = vac.inspect(model, clip, attention_layers=names[:1])
    r.logits, r.layers, r.attention[names[0]].probs        # (groups, heads, N_q, N_k)
"""


from .categories import CATEGORIES, attention_layers
from .measured import Inspection, inspect
from .records import LayerRecord
from ..cost.flops import FLOPS_CONVENTION, MACS_CONVENTION
from .summary import Summary, summarize

__all__ = ["LayerRecord", "Summary", "Inspection", "summarize", "inspect", "attention_layers",
           "CATEGORIES", "MACS_CONVENTION", "FLOPS_CONVENTION"]
