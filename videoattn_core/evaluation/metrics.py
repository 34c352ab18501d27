"""Metrics of an evaluation, as the papers report them, from the rows of a results file.

- top-1 and top-5: the share of clips whose class is the best, or among the five best, of the video-level scores
  (the softmax averaged over the views);
- mean class accuracy: the top-1 of each class that has clips, averaged over those classes (Kinetics' and
  Something-Something's "mean class accuracy"; scikit-learn's ``balanced_accuracy_score``);
- per-class top-1, the confusion matrix (rows: true class, columns: predicted class, over the classes that are
  some clip's class or prediction) and the most confused pairs;
- clips that could not be classified are counted and listed, and left out of the metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _scored(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not r.get("error") and r.get("target") is not None and r.get("top5")]


def compute_metrics(rows: list[dict[str, Any]], labels: list[str] | None = None, *, pairs: int = 10,
                    worst: int = 20) -> dict[str, Any]:
    """Everything the report and the Evaluation page show (see the module's docstring); ``labels`` are the
    model's class names (the results file's header has them), else the names the rows' top-5 show."""
    scored = _scored(rows)
    errors = [{"path": r["path"], "label": r.get("label"), "error": r["error"]} for r in rows if r.get("error")]
    targets = np.array([r["target"] for r in scored], dtype=np.int64)
    top1 = np.array([r["top5"][0]["index"] for r in scored], dtype=np.int64)
    in_top5 = np.array([r["target"] in [p["index"] for p in r["top5"][:5]] for r in scored], dtype=bool)
    names = dict(enumerate(labels)) if labels else _class_names(scored)
    per_class = []
    for cls in sorted(set(targets.tolist())):
        mine = targets == cls
        correct = int((top1[mine] == cls).sum())
        per_class.append({"index": cls, "label": names.get(cls, f"class {cls}"), "clips": int(mine.sum()),
                          "correct": correct, "accuracy": correct / int(mine.sum())})
    classes = sorted(set(targets.tolist()) | set(top1.tolist()))
    position = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(targets.tolist(), top1.tolist()):
        confusion[position[t], position[p]] += 1
    confused = [{"true": classes[i], "true_label": names.get(classes[i], f"class {classes[i]}"),
                 "predicted": classes[j], "predicted_label": names.get(classes[j], f"class {classes[j]}"),
                 "clips": int(confusion[i, j]), "share": float(confusion[i, j] / confusion[i].sum())}
                for i, j in zip(*np.nonzero(confusion)) if i != j]
    confused.sort(key=lambda c: (-c["clips"], -c["share"], c["true"], c["predicted"]))
    n = len(scored)
    return {
        "clips": len(rows), "scored": n, "errors": len(errors), "error_rows": errors,
        "unmapped": sum(1 for r in rows if not r.get("error") and r.get("target") is None),
        "top1": float((top1 == targets).mean()) if n else None,
        "top5": float(in_top5.mean()) if n else None,
        "mean_class_accuracy": float(np.mean([c["accuracy"] for c in per_class])) if per_class else None,
        "per_class": per_class,
        "confusion": {"classes": classes, "labels": [names.get(c, f"class {c}") for c in classes],
                      "matrix": confusion.tolist()},
        "most_confused": confused[:pairs],
        "worst": worst_clips(scored, worst),
        "timing": timing(rows),
    }


def _class_names(rows: list[dict[str, Any]]) -> dict[int, str]:
    """Model class names as the rows name them (the top-5 carry the model's labels)."""
    names: dict[int, str] = {}
    for r in rows:
        for p in r["top5"]:
            names.setdefault(int(p["index"]), p["label"])
    return names


def true_probability(row: dict[str, Any]) -> float | None:
    """The score of the clip's own class, when it is among the five kept (else below the fifth's)."""
    return next((p["probability"] for p in row["top5"] if p["index"] == row["target"]), None)


def worst_clips(scored: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The misclassified clips, the least probable true class first (a true class outside the top-5 first of
    all, then by how sure the wrong prediction was)."""
    wrong = [r for r in scored if r["top5"][0]["index"] != r["target"]]
    wrong.sort(key=lambda r: (true_probability(r) or -1.0, -r["top5"][0]["probability"], r["path"]))
    return [{"path": r["path"], "label": r.get("label"), "target": r["target"],
             "predicted": r["top5"][0]["label"], "probability": r["top5"][0]["probability"],
             "true_probability": true_probability(r)} for r in wrong[:n]]


def timing(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Decoding and forward seconds summed over the clips of the rows (decoding runs in the loader's workers, so
    with workers it overlaps the forward: the sums may exceed the wall time)."""
    decode = float(sum(r.get("decode_s") or 0.0 for r in rows))
    forward = float(sum(r.get("forward_s") or 0.0 for r in rows))
    total = decode + forward
    return {"decode_s": decode, "forward_s": forward, "decode_share": decode / total if total else 0.0}
