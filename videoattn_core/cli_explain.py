"""The ``explain`` command: why the model chose a class, as a map laid over the clip it saw.

``python -m videoattn_core explain MODEL --clip FILE [--weights ENTRY | --checkpoint FILE] [--target CLASS]
[--method relevance|rollout|gradcam] [--layer NAME] --out overlay.mp4|.gif|.json``

The model and its input come from the run pipeline (:mod:`videoattn_core.runtime`), exactly as ``predict`` gets
them; the explanation is of the first view. The overlay is encoded with PyAV: MP4 (H.264) or GIF, one video frame
per frame the model sees, enlarged to a readable size, with a colour bar that states the map's range.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, VideoAttnError, one_line_failures
from .cli_args import add_device_arguments, add_model_arguments, add_set_argument, parse_sets

OUTPUTS = (".mp4", ".gif", ".json")
# a perceptually ordered dark-to-bright ramp (matplotlib's "inferno" at five stops), for the overlay colours
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)


#: an exported overlay's frames are enlarged by a whole factor to at least this many pixels on their short side
#: (a map on a 224 px frame is too small to read in a video player)
EXPORT_MIN_SIDE = 448
#: width of the colour bar panel right of the exported frames, in pixels
COLOR_BAR_WIDTH = 128


def _ramp(scaled: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → RGB of the dark-to-bright ramp, float."""
    stops = np.linspace(0, 1, len(_RAMP))
    return np.stack([np.interp(scaled, stops, _RAMP[:, c]) for c in range(3)], axis=-1)


