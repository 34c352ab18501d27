"""torchvision's video transformers as the references of ``bench/vs_reference.py``: MViT v1/v2 and Video Swin.

Each builder makes torchvision's model (``torchvision.models.video``, ``weights=None``, seeded), our preset of the
same name loaded from its ``state_dict()`` through ``vac.load_checkpoint`` (the torchvision layout is one of the
checkpoint layouts the families read), both in eval mode, float32, on the CPU, and a random clip of the preset's
input shape ``(B, C, T, H, W)``. Importing this module needs torchvision; ``vs_reference.py`` skips it otherwise.
"""

from __future__ import annotations

import torch
from torchvision.models import video as tv_video

import videoattn_core as vac

#: preset name → torchvision builder of the same network
REFERENCES = {
    "mvit_v1_b": tv_video.mvit_v1_b,
    "mvit_v2_s": tv_video.mvit_v2_s,
    "swin3d_t": tv_video.swin3d_t,
    "swin3d_s": tv_video.swin3d_s,
    "swin3d_b": tv_video.swin3d_b,
}


def build_pair(preset: str, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    """``(ours, reference, x)`` for ``preset``: the same weights in both, ``x`` of the preset's input shape."""
    torch.manual_seed(seed)
    reference = REFERENCES[preset](weights=None).eval().float()
    ours = vac.build_model(preset, dtype=torch.float32)
    vac.load_checkpoint(ours, reference.state_dict())
    ours.eval()
    x = torch.randn(vac.get_config(preset).input_shape(batch=1), generator=torch.Generator().manual_seed(seed))
    return ours, reference, x


def pairs() -> dict:
    """Preset name → zero-argument builder of ``(ours, reference, x)``."""
    return {preset: (lambda p=preset: build_pair(p)) for preset in REFERENCES}
