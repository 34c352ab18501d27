"""Spatial preprocessing of decoded frames, computed the way each published evaluation computes it.

A checkpoint's accuracy holds only for the pixels its evaluation fed it, and the sources differ in ways that move
pixels by tens of uint8 steps on real video (antialiasing when shrinking 1920×1080 to 256 px), so each source's
transform is reproduced with its own arithmetic (``resampling``):

- ``"torchvision"`` — ``VideoClassification`` (``torchvision/transforms/_presets.py``): the short side resized
  bilinearly on uint8 frames **without** antialiasing (``antialias=False``, kept by torchvision to preserve the
  published accuracies), rounded back to uint8, centre crop at ``int(round((size - crop) / 2))`` (zero-padded
  when the frame is smaller), scaled to [0, 1], normalised;
- ``"huggingface"`` — the image processors' PIL backend (``BaseImageProcessor`` with ``PILImageResampling.BILINEAR``):
  PIL's bilinear filter on uint8 (antialiased when shrinking), centre crop at ``(size - crop) // 2``, rescaled by
  the processor's factor (and offset, as ViViT's), normalised;
- ``"pyslowfast"`` — PySlowFast and the official TimeSformer (``datasets/transform.py``): the frames are
  normalised floats when ``interpolate(..., "bilinear", align_corners=False)`` resizes the short side (long side
  ``floor``), no antialiasing, no rounding; ``uniform_crop`` at ``ceil((size - crop) / 2)``;
- ``"mmaction"`` — MMAction2 / mmcv (the official Video Swin): ``mmcv.imresize`` = OpenCV ``INTER_LINEAR`` on
  uint8 with sizes ``int(side · scale + 0.5)``, ``CenterCrop``/``ThreeCrop`` at ``(size - crop) // 2``;
- ``"videomae"`` — the official VideoMAE test loader (``video_transforms.Resize`` → ``functional.resize_clip``):
  OpenCV ``INTER_LINEAR`` on uint8 with the long side truncated (``int(size · long / short)``; frames whose short
  side already has the size are left alone), then windows of the short side's size along the long side at
  ``int(k · (long − size) / (crops − 1))`` (``spatial_step``), the long side being the height when ``H ≥ W``.

- ``"huggingface_video"`` — transformers' video processors (``BaseVideoProcessor``, V-JEPA 2's
  ``VJEPA2VideoProcessor``): torchvision's ``resize`` on uint8 tensors (bilinear with antialiasing, computed on
  uint8 on the CPU), centre crop at ``int(round((size - crop) / 2))``, then rescale and normalise.

The Hugging Face processors name their filter (``resample``: PIL's nearest, bilinear, bicubic, lanczos, box,
hamming); ``interpolation`` carries it. Their ``size`` is a short side or an exact ``(height, width)``, and
``do_resize``/``do_center_crop`` may switch either step off (``resize=None``, ``crop=None``).

Spatial views (the papers' 3-crop testing) take the first, centre and last crop along the long side, as
PySlowFast's ``uniform_crop``, MMAction2's ``ThreeCrop`` (whose last sits at ``2 · ((size − crop) // 2)``) and
VideoMAE's ``spatial_step`` (last at ``size − crop``) do. VideoMAE has no single-crop test (one crop divides by
zero): one view is its middle crop, ``int((size − crop) / 2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, VideoError

if TYPE_CHECKING:
    from .decode import Clip
    from .probe import Limits

RESAMPLING_DETAILS = {
    "torchvision": "uint8 frames, bilinear without antialiasing, rounded back to uint8 (torchvision "
                   "VideoClassification, antialias=False)",
    "huggingface": "PIL bilinear on uint8 frames, antialiased when shrinking (Hugging Face image processors)",
    "pyslowfast": "float frames, bilinear with align_corners=False, no antialiasing, no rounding (PySlowFast "
                  "short-side scale and uniform_crop)",
    "mmaction": "uint8 frames, OpenCV bilinear (cv2.INTER_LINEAR, no antialiasing) as mmcv.imresize",
    "videomae": "uint8 frames, OpenCV bilinear (cv2.INTER_LINEAR, no antialiasing), long side truncated, as the "
                "official VideoMAE test loader (resize_clip)",
    "huggingface_video": "uint8 frames, torchvision resize with antialiasing (Hugging Face video processors)",
}
RESAMPLINGS = tuple(RESAMPLING_DETAILS)
#: the filters of the Hugging Face processors (``resample``, PIL's numbering) by name; the other sources are bilinear
PIL_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_VIDEO_FILTERS = ("nearest", "bilinear", "bicubic")  # what torchvision's tensor resize offers
#: crop positions of the spatial views: first (left/top), centre, last (right/bottom) along the long side
CROP_POSITIONS = ("first", "centre", "last")


def resized_size(height: int, width: int, short_side: int, resampling: str = "torchvision") -> tuple[int, int]:
    """``(height, width)`` after the short side is scaled to ``short_side``, rounded as the source rounds it.

    torchvision, Hugging Face and VideoMAE truncate the long side (``int(short_side · long / short)``), PySlowFast
    floors it
    (the same for positive sizes), mmcv rounds both sides (``int(side · short_side / short + 0.5)``).
    """
    short, long = (width, height) if width <= height else (height, width)
    if resampling == "mmaction":
        scale = short_side / short
        return int(height * scale + 0.5), int(width * scale + 0.5)
    if resampling == "pyslowfast":
        new_long = int(math.floor(long / short * short_side))
    else:
        new_long = int(short_side * long / short)
    return (new_long, short_side) if width <= height else (short_side, new_long)


def crop_offsets(height: int, width: int, crop: int, resampling: str = "torchvision",
                 position: str = "centre") -> tuple[int, int]:
    """Top-left corner ``(top, left)`` of a ``crop``×``crop`` window, placed as the source places it.

    ``position`` "centre" is the single-view crop; "first"/"last" move the window to the start/end of the long
    side (the other axis stays centred), as the three-crop tests do.
    """
    if position not in CROP_POSITIONS:
        raise ConfigError(f"crop position {position!r} is not allowed: one of {', '.join(CROP_POSITIONS)}",
                          field="crops")

    def centre(size: int) -> int:
        if resampling in ("torchvision", "huggingface_video"):
            return int(round((size - crop) / 2.0))
        if resampling == "pyslowfast":
            return int(math.ceil((size - crop) / 2))
        return (size - crop) // 2

    top, left = centre(height), centre(width)
    if position == "centre":
        return top, left
    if resampling == "mmaction":  # ThreeCrop: offsets 0, step, 2·step with step = (size - crop) // 2
        if position == "first":
            return 0, 0
        return 2 * ((height - crop) // 2), 2 * ((width - crop) // 2)
    if resampling == "videomae":  # int(k · (long − crop) / 2) for k = 0, 2 along the height when H ≥ W
        along = 0 if position == "first" else max(height, width) - crop
        return (along, left) if height >= width else (top, along)
    end = position == "last"
    if height > width:
        return (height - crop if end else 0), left
    return top, (width - crop if end else 0)


def _resize(video: torch.Tensor, size: tuple[int, int], resampling: str,
            interpolation: str = "bilinear") -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` → resized ``(T, 3, h, w)`` float on the 0..255 scale."""
    if tuple(video.shape[1:3]) == size:
        return video.permute(0, 3, 1, 2).float()
    if resampling == "huggingface":
        from PIL import Image
        pil_filter = Image.Resampling[interpolation.upper()]
        frames = [np.asarray(Image.fromarray(f).resize((size[1], size[0]), pil_filter)) for f in video.numpy()]
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    if resampling == "huggingface_video":  # torchvision.transforms.v2.functional.resize on uint8 (CPU)
        x = video.permute(0, 3, 1, 2).contiguous()
        if interpolation == "nearest":
            return F.interpolate(x, size=size, mode="nearest").float()
        if interpolation == "bicubic":  # no uint8 kernel: float, clamped and rounded back to uint8
            y = F.interpolate(x.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
            return y.clamp_(0, 255).round_()
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).float()
    if resampling in ("mmaction", "videomae"):
        import cv2
        frames = [cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for f in video.numpy()]
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(video.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", align_corners=False,
                      antialias=False)
    if resampling == "torchvision":  # uint8 in, uint8 out
        x = x.round_().clamp_(0, 255)
    return x


