"""The ``predict`` command: one clip, a plan without running (``--dry-run``), a timeline over a long clip
(``--timeline SECONDS``), or a batch of clips (``--clips DIR_OR_GLOB --out results.jsonl|.csv``).

Errors a user can cause propagate as :class:`~videoattn_core.errors.VideoAttnError` (exit 2, one line); anything
else is reported in one line with exit status 1, never as a traceback.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError, one_line_failures
from ..run.predict import RANDOM_WARNING, predict, predict_many, timeline
from .args import add_device_arguments, add_model_arguments, add_set_argument, parse_sets

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".gif")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``predict`` subcommand on the CLI's subparsers."""
    p = sub.add_parser("predict", help="classify a clip (or many, or a long one over time) and print the top-k",
                       description="Classify a clip. Without --weights or --checkpoint the model is randomly "
                                   "initialised (from --seed) and its predictions mean nothing.")
    add_model_arguments(p)
    clips = p.add_mutually_exclusive_group(required=True)
    clips.add_argument("--clip", help="video file to classify")
    clips.add_argument("--clips", metavar="DIR_OR_GLOB", help="a folder or a glob of video files: one row per clip")
    p.add_argument("--sampling-rate", type=int, metavar="R",
                   help="Hugging Face models (hf:ORG/NAME or a directory): frames R apart from the first, as "
                        "transformers' pipeline's frame_sampling_rate (default 1)")
    p.add_argument("--views", default="single",
                   help="single (default), protocol (the paper's clips × crops, softmax averaged) or CLIPSxCROPS")
    p.add_argument("--timeline", type=float, metavar="SECONDS",
                   help="predict windows every SECONDS over the whole clip")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (config, weights source, recipe, frame indices, cost, memory); run nothing")
    p.add_argument("--top-k", type=int, default=5, help="how many labels to show (default 5)")
    add_device_arguments(p)
    p.add_argument("--compile", action="store_true",
                   help="run the forward through torch.compile (the first forward compiles, which takes a while; "
                        "on the CPU a C++ compiler such as g++ is needed)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--out", metavar="FILE", help="write the rows to FILE (.json, .jsonl or .csv)")
    add_set_argument(p, "num_classes=10")
    p.set_defaults(func=one_line_failures("prediction", _run))
    return p


def _clip_list(pattern: str) -> list[Path]:
    path = Path(pattern)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    else:
        found = sorted(Path(p) for p in glob.glob(pattern))
    if not found:
        raise ConfigError(f"--clips {pattern!r} matches no video files ({', '.join(VIDEO_SUFFIXES)})",
                          field="clips")
    return found


