"""Every benchmark script starts: ``python bench/NAME.py --help`` exits 0 (a module moved or a name removed from
the library shows here, not on the day someone measures). The reference scripts need the reference environment's
packages (transformers, torchvision) and are left out where those are missing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from reference import ROOT

NEEDS = {"ref_huggingface.py": "transformers", "ref_torchvision.py": "torchvision"}
SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_")
                 and p.name != "served_app.py")  # served_app: a module the scripts import, not a script


def _help(name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / name), "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_every_bench_script_starts():
    names = [n for n in SCRIPTS if NEEDS.get(n) is None or importlib.util.find_spec(NEEDS[n]) is not None]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(names, pool.map(_help, names)))
    failed = {n: r.stderr.strip().splitlines()[-1:] for n, r in done.items() if r.returncode != 0}
    assert not failed, failed
    assert len(names) >= 12


@pytest.mark.parametrize("name", ["served_app.py"])
def test_the_bench_modules_import(name):
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "bench" / name)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
