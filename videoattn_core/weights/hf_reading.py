"""A Hugging Face video classifier read from its two JSON files, as transformers reads them.

``config.json`` says which model it is (``architectures`` / ``model_type``), its every architecture
hyperparameter, its labels (``id2label``) and how its scores are read (``problem_type``: softmax, or independent
sigmoids for ``multi_label_classification``, as the video-classification pipeline's ``function_to_apply`` picks).
Each family maps the fields it understands (the :class:`~videoattn_core.registry.HFMapping` it registers, with the
defaults of transformers' config class for fields a file leaves out); a value the family cannot express is a
:class:`ConfigError` naming the field of ``config.json``.

The processor config (``preprocessor_config.json``; ``video_preprocessor_config.json`` for V-JEPA 2) says how
frames become pixels: ``size`` (a short side or an exact height/width), ``crop_size``, the ``do_*`` switches,
``rescale_factor`` (and ViViT's ``offset``), ``image_mean``/``image_std``, ``resample`` (PIL's filter numbering).
Missing keys take the processor class's defaults. Frames are picked as transformers' video-classification
pipeline picks them: ``np.linspace(0, num_frames · rate − 1, num_frames)`` from the first frame
(:mod:`videoattn_core.clips.sampling`, rule ``"huggingface"``), rate 1 unless asked otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..clips.preprocessing import PIL_FILTERS
from ..config import ModelConfig, show_value
from ..errors import ConfigError
from ..registry import Family, family_of, list_families
from .catalog.records import IMAGENET_MEAN, IMAGENET_STD, Recipe

#: how the scores of each ``problem_type`` are read (transformers' pipeline: sigmoid for multi-label, else softmax)
SCORINGS = {"single_label_classification": "softmax", "multi_label_classification": "sigmoid"}
MAX_LABELS = 100_000
_HALF = (0.5, 0.5, 0.5)  # IMAGENET_STANDARD_MEAN / STD of transformers

#: defaults of the processor classes for keys a file leaves out (transformers' class attributes)
PROCESSOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "VideoMAEImageProcessor": dict(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                   resample=2, do_resize=True, do_center_crop=True, do_rescale=True,
                                   rescale_factor=1 / 255, do_normalize=True, image_mean=_HALF, image_std=_HALF),
    "VivitImageProcessor": dict(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=2,
                                do_resize=True, do_center_crop=True, do_rescale=True, rescale_factor=1 / 127.5,
                                offset=True, do_normalize=True, image_mean=_HALF, image_std=_HALF),
    "VJEPA2VideoProcessor": dict(crop_size=256, resample=2, do_resize=True, do_center_crop=True, do_rescale=True,
                                 rescale_factor=1 / 255, do_normalize=True, image_mean=IMAGENET_MEAN,
                                 image_std=IMAGENET_STD),
}
PROCESSOR_DEFAULTS["VideoMAEFeatureExtractor"] = PROCESSOR_DEFAULTS["VideoMAEImageProcessor"]
PROCESSOR_DEFAULTS["VivitFeatureExtractor"] = PROCESSOR_DEFAULTS["VivitImageProcessor"]
#: keys a processor config may hold that change nothing here (bookkeeping, or options of other inputs)
_PROCESSOR_NEUTRAL = {"image_processor_type", "feature_extractor_type", "video_processor_type", "processor_class",
                      "do_convert_rgb", "data_format", "input_data_format", "return_tensors", "device",
                      "default_to_square", "do_sample_frames", "num_frames", "fps", "video_metadata",
                      "do_pad", "size_divisor", "model_input_names", "_valid_processor_keys", "video_seconds",
                      "return_metadata", "disable_grouping", "image_seq_length"}
_PROCESSOR_KEYS = {"size", "crop_size", "resample", "do_resize", "do_center_crop", "do_rescale", "rescale_factor",
                   "offset", "do_normalize", "image_mean", "image_std"}


def supported_architectures() -> list[str]:
    """The Hugging Face classifier classes some family reads (its registered ``hf.architectures``)."""
    return [a for f in list_families() if f.hf is not None for a in f.hf.architectures]


def family_of_hf(hf_config: dict[str, Any]) -> tuple[Family, str]:
    """``(family, architecture)`` of a ``config.json``: by its ``architectures`` entry, else its ``model_type``;
    a :class:`ConfigError` listing the supported classes otherwise."""
    readable = [f for f in list_families() if f.hf is not None]
    by_class = {a: f for f in readable for a in f.hf.architectures}
    by_type = {f.hf.model_type: f for f in readable}
    supported = ", ".join(supported_architectures())
    archs = hf_config.get("architectures")
    if isinstance(archs, list) and archs:
        name = archs[0]
        if name in by_class:
            return by_class[name], name
        raise ConfigError(f"config.json architectures names {show_value(name)}, which is not a video classifier "
                          f"this explorer builds; supported: {supported}", field="architectures")
    model_type = hf_config.get("model_type")
    if isinstance(model_type, str) and model_type in by_type:
        family = by_type[model_type]
        return family, family.hf.architectures[0]
    raise ConfigError(f"config.json has no architectures entry and model_type {show_value(model_type)} is not one "
                      f"this explorer builds; supported: {supported}", field="model_type")


@dataclass(frozen=True)
class HFModelInfo:
    """What ``config.json`` says: the family, the architecture, our config, labels and how scores are read."""

    family: Family
    architecture: str
    config: ModelConfig
    labels: list[str] | None
    problem_type: str
    scoring: str


def read_model_config(hf_config: Any, base: ModelConfig | None = None) -> HFModelInfo:
    """Our config of the model ``config.json`` describes (on top of ``base``, the family's default config)."""
    if not isinstance(hf_config, dict):
        raise ConfigError("config.json does not hold a JSON object", field="config.json")
    family, architecture = family_of_hf(hf_config)
    labels = _labels(hf_config)
    problem_type = hf_config.get("problem_type") or "single_label_classification"
    if problem_type not in SCORINGS:
        raise ConfigError(f"config.json problem_type={show_value(problem_type)} is not allowed: a video classifier's "
                          f"scores are read for {', '.join(SCORINGS)}", field="problem_type")
    fields = family.hf.overrides({**family.hf.defaults, **hf_config})
    base = base if base is not None else family.config_cls()
    try:
        config = base.replace(**fields)
    except ConfigError as exc:
        theirs = {"mlp_ratio": "intermediate_size", "mlp_dim": "intermediate_size", "num_classes": "num_labels",
                  "activation": "hidden_act"}
        theirs.update({ours: name for name, ours in family.hf.fields.items()})
        name = "id2label" if exc.field == "num_classes" and labels else theirs.get(exc.field or "", exc.field)
        raise ConfigError(f"config.json {name}: {exc} (our field {exc.field} of the {family.name} family)",
                          field=name) from None
    return HFModelInfo(family, architecture, config, labels, problem_type, SCORINGS[problem_type])


def _labels(hf_config: dict[str, Any]) -> list[str] | None:
    id2label = hf_config.get("id2label")
    if id2label is None:
        return None
    if not isinstance(id2label, dict):
        raise ConfigError("config.json id2label must map class indices to names", field="id2label")
    if len(id2label) > MAX_LABELS:
        raise ConfigError(f"config.json id2label has {len(id2label):,} entries; at most {MAX_LABELS:,} classes are "
                          f"allowed", field="id2label")
    try:
        pairs = sorted((int(k), str(v)) for k, v in id2label.items())
    except (TypeError, ValueError):
        raise ConfigError("config.json id2label has keys that are not class indices", field="id2label") from None
    if [k for k, _ in pairs] != list(range(len(pairs))):
        raise ConfigError("config.json id2label must number its classes 0, 1, 2, … without gaps", field="id2label")
    return [v for _, v in pairs] or None


# ----------------------------------------------------------------------------------------------- processor


def recipe_from_processor(processor: Any, file_name: str | None, *, family: Family, config: ModelConfig,
                          where: str) -> tuple[Recipe, list[str]]:
    """The :class:`Recipe` a processor config describes, and warnings (unknown keys, a missing file).

    ``where`` names the repository in the recipe's ``source``."""
    warnings: list[str] = []
    kind = "video" if family.hf.video_processor else "image"
    default_class = family.hf.processor_class
    if processor is None:
        warnings.append(f"{where} has no {_processor_file(kind)}: frames are read with the defaults of "
                        f"{default_class}")
        processor = {}
    if not isinstance(processor, dict):
        raise ConfigError(f"{file_name} does not hold a JSON object", field=file_name)
    cls = (processor.get("video_processor_type") or processor.get("image_processor_type")
           or processor.get("feature_extractor_type") or default_class)
    if cls not in PROCESSOR_DEFAULTS:
        warnings.append(f"{file_name} names {show_value(cls)}, which is read here with the defaults of "
                        f"{default_class}")
        cls = default_class
    unknown = sorted(set(processor) - _PROCESSOR_KEYS - _PROCESSOR_NEUTRAL)
    if unknown:
        shown = ", ".join(show_value(k, 30) for k in unknown[:8]) + (" …" if len(unknown) > 8 else "")
        warnings.append(f"{file_name} has keys this explorer does not read (they are ignored): {shown}")
    p = {**PROCESSOR_DEFAULTS[cls], **{k: v for k, v in processor.items() if k in _PROCESSOR_KEYS}}
    name = file_name or _processor_file(kind)

    crop_h, crop_w = _size_pair(p["crop_size"], name, "crop_size")
    if crop_h != crop_w:
        raise ConfigError(f"{name} crop_size {crop_h}×{crop_w} is not square; the models here take square frames",
                          field="crop_size")
    if cls == "VJEPA2VideoProcessor":  # its __init__ derives the resize from the crop, whatever size says
        short, shape = int(crop_h * 256 / 224), None
    else:
        short, shape = _size(p["size"], name)
    do_resize, do_crop = _flag(p, "do_resize", name), _flag(p, "do_center_crop", name)
    image_size = int(config.input_shape()[-1])
    final = crop_h if do_crop else (shape[0] if shape and shape[0] == shape[1] and do_resize else None)
    if final is not None and final != image_size:
        raise ConfigError(f"{name} gives {final}-pixel frames but config.json builds the model for {image_size}: "
                          f"the two files disagree", field="crop_size" if do_crop else "size")
    if final is None:
        warnings.append(f"{name} neither crops nor resizes to a square: clips must already be {image_size}×"
                        f"{image_size}")
    resample = p["resample"]
    if isinstance(resample, bool) or resample not in PIL_FILTERS:
        raise ConfigError(f"{name} resample={show_value(resample)} is not allowed: one of "
                          f"{', '.join(f'{k} ({v})' for k, v in PIL_FILTERS.items())}", field="resample")
    interpolation = PIL_FILTERS[resample]
    if kind == "video" and interpolation not in ("nearest", "bilinear", "bicubic"):
        raise ConfigError(f"{name} resample={resample} ({interpolation}) is not allowed for a video processor: "
                          f"nearest (0), bilinear (2) or bicubic (3)", field="resample")
    do_rescale, do_normalize = _flag(p, "do_rescale", name), _flag(p, "do_normalize", name)
    factor = _positive(p["rescale_factor"], name, "rescale_factor") if do_rescale else 1.0
    offset = -1.0 if _flag(p, "offset", name, default=False) else 0.0
    if offset and not do_rescale:
        raise ConfigError(f"{name} sets offset without do_rescale, which {cls} refuses", field="offset")
    mean = _triple(p["image_mean"], name, "image_mean") if do_normalize else (0.0, 0.0, 0.0)
    std = _triple(p["image_std"], name, "image_std", positive=True) if do_normalize else (1.0, 1.0, 1.0)

    resize_text = (f"{shape[0]}×{shape[1]}" if shape else f"short side {short}") if do_resize else "no resize"
    source = (f"{where} {name} ({cls}): {resize_text}, {'centre crop ' + str(crop_h) if do_crop else 'no crop'}, "
              f"{interpolation}, ×{factor:.6g}{' − 1' if offset else ''}, mean {list(mean)}, std {list(std)}; frames "
              f"as transformers' video-classification pipeline picks them")
    recipe = Recipe(num_frames=int(config.input_shape()[2]), sampling_rate=1, resize=short or min(shape),
                    crop=crop_h, mean=mean, std=std, source=source,
                    resampling="huggingface_video" if kind == "video" else "huggingface", rescale=factor,
                    offset=offset, clips=1, crops=1, clip_rule="huggingface", interpolation=interpolation,
                    resize_shape=shape, do_resize=do_resize, do_crop=do_crop)
    return recipe, warnings


def _processor_file(kind: str) -> str:
    return "video_preprocessor_config.json" if kind == "video" else "preprocessor_config.json"


def _flag(p: dict[str, Any], key: str, name: str, default: bool | None = None) -> bool:
    value = p.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{name} {key}={show_value(value)} is not allowed: {key} must be true or false", field=key)
    return value


def _int_size(value: Any, name: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
        raise ConfigError(f"{name} {key}={show_value(value)} is not allowed: a size in pixels from 1 to 4096",
                          field=key)
    return value


def _size_pair(value: Any, name: str, key: str) -> tuple[int, int]:
    if isinstance(value, dict) and "height" in value and "width" in value:
        return _int_size(value["height"], name, key), _int_size(value["width"], name, key)
    if isinstance(value, dict) and set(value) == {"shortest_edge"} and key == "crop_size":
        side = _int_size(value["shortest_edge"], name, key)
        return side, side
    if not isinstance(value, dict):
        side = _int_size(value, name, key)
        return side, side
    raise ConfigError(f"{name} {key}={show_value(value)} is not allowed: a size, or {{height, width}}", field=key)


def _size(value: Any, name: str) -> tuple[int | None, tuple[int, int] | None]:
    """``(short side, None)`` or ``(None, (height, width))`` of a processor's ``size``."""
    if isinstance(value, dict) and set(value) == {"shortest_edge"}:
        return _int_size(value["shortest_edge"], name, "size"), None
    if isinstance(value, dict) and set(value) == {"height", "width"}:
        return None, _size_pair(value, name, "size")
    if not isinstance(value, dict):  # the old feature extractors' single number is a short side
        return _int_size(value, name, "size"), None
    raise ConfigError(f"{name} size={show_value(value)} is not allowed: {{shortest_edge}} or {{height, width}} (other "
                      f"forms, such as longest_edge, are not read here)", field="size")


def _positive(value: Any, name: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} {key}={show_value(value)} is not allowed: a positive number", field=key)
    return float(value)


def _triple(value: Any, name: str, key: str, positive: bool = False) -> tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * 3
    ok = (isinstance(value, (list, tuple)) and len(value) == 3
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
          and (not positive or all(v > 0 for v in value)))
    if not ok:
        raise ConfigError(f"{name} {key}={show_value(value)} is not allowed: three {'positive ' if positive else ''}"
                          f"numbers, one per colour channel", field=key)
    return tuple(float(v) for v in value)  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------- runs


def config_overrides(config: ModelConfig, hf_config: dict[str, Any] | None) -> dict[str, Any]:
    """Config fields a Hugging Face ``config.json`` implies, by the family's own mapping (its registered
    :class:`~videoattn_core.registry.HFMapping`); ``{}`` when the family has none or the file is for another model
    type."""
    hf = family_of(config).hf
    return hf.overrides(hf_config) if hf is not None and isinstance(hf_config, dict) else {}


def with_sampling_rate(recipe: Recipe, rate: Any) -> Recipe:
    """The recipe with frames ``rate`` apart: for the Hugging Face pipeline's reading (the pipeline's
    ``frame_sampling_rate``); catalog recipes keep their published sampling."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= 1000:
        raise ConfigError(f"sampling_rate={rate!r} is not allowed: sampling_rate must be an integer from 1 to 1000",
                          field="sampling_rate")
    if recipe.clip_rule != "huggingface":
        raise ConfigError(f"sampling_rate sets the frame step of Hugging Face models read as transformers' pipeline "
                          f"reads them (hf:ORG/NAME or a model directory); this recipe keeps its published sampling "
                          f"({recipe.source})", field="sampling_rate")
    return replace(recipe, sampling_rate=rate)


def scoring_of(hf_config: dict[str, Any] | None) -> str:
    """"sigmoid" for a ``config.json`` whose ``problem_type`` is multi-label (independent scores, as transformers'
    pipeline reads them), else "softmax"."""
    multi = isinstance(hf_config, dict) and hf_config.get("problem_type") == "multi_label_classification"
    return "sigmoid" if multi else "softmax"