def _crop(x: torch.Tensor, crop: int, resampling: str, position: str) -> torch.Tensor:
    height, width = x.shape[-2:]
    if crop > height or crop > width:
        if resampling != "torchvision":
            raise VideoError(f"the resized frames ({width}×{height}) are smaller than the {crop}-pixel crop; the "
                             f"{resampling} recipe does not pad: choose a resize of at least {crop}")
        pad_h, pad_w = max(crop - height, 0), max(crop - width, 0)  # torchvision pads with zeros
        x = F.pad(x, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2])
        height, width = x.shape[-2:]
    top, left = crop_offsets(height, width, crop, resampling, position)
    return x[..., top:top + crop, left:left + crop]


def preprocess(frames: np.ndarray | torch.Tensor, *, resize: int | tuple[int, int] | None, crop: int | None,
               mean: Sequence[float], std: Sequence[float], resampling: str = "torchvision",
               rescale: float | None = None, offset: float = 0.0, position: str = "centre",
               interpolation: str = "bilinear") -> torch.Tensor:
    """uint8 frames ``(T, H, W, 3)`` → float ``(3, T, h, w)`` as the ``resampling`` source computes it.

    The default is torchvision's ``VideoClassification``: short side to ``resize`` (bilinear, no antialiasing,
    uint8), centre crop ``crop``, ``/ 255``, ``(x - mean) / std``. ``resize`` may also be an exact ``(height,
    width)`` or ``None`` (no resize), ``crop`` ``None`` (no crop: Hugging Face processors with ``do_center_crop``
    off). ``rescale``/``offset`` replace the ``/ 255`` by ``x · rescale + offset`` (Hugging Face processors);
    ``position`` picks a spatial view's crop; ``interpolation`` the filter of the Hugging Face sources.
    """
    video = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if not isinstance(video, torch.Tensor):
        raise VideoError(f"frames must be a numpy array or torch tensor, got {type(frames).__name__}")
    if video.dtype != torch.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise VideoError(f"frames must be uint8 of shape (T, H, W, 3); got {str(video.dtype).replace('torch.', '')} "
                         f"of shape {tuple(video.shape)}")
    if min(video.shape[:3]) < 1:
        raise VideoError(f"frames of shape {tuple(video.shape)} hold no pixels")
    sizes = (resize if isinstance(resize, tuple) else (resize,)) + (crop,)
    if any(v is not None and (not isinstance(v, int) or v < 1) for v in sizes):
        raise ConfigError(f"resize={resize} and crop={crop} must be sizes ≥ 1 (or none)", field="resize")
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ConfigError(f"mean and std need 3 values each, std positive; got mean={tuple(mean)} std={tuple(std)}",
                          field="std")
    if resampling not in RESAMPLINGS:
        raise ConfigError(f"resampling={resampling!r} is not allowed: one of {', '.join(RESAMPLINGS)}",
                          field="resampling")
    filters = {"huggingface": tuple(PIL_FILTERS.values()), "huggingface_video": _VIDEO_FILTERS}.get(resampling,
                                                                                                   ("bilinear",))
    if interpolation not in filters:
        raise ConfigError(f"interpolation={interpolation!r} is not allowed with {resampling} resampling: one of "
                          f"{', '.join(filters)}", field="interpolation")

    height, width = video.shape[1:3]
    if resize is None:
        size = (height, width)
    elif isinstance(resize, tuple):
        size = resize
    else:
        size = resized_size(height, width, resize, resampling)
    x = _resize(video.cpu(), size, resampling, interpolation)  # (T, 3, h, w)
    if crop is not None:
        x = _crop(x, crop, resampling, position)  # (T, 3, crop, crop)
    if rescale is None:
        x = x / 255.0
    else:
        x = x * rescale + offset
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    x = (x - m) / s
    return x.permute(1, 0, 2, 3).contiguous()  # (3, T, h, w)


