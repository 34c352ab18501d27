"""ViViT's published checkpoint: the Hugging Face conversion of Scenic's ViViT-B/16x2 (model 1)."""

from __future__ import annotations

from .records import Recipe, WeightsEntry

#: ViViT's evaluation (scenic/projects/vivit/configs/kinetics400/vivit_base_k400.py): 32 frames at stride 2,
#: short side 256, crop 224, zero-centred pixels in [-1, 1] (dataset_configs.zero_centering), 4 clips × 3 crops
VIVIT_RECIPE = Recipe(32, 2, 256, 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                      source="scenic vivit_base_k400.py (num_frames=32, stride=2, min_resize=256, crop_size=224, "
                             "zero_centering); PIL bilinear resampling as the Hugging Face processor",
                      resampling="huggingface", rescale=1 / 127.5, offset=-1.0, clips=4, crops=3)


def entries() -> list[WeightsEntry]:
    repo = "google/vivit-b-16x2-kinetics400"
    return [WeightsEntry(
        name="vivit_b.hf_k400", preset="vivit_b", source="huggingface", dataset="kinetics400", recipe=VIVIT_RECIPE,
        layout="Hugging Face (VivitForVideoClassification)", hf_repo=repo, filename="pytorch_model.bin",
        url=f"https://huggingface.co/{repo}/resolve/main/pytorch_model.bin", page=f"https://huggingface.co/{repo}",
        metrics={"acc@1": 79.9}, size_mb=356, size_unit=1000 ** 2,
        metrics_protocol="Scenic ViViT model zoo, ViViT-B/16x2 Kinetics 400 (4 temporal clips × 3 spatial crops)",
        notes="converted from Scenic's vivit_base_16x2_unfactorized checkpoint (model 1). The Hub processor "
              "(https://huggingface.co/google/vivit-b-16x2-kinetics400/blob/refs%2Fpr%2F3/preprocessor_config.json, "
              "after its update #2: shortest edge 224, centre crop 224, PIL bilinear, rescale 1/127.5 with the "
              "processor's offset -1, then mean = std = 0.5) maps pixels to [-3, 1] and keeps less of the frame "
              "than Scenic's short side 256; the network was trained and evaluated on zero-centred [-1, 1] input "
              "after a 256 px short side, which is what this recipe gives (×1/127.5 − 1, no further "
              "normalisation). config.json names "
              "no classes (LABEL_n): the index order is Kinetics-400's. No sha256 was found: only the size the Hub "
              "lists (356 MB; 88,954,000 float32 parameters are 355.8 MB) is checked")]
