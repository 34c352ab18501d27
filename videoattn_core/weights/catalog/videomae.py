"""VideoMAE's published checkpoints: the Hugging Face repositories of MCG-NJU and the official model zoo."""

from __future__ import annotations

from .records import IMAGENET_MEAN, IMAGENET_STD, Recipe, WeightsEntry, release

_VIDEOMAE_ZOO = "https://github.com/MCG-NJU/VideoMAE/blob/main/MODEL_ZOO.md"
_VIDEOMAE_FINETUNE = "MCG-NJU/VideoMAE scripts/{}/finetune.sh and {}.py test loader"
_VIDEOMAE_PROTOCOL = "VideoMAE model zoo and paper ({} temporal clips × 3 spatial crops)"
#: transformers' VideoMAE: the blocks' LayerNorms use config.layer_norm_eps (1e-12 in the Hub's config.json),
#: fc_norm PyTorch's default 1e-5; the official code uses 1e-6 for both (videoattn_core.models.videomae)
_VIDEOMAE_HF_EPS = {"norm_eps": 1e-12, "fc_norm_eps": 1e-5}


def _videomae_recipe(dataset: str, resampling: str) -> Recipe:
    # Kinetics-400: 16 frames 4 apart (--sampling_rate 4), 5 clips × 3 crops; SSv2: 16 segments of the whole
    # video (TSN sampling), 2 clips × 3 crops (--test_num_segment, --test_num_crop). Short side 224 then 224 crops
    # (--short_side_size 224 --input_size 224) and ImageNet mean/std (kinetics.py, ssv2.py). Both place their
    # temporal views by the official test loader (clip_rule "videomae"); the official loader resizes uint8 frames
    # with cv2.INTER_LINEAR (resampling "videomae"), the Hugging Face processor with PIL bilinear.
    kinetics = dataset == "kinetics400"
    where = _VIDEOMAE_FINETUNE.format("kinetics" if kinetics else "ssv2", "kinetics" if kinetics else "ssv2")
    if resampling == "huggingface":
        # The Hub processors were uploaded by hand (nielsr, 3 Aug 2022) in the old VideoMAEFeatureExtractor format:
        # MCG-NJU/videomae-base's reads size 224 (short side), centre crop, resample 2 (bilinear), ImageNet
        # mean/std; fine-tunes saved from MCG-NJU/videomae-base-finetuned-kinetics carry the same values. (The
        # conversion script convert_videomae_to_pytorch.py checks its logits with mean = std = 0.5 instead.)
        where += ("; Hub preprocessor_config.json https://huggingface.co/MCG-NJU/videomae-base/blame/main/"
                  "preprocessor_config.json (VideoMAEFeatureExtractor: short side 224, centre crop 224, PIL "
                  "bilinear, ImageNet mean/std)")
    return Recipe(16, 4 if kinetics else None, 224, 224, IMAGENET_MEAN, IMAGENET_STD, source=where,
                  resampling=resampling, clips=5 if kinetics else 2, crops=3, clip_rule="videomae")