def shown_pixels(frames: np.ndarray, *, resize: int | tuple[int, int] | None, crop: int | None,
                 resampling: str = "torchvision", position: str = "centre", interpolation: str = "bilinear"
                 ) -> np.ndarray:
    """The uint8 pixels ``(T, h, w, 3)`` a model sees before scaling and normalisation (for display)."""
    x = preprocess(frames, resize=resize, crop=crop, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                   resampling=resampling, rescale=1.0, position=position, interpolation=interpolation)
    return x.permute(1, 2, 3, 0).round().clamp(0, 255).to(torch.uint8).numpy()


# ----------------------------------------------------------------------------------------------- model input


@dataclass
class LoadedClip:
    """A clip made ready for a model: ``tensor`` is ``(V, 3, T, S, S)`` float, one row per view (temporal clip ×
    spatial crop, clip-major; ``V = 1`` for the single-view default), ``clip`` the decoded frames."""

    tensor: torch.Tensor
    clip: Clip
    recipe: Any  # weights.Recipe

    @property
    def views(self) -> int:
        return int(self.tensor.shape[0])

    def shown(self, view: int = 0) -> np.ndarray:
        """The uint8 pixels ``(T, h, w, 3)`` of temporal view ``view``'s centre crop as the model sees them."""
        return shown_pixels(self.clip.view_frames(view), **self.recipe.spatial())


def read_views(source: str | Path | bytes, recipe: Any, *, limits: Limits | None = None,
               views: tuple[int, int] = (1, 1), frame_indices: Sequence[Sequence[int]] | None = None) -> LoadedClip:
    """Decode and preprocess a clip as ``recipe`` (a :class:`~videoattn_core.weights.catalog.records.Recipe`) says:
    ``views = (clips, crops)`` reads that many temporal clips × spatial crops (the papers' multi-view test; crops
    1 or 3), one tensor row each; ``frame_indices`` (a run plan's, one list per temporal view) are read as they
    are instead of being sampled again. :func:`videoattn_core.run.runtime.load_clip` finds a preset's recipe
    first."""
    from .decode import read_clip

    clips, crops = views
    if crops not in (1, 3):
        raise ConfigError(f"crops={crops} is not allowed: spatial views are 1 (centre) or 3 (first, centre, last "
                          f"along the long side)", field="crops")
    clip = read_clip(source, recipe.num_frames, recipe.sampling_rate, target_fps=recipe.target_fps, limits=limits,
                     rule=recipe.clip_rule, clips=clips, indices=frame_indices or None)
    positions = ("centre",) if crops == 1 else CROP_POSITIONS
    spatial = recipe.spatial(crops)  # three crops may read another short side (Recipe.multi_crop_resize)
    tensor = torch.stack([
        preprocess(clip.view_frames(c), mean=recipe.mean, std=recipe.std, rescale=recipe.rescale,
                   offset=recipe.offset, position=position, **spatial)
        for c in range(clips) for position in positions])
    return LoadedClip(tensor=tensor, clip=clip, recipe=recipe)
