"""A small labelled dataset written in each annotation format the ``evaluate`` command reads, for a tiny randomly
initialised TimeSformer whose predictions are arbitrary but deterministic.

The clips are 8 distinct 64×64 videos (tests/clips.py's writer). Their labels are chosen from the model's own
probabilities, computed independently with ``vac.predict`` (one clip at a time), so that the metrics are neither 0
nor 1: clip ``i``'s class is the model's ``RANKS[i]``-th best class (0: right at top-1; 1–4: right at top-5 only;
9: wrong at both).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

import videoattn_core as vac
from clips import index_frame, write_video

MODEL = "timesformer_base"
TINY = ["depth=1", "embed_dim=32", "num_heads=2", "img_size=32"]
RANKS = [0, 1, 0, 2, 9, 0, 4, 9]
NUM_CLIPS = len(RANKS)


def overrides(num_classes: int) -> dict:
    return {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 32, "num_classes": num_classes}


def cli_sets(num_classes: int) -> list[str]:
    return [a for s in [*TINY, f"num_classes={num_classes}"] for a in ("--set", s)]


def _draw(n: int):
    tint = np.array([(37 * n) % 256, (91 * n) % 256, (53 * n) % 256], np.uint8)

    def draw(i: int, height: int, width: int) -> np.ndarray:
        return np.clip(index_frame(i * (n + 1), height, width).astype(int) // 2 + tint // 2, 0, 255
                       ).astype(np.uint8)
    return draw


def write_clips(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_video(folder / f"clip{n}.mp4", 24, height=64, width=64, draw=_draw(n)) for n in range(NUM_CLIPS)]


def probabilities(paths: list[Path], num_classes: int, views: str = "single") -> np.ndarray:
    """``(clips, classes)``: each clip through ``vac.predict`` on its own (the reference for the metrics)."""
    return np.array([vac.predict(MODEL, p, overrides=overrides(num_classes), seed=0, views=views,
                                 device="cpu").probabilities for p in paths])


def targets(probs: np.ndarray) -> list[int]:
    """Each clip's class: the ``RANKS[i]``-th most probable class of the model."""
    order = np.argsort(-probs, axis=1, kind="stable")
    return [int(order[i, r]) for i, r in enumerate(RANKS)]


def write_kinetics(folder: Path, paths: list[Path], names: list[str]) -> Path:
    """``val.csv`` and the clips renamed ``{youtube_id}_{start:06d}_{end:06d}.mp4`` (in a folder per class)."""
    csv_path = folder / "val.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        for n, (path, name) in enumerate(zip(paths, names)):
            youtube_id, start = f"yt{n:02d}-x_{n}", 10 * n
            writer.writerow([name, youtube_id, start, start + 10, "val"])
            target = folder / "videos" / name.replace(" ", "_") / f"{youtube_id}_{start:06d}_{start + 10:06d}.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return csv_path


def write_ssv2(folder: Path, paths: list[Path], classes: list[int], num_classes: int) -> Path:
    """``validation.json`` + ``labels.json`` (class ``k`` is the template ``Doing [something] k``) and
    ``{id}.webm``-named clips (MP4 inside: the reader goes by the stem)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.json").write_text(json.dumps({f"Doing something {k}": str(k) for k in range(num_classes)}))
    items = []
    for n, (path, k) in enumerate(zip(paths, classes)):
        items.append({"id": str(1000 + n), "label": f"doing a thing {k}", "template": f"Doing [something] {k}",
                      "placeholders": ["a thing"]})
        (folder / f"{1000 + n}.mp4").write_bytes(path.read_bytes())
    (folder / "validation.json").write_text(json.dumps(items))
    return folder / "validation.json"


def write_mmaction(folder: Path, paths: list[Path], classes: list[int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for n, (path, k) in enumerate(zip(paths, classes)):
        (folder / "clips").mkdir(exist_ok=True)
        (folder / "clips" / f"c {n}.mp4").write_bytes(path.read_bytes())  # a space in the name
        lines.append(f"clips/c {n}.mp4 {k}")
    (folder / "val_list.txt").write_text("\n".join(lines) + "\n")
    return folder / "val_list.txt"


def write_folders(folder: Path, paths: list[Path], names: list[str]) -> Path:
    for n, (path, name) in enumerate(zip(paths, names)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / f"clip{n}.mp4").write_bytes(path.read_bytes())
    return folder
