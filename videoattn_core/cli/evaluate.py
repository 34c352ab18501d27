"""The ``evaluate`` command: a checkpoint on a labelled dataset with the published protocol, on one process or on
every rank of a torchrun job (``torchrun --nproc_per_node N -m videoattn_core evaluate …``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import one_line_failures
from .args import add_device_arguments, add_model_arguments, add_set_argument, parse_sets


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand on the CLI's subparsers."""
    from ..evaluation import FORMATS, MATCHES

    p = sub.add_parser("evaluate", help="top-1, top-5 and mean class accuracy on a labelled dataset",
                       description="Evaluate a model on a labelled dataset with its weights' recipe and test views. "
                                   "Under torchrun the clips are split over the ranks and rank 0 reports.")
    add_model_arguments(p)
    p.add_argument("--data", required=True, metavar="ANNOTATIONS",
                   help="Kinetics CSV, Something-Something v2 validation.json (labels.json beside it), MMAction2 "
                        "list ('path label_index' lines) or a folder per class")
    p.add_argument("--root", metavar="DIR", help="where the clips are (default: the folder of --data)")
    p.add_argument("--format", choices=FORMATS, help="annotation format (default: from --data)")
    p.add_argument("--labels", metavar="FILE", help="the model's class names, one a line in class order")
    p.add_argument("--match", choices=MATCHES, default="auto",
                   help="map dataset labels to classes by name or by index (default auto: names when both sides "
                        "have them)")
    p.add_argument("--skip-unmapped", action="store_true", help="leave out clips whose label maps to no class")
    p.add_argument("--views", default="protocol",
                   help="protocol (default: the paper's clips × crops, softmax averaged), single or CLIPSxCROPS")
    p.add_argument("--sampling-rate", type=int, metavar="R", help="Hugging Face models: frames R apart")
    p.add_argument("--out", metavar="FILE.jsonl",
                   help="one row per clip, written as it goes; a rerun with the same file resumes")
    p.add_argument("--batch-size", type=int, default=1, help="clips per forward (default 1)")
    p.add_argument("--workers", type=int, default=2, help="decoding processes (default 2; 0: in this process)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N clips of the list")
    add_device_arguments(p)
    p.add_argument("--compile", action="store_true", help="run the forward through torch.compile")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_set_argument(p, "num_classes=10")
    p.set_defaults(func=one_line_failures("evaluation", _run))
    return p


def _run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate, finish

    if args.out and Path(args.out).suffix.lower() != ".jsonl":
        from ..errors import ConfigError

        raise ConfigError(f"--out {args.out!r}: the results file must end in .jsonl", field="out")
    try:
        result = evaluate(args.model, args.data, args.root, weights=args.weights, checkpoint=args.checkpoint,
                          seed=args.seed, overrides=parse_sets(args.model, args.set), views=args.views,
                          out=args.out, batch_size=args.batch_size, workers=args.workers, limit=args.limit,
                          device=args.device, dtype=args.dtype, format=args.format, labels=args.labels,
                          match=args.match, skip_unmapped=args.skip_unmapped, compile=args.compile,
                          sampling_rate=args.sampling_rate, progress=True)
    except KeyboardInterrupt:
        if args.out:
            print(f"interrupted: the rows so far are in {args.out} (or its .rank shards); run the same command "
                  f"again to resume", file=sys.stderr)
        raise
    finally:
        finish()
    if result.rank != 0:
        return 0
    if args.json:
        print(json.dumps({"header": {k: v for k, v in result.header.items() if k != "labels"},
                          "metrics": result.metrics, "throughput": result.throughput.to_dict(),
                          "warnings": result.warnings}, indent=2))
    else:
        print(report_text(result))
    return 0


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def report_text(result: Any) -> str:
    """The evaluation report as the command prints it."""
    h, m, t = result.header, result.metrics, result.throughput
    clips, crops = h["views"]
    lines = [f"{h['model']} · weights: {h['weights']} · {clips}×{crops} views · labels {h['match']}",
             f"data: {h['data']} ({h['format']}) — {m['clips']} clips, {m['scored']} scored, {m['errors']} errors"]
    lines += [f"note: {w}" for w in result.warnings]
    lines += [f"top-1 {_pct(m['top1'])}   top-5 {_pct(m['top5'])}   mean class accuracy "
              f"{_pct(m['mean_class_accuracy'])}"]
    if t.clips:
        lines.append(f"this run: {t.clips} clips in {t.wall_s:.1f} s = {t.clips_per_s:.2f} clips/s; decoding "
                     f"{t.decode_s:.1f} s (in workers), forward {t.forward_s:.1f} s, waiting for clips "
                     f"{t.wait_s:.1f} s")
    if m["most_confused"]:
        lines.append("most confused (true → predicted, clips):")
        lines += [f"  {c['true_label']} → {c['predicted_label']}: {c['clips']} ({100 * c['share']:.0f}% of the "
                  f"class)" for c in m["most_confused"][:5]]
    if m["error_rows"]:
        lines.append(f"{m['errors']} clip(s) could not be classified:")
        lines += [f"  {e['path']}: {e['error']}" for e in m["error_rows"][:20]]
        if m["errors"] > 20:
            lines.append(f"  … and {m['errors'] - 20} more (rows with an error in the results file)")
    return "\n".join(lines)
