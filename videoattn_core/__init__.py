"""videoattn: build, inspect and compare video transformers.

>>> import videoattn_core as vac
>>> vac.list_models()[:1]
['timesformer_base']
>>> model = vac.build_model("timesformer_base", attention_type="joint_space_time", num_frames=16)
"""

from . import models  # noqa: F401  (registers the families)
from .weights import hub  # noqa: F401  (opens models named by where they live: hf:ORG/NAME, a directory)
from .weights.checkpoints import LoadReport, load_checkpoint, read_checkpoint
from .config import ModelConfig, coerce_overrides
from .attention.explanations import Explanation, explain
from .evaluation import Evaluation, evaluate
from .errors import CheckpointError, ConfigError, VideoAttnError, VideoError, WeightsError
from .inspection import Inspection, LayerRecord, Summary, attention_layers, inspect, summarize
from .models.layers import set_fused_attention
from .run import runtime  # noqa: F401  (the run pipeline: plan_run, load_model, load_inputs, classify)
from .run.predict import Prediction, predict, predict_many
from .run.predict import timeline as predict_timeline
from .registry import build_model, get_config, get_preset, list_families, list_models
from .clips.preprocessing import LoadedClip, preprocess
from .run.runtime import load_clip
from .clips.sampling import clip_indices, sample_indices
from .clips.probe import ClipInfo, Limits, probe_clip
from .clips.decode import Clip, read_clip
from .weights.downloads import get_weights
from .weights.catalog.records import Recipe, WeightsEntry
from .weights.lookup import CATALOG, get_entry, list_weights, load_labels, recipe_for

__all__ = [
    "build_model", "get_config", "get_preset", "list_families", "list_models", "load_checkpoint",
    "read_checkpoint", "LoadReport", "ModelConfig", "coerce_overrides", "set_fused_attention",
    "VideoAttnError", "ConfigError", "CheckpointError", "VideoError", "WeightsError",
    "summarize", "inspect", "attention_layers", "Summary", "Inspection", "LayerRecord",
    "read_clip", "probe_clip", "preprocess", "load_clip", "sample_indices", "clip_indices", "Clip", "ClipInfo", "LoadedClip", "Limits",
    "get_weights", "get_entry", "list_weights", "load_labels", "recipe_for", "CATALOG", "Recipe", "WeightsEntry",
    "explain", "Explanation", "evaluate", "Evaluation", "predict", "predict_many", "predict_timeline", "Prediction", "runtime",
]
