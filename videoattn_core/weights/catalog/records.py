"""The records of the catalog: a checkpoint (:class:`WeightsEntry`) and the evaluation recipe its published numbers
were measured with (:class:`Recipe`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from ...clips.preprocessing import RESAMPLING_DETAILS

DATASET_CLASSES = {"kinetics400": 400, "kinetics600": 600, "ssv2": 174, "diving48": 48}

KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)  # torchvision default
SLOWFAST_MEAN, SLOWFAST_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)  # PySlowFast DATA.MEAN/STD
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # Video Swin img_norm_cfg / 255


@dataclass(frozen=True)
class Recipe:
    """How a model's evaluation reads a clip: ``num_frames`` frames ``sampling_rate`` apart at ``target_fps``
    ("window" sampling, centred) or spread uniformly over the whole clip (``sampling_rate=None``), short side
    resized to ``resize`` with ``resampling`` (:mod:`videoattn_core.clips.preprocessing`), centre crop ``crop``, pixel
    values scaled by ``rescale`` (``None``: divided by 255) plus ``offset``, then normalised with ``mean``/``std``.
    ``clip_rule`` names whose test-time code places the temporal clips (:mod:`videoattn_core.clips.sampling`).

    Hugging Face processors may resize to an exact ``resize_shape`` (height, width) instead of a short side, filter
    with another ``interpolation`` than bilinear, or switch the resize or the crop off (``do_resize``,
    ``do_crop``).

    ``clips`` × ``crops`` is the published multi-view test protocol (temporal clips × spatial crops whose
    softmax scores are averaged); a prediction reads one view unless asked for the protocol's views.
    ``multi_crop_resize``, where set, is the short side a read of 3 spatial crops resizes to instead of ``resize``
    (V-JEPA 2's multi-view evaluation resizes to the crop, its single view to crop · 256/224).
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
    multi_crop_resize: int | None = None  # short side used when 3 spatial crops are read (None: resize)
    interpolation: str = "bilinear"
    resize_shape: tuple[int, int] | None = None
    do_resize: bool = True
    do_crop: bool = True

    @property
    def sampling(self) -> str:
        return "uniform" if self.sampling_rate is None else "window"

    def adapted(self, num_frames: int | None = None, crop: int | None = None) -> "Recipe":
        """The same recipe for a model built for other input sizes: the resize keeps its ratio to the crop."""
        num_frames = num_frames or self.num_frames
        crop = crop or self.crop
        resize = max(crop, int(round(crop * self.resize / self.crop)))
        multi = self.multi_crop_resize
        if multi is not None:
            multi = max(crop, int(round(crop * multi / self.crop)))
        if (num_frames, crop) == (self.num_frames, self.crop):
            return self
        return replace(self, num_frames=num_frames, crop=crop, resize=resize, multi_crop_resize=multi,
                       source=f"{self.source} (adapted to {num_frames} frames × {crop} px)")

    def spatial(self, crops: int = 1) -> dict[str, Any]:
        """The resize and crop arguments of :func:`~videoattn_core.clips.preprocessing.preprocess` for a read of
        ``crops`` spatial crops of this recipe."""
        resize = (self.resize_shape or self.short_side(crops)) if self.do_resize else None
        return {"resize": resize, "crop": self.crop if self.do_crop else None, "resampling": self.resampling,
                "interpolation": self.interpolation}

    def to_dict(self) -> dict[str, Any]:
        return {"num_frames": self.num_frames, "sampling": self.sampling, "sampling_rate": self.sampling_rate,
                "target_fps": self.target_fps, "resize": self.resize, "crop": self.crop, "mean": list(self.mean),
                "std": list(self.std), "resampling": {
                    "source": self.resampling, "interpolation": self.interpolation,
                    "antialias": self.resampling in ("huggingface", "huggingface_video"),
                    "detail": RESAMPLING_DETAILS.get(self.resampling, self.resampling)},
                "resize_shape": list(self.resize_shape) if self.resize_shape else None, "do_resize": self.do_resize,
                "do_crop": self.do_crop,
                "rescale": self.rescale, "offset": self.offset, "clip_rule": self.clip_rule,
                "protocol_views": {"clips": self.clips, "crops": self.crops}, "source": self.source,
                "multi_crop_resize": self.multi_crop_resize}

    def short_side(self, crops: int = 1) -> int:
        """The short side a read of ``crops`` spatial crops resizes to."""
        return self.multi_crop_resize if crops == 3 and self.multi_crop_resize else self.resize


@dataclass(frozen=True)
class WeightsEntry:
    """One public checkpoint: where it is, what it was trained on, how it is evaluated, what it scores.

    ``overrides`` are the config fields to set on the preset to build the model this checkpoint fits;
    ``layout`` names the key layout :func:`~videoattn_core.weights.checkpoints.load_checkpoint` will meet.
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


def hash_prefix(filename: str) -> str | None:
    # torch.hub.load_state_dict_from_url(check_hash=True): HASH_REGEX = r"-([a-f0-9]*)\." on the file name
    match = re.search(r"-([a-f0-9]*)\.", filename)
    return match.group(1) if match and match.group(1) else None


def release(preset: str, name: str, url: str, dataset: str, recipe: Recipe, metrics: tuple[float, float],
             page: str, protocol: str, overrides: dict[str, Any] | None = None, direct: bool = True,
             filename: str | None = None, layout: str = "official", notes: str = "") -> WeightsEntry:
    return WeightsEntry(
        name=f"{preset}.{name}", preset=preset, source="official", dataset=dataset, recipe=recipe, layout=layout,
        url=url, filename=filename or url.rsplit("/", 1)[-1].split("?")[0], page=page, direct=direct,
        metrics={"acc@1": metrics[0], "acc@5": metrics[1]}, metrics_protocol=protocol, overrides=overrides or {},
        notes=notes or "no hash or size is published for this release: the download cannot be verified")
