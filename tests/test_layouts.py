"""Memory layout of the residual stream: every family's LayerNorms see token-major (contiguous) tensors.

An elementwise sum keeps the layout of its first input, so one channel-major view at the patch embedding made
every later residual sum of VideoMAE and V-JEPA 2 run strided and every LayerNorm copy its input first (measured:
their forwards 5-12 % slower than Hugging Face's until the embedding wrote its tokens contiguously).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import videoattn_core as vac

SMALL = {
    "timesformer_base": dict(depth=2, img_size=64, num_frames=4),
    "videomae_s": dict(depth=2, img_size=64, num_frames=4),
    "vivit_b_fe": dict(img_size=64, num_frames=8),
    "vjepa2_vitl": dict(depth=2, img_size=64, num_frames=4),
    "mvit_v2_s": dict(),
    "swin3d_t": dict(img_size=64, num_frames=8),
    "swin3d_t ": dict(img_size=64, num_frames=8, patch_norm=False),  # no norm after the embedding
    "swin_divided_st_t": dict(img_size=64, num_frames=8),
    "fiery_temporal": dict(),
}


@pytest.mark.parametrize("preset", list(SMALL))
def test_layer_norms_see_token_major_tensors(preset):
    model = vac.build_model(preset.strip(), **SMALL[preset]).eval()
    strided = []

    def check(module, args):
        if not args[0].is_contiguous():
            strided.append((names[module], tuple(args[0].shape), args[0].stride()))

    names = {m: n for n, m in model.named_modules()}
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.register_forward_pre_hook(check)
    with torch.no_grad():
        model(torch.randn(model.config.input_shape()))
    assert not strided, strided
