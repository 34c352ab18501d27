"""Relevance propagation (the rule of Chefer, Gur & Wolf, ICCV 2021, as :mod:`.explanations` states it): each
attention call's Ā = mean over heads of (∇A ⊙ A)⁺, the readout token's row of R = Π(I + Āₗ) carried backwards
through the layers on the token grid their layouts state."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..models.layers import AttentionCore, AttentionLayout, CapturedAttention
from .capture import eager_module, gradient_sinks, model_lock
from .gradcam import gradcam_layers
from .maps import CLS, PAD, token_coordinates
from .targets import Grid, family_of, target_score


def relevance_unavailable_reason(model: nn.Module) -> str | None:
    """Why relevance propagation is not defined (or not done) for ``model``, or None when it is."""
    if not any(isinstance(m, AttentionCore) for m in model.modules()):
        return "this model has no attention layers; use method='gradcam'"
    return None


def _readout(model: nn.Module, records: list[tuple[str, CapturedAttention]]) -> str:
    """The token(s) the classifier reads, as its family declares (``readout``): ``cls`` (a CLS token or the
    learned query of V-JEPA 2's pooler), ``frame_cls`` (space-only TimeSformer: one CLS per frame, averaged),
    ``encoder_cls``, ``mean`` or ``first``."""
    readout = family_of(model).readout(model.config) if hasattr(model, "config") else "cls"
    if readout != "cls" or any(c.layout.cls or c.layout.kind == "cross" for _, c in records):
        return readout
    raise ValueError("relevance needs to know which token the classifier reads: this model has no CLS token "
                     "and its family declares no other readout ('mean' or 'first')")


def _canonical(coords: Tensor, size: int, n_cls: int) -> Tensor:
    """Token coordinates (batch 1) → indices into ``[patches (size) | CLS slots (n_cls) | dump]``; with one CLS
    slot per group (``n_cls`` = groups) each group's CLS is its own token."""
    groups = coords.shape[0]
    cls_slot = size + (torch.arange(groups)[:, None] if n_cls == groups and n_cls > 1 else torch.zeros(1, 1))
    out = torch.where(coords == CLS, cls_slot.long().expand_as(coords), coords)
    return torch.where(coords == PAD, torch.tensor(size + n_cls), out)


def _axis_map(fine: int, coarse: int) -> Tensor:
    """Each fine index → the coarse cell covering it (strided pooling or merging, end padding allowed)."""
    stride = math.ceil(fine / coarse)
    return torch.clamp(torch.arange(fine) // stride, max=coarse - 1)


def _spread(v: Tensor, src: Grid, dst: Grid) -> Tensor:
    """Move relevance between grids: a coarse cell's relevance is shared equally among the finer cells it
    covers (total kept)."""
    if src == dst:
        return v
    if any(d < s for s, d in zip(src, dst)):
        raise ValueError(f"relevance can only move from a coarser to a finer grid, not {src} → {dst}")
    maps = [_axis_map(d, s) for s, d in zip(src, dst)]
    coarse = (maps[0][:, None, None] * src[1] + maps[1][None, :, None]) * src[2] + maps[2][None, None, :]
    coarse = coarse.flatten()
    counts = torch.bincount(coarse, minlength=v.numel()).to(v.dtype)
    return v[coarse] / counts[coarse]


def _head_mean(summed: Tensor | None, shape: torch.Size) -> Tensor:
    """Ā = mean over heads of (∇A ⊙ A)⁺ from its sum over the ``shape[1]`` heads: ``(G, N_q, N_k)``, zero where the
    target does not depend on the call (no gradient reached it)."""
    return summed.div_(shape[1]).cpu() if summed is not None else torch.zeros(shape[0], *shape[2:])


def _steps(records: list[tuple[str, CapturedAttention]], relevances: list[Tensor]):
    """Residual steps: consecutive calls of cores that share one parent module (ViViT model 4's time and space
    heads) form one step, each weighted by its share of the heads."""
    steps: list[list[tuple[AttentionLayout, Tensor, float]]] = []
    parents: list[str] = []
    for (name, captured), rel in zip(records, relevances):
        parent = name.rsplit(".", 1)[0]
        heads = captured.probs.shape[1]
        if steps and parents[-1] == parent and steps[-1][0][0].grid == captured.layout.grid:
            steps[-1].append((captured.layout, rel, heads))
        else:
            steps.append([(captured.layout, rel, heads)])
            parents.append(parent)
    return [[(layout, rel, heads / sum(h for _, _, h in step)) for layout, rel, heads in step] for step in steps]


def _start(grid: Grid, readout: str) -> tuple[Tensor, Tensor]:
    """The readout row of R on the last layer's tokens: ``(patches, CLS slots)``."""
    size = math.prod(grid)
    n_cls = grid[0] if readout == "frame_cls" else 1
    v_patch, v_cls = torch.zeros(size), torch.zeros(n_cls)
    if readout in ("cls", "frame_cls"):
        v_cls[:] = 1.0 / n_cls
    elif readout == "mean":
        v_patch[:] = 1.0 / size
    else:
        v_patch[0] = 1.0
    return v_patch, v_cls


def _carry(steps, v_patch: Tensor, v_cls: Tensor, grid: Grid) -> tuple[Tensor, Tensor, Grid]:
    """Carry a row of R = Π(I + Āₗ) backwards through the steps, from ``grid`` (the last step's query grid)
    onto the first step's token grid. ``v_cls`` holds one slot per CLS token: one shared CLS, or one per group
    (a CLS token per frame)."""
    n_cls = v_cls.numel()
    for step in reversed(steps):
        layout = step[0][0]
        q_grid, kv_grid = layout.q_grid or layout.grid, layout.kv_grid or layout.grid
        v_patch = _spread(v_patch, grid, q_grid)
        sq, sk = math.prod(q_grid), math.prod(kv_grid)
        v_full = torch.cat((v_patch, v_cls, torch.zeros(1)))
        mixed = torch.zeros(sk + n_cls + 1)
        for layout_i, rel, weight in step:
            q = _canonical(token_coordinates(layout_i, 1), sq, n_cls)
            k = _canonical(token_coordinates(layout_i, 1, keys=True), sk, n_cls)
            copies = torch.bincount(q.flatten(), minlength=v_full.numel()).float()
            # a token with several query copies (the CLS repeated into every frame) is their mean: split its row
            weights = (v_full / copies.clamp(min=1))[q]  # (G, N_q)
            mixed.index_add_(0, k.flatten(), weight * torch.einsum("gq,gqk->gk", weights, rel).flatten())
        v_patch = _spread(v_patch, q_grid, layout.grid) + _spread(mixed[:sk], kv_grid, layout.grid)
        v_cls = v_cls + mixed[sk:sk + n_cls]
        grid = layout.grid
    return v_patch, v_cls, grid


def _last_grid(steps) -> Grid:
    last = steps[-1][0][0]
    return last.q_grid or last.grid


def _propagate(steps, readout: str) -> tuple[np.ndarray, Grid]:
    """The readout row of R = Π(I + Āₗ) on the first layer's token grid."""
    grid = _last_grid(steps)
    v_patch, _, grid = _carry(steps, *_start(grid, readout), grid)
    return v_patch.reshape(grid).numpy(), grid


def _propagate_factorized_encoder(model: nn.Module, records, relevances) -> tuple[np.ndarray, Grid]:
    """ViViT model 2: the temporal encoder's row first, on its T′×1×1 grid of frame tokens; frame token t is
    frame t's spatial encoder output, read by the spatial ``pool`` (its CLS token, or the mean of its H′·W′
    tokens), so its relevance enters frame t's spatial encoder there and is carried back to the patches."""
    records = list(records)
    spatial = [i for i, (name, _) in enumerate(records) if name.startswith("spatial.")]
    temporal = [i for i, (name, _) in enumerate(records) if name.startswith("temporal.")]
    if not spatial or not temporal or spatial[-1] > temporal[0]:
        raise ValueError("relevance expected the spatial encoder's attention calls, then the temporal encoder's")

    def steps(index):
        return _steps([records[i] for i in index], [relevances[i] for i in index])

    spatial_steps, temporal_steps = steps(spatial), steps(temporal)
    token = model.config.pooling == "token"
    grid = _last_grid(temporal_steps)
    frames, _, _ = _carry(temporal_steps, *_start(grid, "cls" if token else "mean"), grid)
    grid = _last_grid(spatial_steps)
    t, h, w = grid
    if frames.numel() != t:
        raise ValueError(f"the temporal encoder has {frames.numel()} frame tokens, the spatial encoder {t} frames")
    if token:  # each frame's CLS slot starts with its frame token's relevance
        v_patch, v_cls = torch.zeros(t * h * w), frames.clone()
    else:  # the mean of the frame's tokens: shared equally
        v_patch, v_cls = frames.repeat_interleave(h * w) / (h * w), torch.zeros(1)
    v_patch, _, grid = _carry(spatial_steps, v_patch, v_cls, grid)
    return v_patch.reshape(grid).numpy(), grid


@contextmanager
def _recomputed_blocks(model: nn.Module, state: dict[str, Any], enabled: bool = True) -> Iterator[None]:
    """Run the model's innermost attention blocks (:func:`gradcam_layers`) under reentrant activation checkpointing
    (``torch.utils.checkpoint``): the forward runs each block without a graph and keeps the block's input only;
    the backward pass runs the block again, with its graph, when it reaches it, and goes back through it. While a
    block runs, ``state["block"]`` names it; ``state["slots"]`` lists the blocks' forward runs in order."""
    model = eager_module(model)
    modules = dict(model.named_modules())
    layers = [n for n in gradcam_layers(model) if isinstance(modules.get(n), nn.Module)]
    names = [n for n in layers if enabled and not any(o.startswith(n + ".") for o in layers)]  # innermost only

    def run(name: str, forward, args: tuple, kwargs: dict):
        if not torch.is_grad_enabled():  # the forward's run (the backward's runs with a graph)
            state["slots"].append(name)
        state["block"] = name
        try:
            return forward(*args, **kwargs)
        finally:
            state["block"] = None

    def checkpointed(name: str, forward):
        def call(*args, **kwargs):
            return checkpoint(lambda *a: run(name, forward, a, kwargs), *args, use_reentrant=True)
        return call

    with model_lock(model):  # no other forward meets the patched blocks
        for name in names:
            modules[name].forward = checkpointed(name, modules[name].forward)
        try:
            yield
        finally:
            for name in names:
                del modules[name].forward  # the class's forward again


def relevance(model: nn.Module, x: Tensor, target: int | None, recompute: bool = False):
    """The relevance row of the readout token.

    The forward runs every attention on the fused kernel (the logits are the model's own) and keeps no
    probabilities; the backward pass recomputes each call's probabilities a block of rows at a time
    (:func:`~videoattn_core.models.layers.attention_backward`) and sums (∇A ⊙ A)⁺ over the heads block by block:
    never one N×N matrix whole, nor every layer's. With ``recompute`` the attention blocks also run under
    activation checkpointing (:func:`_recomputed_blocks`): only each block's input is kept from the forward, and
    the backward pass runs each block again when it reaches it (less memory, one more forward of time)."""
    reason = relevance_unavailable_reason(model)
    if reason:
        raise ValueError(f"relevance is not available: {reason}")
    state: dict[str, Any] = {"block": None, "slots": []}
    calls: list[tuple[str, CapturedAttention]] = []  # every call as it came (a block's in the backward)
    by_block: dict[str, list[int]] = {}
    sums: dict[int, Tensor] = {}  # Σ over heads of (∇A ⊙ A)⁺, per call: (G, N_q, N_k)

    def on_call(name: str, layout: AttentionLayout, shape: tuple[int, int, int, int]):
        i = len(calls)
        calls.append((name, CapturedAttention(torch.empty(shape, device="meta"), layout)))
        if state["block"] is None:
            state["slots"].append(i)  # its place in the forward
        else:
            by_block.setdefault(state["block"], []).append(i)  # the backward's run of the block

        def blocks(groups: slice | Tensor, rows: slice, grad_probs: Tensor) -> None:  # each block comes once
            if i not in sums:
                sums[i] = torch.empty(shape[0], shape[2], shape[3], device=grad_probs.device)
            positive = grad_probs.clamp_(min=0)
            if isinstance(groups, slice) and positive.dtype == torch.float32:  # summed straight into its place
                torch.sum(positive, dim=1, out=sums[i][groups, rows])
            elif isinstance(groups, slice):  # half precision: head by head into float32 (no float32 copy of all)
                into = sums[i][groups, rows]
                into.copy_(positive[:, 0])
                for head in range(1, positive.shape[1]):
                    into.add_(positive[:, head])
            else:
                sums[i][groups, rows] = positive.sum(dim=1, dtype=torch.float32)
        return blocks

    # the attentions start the graph (no gradient with respect to the clip); a checkpointed block needs an input
    # that needs a gradient, so with ``recompute`` the clip does
    x = x.detach().requires_grad_(recompute)
    with _recomputed_blocks(model, state, recompute), gradient_sinks(model, on_call), torch.enable_grad():
        out = model(x)
        target, score = target_score(model, out, target)
        score.backward()  # reentrant checkpoints take no autograd.grad
    order = [j for slot in state["slots"] for j in (by_block.get(slot, []) if isinstance(slot, str) else [slot])]
    records = [calls[i] for i in order]
    relevances = [_head_mean(sums.get(i), calls[i][1].probs.shape) for i in order]
    readout = _readout(model, records)
    if readout == "encoder_cls":  # ViViT model 2: the spatial encoder's CLS per frame, then the temporal encoder
        tokens, _ = _propagate_factorized_encoder(model, records, relevances)
    else:
        tokens, _ = _propagate(_steps(records, relevances), readout)
    return tokens, target, score, out
