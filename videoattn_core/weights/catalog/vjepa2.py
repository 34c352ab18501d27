"""V-JEPA 2's published video classifiers (attentive probes) on the Hugging Face Hub."""

from __future__ import annotations

from .records import IMAGENET_MEAN, IMAGENET_STD, Recipe, WeightsEntry


def entries() -> list[WeightsEntry]:
    """The attentive-probe classifiers of V-JEPA 2 converted to Hugging Face (collection ``facebook/v-jepa-2``).

    Recipe: the official evaluation (``evals/video_classification_frozen``, ``configs/inference/*``):
    ``frames_per_clip`` frames ``frame_step`` apart, ImageNet mean/std. Its single-view ``VideoTransform`` (and the
    Hub's processor) resizes the short side to ``int(crop · 256/224)`` and centre-crops ``crop``; with
    ``num_views_per_segment`` > 1, ``make_transforms`` builds ``EvalVideoTransform(short_side_size=crop)``, which
    resizes the short side to ``crop`` itself and cuts 3 windows along the long side (``multi_crop_resize``).
    Metrics: top-1 of the official probes in the repository's README, measured with ``num_segments`` clips ×
    ``num_views_per_segment`` = 3 crops whose tokens the probe reads together; no top-5 is published. The Diving48
    probes read four encoder layers (``out_layers``); the Hugging Face class reads the last one only."""
    entries = []
    cases = [  # preset, repo, dataset, frames, step, crop, clips, top-1, inference config
        ("vjepa2_vitl", "facebook/vjepa2-vitl-fpc16-256-ssv2", "ssv2", 16, 4, 256, 2, 73.7, "vitl/ssv2"),
        ("vjepa2_vitl_diving48", "facebook/vjepa2-vitl-fpc32-256-diving48", "diving48", 32, 2, 256, 4, 89.0,
         "vitl/diving48"),
        ("vjepa2_vitg_384", "facebook/vjepa2-vitg-fpc64-384-ssv2", "ssv2", 64, 2, 384, 2, 77.3, "vitg-384/ssv2"),
        ("vjepa2_vitg_384_diving48", "facebook/vjepa2-vitg-fpc32-384-diving48", "diving48", 32, 2, 384, 4, 90.2,
         "vitg-384/diving48"),
    ]
    for preset, repo, dataset, frames, step, crop, clips, top1, config in cases:
        recipe = Recipe(frames, step, int(crop * 256 / 224), crop, IMAGENET_MEAN, IMAGENET_STD,
                        source=f"facebookresearch/vjepa2 configs/inference/{config}.yaml (frames_per_clip={frames}, "
                               f"frame_step={step}, resolution={crop}) and its eval VideoTransform; transformers "
                               f"VJEPA2VideoProcessor(crop_size={crop}) as convert_vjepa2_to_hf.py saves it (checked "
                               f"there against the official preprocessor) and convert_vjepa2_classifier_to_hf.py "
                               f"copies from the encoder repository: short side int(crop·256/224) = "
                               f"{int(crop * 256 / 224)}, centre crop {crop}, bilinear, ×1/255, ImageNet mean/std; "
                               f"3 crops as evals/video_classification_frozen/utils.py EvalVideoTransform "
                               f"(num_views_per_segment=3, short_side_size=crop): short side {crop}, windows at the "
                               f"start, middle and end of the long side (there OpenCV bilinear, the last window at "
                               f"2·⌊(long−crop)/2⌋, a pixel short of the end when long−crop is odd)",
                        resampling="huggingface", clips=clips, crops=3, multi_crop_resize=crop)
        entries.append(WeightsEntry(
            name=f"{preset}.hf_{dataset}", preset=preset, source="huggingface", dataset=dataset, recipe=recipe,
            layout="Hugging Face (VJEPA2ForVideoClassification)", hf_repo=repo, filename="model.safetensors",
            url=f"https://huggingface.co/{repo}/resolve/main/model.safetensors", page=f"https://huggingface.co/{repo}",
            metrics={"acc@1": top1},
            metrics_protocol=f"official attentive probe, facebookresearch/vjepa2 README ({clips} clips × 3 crops "
                             f"of a {crop} px short side, tokens of all clips read together)" + (
                                 "; the probe reads encoder layers 17/19/21/23 (ViT-L) or 24/29/34/39 (ViT-g), the "
                                 "Hugging Face class the last layer only" if dataset == "diving48" else ""),
            notes="no hash or size of model.safetensors was available here: the download cannot be verified"))
    return entries
