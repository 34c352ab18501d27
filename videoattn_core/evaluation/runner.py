"""The evaluation loop: clips decoded in a DataLoader's workers, overlapped with the forward, one row per clip.

Every clip goes through the run pipeline (:func:`videoattn_core.run.runtime.load_inputs` with the plan made once, then
:func:`~videoattn_core.run.runtime.classify`, or the same scores for a batch of clips in one forward). A clip that
cannot be read is a value (its error), never an exception: it becomes an error row and the loop goes on.

Under torchrun (``RANK``/``WORLD_SIZE`` in the environment) each rank takes the clips at positions
``rank, rank + world, …`` of the dataset's list (the same split on every rerun), writes its own shard, and after
a barrier rank 0 merges the shards; ``gloo`` on the CPU, ``nccl`` on CUDA.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..attention.capture import model_lock
from ..errors import ConfigError
from ..run import devices, runtime
from . import results
from .annotations import Sample


@dataclass(frozen=True)
class Ranks:
    """Where this process sits in a torchrun job (``world == 1``: no job, one process)."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def ranks_from_env() -> Ranks:
    try:
        return Ranks(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them)",
                          field="rank") from None


def init_distributed(ranks: Ranks, device: str | None) -> str | None:
    """Join the torchrun job (``nccl`` on CUDA, each rank on its ``LOCAL_RANK``'s GPU; ``gloo`` on the CPU) and
    return the device this rank runs on."""
    import torch.distributed as dist

    cuda = device == "cuda" or (device in (None, "auto") and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(ranks.local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return "cuda" if cuda else "cpu"


def describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, ConfigError) or type(exc).__module__.startswith("videoattn_core") else \
        f"{type(exc).__name__}: {text}"


class ClipViews(TorchDataset):
    """Item ``i``: the decoded, preprocessed views ``(V, 3, T, S, S)`` of clip ``i`` of ``items`` as
    ``{"position", "views", "error", "decode_s"}``; a clip that cannot be read has ``views=None`` and its error."""

    def __init__(self, plan: runtime.RunPlan, items: list[tuple[int, Sample]], limits: Any = None):
        self.plan, self.items, self.limits = plan, items, limits

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        position, sample = self.items[i]
        t0 = time.perf_counter()
        try:
            views, error = runtime.load_inputs(self.plan, sample.path, limits=self.limits).tensor, None
        except Exception as exc:  # carried as a value: a broken clip never stops the evaluation
            views, error = None, describe(exc)
        return {"position": position, "views": views, "error": error, "decode_s": time.perf_counter() - t0}


def _as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def classify_batch(model: torch.nn.Module, clips: list[torch.Tensor], *, device: torch.device, dtype: str,
                   scoring: str) -> list[torch.Tensor]:
    """:func:`~videoattn_core.run.runtime.classify` of several clips' views in one forward: each view's softmax (or
    sigmoid), averaged over the clip's views."""
    if len(clips) == 1:
        return [runtime.classify(model, clips[0], device=device, dtype=dtype, scoring=scoring)]
    x = torch.cat(clips).to(device=device, dtype=devices.resolve_dtype(dtype))  # (ΣV, 3, T, S, S)
    with model_lock(model), torch.no_grad():
        logits = model(x).float()
    scores = (logits.sigmoid() if scoring == "sigmoid" else logits.softmax(dim=-1)).cpu()
    return [part.mean(dim=0) for part in scores.split([len(c) for c in clips])]


@dataclass
class Throughput:
    """What this run (all ranks) did: clips, wall seconds, decoding and forward seconds, and the time the
    forward waited for decoded clips."""

    clips: int = 0
    wall_s: float = 0.0
    decode_s: float = 0.0
    forward_s: float = 0.0
    wait_s: float = 0.0

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.wall_s if self.wall_s else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"clips": self.clips, "wall_s": self.wall_s, "clips_per_s": self.clips_per_s,
                "decode_s": self.decode_s, "forward_s": self.forward_s, "wait_s": self.wait_s}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_shard(plan: runtime.RunPlan, run: runtime.RunModel, items: list[tuple[int, Sample]],
              mapping: dict[str, int], handle: Any, *, batch_size: int = 1, workers: int = 0, limits: Any = None,
              progress: bool | Callable[[int, int], None] = False) -> tuple[list[dict[str, Any]], Throughput]:
    """Classify ``items`` (``(position, sample)``), writing each row to ``handle`` (when given) as it is made;
    ``progress``: a bar on stderr (``True``), or a function told ``(clips done, clips)`` after each batch."""
    from tqdm import tqdm

    report = progress if callable(progress) else None

    loader = DataLoader(ClipViews(plan, items, limits), batch_size=batch_size, num_workers=workers,
                        collate_fn=_as_list, prefetch_factor=2 if workers else None,
                        persistent_workers=False)
    stats, rows, samples = Throughput(), [], dict(items)
    bar = tqdm(total=len(items), unit="clip", disable=progress is not True, file=sys.stderr, dynamic_ncols=True)
    start = waited = time.perf_counter()
    try:
        for batch in loader:
            stats.wait_s += time.perf_counter() - waited
            ok = [item for item in batch if item["views"] is not None]
            t0 = time.perf_counter()
            scores: list[torch.Tensor] = []
            if ok:
                try:
                    scores = classify_batch(run.model, [item["views"] for item in ok], device=plan.device,
                                            dtype=plan.dtype, scoring=run.scoring)
                except Exception as exc:  # a forward that fails (memory, a shape) fails these clips only
                    for item in ok:
                        item["error"], item["views"] = f"forward failed: {describe(exc)}", None
                    ok = []
                _sync(plan.device)
            forward_s = (time.perf_counter() - t0) / max(1, len(ok))
            by_position = {item["position"]: s for item, s in zip(ok, scores)}
            for item in batch:
                sample = samples[item["position"]]
                probs = by_position.get(item["position"])
                row = {"path": sample.path, "label": sample.label, "target": mapping.get(sample.label),
                       "top5": runtime.top_predictions(probs, run.labels, 5) if probs is not None else None,
                       "error": item["error"], "decode_s": round(item["decode_s"], 5),
                       "forward_s": round(forward_s, 5) if probs is not None else 0.0}
                rows.append(row)
                if handle is not None:
                    results.write_row(handle, row)
                stats.clips += 1
                stats.decode_s += item["decode_s"]
                stats.forward_s += row["forward_s"]
            bar.update(len(batch))
            if report is not None:
                report(stats.clips, len(items))
            if progress is True and ok:
                bar.set_postfix_str(f"decode {stats.decode_s:.0f}s forward {stats.forward_s:.0f}s", refresh=False)
            waited = time.perf_counter()
    finally:
        bar.close()
    stats.wall_s = time.perf_counter() - start
    return rows, stats