def entries() -> list[WeightsEntry]:
    k400, ssv2 = "kinetics400", "ssv2"
    out = []
    # The Hub card of videomae-base-finetuned-kinetics (ViT-B, 1600-epoch pre-training, fine-tuned on K400) prints
    # 80.9/94.7, the model zoo's row for that network (Drive checkpoint 1MzwteHH…) as it stood before
    # MCG-NJU/VideoMAE commit 2254c5e (8 Aug 2022) made merge() average softmax scores over the test views instead
    # of raw logits; the next commit, 2b56a75, moved that row to 81.5/95.1. Same network, newer figure.
    hf = [  # preset, repository, dataset, (acc@1, acc@5), where the figures come from
        ("videomae_s", "MCG-NJU/videomae-small-finetuned-kinetics", k400, (79.0, 93.8), "official model zoo"),
        ("videomae_base", "MCG-NJU/videomae-base-finetuned-kinetics", k400, (81.5, 95.1),
         "official model zoo (MODEL_ZOO.md since commit 2b56a75; the checkpoint of videomae_base.official_k400); the "
         "Hugging Face model card still gives 80.9/94.7, that row before commit 2254c5e (fix multi-clip testing: "
         "softmax before averaging the views)"),
        ("videomae_l", "MCG-NJU/videomae-large-finetuned-kinetics", k400, (85.2, 96.8), "official model zoo"),
        ("videomae_h", "MCG-NJU/videomae-huge-finetuned-kinetics", k400, (86.6, 97.1), "official model zoo"),
        ("videomae_base", "MCG-NJU/videomae-base-finetuned-ssv2", ssv2, (70.8, 92.4), "official model zoo"),
    ]
    for preset, repo, dataset, metrics, figures in hf:
        tag = "k400" if dataset == k400 else "ssv2"
        overrides = dict(_VIDEOMAE_HF_EPS, **({"num_classes": 174} if dataset == ssv2 else {}))
        notes = ("converted by Hugging Face from the official release of the same model; neither its sha256 nor its "
                 "size was found: the download cannot be verified")
        if preset == "videomae_s":
            notes += (". transformers' conversion script writes num_attention_heads=16 for ViT-S, the official "
                      "model has 6 heads: this entry builds the official 6")
        out.append(WeightsEntry(
            name=f"{preset}.hf_{tag}", preset=preset, source="huggingface", dataset=dataset,
            recipe=_videomae_recipe(dataset, "huggingface"), layout="Hugging Face (VideoMAEForVideoClassification)",
            hf_repo=repo, filename="pytorch_model.bin",
            url=f"https://huggingface.co/{repo}/resolve/main/pytorch_model.bin", page=f"https://huggingface.co/{repo}", metrics={"acc@1": metrics[0], "acc@5": metrics[1]},
            metrics_protocol=_VIDEOMAE_PROTOCOL.format(5 if dataset == k400 else 2) + f"; figures from the {figures}",
            size_unit=1000 ** 2, overrides=overrides, notes=notes))
    official = [  # preset, tag, Google Drive id of the fine-tuned checkpoint, dataset, (acc@1, acc@5)
        ("videomae_s", "official_k400", "1ygjLRm1kvs9mwGsP3lLxUExhRo6TWnrx", k400, (79.0, 93.8)),
        ("videomae_base", "official_k400", "1MzwteHH-1yuMnFb8vRBQDvngV1Zl-d3z", k400, (81.5, 95.1)),
        ("videomae_base", "official_k400_800ep", "18EEgdXY9347yK3Yb28O-GxFMbk41F6Ne", k400, (80.0, 94.4)),
        ("videomae_l", "official_k400", "1jX1CiqxSkCfc94y8FRW1YGHy-GNvHCuD", k400, (85.2, 96.8)),
        ("videomae_h", "official_k400", "104ouJZxSVPSAm0LwJXd6IzjdA_RGLqZi", k400, (86.6, 97.1)),
        ("videomae_s", "official_ssv2", "1ajlMrT06jiiM-5YjNI2X_UFyzsuYbbtZ", ssv2, (66.8, 90.3)),
        ("videomae_base", "official_ssv2", "1dt_59tBIyzdZd5Ecr22lTtzs_64MOZkT", ssv2, (70.8, 92.4)),
        ("videomae_base", "official_ssv2_800ep", "1xZCiaPF4w7lYmLt5o1D5tIZyDdLtJAvH", ssv2, (69.6, 92.0)),
    ]
    for preset, tag, drive, dataset, metrics in official:
        out.append(release(
            preset, tag, f"https://drive.google.com/file/d/{drive}/view?usp=sharing", dataset,
            _videomae_recipe(dataset, "videomae"), metrics, _VIDEOMAE_ZOO,
            _VIDEOMAE_PROTOCOL.format(5 if dataset == k400 else 2),
            overrides={"num_classes": 174} if dataset == ssv2 else {}, direct=False,
            filename=f"videomae_{preset.split('_')[1]}_{tag.split('_', 1)[1]}.pth",
            layout="official (MCG-NJU/VideoMAE; the native names, under 'model' or 'module')",
            notes="hosted on Google Drive (no direct download); no hash published: a file placed by hand cannot be "
                  "verified"))
    return out