def _progress(label: str):
    def report(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return report


def _flat_rows(rows: Iterable[dict[str, Any]], top_k: int) -> list[dict[str, Any]]:
    """Rows for CSV: the top-k spread over columns ``top1_label``, ``top1_probability``…"""
    out = []
    for row in rows:
        flat = {k: v for k, v in row.items() if k not in ("predictions", "frame_indices", "sampled_indices")}
        for rank, p in enumerate(row.get("predictions") or [], 1):
            flat[f"top{rank}_label"], flat[f"top{rank}_index"] = p["label"], p["index"]
            flat[f"top{rank}_probability"] = round(p["probability"], 6)
        out.append(flat)
    return out


def _write(path: str, rows: list[dict[str, Any]], top_k: int, whole: dict[str, Any] | None = None) -> None:
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        from ..inspection.rows import rows_to_csv

        text = rows_to_csv(_flat_rows(rows, top_k))
    elif suffix == ".jsonl":
        text = "".join(json.dumps(r) + "\n" for r in rows)
    elif suffix == ".json":
        text = json.dumps(whole if whole is not None else rows, indent=2)
    else:
        raise ConfigError(f"--out {path!r}: the file must end in .json, .jsonl or .csv", field="out")
    try:
        target.write_text(text)
    except OSError as exc:
        raise ConfigError(f"--out {path!r} cannot be written: {exc.strerror or exc}", field="out") from None


def _run(args: argparse.Namespace) -> int:
    overrides = parse_sets(args.model, args.set)
    common = dict(weights=args.weights, checkpoint=args.checkpoint, device=args.device, overrides=overrides,
                  seed=args.seed, dtype=args.dtype, compile=args.compile, sampling_rate=args.sampling_rate)
    if args.top_k < 1:
        raise ConfigError(f"top_k={args.top_k} is not allowed: top_k must be an integer ≥ 1", field="top_k")
    if args.dry_run:
        from ..run.runtime import plan_run
        plan = plan_run(args.model, args.clip, views=args.views, **common)
        print(json.dumps(plan.to_dict(), indent=2) if args.json else _plan_text(plan.to_dict()))
        return 0
    if args.clips is not None:
        if args.timeline is not None:
            raise ConfigError("--timeline reads one long clip: use it with --clip, not --clips", field="timeline")
        paths = _clip_list(args.clips)
        report = _progress("clips")
        rows = []
        for n, row in enumerate(predict_many(args.model, paths, top_k=args.top_k, views=args.views, **common), 1):
            rows.append(row)
            report(n, len(paths))
        if args.out:
            _write(args.out, rows, args.top_k)
        if args.json or not args.out:
            print("\n".join(json.dumps(r) for r in rows) if args.json else _batch_text(rows))
        return 0
    if args.timeline is not None:
        result = timeline(args.model, args.clip, stride_s=args.timeline, top_k=args.top_k,
                          progress=_progress("windows"), **common)
        if result["random_init"]:
            print(RANDOM_WARNING, file=sys.stderr)
        if args.out:
            _write(args.out, result["windows"], args.top_k, whole=result)
        if args.json:
            print(json.dumps(result, indent=2))
        elif not args.out:
            for w in result["windows"]:
                best = w["predictions"][0]
                print(f"{w['start_s']:8.2f}–{w['end_s']:8.2f} s  {best['label']}  {100 * best['probability']:.1f}%")
        return 0

    result = predict(args.model, args.clip, top_k=args.top_k, views=args.views, **common)
    if result.random_init:
        print(RANDOM_WARNING, file=sys.stderr)
    if args.out:
        _write(args.out, [result.to_dict()], args.top_k, whole=result.to_dict())
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    if result.random_init:
        print("!! random initialisation: these predictions mean nothing !!")
    views = result.views
    print(f"{result.model} · weights: {result.weights or f'none (random initialisation, seed {result.seed})'} · "
          f"{result.device} · {views['clips']}×{views['crops']} views")
    print(f"clip: {Path(str(args.clip)).name} — {result.clip['num_frames']} frames, "
          f"{result.clip['width']}×{result.clip['height']}; labels: {result.labels_from}")
    if result.scoring == "sigmoid":
        print("multi-label: each class is scored on its own (sigmoid); the scores do not add up to 100%")
    for note in result.warnings:
        print(f"note: {note}")
    width = max(len(p["label"]) for p in result.predictions)
    kind = "score" if result.scoring == "sigmoid" else ""
    for rank, p in enumerate(result.predictions, 1):
        print(f"{rank:2d}. {p['label']:<{width}}  {100 * p['probability']:6.2f}% {kind} (class {p['index']})")
    return 0


def _batch_text(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        if row["ok"]:
            best = row["predictions"][0]
            lines.append(f"{row['clip']}: {best['label']} {100 * best['probability']:.1f}%")
        else:
            lines.append(f"{row['clip']}: error: {row['error']}")
    return "\n".join(lines)


def _plan_text(plan: dict[str, Any]) -> str:
    w, r, v = plan["weights"], plan["recipe"], plan["views"]
    repo = plan.get("repository")
    lines = [f"model: {plan['model']}  overrides: {plan['config_overrides'] or 'none'}"]
    if repo:
        where = (f"{repo['repo_id']} at {repo['revision']} = commit {repo['commit']}" if repo["repo_id"]
                 else repo["directory"])
        lines.append(f"repository: {repo['architecture']} from {where}; processor: {repo['processor_file'] or 'none'}"
                     f"; labels: {len(repo['labels'] or [])}; scores: {plan['scoring']}")
    lines += [
             f"weights: {w['name']}" + (f" — {'cached at' if w.get('cached') else 'would download'} {w['path']}"
                                        f" from {w['url']} (verification: {w['verification']})" if 'url' in w else ""),
             f"recipe: {r['num_frames']} frames, {r['sampling']} (rate {r['sampling_rate']}, {r['clip_rule']}), "
             f"resize {r['resize']} with {r['resampling']['source']} (antialias {r['resampling']['antialias']}), "
             f"crop {r['crop']}, mean {r['mean']}, std {r['std']}",
             f"views: {v['clips']} clips × {v['crops']} crops = {v['forwards']} forwards",
             f"labels: {plan['labels_from']}"]
    lines += [f"note: {w}" for w in plan["warnings"]]
    for n, indices in enumerate(plan["frame_indices"]):
        lines.append(f"frame indices (clip {n}): {indices}")
    if plan["macs_total"] is not None:
        lines.append(f"MACs: {plan['macs_per_view']:,} per view, {plan['macs_total']:,} in all")
    mem = plan["memory"]
    if mem:
        lines.append(f"memory: {mem['total_bytes']:,} bytes estimated, {mem['free_bytes']} free — "
                     f"{'fits' if mem['fits'] else mem['refusal']}")
    return "\n".join(lines)
