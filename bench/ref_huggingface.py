"""Hugging Face references of the ViT family, for ``bench/vs_reference.py``: TimeSformer, VideoMAE, ViViT, V-JEPA 2.

Each builder makes the Hugging Face classifier from a config that matches our preset (random weights under a fixed
seed, eval, float32, CPU) with its fastest attention (``attn_implementation="sdpa"`` where the model has it;
TimeSformer has only its eager attention), then our preset with the Hugging Face weights read through
``vac.load_checkpoint`` (our loader reads these layouts), so that both compute the same logits. Our model is built
with the fields the Hugging Face config implies (``hf_config_overrides``: VideoMAE's epsilons, for instance).

Runs only where ``transformers`` is installed (the reference environment, not the product's).
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import transformers  # noqa: E402  (ImportError: vs_reference.py skips this module)

import videoattn_core as vac  # noqa: E402
from videoattn_core.registry import family_of, register_preset  # noqa: E402

SEED = 0


class HuggingFaceLogits(nn.Module):
    """Our ``(B, C, T, H, W)`` clip → the Hugging Face model's ``(B, T, C, H, W)`` input → its ``.logits``."""

    def __init__(self, model: nn.Module, input_name: str):
        super().__init__()
        self.model = model
        self.input_name = input_name

    def forward(self, x: Tensor) -> Tensor:
        return self.model(**{self.input_name: x.transpose(1, 2)}).logits


def _pair(preset: str, hf_class, hf_config, input_name: str):
    """Build (ours, reference, x) for the config ``preset`` from a Hugging Face class and config."""
    torch.manual_seed(SEED)
    reference = hf_class(hf_config).eval()
    overrides = {}
    config_overrides = getattr(family_of(preset).model_cls, "hf_config_overrides", None)
    if config_overrides is not None:
        overrides = config_overrides(hf_config.to_dict())
    ours = vac.build_model(preset, **overrides)
    vac.load_checkpoint(ours, reference.state_dict())
    x = torch.randn(ours.config.input_shape(), generator=torch.Generator().manual_seed(SEED + 1))
    return ours.eval(), HuggingFaceLogits(reference, input_name).eval(), x


def timesformer_base(cfg: vac.ModelConfig):
    hf = transformers.TimesformerConfig(
        image_size=cfg.img_size, patch_size=cfg.patch_size, num_channels=cfg.in_chans, num_frames=cfg.num_frames,
        hidden_size=cfg.embed_dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.num_heads,
        intermediate_size=int(cfg.embed_dim * cfg.mlp_ratio), layer_norm_eps=cfg.norm_eps,
        attention_type=cfg.attention_type, qkv_bias=cfg.qkv_bias, num_labels=cfg.num_classes)
    return _pair(cfg, transformers.TimesformerForVideoClassification, hf, "pixel_values")


def videomae_base(cfg: vac.ModelConfig):
    hf = transformers.VideoMAEConfig(
        image_size=cfg.img_size, patch_size=cfg.patch_size, num_channels=cfg.in_chans, num_frames=cfg.num_frames,
        tubelet_size=cfg.tubelet_size, hidden_size=cfg.embed_dim, num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads, intermediate_size=int(cfg.embed_dim * cfg.mlp_ratio),
        use_mean_pooling=cfg.use_mean_pooling, num_labels=cfg.num_classes, attn_implementation="sdpa")
    return _pair(cfg, transformers.VideoMAEForVideoClassification, hf, "pixel_values")


def vivit_b(cfg: vac.ModelConfig):
    hf = transformers.VivitConfig(
        image_size=cfg.img_size, num_frames=cfg.num_frames, tubelet_size=list(cfg.tubelet_size),
        num_channels=cfg.in_chans, hidden_size=cfg.embed_dim, num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.mlp_dim, hidden_act="gelu_fast",
        layer_norm_eps=cfg.norm_eps, qkv_bias=cfg.qkv_bias, num_labels=cfg.num_classes, attn_implementation="sdpa")
    return _pair(cfg, transformers.VivitForVideoClassification, hf, "pixel_values")


def vjepa2_vitl(cfg: vac.ModelConfig):
    hf = transformers.VJEPA2Config(
        crop_size=cfg.img_size, frames_per_clip=cfg.num_frames, patch_size=cfg.patch_size,
        tubelet_size=cfg.tubelet_size, in_chans=cfg.in_chans, hidden_size=cfg.embed_dim,
        num_hidden_layers=cfg.depth, num_attention_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
        qkv_bias=cfg.qkv_bias, layer_norm_eps=cfg.norm_eps, num_pooler_layers=cfg.pooler_depth,
        pred_hidden_size=cfg.predictor_embed_dim, pred_num_hidden_layers=cfg.predictor_depth,
        pred_num_attention_heads=cfg.predictor_num_heads, pred_num_mask_tokens=cfg.predictor_mask_tokens,
        num_labels=cfg.num_classes, attn_implementation="sdpa")
    return _pair(cfg, transformers.VJEPA2ForVideoClassification, hf, "pixel_values_videos")


#: Shallower versions of the largest presets, for a small CPU: the same token grid, width and heads, so every
#: block has the full preset's shapes (and the same share of attention), only fewer of them. Registered as presets
#: in this process so that ``vs_reference.py`` can count their MACs.
SHALLOW = {"vivit_b_depth4": ("vivit_b", {"depth": 4}),
           "vjepa2_vitl_depth6": ("vjepa2_vitl", {"depth": 6})}

BUILDERS = {"timesformer_base": timesformer_base, "videomae_base": videomae_base, "vivit_b": vivit_b,
            "vjepa2_vitl": vjepa2_vitl}


def pairs() -> dict:
    """Preset name → builder of ``(ours, reference, x)``; V-JEPA 2 only where transformers has it."""
    builders = {name: build for name, build in BUILDERS.items()
                if name != "vjepa2_vitl" or hasattr(transformers, "VJEPA2ForVideoClassification")}
    out = {name: partial(build, vac.get_config(name)) for name, build in builders.items()}
    for name, (base, fields) in SHALLOW.items():
        if base in builders:
            config = vac.get_config(base, **fields)
            if name not in vac.list_models():
                register_preset(name, config, f"{base} with {fields} (benchmark only)")
            out[name] = partial(builders[base], config)
    return out
