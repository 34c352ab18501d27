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

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.layers import AttentionCore
from .capture import activation_gradients_only, capturing
from .gradcam import gradcam
from .maps import rollout
from .relevance import relevance
from .targets import Grid, classless, input_thw, target_score

METHODS = ("relevance", "rollout", "gradcam")


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


def to_frames(tokens: np.ndarray, size: Grid) -> np.ndarray:
    """A (T′, H′, W′) token map on the input's (T, H, W): each frame takes the token slice covering it, resized
    bilinearly in space."""
    t = size[0]
    index = np.minimum(np.arange(t) * tokens.shape[0] // t, tokens.shape[0] - 1)
    slices = torch.from_numpy(np.ascontiguousarray(tokens[index], dtype=np.float32))[:, None]  # (T, 1, H′, W′)
    return F.interpolate(slices, size=size[1:], mode="bilinear", align_corners=False)[:, 0].numpy()


def explain(model: nn.Module, x: Tensor, *, target: int | None = None, method: str = "relevance",
            layer: str | None = None, recompute: bool = False) -> Explanation:
    """Explain the model's score for ``target`` (default: the top class) on the first clip of ``x``.

    ``method`` is ``"relevance"``, ``"rollout"`` or ``"gradcam"`` (``layer``: see
    :func:`~videoattn_core.attention.gradcam.gradcam_layers`; default
    :func:`~videoattn_core.attention.gradcam.default_gradcam_layer`). Raises ``ValueError`` (a
    :class:`ConfigError` for a bad ``target``, ``method`` or ``layer``) where a method does not apply, saying why.

    Relevance runs the attention on the fused kernel and recomputes each call's probabilities, a block of rows at a
    time, in the backward pass (:func:`~videoattn_core.attention.relevance.relevance`). ``recompute`` also runs
    each attention block again in the backward pass instead of keeping its activations: 0.3–0.75× the memory for
    1–1.6 forwards more of time (``bench/explain.py --threads 2 [--recompute]``)."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not allowed: choose one of {', '.join(METHODS)}", field="method")
    if method != "gradcam" and not any(isinstance(m, AttentionCore) for m in model.modules()):
        raise ValueError(f"{method} is not available: this model has no attention (FIERY's temporal model is "
                         "convolutional); use method='gradcam'")
    x = x[:1]
    note = ""
    if method == "relevance":
        with activation_gradients_only(model):
            tokens, target, score, out = relevance(model, x.detach(), target, recompute)
    elif method == "gradcam":
        with activation_gradients_only(model):
            tokens, target, score, out, layer = gradcam(model, x.detach(), target, layer)
    else:
        try:
            tokens = rollout(model, x)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        with torch.no_grad(), capturing(model, [], eval_mode=True):  # eval mode, nothing captured: fused attention
            out = model(x)
        target, score = target_score(model, out, target)
        note = "rollout is not class-specific: the map is the same for every target"
    logits = None if classless(model) else out[0].detach().float().cpu().numpy()
    tokens = np.asarray(tokens, dtype=np.float32)
    return Explanation(tokens=tokens, frames=to_frames(tokens, input_thw(model, x)), method=method,
                       target=target, score=float(score.detach()), logits=logits,
                       layer=layer if method == "gradcam" else None, note=note)
