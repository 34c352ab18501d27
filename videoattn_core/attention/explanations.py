"""Why the model chose a class: class-specific maps on the token grid and over the input frames.

Three methods, one entry point (:func:`explain`):

- ``"relevance"``: gradient-weighted relevance propagation, the generic rule of Chefer, Gur & Wolf,
  "Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers" (ICCV 2021;
  it simplifies their CVPR 2021 method): for every attention call, Ā = mean over heads of (∇A ⊙ A)⁺, the gradient
  of the target logit with respect to the attention probabilities times the probabilities, positive part; the
  relevance matrix starts as the identity and every attention adds Ā·R (the residual stream keeps R). Only the
  row of the token the classifier reads is needed, so it is carried backwards through the layers as a vector
  (R = Π(I + Āₗ) applied to that row), never forming an N×N product. The tokens of each call are laid back on
  the grid by the layout it states (:func:`~videoattn_core.attention.maps.token_coordinates`): divided
  space-time calls touch their own groups, the shared CLS token of divided TimeSformer (repeated into every
  frame, then averaged) splits its weight over its copies, shifted windows are unrolled, pooled keys and
  queries sit on their own grids. Where the token grid shrinks (MViT's pooled queries and max-pooled residual,
  Swin's patch merging), a coarse token's relevance is shared equally among the fine cells it covers — the
  pooling kernels' own weights are not used (a stated approximation). Two attentions computed in one residual
  step (ViViT model 4's time and space heads) enter as one step, each weighted by its share of the heads.
  ViViT model 2 (factorised encoder) runs two encoders: the temporal encoder's row is carried back over its T′
  frame tokens first; frame token t is what frame t's spatial encoder hands over (its CLS token, or the mean
  of its tokens with ``classifier="gap"``), so that token's relevance starts frame t's propagation there.
- ``"rollout"``: attention rollout (Abnar & Zuidema 2020) where the token flow allows it
  (:func:`~videoattn_core.attention.maps.rollout`), else a ``ValueError`` saying why.
- ``"gradcam"``: Grad-CAM (Selvaraju et al., ICCV 2017) on one layer's output: channel weights = the gradient
  averaged over the (T, H, W) positions, map = ReLU(Σ weights · activations). The only method for FIERY's
  convolutional temporal model, whose "class" is an output channel (averaged over time and space).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..config import ModelConfig
from ..errors import ConfigError
from ..models.layers import AttentionCore, AttentionLayout, CapturedAttention
from ..registry import Family, family_of_model
from .capture import activation_gradients_only, capture_names, capturing, eager_module, model_lock
from .maps import CLS, PAD, rollout, token_coordinates

METHODS = ("relevance", "rollout", "gradcam")
Grid = tuple[int, int, int]


@dataclass
class Explanation:
    """A class-specific map: ``tokens`` on the model's (T′, H′, W′) token grid, ``frames`` the same map on the
    input's (T, H, W) (nearest in time, bilinear in space). ``score`` is the explained logit (for FIERY: the
    output channel's mean); ``logits`` the model's output for the clip (None for FIERY)."""

    tokens: np.ndarray
    frames: np.ndarray
    method: str
    target: int
    score: float
    logits: np.ndarray | None = None
    layer: str | None = None
    note: str = ""


def _family(model: nn.Module) -> Family:
    """What the model's family declares (:class:`~videoattn_core.registry.Family`); a module of no registered
    family gets the defaults (a CLS-token classifier, tokens ``(t h w)``)."""
    return family_of_model(model) or _UNREGISTERED


_UNREGISTERED = Family("", ModelConfig, nn.Module, "", "")


def _classless(model: nn.Module) -> bool:
    """A model without a classification head (FIERY's temporal model): its output channels are explained."""
    return not getattr(model, "config", ModelConfig()).has_head


def input_thw(model: nn.Module, x: Tensor) -> Grid:
    """The input's (T, H, W), by the config's ``input_layout``: ``B C T H W`` (every classifier) or
    ``B T C H W`` (FIERY's features)."""
    layout = getattr(model, "config", ModelConfig()).input_layout
    return (x.shape[1], x.shape[3], x.shape[4]) if layout == "B T C H W" else tuple(x.shape[2:5])


def _target_score(model: nn.Module, out: Tensor, target: int | None) -> tuple[int, Tensor]:
    """The scalar to explain: the target class's logit (default the top class); for a model without classes
    (FIERY) the output channel's mean over time and space (default the channel with the largest mean)."""
    per_class = out[0].float().mean(dim=(0, 2, 3)) if _classless(model) else out[0]
    n = per_class.shape[0]
    what = "output channel" if _classless(model) else "class"
    if target is None:
        target = int(per_class.argmax())
    if not isinstance(target, (int, np.integer)) or not 0 <= target < n:
        raise ConfigError(f"target must be a {what} index from 0 to {n - 1}, got {target!r}", field="target")
    return int(target), per_class[int(target)]


# --- relevance ---------------------------------------------------------------------------------------------

def relevance_unavailable_reason(model: nn.Module) -> str | None:
    """Why relevance propagation is not defined (or not done) for ``model``, or None when it is."""
    if not any(isinstance(m, AttentionCore) for m in model.modules()):
        return "this model has no attention layers; use method='gradcam'"
    return None


def _readout(model: nn.Module, records: list[tuple[str, CapturedAttention]]) -> str:
    """The token(s) the classifier reads, as its family declares (``readout``): ``cls`` (a CLS token or the
    learned query of V-JEPA 2's pooler), ``frame_cls`` (space-only TimeSformer: one CLS per frame, averaged),
    ``encoder_cls``, ``mean`` or ``first``."""
    readout = _family(model).readout(model.config) if hasattr(model, "config") else "cls"
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


def _head_relevance(captured: CapturedAttention, grad: Tensor | None) -> Tensor:
    """Ā = mean over heads of (∇A ⊙ A)⁺: ``(G, N_q, N_k)``."""
    probs = captured.probs.detach().float()
    if grad is None:  # the target does not depend on this attention
        return torch.zeros(probs.shape[0], *probs.shape[2:])
    return (grad.float() * probs).clamp_(min=0).mean(dim=1).cpu()


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
    """Run the model's innermost attention blocks (:func:`gradcam_layers`) under activation checkpointing
    (``torch.utils.checkpoint``, non-reentrant): the autograd graph keeps each block's input only, and the backward
    pass runs a block's forward again when it reaches it. While a block runs, ``state["block"]`` names it and
    ``state["call"]`` counts its attention calls."""
    model = eager_module(model)
    modules = dict(model.named_modules())
    layers = [n for n in gradcam_layers(model) if isinstance(modules.get(n), nn.Module)]
    names = [n for n in layers if enabled and not any(o.startswith(n + ".") for o in layers)]  # innermost only

    def run(name: str, forward, *args, **kwargs):
        state["block"], state["call"] = name, 0
        try:
            return forward(*args, **kwargs)
        finally:
            state["block"] = None

    with model_lock(model):  # no other forward meets the patched blocks
        for name in names:
            block = functools.partial(run, name, modules[name].forward)
            modules[name].forward = functools.partial(checkpoint, block, use_reentrant=False)
        try:
            yield
        finally:
            for name in names:
                del modules[name].forward  # the class's forward again


def _relevance(model: nn.Module, x: Tensor, target: int | None, recompute: bool = True):
    """The relevance row of the readout token. Each layer's Ā is taken from its gradient as the backward pass
    reaches it, and the gradient is freed there: never every layer's N×N gradient at once. The attention blocks
    run under activation checkpointing (:func:`_recomputed_blocks`): a block's attention probabilities are not
    kept from the forward to the backward but computed again, by the same operations on the same input (the same
    numbers), when the backward reaches the block — one block's graph in memory at a time, for one more forward's
    time. Without ``recompute`` every block keeps its graph from the forward."""
    reason = relevance_unavailable_reason(model)
    if reason:
        raise ValueError(f"relevance is not available: {reason}")
    state: dict[str, Any] = {"block": None, "call": 0, "forward_done": False}
    grads: dict[int, Tensor] = {}
    recomputed: dict[int, Tensor] = {}
    originals: list[CapturedAttention] = []  # forward order; inside a block the probabilities as a meta tensor
    in_block: dict[tuple[str, int], int] = {}  # (block, its k-th call) -> index in the forward

    def take(i: int, grad: Tensor) -> None:
        probs = recomputed.pop(i, None)
        grads[i] = _head_relevance(originals[i] if probs is None else CapturedAttention(probs, originals[i].layout),
                                   grad)

    def keep(captured: CapturedAttention) -> CapturedAttention | None:
        block, k = state["block"], state["call"]
        state["call"] = k + 1
        if state["forward_done"]:  # a block computed again by the backward pass
            recomputed[in_block[block, k]] = captured.probs
            return None
        i = len(originals)
        captured.probs.register_hook(functools.partial(take, i))
        if block is None:  # outside the blocks (V-JEPA 2's pooler): kept from the forward
            originals.append(captured)
            return captured
        in_block[block, k] = i
        light = torch.empty(captured.probs.shape, dtype=captured.probs.dtype, device="meta")
        originals.append(CapturedAttention(light, captured.layout))
        return originals[-1]

    with _recomputed_blocks(model, state, recompute), capturing(model, keep_graph=True, eval_mode=True, reduce=keep) as records, \
            torch.enable_grad():
        out = model(x)
        state["forward_done"] = True
        records = list(records.calls[:len(originals)])
        target, score = _target_score(model, out, target)
        torch.autograd.grad(score, x)
    calls = originals
    relevances = [grads[i] if i in grads else _head_relevance(c, None) for i, c in enumerate(calls)]
    readout = _readout(model, records)
    if readout == "encoder_cls":  # ViViT model 2: the spatial encoder's CLS per frame, then the temporal encoder
        tokens, _ = _propagate_factorized_encoder(model, records, relevances)
    else:
        tokens, _ = _propagate(_steps(records, relevances), readout)
    return tokens, target, score, out


# --- Grad-CAM ----------------------------------------------------------------------------------------------

def gradcam_layers(model: nn.Module) -> list[str]:
    """Layers Grad-CAM can use, in execution order: the blocks that hold an attention (V-JEPA 2's pooler and
    predictor left out), or the layers the family declares (FIERY's temporal blocks and bottlenecks)."""
    declared = _family(model).layers
    if declared is not None:
        return declared(model)
    names = []
    for parent_name, parent in model.named_modules():
        if isinstance(parent, nn.ModuleList) and not parent_name.startswith(("pooler", "predictor")):
            names += [f"{parent_name}.{i}" for i, block in enumerate(parent)
                      if any(isinstance(m, AttentionCore) for m in block.modules())]
    return names


def default_gradcam_layer(model: nn.Module) -> str:
    """The last-but-one block (the last block's input): after the last block, patch tokens no longer reach a
    CLS token, so their gradient there is zero; FIERY: its last layer."""
    layers = gradcam_layers(model)
    if not layers:
        raise ValueError("this model has no layer Grad-CAM can use")
    return layers[-1] if _family(model).layers is not None or len(layers) == 1 else layers[-2]


def _feature_map(model: nn.Module, out: Tensor, grid: Grid | None) -> Tensor:
    """A layer's output (first clip) as ``(C, T′, H′, W′)``."""
    if out.ndim == 5:  # Swin keeps (B, T, H, W, C); convolutions (B, C, T, H, W)
        return out[0].permute(3, 0, 1, 2) if _family(model).channels_last_features else out[0]
    if out.ndim != 3 or grid is None:
        raise ValueError(f"Grad-CAM needs a layer whose output lies on the token grid; got shape {tuple(out.shape)}")
    t, h, w = grid
    if out.shape[0] == t > 1:  # one group per frame (space-only TimeSformer, ViViT's spatial encoder)
        return rearrange(out[:, out.shape[1] - h * w:], "t (h w) c -> c t h w", h=h)
    tokens = out[0, out.shape[1] - t * h * w:]  # drop a CLS token
    order = _family(model).token_order
    return rearrange(tokens, f"{order} c -> c t h w", t=t, h=h, w=w)


def _gradcam(model: nn.Module, x: Tensor, target: int | None, layer: str | None):
    layer = layer or default_gradcam_layer(model)
    modules = dict(model.named_modules())
    if layer not in modules or layer not in gradcam_layers(model):
        raise ConfigError(f"layer={layer!r} is not a layer Grad-CAM can use; choose one of "
                          f"{', '.join(gradcam_layers(model))}", field="layer")
    saved: list[Tensor] = []

    def start_graph(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
        """The layer's output as the graph's leaf: the backward runs from the score to here, no further."""
        saved.append(output.detach().requires_grad_(True))
        return saved[-1]

    # the layouts of the layer's own attention calls (the token grid it hands on); every other layer keeps its
    # fused kernel, and nothing before the layer enters the autograd graph
    inside = [n for n in capture_names(model).values() if n == layer or n.startswith(layer + ".")]
    with capturing(model, list(dict.fromkeys(inside)), reduce=lambda c: c.layout, eval_mode=True) as records, \
            torch.enable_grad():
        handle = modules[layer].register_forward_hook(start_graph)
        try:
            out = model(x)
            target, score = _target_score(model, out, target)
            (grad,) = torch.autograd.grad(score, saved[0])
        finally:
            handle.remove()
    layouts = [c for _, c in records]
    grid = (layouts[-1].q_grid or layouts[-1].grid) if layouts else None
    acts, grads = _feature_map(model, saved[0].detach(), grid), _feature_map(model, grad, grid)
    weights = grads.float().mean(dim=(1, 2, 3))  # (C,)
    cam = torch.relu(torch.einsum("c,cthw->thw", weights, acts.float()))
    return cam.cpu().numpy(), target, score, out, layer


# --- entry point -------------------------------------------------------------------------------------------

def to_frames(tokens: np.ndarray, size: Grid) -> np.ndarray:
    """A (T′, H′, W′) token map on the input's (T, H, W): each frame takes the token slice covering it, resized
    bilinearly in space."""
    t = size[0]
    index = np.minimum(np.arange(t) * tokens.shape[0] // t, tokens.shape[0] - 1)
    slices = torch.from_numpy(np.ascontiguousarray(tokens[index], dtype=np.float32))[:, None]  # (T, 1, H′, W′)
    return F.interpolate(slices, size=size[1:], mode="bilinear", align_corners=False)[:, 0].numpy()


def explain(model: nn.Module, x: Tensor, *, target: int | None = None, method: str = "relevance",
            layer: str | None = None, recompute: bool = True) -> Explanation:
    """Explain the model's score for ``target`` (default: the top class) on the first clip of ``x``.

    ``method`` is ``"relevance"``, ``"rollout"`` or ``"gradcam"`` (``layer``: see :func:`gradcam_layers`;
    default :func:`default_gradcam_layer`). Raises ``ValueError`` (a :class:`ConfigError` for a bad
    ``target``, ``method`` or ``layer``) where a method does not apply, saying why.

    Relevance computes each attention block's probabilities again in its backward pass (``recompute``, the
    default): the same map with 0.3–0.6× the memory, for 1.3–1.5× the time (``bench/explain.py``:
    swin3d_t 2.48 → 1.41 GiB, 5.0 → 6.9 s; timesformer_base 1.24 → 0.52 GiB, 3.0 → 4.4 s; 2 CPU threads).
    ``recompute=False`` keeps them from the forward instead."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not allowed: choose one of {', '.join(METHODS)}", field="method")
    if method != "gradcam" and not any(isinstance(m, AttentionCore) for m in model.modules()):
        raise ValueError(f"{method} is not available: this model has no attention (FIERY's temporal model is "
                         "convolutional); use method='gradcam'")
    x = x[:1]
    note = ""
    if method == "relevance":
        with activation_gradients_only(model):
            tokens, target, score, out = _relevance(model, x.detach().requires_grad_(True), target, recompute)
    elif method == "gradcam":
        with activation_gradients_only(model):
            tokens, target, score, out, layer = _gradcam(model, x.detach(), target, layer)
    else:
        try:
            tokens = rollout(model, x)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        with torch.no_grad(), capturing(model, eval_mode=True):
            out = model(x)
        target, score = _target_score(model, out, target)
        note = "rollout is not class-specific: the map is the same for every target"
    logits = None if _classless(model) else out[0].detach().float().cpu().numpy()
    tokens = np.asarray(tokens, dtype=np.float32)
    return Explanation(tokens=tokens, frames=to_frames(tokens, input_thw(model, x)), method=method,
                       target=target, score=float(score.detach()), logits=logits,
                       layer=layer if method == "gradcam" else None, note=note)
