"""Published weights: a catalog of public checkpoints per preset, their evaluation recipes, and a fetcher.

Sources, each entry naming the page its numbers come from:

- torchvision's Kinetics-400 weights (``torchvision/models/video/mvit.py``, ``swin_transformer.py``:
  ``MViT_V1_B_Weights``, ``MViT_V2_S_Weights``, ``Swin3D_T/S/B_Weights``): url, the sha256 prefix in the file
  name, the ``VideoClassification`` recipe, params, GFLOPS and acc@1/acc@5;
- the Hugging Face conversions of TimeSformer (``facebook/timesformer-{base,hr}-finetuned-{k400,k600,ssv2}``; the
  large models were published as ``fcakyon/timesformer-large-finetuned-{k400,k600}`` by the author of the port):
  the sha256 of ``pytorch_model.bin`` recorded in its Git LFS pointer where it could be found, and the
  processor's mean/std (0.45/0.225 since the Dec. 2022 revision) and shortest-edge/crop sizes;
- the official repositories' releases: facebookresearch/TimeSformer (Dropbox), PySlowFast's model zoo (MViT v1 and
  v2) and SwinTransformer/Video-Swin-Transformer (GitHub releases). None publishes a hash.

:func:`~videoattn_core.downloads.get_weights` (importable from here too) fetches an entry into torch hub's or the
Hugging Face cache and verifies what the source lets us verify; entries with neither hash nor size are marked
``verification="none"`` and say so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError, WeightsError
from .preprocessing import RESAMPLING_DETAILS

ASSETS = Path(__file__).resolve().parent.parent / "assets"
LABEL_FILES = {
    "kinetics400": "kinetics400_labels.txt",
    "kinetics600": "kinetics600_labels.txt",
    "ssv2": "something_something_v2_labels.txt",
}
DATASET_CLASSES = {"kinetics400": 400, "kinetics600": 600, "ssv2": 174, "diving48": 48}

KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)  # torchvision default
SLOWFAST_MEAN, SLOWFAST_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)  # PySlowFast DATA.MEAN/STD
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # Video Swin img_norm_cfg / 255


@dataclass(frozen=True)
class Recipe:
    """How a model's evaluation reads a clip: ``num_frames`` frames ``sampling_rate`` apart at ``target_fps``
    ("window" sampling, centred) or spread uniformly over the whole clip (``sampling_rate=None``), short side
    resized to ``resize`` with ``resampling`` (:mod:`videoattn_core.preprocessing`), centre crop ``crop``, pixel
    values scaled by ``rescale`` (``None``: divided by 255) plus ``offset``, then normalised with ``mean``/``std``.
    ``clip_rule`` names whose test-time code places the temporal clips (:mod:`videoattn_core.sampling`).

    ``clips`` × ``crops`` is the published multi-view test protocol (temporal clips × spatial crops whose
    softmax scores are averaged); a prediction reads one view unless asked for the protocol's views.
    """

    num_frames: int
    sampling_rate: int | None
    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str
    target_fps: float = 30.0
    resampling: str = "torchvision"
    rescale: float | None = None
    offset: float = 0.0
    clips: int = 1
    crops: int = 1
    clip_rule: str = "slowfast"

    @property
    def sampling(self) -> str:
        return "uniform" if self.sampling_rate is None else "window"

    def adapted(self, num_frames: int | None = None, crop: int | None = None) -> "Recipe":
        """The same recipe for a model built for other input sizes: the resize keeps its ratio to the crop."""
        num_frames = num_frames or self.num_frames
        crop = crop or self.crop
        resize = max(crop, int(round(crop * self.resize / self.crop)))
        if (num_frames, crop) == (self.num_frames, self.crop):
            return self
        return replace(self, num_frames=num_frames, crop=crop, resize=resize,
                       source=f"{self.source} (adapted to {num_frames} frames × {crop} px)")

    def to_dict(self) -> dict[str, Any]:
        return {"num_frames": self.num_frames, "sampling": self.sampling, "sampling_rate": self.sampling_rate,
                "target_fps": self.target_fps, "resize": self.resize, "crop": self.crop, "mean": list(self.mean),
                "std": list(self.std), "resampling": {
                    "source": self.resampling, "interpolation": "bilinear",
                    "antialias": self.resampling == "huggingface",
                    "detail": RESAMPLING_DETAILS.get(self.resampling, self.resampling)},
                "rescale": self.rescale, "offset": self.offset, "clip_rule": self.clip_rule,
                "protocol_views": {"clips": self.clips, "crops": self.crops}, "source": self.source}


@dataclass(frozen=True)
class WeightsEntry:
    """One public checkpoint: where it is, what it was trained on, how it is evaluated, what it scores.

    ``overrides`` are the config fields to set on the preset to build the model this checkpoint fits;
    ``layout`` names the key layout :func:`~videoattn_core.checkpoints.load_checkpoint` will meet.
    """

    name: str
    preset: str
    source: str  # "torchvision", "huggingface" or "official"
    dataset: str
    recipe: Recipe
    layout: str
    url: str = ""
    filename: str = ""
    hf_repo: str | None = None
    hf_revision: str = "main"  # a branch, tag or commit of hf_repo
    page: str = ""
    direct: bool = True
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_protocol: str = ""
    num_params: int | None = None
    gflops: float | None = None
    size_mb: float | None = None  # published size; MB = 10^6 bytes for Hugging Face, MiB for torchvision
    size_unit: int = 1024 ** 2
    sha256: str | None = None
    hash_prefix: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @property
    def num_classes(self) -> int:
        return int(self.overrides.get("num_classes", DATASET_CLASSES[self.dataset]))

    @property
    def verification(self) -> str:
        if self.sha256:
            return "sha256"
        if self.hash_prefix:
            return "sha256 prefix"
        if self.size_mb:
            return "size"
        return "none"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "source": self.source, "dataset": self.dataset,
                "num_classes": self.num_classes, "url": self.url, "filename": self.filename,
                "hf_repo": self.hf_repo, "hf_revision": self.hf_revision,
                "page": self.page, "direct_download": self.direct,
                "metrics": self.metrics, "metrics_protocol": self.metrics_protocol, "num_params": self.num_params,
                "gflops": self.gflops, "size_mb": self.size_mb, "verification": self.verification,
                "sha256": self.sha256, "hash_prefix": self.hash_prefix, "layout": self.layout,
                "overrides": dict(self.overrides), "recipe": self.recipe.to_dict(), "notes": self.notes}


# ----------------------------------------------------------------------------------------------- recipes

_TV = "torchvision VideoClassification"
_TIMESFORMER_README = "https://github.com/facebookresearch/TimeSformer#model-zoo"
_SLOWFAST_ZOO = "https://github.com/facebookresearch/SlowFast/blob/main/MODEL_ZOO.md"
_SWIN_README = "https://github.com/SwinTransformer/Video-Swin-Transformer#results-and-models"


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

# torchvision's weights: VideoClassification on uint8, clips from torchvision's reference evaluation (VideoClips
# at frame_rate, clips_per_video of the weights' meta, UniformClipSampler)
_MVIT_TV = Recipe(16, 4, 256, 224, SLOWFAST_MEAN, SLOWFAST_STD, resampling="torchvision", clip_rule="torchvision",
                  clips=5, source=f"{_TV}(crop_size=224, resize_size=256, mean=0.45, std=0.225); clip_len=16 at "
                                  f"frame_rate=7.5, clips_per_video=5")
_SWIN_TV = Recipe(32, 2, 256, 224, IMAGENET_MEAN, IMAGENET_STD, resampling="torchvision", clip_rule="torchvision",
                  clips=12, source=f"{_TV}(crop_size=224, resize_size=256, ImageNet mean/std); clip_len=32 at "
                                   f"frame_rate=15, clips_per_video=12")
# the official Video Swin: MMAction2 test pipelines (ImageNet mean/std × 255 on 0..255 pixels)
_SWIN_OFFICIAL = Recipe(32, 2, 224, 224, IMAGENET_MEAN, IMAGENET_STD, resampling="mmaction", clip_rule="mmaction",
                        clips=4, crops=3,
                        source="Video-Swin-Transformer test_pipeline: SampleFrames(clip_len=32, frame_interval=2, "
                               "num_clips=4, test_mode=True), Resize(-1, 224), ThreeCrop(224), img_norm_cfg")
_SWIN_SSV2 = Recipe(32, None, 224, 224, IMAGENET_MEAN, IMAGENET_STD, resampling="mmaction", clip_rule="mmaction",
                    crops=3,
                    source="Video-Swin-Transformer sthv2 test_pipeline: SampleFrames(clip_len=1, num_clips=32, "
                           "frame_uniform=True), Resize(-1, 224), ThreeCrop(224), img_norm_cfg")


def _slowfast_recipe(frames: int, rate: int, config: str) -> Recipe:
    # TEST.NUM_SPATIAL_CROPS 1: the short side is scaled to DATA.TRAIN_JITTER_SCALES[0] = 256 and the centre
    # TEST_CROP_SIZE = 224 is cropped (datasets/kinetics.py); DATA.USE_OFFSET_SAMPLING centres a single clip
    return Recipe(frames, rate, 256, 224, SLOWFAST_MEAN, SLOWFAST_STD, resampling="pyslowfast", clip_rule="slowfast",
                  clips=5, source=f"PySlowFast configs/{config} (TRAIN_JITTER_SCALES[0] 256, TEST_CROP_SIZE 224, "
                                  f"USE_OFFSET_SAMPLING, DATA.MEAN/STD; the papers' 5 clips × 1 crop)")


# ----------------------------------------------------------------------------------------------- catalog


def _hash_prefix(filename: str) -> str | None:
    # torch.hub.load_state_dict_from_url(check_hash=True): HASH_REGEX = r"-([a-f0-9]*)\." on the file name
    match = re.search(r"-([a-f0-9]*)\.", filename)
    return match.group(1) if match and match.group(1) else None


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


def _tv(preset: str, url: str, recipe: Recipe, metrics: tuple[float, float], params: int, gflops: float,
        size_mb: float, tag: str = "k400", protocol: str = "", notes: str = "") -> WeightsEntry:
    filename = url.rsplit("/", 1)[-1]
    prefix = _hash_prefix(filename)
    return WeightsEntry(
        name=f"{preset}.torchvision_{tag}", preset=preset, source="torchvision", dataset="kinetics400", recipe=recipe,
        layout="torchvision", url=url, filename=filename, page="https://pytorch.org/vision/stable/models.html"
                                                               "#video-classification",
        metrics={"acc@1": metrics[0], "acc@5": metrics[1]}, metrics_protocol=protocol, num_params=params,
        gflops=gflops, size_mb=size_mb, hash_prefix=prefix, notes=notes)


def _release(preset: str, name: str, url: str, dataset: str, recipe: Recipe, metrics: tuple[float, float],
             page: str, protocol: str, overrides: dict[str, Any] | None = None, direct: bool = True,
             filename: str | None = None, layout: str = "official", notes: str = "") -> WeightsEntry:
    return WeightsEntry(
        name=f"{preset}.{name}", preset=preset, source="official", dataset=dataset, recipe=recipe, layout=layout,
        url=url, filename=filename or url.rsplit("/", 1)[-1].split("?")[0], page=page, direct=direct,
        metrics={"acc@1": metrics[0], "acc@5": metrics[1]}, metrics_protocol=protocol, overrides=overrides or {},
        notes=notes or "no hash or size is published for this release: the download cannot be verified")


_TV_MVIT_PROTOCOL = "torchvision, video-level: frame_rate=7.5, clips_per_video=5, clip_len=16"
_TV_SWIN_PROTOCOL = "torchvision, video-level: frame_rate=15, clips_per_video=12, clip_len=32"
_SWIN_PROTOCOL = "Video Swin Transformer README (4 temporal clips × 3 spatial crops)"
_SF_PROTOCOL = "PySlowFast model zoo (5 temporal clips × 1 spatial crop)"
_SWIN_RELEASE = "https://github.com/SwinTransformer/storage/releases/download/v1.0.4/"
_SF_URL = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/"
_SWIN_LAYOUT = "official (SwinTransformer/Video-Swin-Transformer)"
_MVIT_LAYOUT = "official (PySlowFast MViT)"


def _build_catalog() -> list[WeightsEntry]:
    entries: list[WeightsEntry] = []
    k400, k600, ssv2 = "kinetics400", "kinetics600", "ssv2"
    # TimeSformer — Hugging Face conversions, then the official Dropbox files
    for preset, (frames, rate, size, config, ssv2_frames) in _TSF_K.items():
        ssv2_config = config.replace("Kinetics/", "SSv2/").replace(f"_{frames}x{rate}_", f"_{ssv2_frames}_")
        recipes = {port: (_timesformer_recipe(frames, rate, size, config, port),
                          _timesformer_recipe(ssv2_frames, None, size, ssv2_config, port)) for port in (True, False)}
        entries.extend(_TIMESFORMER_ENTRIES[preset](recipes))
    # MViT
    entries += [
        _tv("mvit_v1_b", "https://download.pytorch.org/models/mvit_v1_b-dbeb1030.pth", _MVIT_TV, (78.477, 93.582),
            36610672, 70.599, 139.764, protocol=_TV_MVIT_PROTOCOL,
            notes="weights ported from the paper (pytorchvideo model zoo)"),
        _release("mvit_v1_b", "official_k400", "https://drive.google.com/file/d/194gJinVejq6A1FmySNKQ8vAN5-FOY-QL/"
                 "view?usp=sharing", k400, _slowfast_recipe(16, 4, "Kinetics/MVIT_B_16x4_CONV.yaml"), (78.4, 93.5),
                 _SLOWFAST_ZOO, _SF_PROTOCOL, direct=False, filename="MVIT_B_16x4_CONV_K400.pyth",
                 layout=_MVIT_LAYOUT,
                 notes="hosted on Google Drive (no direct download); no hash published: a file placed by hand "
                       "cannot be verified"),
        _release("mvit_v1_b_32x3", "official_k400", _SF_URL + "mvit/k400.pyth", k400,
                 _slowfast_recipe(32, 3, "Kinetics/MVIT_B_32x3_CONV.yaml"), (80.4, 94.8), _SLOWFAST_ZOO, _SF_PROTOCOL,
                 layout=_MVIT_LAYOUT),
        _release("mvit_v1_b_32x3", "official_k600", _SF_URL + "mvit/k600.pyth", k600,
                 _slowfast_recipe(32, 3, "Kinetics/MVIT_B_32x3_CONV_K600.yaml"), (83.9, 96.5), _SLOWFAST_ZOO,
                 _SF_PROTOCOL, overrides={"num_classes": 600}, layout=_MVIT_LAYOUT),
        _tv("mvit_v2_s", "https://download.pytorch.org/models/mvit_v2_s-ae3be167.pth", _MVIT_TV, (80.757, 94.665),
            34537744, 64.224, 131.884, protocol=_TV_MVIT_PROTOCOL,
            notes="weights ported from PySlowFast's MViTv2_S_16x4"),
        _release("mvit_v2_s", "official_k400", _SF_URL + "mvitv2/pysf_video_models/MViTv2_S_16x4_k400_f302660347.pyth",
                 k400, _slowfast_recipe(16, 4, "Kinetics/MVITv2_S_16x4.yaml"), (81.0, 94.6), _SLOWFAST_ZOO,
                 _SF_PROTOCOL, layout=_MVIT_LAYOUT),
        _release("mvit_v2_b", "official_k400", _SF_URL + "mvitv2/pysf_video_models/MViTv2_B_32x3_k400_f304025456.pyth",
                 k400, _slowfast_recipe(32, 3, "Kinetics/MVITv2_B_32x3.yaml"), (82.9, 95.7), _SLOWFAST_ZOO,
                 _SF_PROTOCOL, layout=_MVIT_LAYOUT),
    ]
    # Video Swin — torchvision's ports, then the official releases
    swin_tv = [("swin3d_t", "swin3d_t-7615ae03.pth", (77.715, 93.519), 28158070, 43.882, 121.543, "k400"),
               ("swin3d_s", "swin3d_s-da41c237.pth", (79.521, 94.158), 49816678, 82.841, 218.288, "k400"),
               ("swin3d_b", "swin3d_b_1k-24f7c7c6.pth", (79.427, 94.386), 88048984, 140.667, 364.134, "k400"),
               ("swin3d_b", "swin3d_b_22k-7c6ae6fa.pth", (81.643, 95.574), 88048984, 140.667, 364.134,
                "k400_in22k")]
    for preset, file, metrics, params, gflops, size, tag in swin_tv:
        entries.append(_tv(preset, "https://download.pytorch.org/models/" + file, _SWIN_TV, metrics, params, gflops,
                           size, tag=tag, protocol=_TV_SWIN_PROTOCOL,
                           notes="weights ported from the paper" + (" (ImageNet-22K pretraining)" if "22k" in tag
                                                                     else "")))
    swin_official = [
        ("swin3d_t", "official_k400", "swin_tiny_patch244_window877_kinetics400_1k.pth", k400, (78.8, 93.6), {}),
        ("swin3d_s", "official_k400", "swin_small_patch244_window877_kinetics400_1k.pth", k400, (80.6, 94.5), {}),
        ("swin3d_b", "official_k400", "swin_base_patch244_window877_kinetics400_1k.pth", k400, (80.6, 94.6), {}),
        ("swin3d_b", "official_k400_in22k", "swin_base_patch244_window877_kinetics400_22k.pth", k400, (82.7, 95.5),
         {}),
        ("swin3d_b", "official_k600_in22k", "swin_base_patch244_window877_kinetics600_22k.pth", k600, (84.0, 96.5),
         {"num_classes": 600}),
        ("swin3d_b", "official_ssv2", "swin_base_patch244_window1677_sthv2.pth", ssv2, (69.6, 92.7),
         {"num_classes": 174, "window_size": (16, 7, 7)}),
    ]
    for preset, tag, file, dataset, metrics, overrides in swin_official:
        entries.append(_release(preset, tag, _SWIN_RELEASE + file, dataset,
                                _SWIN_SSV2 if dataset == ssv2 else _SWIN_OFFICIAL, metrics, _SWIN_README,
                                _SWIN_PROTOCOL, overrides=overrides, layout=_SWIN_LAYOUT))
    entries += _vivit_entries()
    entries += _videomae_entries()
    entries += _vjepa2_entries()
    return entries


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
    (hf_kin, hf_ssr), (kin, ssr) = recipes[True], recipes[False]  # Hugging Face ports, official files
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


#: ViViT's evaluation (scenic/projects/vivit/configs/kinetics400/vivit_base_k400.py): 32 frames at stride 2,
#: short side 256, crop 224, zero-centred pixels in [-1, 1] (dataset_configs.zero_centering), 4 clips × 3 crops
_VIVIT_RECIPE = Recipe(32, 2, 256, 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                       source="scenic vivit_base_k400.py (num_frames=32, stride=2, min_resize=256, crop_size=224, "
                              "zero_centering); HF preprocessor_config.json sizes and PIL bilinear resampling",
                       resampling="huggingface", rescale=1 / 127.5, offset=-1.0, clips=4, crops=3)


def _vivit_entries() -> list[WeightsEntry]:
    repo = "google/vivit-b-16x2-kinetics400"
    return [WeightsEntry(
        name="vivit_b.hf_k400", preset="vivit_b", source="huggingface", dataset="kinetics400", recipe=_VIVIT_RECIPE,
        layout="Hugging Face (VivitForVideoClassification)", hf_repo=repo, filename="pytorch_model.bin",
        url=f"https://huggingface.co/{repo}/resolve/main/pytorch_model.bin", page=f"https://huggingface.co/{repo}",
        metrics={"acc@1": 79.9},
        metrics_protocol="Scenic ViViT model zoo, ViViT-B/16x2 Kinetics 400 (4 temporal clips × 3 spatial crops)",
        notes="converted from Scenic's vivit_base_16x2_unfactorized checkpoint (model 1). The Hub processor "
              "(shortest edge 256, centre crop 224, PIL bilinear, rescale 1/127.5 with offset -1, then mean = "
              "std = 0.5) maps pixels to [-3, 1]; the network was trained and evaluated on zero-centred [-1, 1] "
              "input, which is what this recipe gives (×1/127.5 − 1, no further normalisation). config.json names "
              "no classes (LABEL_n): the index order is Kinetics-400's. Neither sha256 nor size was found: the "
              "download cannot be verified")]


_VIDEOMAE_ZOO = "https://github.com/MCG-NJU/VideoMAE/blob/main/MODEL_ZOO.md"
_VIDEOMAE_FINETUNE = "MCG-NJU/VideoMAE scripts/{}/finetune.sh and {}.py test loader"
_VIDEOMAE_PROTOCOL = "VideoMAE model zoo and paper ({} temporal clips × 3 spatial crops)"
#: transformers' VideoMAE: the blocks' LayerNorms use config.layer_norm_eps (1e-12 in the Hub's config.json),
#: fc_norm PyTorch's default 1e-5; the official code uses 1e-6 for both (videoattn_core.models.videomae)
_VIDEOMAE_HF_EPS = {"norm_eps": 1e-12, "fc_norm_eps": 1e-5}


def _videomae_recipe(dataset: str, resampling: str) -> Recipe:
    # Kinetics-400: 16 frames 4 apart (--sampling_rate 4), 5 clips × 3 crops; SSv2: 16 segments of the whole
    # video (TSN sampling), 2 clips × 3 crops (--test_num_segment, --test_num_crop). Short side 224 then 224 crops
    # (--short_side_size 224 --input_size 224) and ImageNet mean/std (kinetics.py, ssv2.py). The official loader
    # resizes uint8 frames with cv2.INTER_LINEAR; the Hugging Face processor with PIL bilinear.
    kinetics = dataset == "kinetics400"
    where = _VIDEOMAE_FINETUNE.format("kinetics" if kinetics else "ssv2", "kinetics" if kinetics else "ssv2")
    if resampling == "huggingface":
        where += "; Hugging Face VideoMAE image processor (shortest edge 224, centre crop 224, PIL bilinear)"
    return Recipe(16, 4 if kinetics else None, 224, 224, IMAGENET_MEAN, IMAGENET_STD, source=where,
                  resampling=resampling, clips=5 if kinetics else 2, crops=3)


def _videomae_entries() -> list[WeightsEntry]:
    k400, ssv2 = "kinetics400", "ssv2"
    out = []
    hf = [  # preset, repository, dataset, (acc@1, acc@5), where the figures come from
        ("videomae_s", "MCG-NJU/videomae-small-finetuned-kinetics", k400, (79.0, 93.8), "official model zoo"),
        ("videomae_base", "MCG-NJU/videomae-base-finetuned-kinetics", k400, (80.9, 94.7), "Hugging Face model card"),
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
        out.append(_release(
            preset, tag, f"https://drive.google.com/file/d/{drive}/view?usp=sharing", dataset,
            _videomae_recipe(dataset, "mmaction"), metrics, _VIDEOMAE_ZOO,
            _VIDEOMAE_PROTOCOL.format(5 if dataset == k400 else 2),
            overrides={"num_classes": 174} if dataset == ssv2 else {}, direct=False,
            filename=f"videomae_{preset.split('_')[1]}_{tag.split('_', 1)[1]}.pth",
            layout="official (MCG-NJU/VideoMAE; the native names, under 'model' or 'module')",
            notes="hosted on Google Drive (no direct download); no hash published: a file placed by hand cannot be "
                  "verified"))
    return out


_VJEPA2_README = "https://github.com/facebookresearch/vjepa2#evaluation-attentive-probes"


def _vjepa2_entries() -> list[WeightsEntry]:
    """The attentive-probe classifiers of V-JEPA 2 converted to Hugging Face (collection ``facebook/v-jepa-2``).

    Recipe: the official evaluation (``evals/video_classification_frozen``, ``configs/inference/*``):
    ``frames_per_clip`` frames ``frame_step`` apart, ImageNet mean/std; its single-view transform resizes the short
    side to ``int(crop · 256/224)`` and centre-crops ``crop`` (the multi-view one resizes to ``crop`` and takes 3
    crops along the long side). Metrics: top-1 of the official probes in the repository's README, measured with
    ``num_segments`` clips × ``num_views_per_segment`` crops whose tokens the probe reads together; no top-5 is
    published. The Diving48 probes read four encoder layers (``out_layers``); the Hugging Face class reads the
    last one only."""
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
                               f"frame_step={step}, resolution={crop}) and its eval VideoTransform; the Hugging Face "
                               f"VJEPA2VideoProcessor resamples with PIL bilinear",
                        resampling="huggingface", clips=clips, crops=3)
        entries.append(WeightsEntry(
            name=f"{preset}.hf_{dataset}", preset=preset, source="huggingface", dataset=dataset, recipe=recipe,
            layout="Hugging Face (VJEPA2ForVideoClassification)", hf_repo=repo, filename="model.safetensors",
            url=f"https://huggingface.co/{repo}/resolve/main/model.safetensors", page=f"https://huggingface.co/{repo}",
            metrics={"acc@1": top1},
            metrics_protocol=f"official attentive probe, facebookresearch/vjepa2 README ({clips} clips × 3 crops, "
                             f"tokens of all clips read together)" + (
                                 "; the probe reads encoder layers 17/19/21/23 (ViT-L) or 24/29/34/39 (ViT-g), the "
                                 "Hugging Face class the last layer only" if dataset == "diving48" else ""),
            notes="no hash or size of model.safetensors was available here: the download cannot be verified"))
    return entries


_TIMESFORMER_ENTRIES: dict[str, Callable[[dict[bool, tuple[Recipe, Recipe]]], list[WeightsEntry]]] = {
    "timesformer_base": _timesformer_base, "timesformer_hr": _timesformer_hr, "timesformer_l": _timesformer_l}


CATALOG: dict[str, WeightsEntry] = {e.name: e for e in _build_catalog()}

#: evaluation recipe per preset: the recipe of its first (default) catalog entry, or the paper's protocol
#: for presets without published weights
RECIPES: dict[str, Recipe] = {}
for _entry in CATALOG.values():
    RECIPES.setdefault(_entry.preset, _entry.recipe)
RECIPES["swin3d_l"] = replace(_SWIN_OFFICIAL, source="Video Swin Transformer paper protocol for Swin-L at 224 px "
                                                     "(32×2 frames, ImageNet mean/std); no public checkpoint")
#: families whose presets have no published weights borrow the recipe of their closest relative
FAMILY_RECIPES: dict[str, Recipe] = {
    "swin_divided": replace(_SWIN_TV, source="no published weights: recipe of Video Swin (" + _SWIN_TV.source + ")"),
    "vivit": replace(_VIVIT_RECIPE, source="no published PyTorch weights for this model: recipe of ViViT-B/16x2 ("
                                           + _VIVIT_RECIPE.source + ")"),
}


def list_weights(preset: str | None = None) -> list[WeightsEntry]:
    """Catalog entries, optionally those of one preset (its default first)."""
    return [e for e in CATALOG.values() if preset is None or e.preset == preset]


def get_entry(name: str | WeightsEntry) -> WeightsEntry:
    if isinstance(name, WeightsEntry):
        return name
    try:
        return CATALOG[name]
    except KeyError:
        close = [n for n in CATALOG if n.split(".")[0] == name.split(".")[0]]
        hint = f"; entries for {name.split('.')[0]}: {', '.join(close)}" if close else \
            f"; names look like {next(iter(CATALOG))}"
        raise WeightsError(f"unknown weights {name!r}{hint}") from None


def default_entry(preset: str) -> WeightsEntry | None:
    entries = list_weights(preset)
    return entries[0] if entries else None


def recipe_for(preset: Any, *, config: Any = None) -> Recipe:
    """The evaluation recipe of a preset (a name), adapted to ``config``'s input size when given.

    Raises :class:`ConfigError` for an unknown preset, a model without a classification head, or a preset
    without a known recipe.
    """
    from .registry import get_preset

    p = get_preset(preset)  # ConfigError for an unknown name
    cfg = config if config is not None else p.config
    if not getattr(type(cfg), "has_head", True):
        raise ConfigError(f"{preset} has no classification head (input layout {type(cfg).input_layout}); clips are "
                          f"prepared with the evaluation recipe of a classifier, which it does not have",
                          field="model")
    recipe = RECIPES.get(preset) or FAMILY_RECIPES.get(cfg.family)
    if recipe is None:
        raise ConfigError(f"no evaluation recipe is known for {preset}; presets with one: "
                          f"{', '.join(sorted(RECIPES))}", field="model")
    if config is not None:
        shape = config.input_shape()
        recipe = recipe.adapted(num_frames=int(shape[2]), crop=int(shape[-1]))
    return recipe


# ----------------------------------------------------------------------------------------------- labels


def load_labels(dataset: str) -> list[str]:
    """The class names of ``kinetics400``, ``kinetics600`` or ``ssv2``, in index order (from ``assets/``)."""
    if dataset not in LABEL_FILES:
        raise WeightsError(f"no label list for {dataset!r}; known: {', '.join(LABEL_FILES)}")
    path = ASSETS / LABEL_FILES[dataset]
    try:
        labels = [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise WeightsError(f"the label list {path} cannot be read: {exc}") from None
    return labels


def labels_from_hf_config(config: dict[str, Any] | None) -> list[str] | None:
    """The ``id2label`` of a Hugging Face ``config.json`` as a list in index order, or ``None``."""
    if not isinstance(config, dict) or not isinstance(config.get("id2label"), dict):
        return None
    try:
        pairs = sorted((int(k), str(v)) for k, v in config["id2label"].items())
    except (TypeError, ValueError):
        return None
    if [k for k, _ in pairs] != list(range(len(pairs))):
        return None
    return [v for _, v in pairs]


def read_hf_config(path: Path) -> dict[str, Any] | None:
    """The ``config.json`` of a checkpoint directory (as ``save_pretrained`` writes it), if any and valid."""
    candidate = path / "config.json"
    if not path.is_dir() or not candidate.is_file():
        return None
    try:
        data = json.loads(candidate.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


# the fetcher lives in downloads.py; its names stay importable from here (pages, tests, runtime use them)
from .downloads import (cached_path, get_weights, hf_endpoint, hf_hub_cache, target_path,  # noqa: E402,F401
                        torch_hub_checkpoints)
