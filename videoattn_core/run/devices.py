"""Where a run computes and in what: the device (``auto``, ``cpu``, ``cuda``) and the dtype (float32, bfloat16), and
whether the device computes bfloat16 in hardware."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..models.layers import cpu_bfloat16_native

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or ``None``): CUDA when available, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={device!r} is not allowed: device must be auto, cpu or cuda", field="device") \
            from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={device!r} is not allowed: device must be auto, cpu or cuda", field="device")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for but CUDA is not available here; use --device cpu or auto",
                          field="device")
    return dev


def default_device() -> str:
    """What ``device="auto"`` picks: ``"cuda"`` when this machine has a GPU, else ``"cpu"``."""
    return resolve_device("auto").type


def cuda_available() -> bool:
    return torch.cuda.is_available()


def native_bfloat16(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matmuls in hardware: a GPU that supports it, or a CPU with AMX or
    AVX-512 BF16 (oneDNN's own test). Elsewhere bfloat16 runs, emulated and slower than float32."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu_bfloat16_native()


def flush_denormals() -> bool:
    """Flush denormal floats to zero (the CPU's FTZ and DAZ modes) on this thread and on the threads it starts
    afterwards, PyTorch's intra-op workers among them when this comes before the thread's first parallel operation
    (the app's page scripts and the command line call it first). True where the CPU has the modes.

    Denormals are the float32 values below 1.2e-38, far below anything a model's outputs resolve; arithmetic on them
    takes the CPU ~100 cycles a value. Video Swin's shifted-window masks (−100 added to the logits, as the official
    code has them) make the softmax's exp land there for every masked pair: on one thread, swin3d_t's forward took
    0.90x and its relevance map 0.82x the time with the modes on, the logits the same."""
    return bool(torch.set_flush_denormal(True))


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r} is not allowed: dtype must be one of {', '.join(DTYPES)}", field="dtype")
    return DTYPES[dtype]


def bfloat16_support(device: str | torch.device) -> str:
    """Whether ``device`` computes bfloat16 in hardware, in words for users (a widget's help, a run's note)."""
    kind = torch.device(device).type
    if native_bfloat16(device):
        return f"this {kind} computes it in hardware, which is faster than float32"
    return (f"this {kind} has no bfloat16 arithmetic (a GPU, or a CPU with AMX or AVX-512 BF16, has): it is emulated, "
            f"and slower than float32")