def overlay_frames(frames: np.ndarray, heat: np.ndarray, *, opacity: float = 0.5, zmin: float | None = None,
                   zmax: float | None = None) -> np.ndarray:
    """``frames`` ``(T, H, W, 3)`` uint8 blended with ``heat`` ``(T, H, W)`` (scaled to [0, 1] from ``zmin`` to
    ``zmax``, by default over the whole clip, coloured dark to bright) → ``(T, H, W, 3)`` uint8."""
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float64))
    lo = heat.min() if zmin is None else zmin
    hi = heat.max() if zmax is None else zmax
    scaled = np.clip((heat - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(heat)
    return np.clip((1 - opacity) * frames + opacity * _ramp(scaled), 0, 255).round().astype(np.uint8)


def export_frames(frames: np.ndarray, heat: np.ndarray, *, title: str,
                  min_side: int = EXPORT_MIN_SIDE) -> tuple[np.ndarray, str]:
    """The overlay as the MP4/GIF exports show it: ``frames`` ``(T, H, W, 3)`` uint8 and ``heat`` ``(T, H, W)``
    enlarged by a whole factor to at least ``min_side`` pixels on the short side (frames bicubic, the map
    bilinear), blended as :func:`overlay_frames`, with a colour bar on the right that states the map's range:
    ``title`` on top, the highest value at the bar's bright top, the lowest at its dark bottom. A map that is
    (nearly) constant is drawn in one colour and says so, as the app's colour bars do
    (:func:`videoattn_core.figures.heat_range`). Returns the frames ``(T, H′, W′ + COLOR_BAR_WIDTH, 3)`` uint8 and
    the range as one line of text (the MP4 carries it as its comment)."""
    from PIL import Image, ImageDraw, ImageFont

    from .figures._base import heat_range

    heat = np.nan_to_num(np.asarray(heat, dtype=np.float64))
    t, h, w, _ = frames.shape
    factor = max(1, -(-min_side // min(h, w)))
    size = (w * factor, h * factor)
    big_frames = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize(size, Image.BICUBIC))
                           for f in frames])
    big_heat = np.stack([np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize(size, Image.BILINEAR))
                         for m in heat])
    shown = heat_range(heat, title)
    lo, hi = float(heat.min()), float(heat.max())
    if shown.flat:
        mean = float(heat.mean())
        spread = f"{(hi - lo) / abs(mean):.0e} of the mean" if hi > lo else "no spread"
        text, top, bottom = f"{title}: nearly constant, {mean:.4g} ({spread})", "", ""
    else:
        text, top, bottom = f"{title}: {lo:.4g} (dark) to {hi:.4g} (bright)", f"{hi:.3g}", f"{lo:.3g}"
    blended = overlay_frames(big_frames, big_heat, zmin=shown.zmin, zmax=shown.zmax)

    height = size[1]
    panel = Image.new("RGB", (COLOR_BAR_WIDTH, height), "white")
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default(size=max(11, min(16, height // 28)))
    pad = max(24, height // 12)
    bar_top, bar_bottom = pad + 8, height - pad
    ramp = _ramp(np.linspace(1, 0, bar_bottom - bar_top))  # bright at the top
    if shown.flat:  # one colour, as the frames show it
        ramp[:] = _ramp(np.array([(float(heat.mean()) - shown.zmin) / (shown.zmax - shown.zmin)]))
    bar = np.repeat(ramp.round().astype(np.uint8)[:, None], 20, axis=1)
    panel.paste(Image.fromarray(bar), (10, bar_top))
    draw.text((8, 4), title, fill="black", font=font)
    draw.text((36, bar_top), top, fill="black", font=font)
    draw.text((36, bar_bottom), bottom, fill="black", font=font, anchor="ls")
    if shown.flat:  # no range to state: the one value, and that the map is (nearly) constant
        draw.text((36, (bar_top + bar_bottom) // 2), f"{float(heat.mean()):.4g}", fill="black", font=font,
                  anchor="lm")
        draw.text((36, (bar_top + bar_bottom) // 2 + font.size + 4), "nearly\nconstant", fill="black", font=font,
                  anchor="la")
    panel = np.broadcast_to(np.asarray(panel), (t, height, COLOR_BAR_WIDTH, 3))
    return np.concatenate([blended, panel], axis=2), text


def encode_video(frames: np.ndarray, path: str | Path | None = None, *, fps: float = 4.0,
                 kind: str = "mp4", comment: str | None = None) -> bytes:
    """Encode ``(T, H, W, 3)`` uint8 frames as MP4 (H.264, yuv420p; odd sizes padded by one pixel) or GIF with
    PyAV; returns the bytes (and writes them to ``path`` when given). ``comment`` goes into the MP4's metadata
    (a GIF has none)."""
    import io

    import av

    if kind not in ("mp4", "gif"):
        raise ConfigError(f"kind={kind!r} is not allowed: mp4 or gif", field="out")
    if kind == "mp4":  # H.264 with 4:2:0 chroma needs even sizes
        t, h, w, _ = frames.shape
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    rate = max(1, round(fps))
    with av.open(buffer, "w", format=kind) as container:
        if comment and kind == "mp4":
            container.metadata["comment"] = comment
        stream = container.add_stream("libx264" if kind == "mp4" else "gif", rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p" if kind == "mp4" else "rgb8"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    data = buffer.getvalue()
    if path is not None:
        try:
            Path(path).write_bytes(data)
        except OSError as exc:
            raise ConfigError(f"--out {str(path)!r} cannot be written: {exc.strerror or exc}", field="out") from None
    return data


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``explain`` subcommand on the CLI's subparsers."""
    from .explanations import METHODS

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
    add_device_arguments(p, dtype=False)
    p.add_argument("--sampling-rate", type=int, metavar="R",
                   help="Hugging Face models: frames R apart from the first (the pipeline's frame_sampling_rate; "
                        "default 1)")
    add_set_argument(p, "num_frames=16")
    p.set_defaults(func=one_line_failures("explanation", _run))
    return p


def _run(args: argparse.Namespace) -> int:
    from . import runtime
    from .explanations import explain

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
        result = explain(loaded_model.model, x, target=args.target, method=args.method, layer=args.layer)
    except ValueError as exc:  # a method that does not apply to this model: say why, in one line
        if isinstance(exc, VideoAttnError):
            raise
        raise ConfigError(str(exc), field="method") from None
    labels = loaded_model.labels
    label = labels[result.target] if result.target < len(labels) else f"class {result.target}"
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
