"""Labelled clip lists in the formats the sources evaluate on, and how their labels map to a model's classes.

Formats (``format`` is detected from ``data`` unless given):

- ``kinetics`` — the Kinetics CSV (``label,youtube_id,time_start,time_end,split``); each clip is the file
  ``{youtube_id}_{time_start:06d}_{time_end:06d}.*`` anywhere under ``root`` (the layout of the official
  downloader, flat or one folder per class);
- ``ssv2`` — Something-Something v2's ``validation.json`` (``id``, ``template``) with the ``labels.json`` beside
  it (template without brackets → class index); clips are ``{id}.webm`` (or any extension) in ``root``;
- ``mmaction`` — MMAction2's list, one ``path label_index`` a line, paths relative to ``root``;
- ``folders`` — a folder per class (``data`` is the folder; its subfolders are the classes).

Labels map to the model's classes by name, normalised as the sources write them (case, quotes, underscores for
spaces, SSv2's ``[something]`` brackets), or by index where the dataset gives indices and the model has no class
names (or ``match="index"``). Labels that map to no class are reported before anything runs.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

FORMATS = ("kinetics", "ssv2", "mmaction", "folders")
MATCHES = ("auto", "name", "index")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".gif")
_PLACEHOLDER = re.compile(r"class \d+")


@dataclass(frozen=True)
class Sample:
    """One labelled clip: ``path`` (which may not exist: it then becomes an error row), the dataset's label name
    and, where the dataset gives one, its class index."""

    path: str
    label: str
    index: int | None = None


@dataclass
class Dataset:
    """A labelled clip list: ``samples`` in the annotation file's order."""

    format: str
    data: str
    root: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def named(self) -> bool:
        """Whether the labels are class names (MMAction2's lists and folders named 0, 1, … give indices only)."""
        return any(s.index is None or s.label != str(s.index) for s in self.samples)


def normalise(name: str) -> str:
    """A class name as the sources' spellings agree on it: ``"passing_American_football_(in_game)"``,
    ``'"passing American football (in game)"'`` and ``passing american football (in game)`` are one class;
    SSv2's ``Putting [something] on [something]`` is its label ``Putting something on something``."""
    text = name.strip().strip("\"'").replace("_", " ").replace("[", "").replace("]", "")
    return " ".join(text.lower().split())


def detect_format(data: Path) -> str:
    if data.is_dir():
        return "folders"
    suffix = data.suffix.lower()
    return {".csv": "kinetics", ".json": "ssv2"}.get(suffix, "mmaction")


def read_dataset(data: str | Path, root: str | Path | None = None, format: str | None = None) -> Dataset:
    """The samples of an annotation file (or class folder tree); raises :class:`ConfigError` with what was wrong
    for a missing or malformed file."""
    data = Path(data)
    if not data.exists():
        raise ConfigError(f"--data {data}: no such file or folder", field="data")
    fmt = format or detect_format(data)
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is not allowed: one of {', '.join(FORMATS)}", field="format")
    base = (Path(root) if root is not None else (data if data.is_dir() else data.parent)).resolve()
    if not base.is_dir():
        raise ConfigError(f"--root {base}: no such folder", field="root")
    reader = {"kinetics": _kinetics, "ssv2": _ssv2, "mmaction": _mmaction, "folders": _folders}[fmt]
    try:
        samples = reader(data.resolve(), base)  # absolute paths: rows name clips wherever they are read
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--data {data} cannot be read: {exc}", field="data") from None
    if not samples:
        raise ConfigError(f"--data {data} ({fmt}) lists no clips", field="data")
    return Dataset(format=fmt, data=str(data), root=str(base), samples=samples)


def _videos_by_stem(root: Path) -> dict[str, Path]:
    """Every video file under ``root`` by file name without extension (first found in sorted order wins)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            found.setdefault(path.stem, path)
    return found


def _kinetics(data: Path, root: Path) -> list[Sample]:
    with data.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"label", "youtube_id", "time_start", "time_end"} - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"--data {data}: a Kinetics CSV needs the columns label, youtube_id, time_start, "
                              f"time_end (missing: {', '.join(sorted(missing))})", field="data")
        rows = list(reader)
    videos = _videos_by_stem(root)
    samples = []
    for line, row in enumerate(rows, 2):
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except (TypeError, ValueError):
            raise ConfigError(f"--data {data} line {line}: time_start and time_end must be numbers", field="data"
                              ) from None
        stem = f"{row['youtube_id']}_{start:06d}_{end:06d}"
        path = videos.get(stem, root / f"{stem}.mp4")  # a missing file becomes an error row
        samples.append(Sample(str(path), row["label"]))
    return samples


def _ssv2(data: Path, root: Path) -> list[Sample]:
    labels_file = data.parent / "labels.json"
    if not labels_file.is_file():
        raise ConfigError(f"--data {data}: Something-Something v2 annotations need labels.json beside them "
                          f"({labels_file} is missing)", field="data")
    try:
        items, names = json.loads(data.read_text()), json.loads(labels_file.read_text())
        index = {normalise(k): int(v) for k, v in names.items()}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        raise ConfigError(f"--data {data}: validation.json must be a list of {{id, template}} and labels.json a "
                          f"map of class name to index", field="data") from None
    videos = _videos_by_stem(root)
    samples = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or "id" not in item or "template" not in item:
            raise ConfigError(f"--data {data}: every item needs an id and a template (the test set has no labels)",
                              field="data")
        name = item["template"].replace("[", "").replace("]", "")
        clip_id = str(item["id"])
        samples.append(Sample(str(videos.get(clip_id, root / f"{clip_id}.webm")), name, index.get(normalise(name))))
    return samples


def _mmaction(data: Path, root: Path) -> list[Sample]:
    samples = []
    for line, text in enumerate(data.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        parts = text.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise ConfigError(f"--data {data} line {line}: expected 'path label_index', got {text[:80]!r}",
                              field="data")
        samples.append(Sample(str(root / parts[0]), parts[1], int(parts[1])))
    return samples


def _folders(data: Path, root: Path) -> list[Sample]:
    samples = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        index = int(folder.name) if folder.name.isdigit() else None
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
                samples.append(Sample(str(path), folder.name, index))
    return samples


# ----------------------------------------------------------------------------------------------- label mapping


def has_names(labels: list[str]) -> bool:
    """Whether a model's labels are class names (not the ``class i`` placeholders of a nameless checkpoint)."""
    return not all(_PLACEHOLDER.fullmatch(label) for label in labels)


def map_labels(dataset: Dataset, labels: list[str], match: str = "auto") -> tuple[dict[str, int], list[str], str]:
    """``(dataset label → model class index, labels that map to none, how they were matched)``.

    ``auto`` matches names when both the model and the dataset have class names, else the dataset's indices."""
    if match not in MATCHES:
        raise ConfigError(f"match={match!r} is not allowed: one of {', '.join(MATCHES)}", field="match")
    by_name = {normalise(label): i for i, label in enumerate(labels)}
    use_names = match == "name" or (match == "auto" and has_names(labels) and dataset.named)
    mapping: dict[str, int] = {}
    unmapped: list[str] = []
    for sample in dataset.samples:
        if sample.label in mapping or sample.label in unmapped:
            continue
        if use_names:
            target = by_name.get(normalise(sample.label))
        else:
            target = sample.index if sample.index is not None and 0 <= sample.index < len(labels) else None
        if target is None:
            unmapped.append(sample.label)
        else:
            mapping[sample.label] = target
    return mapping, unmapped, "by name" if use_names else "by index"
