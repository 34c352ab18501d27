"""TimeSformer's published checkpoints: the Hugging Face conversions (``facebook/timesformer-{base,hr}-finetuned-
{k400,k600,ssv2}``; the large models as ``fcakyon/timesformer-large-finetuned-{k400,k600}`` by the author of the
port), with the sha256 of ``pytorch_model.bin`` from its Git LFS pointer where it could be found, and the official
facebookresearch/TimeSformer files (Dropbox, no hash published)."""

from __future__ import annotations

from typing import Any, Callable

from .records import SLOWFAST_MEAN, SLOWFAST_STD, Recipe, WeightsEntry

_TIMESFORMER_README = "https://github.com/facebookresearch/TimeSformer#model-zoo"


def _timesformer_recipe(frames: int, rate: int | None, size: int, what: str, port: bool) -> Recipe:
    # The official configs sample DATA.NUM_FRAMES × DATA.SAMPLING_RATE (one clip from the start of the video:
    # TimeSformer's PySlowFast fork has no offset sampling) and test 1 clip × 3 crops of TEST_CROP_SIZE with the
    # short side scaled to it, DATA.MEAN/STD defaults. The Hugging Face ports resize with their image processor
    # (VideoMAEImageProcessor: shortest_edge = crop = TEST_CROP_SIZE, resample=2 (PIL bilinear), rescale 1/255,
    # the same mean and std).
    if port:
        return Recipe(frames, rate, size, size, SLOWFAST_MEAN, SLOWFAST_STD, resampling="huggingface",
                      clip_rule="timesformer", crops=3,
                      source=f"HF preprocessor_config.json (VideoMAEImageProcessor); frames as facebookresearch/"
                             f"TimeSformer configs/{what}")
    return Recipe(frames, rate, size, size, SLOWFAST_MEAN, SLOWFAST_STD, resampling="pyslowfast",
                  clip_rule="timesformer", crops=3, source=f"facebookresearch/TimeSformer configs/{what}")


_TSF_K = {  # preset: (frames, rate, size, config file, SSv2 frames)
    "timesformer_base": (8, 32, 224, "Kinetics/TimeSformer_divST_8x32_224.yaml", 8),
    "timesformer_hr": (16, 16, 448, "Kinetics/TimeSformer_divST_16x16_448.yaml", 16),
    "timesformer_l": (96, 4, 224, "Kinetics/TimeSformer_divST_96x4_224.yaml", 64),
}


def _hf(preset: str, repo: str, dataset: str, recipe: Recipe, metrics: tuple[float, float], size_mb: float | None,
        sha256: str | None, overrides: dict[str, Any] | None = None, notes: str = "") -> WeightsEntry:
    tag = {"kinetics400": "k400", "kinetics600": "k600", "ssv2": "ssv2"}[dataset]
    return WeightsEntry(
        name=f"{preset}.hf_{tag}", preset=preset, source="huggingface", dataset=dataset, recipe=recipe,
        layout="Hugging Face (TimesformerForVideoClassification)", hf_repo=repo, filename="pytorch_model.bin",
        url=f"https://huggingface.co/{repo}/resolve/main/pytorch_model.bin", page=f"https://huggingface.co/{repo}",
        metrics={"acc@1": metrics[0], "acc@5": metrics[1]},
        metrics_protocol="official TimeSformer model zoo (1 temporal clip × 3 spatial crops)",
        size_mb=size_mb, size_unit=1000 ** 2, sha256=sha256, overrides=overrides or {},
        notes=notes or ("sha256 from the Git LFS pointer of pytorch_model.bin" if sha256 else
                        f"no sha256 found for this file: only its size (≈{size_mb:.0f} MB) is checked"))


def _tsf_official(preset: str, file: str, dropbox: str, dataset: str, recipe: Recipe, metrics: tuple[float, float],
                  overrides: dict[str, Any] | None = None) -> WeightsEntry:
    tag = {"kinetics400": "k400", "kinetics600": "k600", "ssv2": "ssv2"}[dataset]
    return WeightsEntry(
        name=f"{preset}.official_{tag}", preset=preset, source="official", dataset=dataset, recipe=recipe,
        layout="official (facebookresearch/TimeSformer)", filename=file,
        url=f"https://www.dropbox.com/s/{dropbox}/{file}?dl=1", page=_TIMESFORMER_README,
        metrics={"acc@1": metrics[0], "acc@5": metrics[1]},
        metrics_protocol="official TimeSformer model zoo (1 temporal clip × 3 spatial crops)",
        overrides=overrides or {},
        notes="no hash or size is published for the Dropbox files: the download cannot be verified")


