"""What an explanation explains: the model's family declarations, the scalar score of a target (a class's logit,
or for a model without classes an output channel's mean) and the input's frame grid. Shared by relevance
(:mod:`.relevance`), Grad-CAM (:mod:`.gradcam`) and :func:`~videoattn_core.attention.explanations.explain`."""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..registry import Family, family_of_model

Grid = tuple[int, int, int]


def family_of(model: nn.Module) -> Family:
    """What the model's family declares (:class:`~videoattn_core.registry.Family`); a module of no registered
    family gets the defaults (a CLS-token classifier, tokens ``(t h w)``)."""
    return family_of_model(model) or _UNREGISTERED


_UNREGISTERED = Family("", ModelConfig, nn.Module, "", "")


def classless(model: nn.Module) -> bool:
    """A model without a classification head (FIERY's temporal model): its output channels are explained."""
    return not getattr(model, "config", ModelConfig()).has_head


def input_thw(model: nn.Module, x: Tensor) -> Grid:
    """The input's (T, H, W), by the config's ``input_layout``: ``B C T H W`` (every classifier) or
    ``B T C H W`` (FIERY's features)."""
    layout = getattr(model, "config", ModelConfig()).input_layout
    return (x.shape[1], x.shape[3], x.shape[4]) if layout == "B T C H W" else tuple(x.shape[2:5])


def target_score(model: nn.Module, out: Tensor, target: int | None) -> tuple[int, Tensor]:
    """The scalar to explain: the target class's logit (default the top class); for a model without classes
    (FIERY) the output channel's mean over time and space (default the channel with the largest mean)."""
    per_class = out[0].float().mean(dim=(0, 2, 3)) if classless(model) else out[0]
    n = per_class.shape[0]
    what = "output channel" if classless(model) else "class"
    if target is None:
        target = int(per_class.argmax())
    if not isinstance(target, (int, np.integer)) or not 0 <= target < n:
        raise ConfigError(f"target must be a {what} index from 0 to {n - 1}, got {target!r}", field="target")
    return int(target), per_class[int(target)]
