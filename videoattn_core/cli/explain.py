"""The ``explain`` command: why the model chose a class, as a map laid over the clip it saw.

``python -m videoattn_core explain MODEL --clip FILE [--weights ENTRY | --checkpoint FILE] [--target CLASS]
[--method relevance|rollout|gradcam] [--layer NAME] --out overlay.mp4|.gif|.json``

The model and its input come from the run pipeline (:mod:`videoattn_core.run.runtime`), exactly as ``predict`` gets
them; the explanation is of the first view. The overlay is encoded with PyAV: MP4 (H.264) or GIF, one video frame
per frame the model sees, enlarged to a readable size, with a colour bar that states the map's range.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from ..clips.writer import encode_video
from ..figures.overlay import export_frames
from ..errors import ConfigError, VideoAttnError, one_line_failures
from .args import add_device_arguments, add_model_arguments, add_set_argument, parse_sets
from ..units import class_name

OUTPUTS = (".mp4", ".gif", ".json")
def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``explain`` subcommand on the CLI's subparsers."""
    from ..attention.explanations import METHODS

    p = sub.add_parser("explain", help="why the model chose a class: a relevance map over the clip (MP4/GIF/JSON)",
                       description="Explain a prediction on one clip. Without --weights or --checkpoint the model is "
                                   "randomly initialised (from --seed) and its explanations mean nothing.")
    add_model_arguments(p)
    p.add_argument("--clip", required=True, help="video file")
    p.add_argument("--target", type=int, help="class index to explain (default: the top class)")
    p.add_argument("--method", default="relevance", choices=METHODS, help="(default relevance)")
    p.add_argument("--layer", help="Grad-CAM layer, e.g. blocks.10 (default: the last block's input)")
    p.add_argument("--out", required=True, metavar="FILE", help="overlay.mp4, overlay.gif or explanation.json")
    p.add_argument("--fps", type=float, default=4.0, help="frames per second of the MP4/GIF (default 4)")
    p.add_argument("--recompute", action="store_true",
                   help="relevance: run each attention block again in the backward pass instead of keeping its "
                        "activations (0.3-0.75x the memory, 1-1.6 forwards more of time)")
    add_device_arguments(p, dtype=False)
    p.add_argument("--sampling-rate", type=int, metavar="R",
                   help="Hugging Face models: frames R apart from the first (the pipeline's frame_sampling_rate; "
                        "default 1)")
    add_set_argument(p, "num_frames=16")
    p.set_defaults(func=one_line_failures("explanation", _run))
    return p


def _run(args: argparse.Namespace) -> int:
    from ..attention.explanations import explain
    from ..run import runtime

    suffix = Path(args.out).suffix.lower()
    if suffix not in OUTPUTS:
        raise ConfigError(f"--out {args.out!r}: the file must end in {', '.join(OUTPUTS)}", field="out")
    if not args.fps > 0:
        raise ConfigError(f"--fps {args.fps} is not allowed: fps must be positive", field="fps")
    plan = runtime.plan_run(args.model, args.clip, weights=args.weights, checkpoint=args.checkpoint, seed=args.seed,
                            overrides=parse_sets(args.model, args.set), device=args.device, estimate=False,
                            sampling_rate=args.sampling_rate)
    loaded_model = runtime.load_model(plan)
    inputs = runtime.load_inputs(plan, args.clip)
    if loaded_model.random_init:
        print(runtime.RANDOM_WARNING, file=sys.stderr)
    x = inputs.tensor[:1].to(plan.device)
    try:
        result = explain(loaded_model.model, x, target=args.target, method=args.method, layer=args.layer,
                         recompute=args.recompute)
    except ValueError as exc:  # a method that does not apply to this model: say why, in one line
        if isinstance(exc, VideoAttnError):
            raise
        raise ConfigError(str(exc), field="method") from None
    labels = loaded_model.labels
    label = class_name(labels, result.target)
    logits = torch.from_numpy(result.logits).float()
    scores = logits.sigmoid() if loaded_model.scoring == "sigmoid" else logits.softmax(-1)
    probability = float(scores[result.target])
    summary: dict[str, Any] = {
        "model": plan.preset, "scoring": plan.scoring, "method": result.method, "target": result.target, "label": label,
        "score": result.score, "probability": probability, "layer": result.layer, "note": result.note,
        "random_init": loaded_model.random_init, "token_grid": list(result.tokens.shape),
        "frames": list(result.frames.shape), "frame_indices": list(inputs.clip.frame_indices),
    }
    if suffix == ".json":
        text = json.dumps({**summary, "tokens": result.tokens.tolist()}, indent=2)
        try:
            Path(args.out).write_text(text)
        except OSError as exc:
            raise ConfigError(f"--out {args.out!r} cannot be written: {exc.strerror or exc}", field="out") from None
    else:
        shown = inputs.shown()
        exported, scale = export_frames(shown, result.frames, title=result.method)
        encode_video(exported, args.out, fps=args.fps, kind=suffix[1:], comment=scale)
    print(f"{args.model} · {result.method} for {label!r} (class {result.target}, p = {100 * probability:.1f}%) "
          f"· token grid {'×'.join(map(str, result.tokens.shape))} → {args.out}")
    return 0
