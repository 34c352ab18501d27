"""Denormals flushed to zero (videoattn_core.run.devices.flush_denormals): on the calling thread and on PyTorch's
intra-op workers started after it, as the command line and the app's scripts call it first. Each check runs in a
fresh process: the modes are a thread's state, and the test process's workers have started long before."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# exp(-100) is 3.7e-44, a float32 denormal; a million of them are computed on both intra-op threads
PROBE = """
import torch
torch.set_num_threads(2)
{setup}
values = torch.full((1 << 20,), -100.0).exp()
print(int(values.eq(0).sum()), int(values.numel()))
"""


def _zeros(setup: str) -> tuple[int, int]:
    run = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    zeros, total = map(int, run.stdout.splitlines()[-1].split())
    return zeros, total


def _flushes() -> bool:
    return platform.machine() in ("x86_64", "AMD64")


@pytest.mark.skipif(not _flushes(), reason="FTZ and DAZ are x86 modes")
def test_without_the_modes_exp_gives_denormals():
    zeros, total = _zeros("")
    assert zeros == 0  # PyTorch's default: every value a denormal, none flushed


@pytest.mark.skipif(not _flushes(), reason="FTZ and DAZ are x86 modes")
def test_flush_denormals_reaches_the_intra_op_workers_started_after_it():
    zeros, total = _zeros("from videoattn_core.run.devices import flush_denormals\nassert flush_denormals()")
    assert zeros == total


@pytest.mark.skipif(not _flushes(), reason="FTZ and DAZ are x86 modes")
def test_the_command_line_flushes_denormals_before_its_work():
    zeros, total = _zeros("from videoattn_core.cli.main import main\nassert main(['models']) == 0")
    assert zeros == total
