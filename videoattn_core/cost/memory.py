"""Will a run fit in memory: the peak of a forward's live tensors (and of its kernels' own buffers), counted while
the model runs on the meta device, the allocator's allowances, and the plan that refuses a run before anything is
allocated (:func:`memory_plan`). Checked against measured forwards by ``bench/memory.py``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import weakref
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..units import human_bytes

#: a run is refused when its estimated memory × this margin exceeds the free memory (a tenth left for the rest of
#: the process). Near that limit the CPU allocator is pinned and the estimate bounds the forward within 1.5×
#: (memory.memory_plan, bench/memory.py): refused only when it needs more than free / 1.1, at least free / 1.65.
MEMORY_MARGIN = 1.1


def available_memory(device: torch.device | str) -> int | None:
    """Free bytes on ``device`` (CUDA: free device memory; CPU: available RAM), or ``None`` when unknown."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class _FusedAttentionOnMeta(TorchFunctionMode):
    """On the meta device ``F.scaled_dot_product_attention`` falls back to the explicit maths and would form the
    (N_q × N_k) matrix a fused kernel never holds; here it allocates what the fused CPU/CUDA kernels return
    instead: the output and the log-sum-exp per query row."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, v = args[0], args[2] if len(args) > 2 else kwargs["value"]
            # the CPU kernel lays its output out as the queries lie (made dense): whether merging the heads after
            # it is a view or a copy depends on that
            out = torch.empty_like(q) if v.shape[-1] == q.shape[-1] else q.new_empty((*q.shape[:-1], v.shape[-1]))
            q.new_empty(q.shape[:-1], dtype=torch.float32)  # logsumexp, freed as the kernel returns
            return out
        return func(*args, **kwargs)


_ONEDNN_CHANNEL_BLOCK = 8  # oneDNN's smallest channel block (AVX2: 8 floats); fewer channels stay plain


def _nbytes(t: Any) -> int:
    return sum(_nbytes(o) for o in t) if isinstance(t, (tuple, list)) else t.numel() * t.element_size()


def kernel_workspace_bytes(func: Any, args: Sequence[Any], kwargs: dict[str, Any] | None, out: Any) -> int:
    """Bytes an operator's CPU kernel allocates for itself while it runs, beyond the output it returns: buffers made
    below the dispatcher, which a count of the operators' outputs never sees but the process holds at the
    operator's peak (alongside the output). Derived from the shapes, for the kernels ``bench/memory.py`` found
    to matter:

    - ``roll`` over k dimensions rolls one dimension at a time (ATen's ``roll_common``): k − 1 intermediate copies
      of the input are alive when the output is made (shifted-window Swin);
    - ``native_layer_norm``, ``max_pool3d_with_indices`` and ``convolution`` work on a contiguous copy of a
      non-contiguous input (``expect_contiguous``: MViT pools and convolves heads split out of a transpose);
    - ``convolution`` runs oneDNN, which makes its output in a blocked layout and reorders it: a copy of the
      output, and one of the input unless it has fewer channels than a block (an image's 3 stay plain);
    - none of this for a channels-last input of a convolution or pooling (MViT's pooling): oneDNN and the pooling
      kernels work on that layout as it lies.
    """
    aten = torch.ops.aten
    kwargs = kwargs or {}
    if func is aten.roll.default:
        dims = args[2] if len(args) > 2 else kwargs.get("dims", ())
        return max(len(dims) - 1, 0) * _nbytes(args[0])
    if func not in (aten.native_layer_norm.default, aten.max_pool3d_with_indices.default, aten.convolution.default):
        return 0
    x = args[0]
    if func is not aten.native_layer_norm.default and _channels_last(x):
        return 0  # the channels-last kernels read it as it lies, and oneDNN makes its output there: no copy
    copy = 0 if x.is_contiguous() else _nbytes(x)
    if func is aten.convolution.default:
        return copy + (_nbytes(x) if x.shape[1] >= _ONEDNN_CHANNEL_BLOCK else 0) + _nbytes(out)
    return copy


def _channels_last(x: torch.Tensor) -> bool:
    """Laid out channels-last (and not also plainly contiguous, as a tensor with one channel or pixel is)."""
    layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    return layout is not None and not x.is_contiguous() and x.is_contiguous(memory_format=layout)


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of the storages that are alive while a forward runs, and their peak: every op's output
    storage is added when it first appears and subtracted when the last tensor on it is freed. Storages that
    existed before (``existing``: weights, buffers, the input) are not counted, views of them included. With
    ``workspaces`` the kernels' own buffers (:func:`kernel_workspace_bytes`) count while their operator runs."""

    def __init__(self, existing: Sequence[torch.Tensor] = (), *, workspaces: bool = False):
        super().__init__()
        self.live = 0
        self.peak = 0
        self.workspaces = workspaces
        self._refs: dict[int, int] = {}
        self._existing = {t.untyped_storage()._cdata for t in existing}

    def _release(self, key: int, nbytes: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = storage._cdata, storage.nbytes()
                if key in self._existing:
                    continue
                if key not in self._refs:
                    self._refs[key] = 0
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                self._refs[key] += 1
                weakref.finalize(t, self._release, key, nbytes)
        if self.workspaces:
            self.peak = max(self.peak, self.live + kernel_workspace_bytes(func, args, kwargs, out))
        return out


def forward_peak_bytes(config: Any, *, dtype: torch.dtype = torch.float32, batch: int = 1,
                       explicit_attention: bool = False, input_shape: Sequence[int] | None = None,
                       workspaces: bool = True) -> int:
    """Peak bytes of the tensors a no-grad forward of ``config`` holds at once, beyond its weights and its
    input: the forward runs on the meta device (nothing is allocated) while every tensor the operators create
    is counted until it is freed, with the buffers the kernels make for themselves while they run
    (:func:`kernel_workspace_bytes`; not with ``workspaces=False``). Fused attention holds its output, not the
    attention matrix; with ``explicit_attention`` the softmax path's matrices are counted as they are formed."""
    from ..models.layers import set_fused_attention
    from ..registry import build_model

    model = build_model(config, device="meta", dtype=dtype)
    set_fused_attention(model, not explicit_attention)
    shape = list(input_shape) if input_shape is not None else list(config.input_shape())
    shape[0] = batch
    x = torch.empty(shape, device="meta", dtype=dtype)
    tracker = LiveBytes([*model.parameters(), *model.buffers(), x], workspaces=workspaces)
    with torch.no_grad(), _FusedAttentionOnMeta(), tracker:
        out = model(x)
        del out
    return tracker.peak


# How glibc's malloc holds a CPU forward's tensors decides both its speed and how far its memory can be foreseen.
# Left alone, it maps blocks above a threshold that it raises (up to 32 MiB) as large blocks come and go, and
# keeps freed blocks below it in its heaps for reuse: fast, but what stays resident depends on the heap's history
# (videomae_s's first forward grew by 55–72 MiB over five processes). Pinned at 128 KiB (:func:`pin_allocator`),
# every tensor is mapped when allocated and unmapped when freed, so the growth follows the live tensors, which the
# meta-device count foresees — but every forward then faults its pages in afresh: 1.2–1.6× the time of the
# default (A/B in one process on swin3d_t, mvit_v2_s, videomae_s, timesformer_base). So a run pins it only when the
# loose bound does not fit with the margin and the tight bound of the pinned allocator does (:func:`memory_plan`).
#
# Far from the limit a run keeps the heaps' freed memory instead (:func:`keep_allocator`): blocks up to 1 GiB come
# from the heaps and stay there when freed, so a later forward reuses pages that are already faulted in and zeroed.
# The default maps its largest tensors afresh on every forward (Swin's 77 MiB MLP activations, for instance): on
# 2 threads 200k page faults and 0.37 s of kernel time per swin3d_t forward, 130k and 0.26 s for timesformer_base;
# kept, 13k and 0.03 s, forwards 0.84–0.88× as long (``bench/run.py --allocator``). The process then holds the
# memory of its largest forward, which planning gives back (``malloc_trim``) before it decides a run near the limit.
MMAP_THRESHOLD = 128 * 2**10
KEPT_MMAP_THRESHOLD = 2**30
KEPT_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int
DEFAULT_TRIM_THRESHOLD = 128 * 2**10
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_pinned: bool | None = None
_kept = False


def can_pin_allocator() -> bool:
    """Whether :func:`pin_allocator` can work here (glibc on Linux)."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def pin_allocator(threshold: int = MMAP_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold at ``threshold`` bytes for the rest of the process: every tensor of that size
    or more is then mapped when allocated and unmapped when freed, so the memory a CPU forward takes follows its
    live tensors, which :func:`memory_plan` counts beforehand (at the cost of page faults: forwards take 1.2–1.6×
    as long). Memory the heaps kept from earlier forwards is given back first (``malloc_trim``). True when pinned
    (glibc on Linux); elsewhere the allocator is left alone."""
    global _pinned, _kept
    if _pinned is None:
        _pinned = False
        if can_pin_allocator():
            try:
                libc = ctypes.CDLL(None)
                _pinned = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
                if _pinned and _kept:
                    libc.mallopt(_M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                    _kept = False
                libc.malloc_trim(0)
            except (OSError, AttributeError):
                pass
    return _pinned


def keep_allocator() -> bool:
    """Let glibc's heaps hold freed tensors up to 1 GiB for the next forward (mmap threshold 1 GiB, trim threshold
    2 GiB): no page faults on memory a forward already used, at the cost of keeping it. True when in force (glibc on
    Linux, allocator not pinned by :func:`pin_allocator`, which takes precedence for the rest of the process)."""
    global _kept
    if not _kept and not _pinned and can_pin_allocator():
        try:
            libc = ctypes.CDLL(None)
            _kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, KEPT_MMAP_THRESHOLD)
                         and libc.mallopt(_M_TRIM_THRESHOLD, KEPT_TRIM_THRESHOLD))
        except (OSError, AttributeError):
            pass
    return _kept


def release_kept_memory() -> None:
    """Give the memory the heaps keep (:func:`keep_allocator`) back to the system (``malloc_trim``)."""
    if _kept:
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass


#: beyond the live tensors, with the allocator pinned: whole pages per mapped tensor and the heap's small blocks
ALLOCATOR_SLACK = 1.1
#: what the CPU runtime takes on a process's first forward besides tensors, with the allocator pinned: the code of
#: the kernels it pages in (13–17 MiB) and the start-up of its thread pool and kernels (up to ~11 MiB), measured
#: by bench/memory.py
CPU_RUNTIME_RESERVE = 32 * 2**20
#: the loose allowances of glibc's default allocator, whose heaps keep freed tensors: an upper bound of every
#: preset's first forward (bench/memory.py --allocator default), up to ~3× what it takes for the smallest
UNPINNED_ALLOCATOR_SLACK = 1.25
UNPINNED_CPU_RUNTIME_RESERVE = 160 * 2**20
#: with the heaps keeping freed memory (:func:`keep_allocator`) a first forward's heap grows past its live peak by
#: what it cannot reuse in place, which depends on the heap's history (Python's hash seed changes it): over the
#: runtime reserve, up to 1.80× the live peak (timesformer_hr; vjepa2_vitl_diving48 1.79×, mvit_v2_b 1.75×) in
#: three processes per preset (bench/memory.py --allocator kept --repeats 3), 1.15–1.80× for timesformer_hr
#: alone; later forwards grow by nothing
KEPT_ALLOCATOR_SLACK = 2.0
#: (allocator slack, runtime reserve) by what :func:`memory_plan` calls the allocator (None: a CUDA device)
ALLOWANCES = {"pinned": (ALLOCATOR_SLACK, CPU_RUNTIME_RESERVE),
              "default": (UNPINNED_ALLOCATOR_SLACK, UNPINNED_CPU_RUNTIME_RESERVE),
              "kept": (KEPT_ALLOCATOR_SLACK, UNPINNED_CPU_RUNTIME_RESERVE), None: (ALLOCATOR_SLACK, 0)}


def forward_memory(summary: Any, device: torch.device | str = "cpu", dtype_bytes: int = 4, *,
                   captured: Sequence[str] = (), allocator: str | None = "unpinned") -> dict[str, Any]:
    """The memory estimate: an upper bound of what a one-view forward of ``summary``'s config takes on ``device``
    with ``allocator`` — the one figure the run plan (:func:`memory_plan`), ``summary --json`` (``memory``), the
    command line's table and every page report as ``total_bytes``.

    ``total_bytes`` = weights + the forward's live-tensor peak (``summary.memory_estimate``, counted on the meta
    device) × the allocator's slack + kept attention + the CPU runtime's reserve (:data:`ALLOWANCES`).
    ``allocator="unpinned"`` is what a run far from the memory's limit gets on the CPU (``"kept"`` where glibc's
    heaps can be told to keep freed memory, else ``"default"``); a CUDA device has none (``None``). Nothing is
    allocated and the process's allocator is left as it is."""
    device = torch.device(device)
    if device.type != "cpu":
        allocator = None
    elif allocator == "unpinned":
        allocator = "kept" if can_pin_allocator() else "default"
    estimate = summary.memory_estimate(dtype_bytes, 1, captured=captured, explicit_attention=bool(captured))
    slack, reserve = ALLOWANCES[allocator]
    activations = int(estimate["activations"] * slack)
    return {"device": device.type, "dtype_bytes": dtype_bytes, "allocator": allocator,
            "weights_bytes": estimate["weights"], "live_tensor_peak_bytes": estimate["activations"],
            "allocator_slack": slack, "activations_bytes": activations, "attention_bytes": estimate["attention"],
            "runtime_reserve_bytes": reserve,
            "total_bytes": estimate["weights"] + estimate["attention"] + activations + reserve}


def memory_plan(summary: Any, device: torch.device | str, dtype_bytes: int = 4, *, captured: Sequence[str] = (),
                margin: float | None = None) -> dict[str, Any]:
    """The memory a one-view forward needs against what ``device`` has free, and the allocator it runs with.

    ``live_tensor_peak_bytes`` is the peak of the forward's live tensors with the kernels' workspaces
    (``summary.memory_estimate``, counted on the meta device). On the CPU, ``total_bytes`` (weights + live peak ×
    :data:`ALLOCATOR_SLACK` + kept attention + :data:`CPU_RUNTIME_RESERVE`) is what the forward takes with the
    allocator pinned (:func:`pin_allocator`): an upper bound within 1.5× of it (checked per preset by
    ``bench/memory.py``). ``loose_total_bytes`` bounds it with the heaps keeping freed memory
    (:func:`keep_allocator`: slack :data:`KEPT_ALLOCATOR_SLACK`, reserve :data:`UNPINNED_CPU_RUNTIME_RESERVE`), or
    with glibc's default allocator where that cannot be set (slack :data:`UNPINNED_ALLOCATOR_SLACK`). When the
    loose total × ``margin`` fits in the free memory, the run keeps freed memory for the next forward
    (``allocator`` "kept", or "default"); when only the tight one does, planning pins it (``allocator``
    "pinned"); when neither does, ``fits`` is false and ``refusal`` says so in words. Where the allocator cannot
    be pinned, the loose total is the estimate. On CUDA the total has no runtime reserve. Views run one after the
    other, so several need no more than one.
    """

    margin = MEMORY_MARGIN if margin is None else margin
    device = torch.device(device)
    free = available_memory(device)

    def bound(allocator: str | None) -> dict[str, Any]:
        return forward_memory(summary, device, dtype_bytes, captured=captured, allocator=allocator)

    loose = bound("unpinned")["total_bytes"]
    allocator = None
    if device.type == "cpu":
        near_limit = _pinned or (can_pin_allocator() and free is not None and loose * margin > free)
        if near_limit and _kept and not _pinned:  # what the heaps keep is not free to the system: give it back
            release_kept_memory()
            free = available_memory(device)
            near_limit = free is not None and loose * margin > free
        allocator = "pinned" if near_limit else "kept" if keep_allocator() else "default"
    estimate = bound(allocator)
    fits = free is None or estimate["total_bytes"] * margin <= free
    if fits and allocator == "pinned" and not pin_allocator():  # the pin failed: the default's bound decides
        allocator = "default"
        estimate = bound(allocator)
        fits = estimate["total_bytes"] * margin <= free
    total, activations, reserve = (estimate["total_bytes"], estimate["activations_bytes"],
                                   estimate["runtime_reserve_bytes"])
    out: dict[str, Any] = {**estimate, "allocator_pinned": allocator == "pinned" if allocator else None,
                           "loose_total_bytes": loose, "free_bytes": free, "margin": margin, "fits": fits,
                           "refusal": None}
    if not fits:
        out["refusal"] = (
            f"Refused before allocating anything: this run needs an estimated {human_bytes(total)} (weights "
            f"{human_bytes(estimate['weights_bytes'])}, activations {human_bytes(activations)}, kept attention "
            f"{human_bytes(estimate['attention_bytes'])}, runtime {human_bytes(reserve)}; × {margin:g} margin) but "
            f"{device} has {human_bytes(free)} free. Choose fewer frames, a smaller size or a smaller model.")
    return out