def _timesformer_base(recipes: dict[bool, tuple[Recipe, Recipe]]) -> list[WeightsEntry]:
    (hf_kin, hf_ssr), (kin, ssr) = recipes[True], recipes[False]  # Hugging Face ports, official files
    p = "timesformer_base"
    return [
        _hf(p, "facebook/timesformer-base-finetuned-k400", "kinetics400", hf_kin, (77.9, 93.2), 486, None),
        _hf(p, "facebook/timesformer-base-finetuned-k600", "kinetics600", hf_kin, (79.1, 94.4), 487,
            "fb24c09fa3d2f4cbf13ddd41a82397ac00ee471a6143d6541190601599d2ffdf", {"num_classes": 600}),
        _hf(p, "facebook/timesformer-base-finetuned-ssv2", "ssv2", hf_ssr, (59.1, 85.6), 486,
            "a0343cc07c303f9551d912a7678170a63b9cf087ef2e757edae529c6825dc3f7", {"num_classes": 174}),
        _tsf_official(p, "TimeSformer_divST_8x32_224_K400.pyth", "g5t24we9gl5yk88", "kinetics400", kin, (77.9, 93.2)),
        _tsf_official(p, "TimeSformer_divST_8x32_224_K600.pyth", "4h2qt41m2z3aqrb", "kinetics600", kin, (79.1, 94.4),
                      {"num_classes": 600}),
        _tsf_official(p, "TimeSformer_divST_8_224_SSv2.pyth", "tybhuml57y24wpm", "ssv2", ssr, (59.1, 85.6),
                      {"num_classes": 174}),
    ]


def _timesformer_hr(recipes: dict[bool, tuple[Recipe, Recipe]]) -> list[WeightsEntry]:
    (hf_kin, hf_ssr), (kin, ssr) = recipes[True], recipes[False]  # Hugging Face ports, official files
    p = "timesformer_hr"
    return [
        _hf(p, "facebook/timesformer-hr-finetuned-k400", "kinetics400", hf_kin, (79.6, 94.0), 488,
            "7f57219e9892e2ff9a77b547766112cbccd2c134930500a634562fba9939437c"),
        _hf(p, "facebook/timesformer-hr-finetuned-k600", "kinetics600", hf_kin, (81.8, 95.8), 489,
            "199273d84d79cea619f71b3bcc8c2bdd5538e78420e7be19b8da15f46126d285", {"num_classes": 600}),
        _hf(p, "facebook/timesformer-hr-finetuned-ssv2", "ssv2", hf_ssr, (61.8, 86.9), 487,
            "d4992195ff13ebeea1d235c57807b1e1cedf7805f28724823797d839256d6305", {"num_classes": 174}),
        _tsf_official(p, "TimeSformer_divST_16x16_448_K400.pyth", "6f0x172lpqy3oxt", "kinetics400", kin, (79.6, 94.0)),
        _tsf_official(p, "TimeSformer_divST_16x16_448_K600.pyth", "ft1e92g2vhvxecv", "kinetics600", kin, (81.8, 95.8),
                      {"num_classes": 600}),
        _tsf_official(p, "TimeSformer_divST_16_448_SSv2.pyth", "9t68uzk8w2fpfnv", "ssv2", ssr, (61.8, 86.9),
                      {"num_classes": 174}),
    ]


def _timesformer_l(recipes: dict[bool, tuple[Recipe, Recipe]]) -> list[WeightsEntry]:
    (hf_kin, _), (kin, ssr) = recipes[True], recipes[False]  # Hugging Face ports, official files
    p = "timesformer_l"
    port = "converted and published by the author of the Hugging Face port (not under the facebook organisation); "
    return [
        _hf(p, "fcakyon/timesformer-large-finetuned-k400", "kinetics400", hf_kin, (80.6, 94.7), None, None,
            notes=port + "neither its sha256 nor its size was found: the download cannot be verified"),
        _hf(p, "fcakyon/timesformer-large-finetuned-k600", "kinetics600", hf_kin, (82.2, 95.6), None, None,
            {"num_classes": 600}, notes=port + "neither its sha256 nor its size was found: the download cannot be "
                                               "verified"),
        _tsf_official(p, "TimeSformer_divST_96x4_224_K400.pyth", "r1iuxahif3sgimo", "kinetics400", kin, (80.6, 94.7)),
        _tsf_official(p, "TimeSformer_divST_96x4_224_K600.pyth", "857rx6xeclxfhdg", "kinetics600", kin, (82.2, 95.6),
                      {"num_classes": 600}),
        _tsf_official(p, "TimeSformer_divST_64_224_SSv2.pyth", "3f1rm2al8mhprwa", "ssv2", ssr, (62.0, 87.5),
                      {"num_classes": 174, "num_frames": 64}),
    ]


_TIMESFORMER_ENTRIES: dict[str, Callable[[dict[bool, tuple[Recipe, Recipe]]], list[WeightsEntry]]] = {
    "timesformer_base": _timesformer_base, "timesformer_hr": _timesformer_hr, "timesformer_l": _timesformer_l}


def entries() -> list[WeightsEntry]:
    out: list[WeightsEntry] = []
    # TimeSformer — Hugging Face conversions, then the official Dropbox files
    for preset, (frames, rate, size, config, ssv2_frames) in _TSF_K.items():
        ssv2_config = config.replace("Kinetics/", "SSv2/").replace(f"_{frames}x{rate}_", f"_{ssv2_frames}_")
        recipes = {port: (_timesformer_recipe(frames, rate, size, config, port),
                          _timesformer_recipe(ssv2_frames, None, size, ssv2_config, port)) for port in (True, False)}
        out.extend(_TIMESFORMER_ENTRIES[preset](recipes))
    return out