def gather_throughput(stats: Throughput, ranks: Ranks, device: torch.device) -> Throughput:
    """All ranks' clips and seconds summed; the wall time is the slowest rank's."""
    if not ranks.distributed:
        return stats
    import torch.distributed as dist

    where = device if device.type == "cuda" else torch.device("cpu")
    sums = torch.tensor([stats.clips, stats.decode_s, stats.forward_s, stats.wait_s], dtype=torch.float64,
                        device=where)
    wall = torch.tensor([stats.wall_s], dtype=torch.float64, device=where)
    dist.all_reduce(sums)
    dist.all_reduce(wall, op=dist.ReduceOp.MAX)
    clips, decode, forward, wait = sums.tolist()
    return Throughput(int(clips), float(wall.item()), decode, forward, wait)


def gather_rows(out: Any, ranks: Ranks) -> list[dict[str, Any]]:
    """On rank 0, the rows of every other rank's shard (sent over the process group, so that ranks on other
    machines need no shared filesystem); on the others, ``[]``. Every rank has finished its shard when it
    returns (the gather is the barrier)."""
    if not ranks.distributed or out is None:
        return []
    import torch.distributed as dist

    mine = results.shard_rows(out, ranks.rank) if ranks.rank else []
    gathered: list[Any] | None = [None] * ranks.world if ranks.rank == 0 else None
    dist.gather_object(mine, gathered, dst=0)
    return [row for part in (gathered or []) for row in (part or [])]


def release_shard(out: Any, ranks: Ranks) -> None:
    """After rank 0 has merged (a second barrier), each rank deletes its own shard, wherever it is."""
    if not ranks.distributed or out is None:
        return
    import torch.distributed as dist

    dist.barrier()
    results.shard_path(out, ranks.rank).unlink(missing_ok=True)


def share_done(done: set[str], ranks: Ranks) -> set[str]:
    """The clips any rank found done (in the files it sees), so that a rerun on several machines skips the clips
    merged on rank 0's."""
    if not ranks.distributed:
        return done
    import torch.distributed as dist

    everyone: list[Any] = [None] * ranks.world
    dist.all_gather_object(everyone, sorted(done))
    return {path for part in everyone for path in (part or [])}
