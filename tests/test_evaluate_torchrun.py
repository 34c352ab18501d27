"""``evaluate`` on two torchrun ranks (gloo, CPU) gives exactly the single process's rows and metrics, and an
interrupted run (Ctrl-C) leaves a valid file that a rerun completes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from videoattn_core.evaluation import results
from evaluation_data import MODEL, cli_sets, write_clips, write_mmaction


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    # one thread per process in both runs (torchrun's default), so that the forwards add up in the same order
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _strip_timing(rows):
    return [{k: v for k, v in r.items() if k not in results.TIMING} for r in rows]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torchrun")
    paths = write_clips(folder / "source")
    (folder / "clips").mkdir()
    (folder / "clips" / "broken.mp4").write_bytes(b"not a video at all")
    path = write_mmaction(folder, paths, [3, 7, 3, 11, 7, 3, 20, 11])
    with path.open("a") as handle:
        handle.write("clips/broken.mp4 5\n")
    return folder, path


@pytest.mark.slow  # three processes and a rendezvous: 13 s alone on 2 cores, more beside other work
def test_two_ranks_give_the_single_process_rows(dataset):
    folder, path = dataset
    args = ["evaluate", MODEL, "--data", str(path), "--views", "single", "--workers", "1", "--device", "cpu",
            "--json", *cli_sets(400)]
    single = subprocess.run([sys.executable, "-m", "videoattn_core", *args, "--out", str(folder / "single.jsonl")],
                            capture_output=True, text=True, timeout=300, env=_env())
    assert single.returncode == 0, single.stderr
    out = folder / "ranks.jsonl"
    ranks = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                            "-m", "videoattn_core", *args, "--out", str(out)],
                           capture_output=True, text=True, timeout=300, env=_env())
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    assert not list(folder.glob("ranks.jsonl.rank*"))  # rank 0 merged the shards and removed them
    (h1, r1), (h2, r2) = results.read_results(folder / "single.jsonl"), results.read_results(out)
    assert h1 == h2 and _strip_timing(r1) == _strip_timing(r2)
    assert r2[-1]["error"] and r2[-1]["path"].endswith("broken.mp4")
    one, two = json.loads(single.stdout), json.loads(ranks.stdout)  # only rank 0 reports
    one["metrics"].pop("timing"), two["metrics"].pop("timing")
    assert one["metrics"] == two["metrics"]
    assert two["throughput"]["clips"] == 9

    # stopped after four clips, mid-line: two ranks resume it to the same rows, classifying only the rest
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:5]) + lines[5][:30])
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                              "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                              "-m", "videoattn_core", *args, "--out", str(out)],
                             capture_output=True, text=True, timeout=300, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["throughput"]["clips"] == 5
    assert _strip_timing(results.read_results(out)[1]) == _strip_timing(r1)


def test_ctrl_c_leaves_a_valid_file_that_a_rerun_completes(dataset):
    folder, path = dataset
    out = folder / "interrupted.jsonl"
    args = [sys.executable, "-m", "videoattn_core", "evaluate", MODEL, "--data", str(path), "--views", "protocol",
            "--workers", "0", "--device", "cpu", "--out", str(out), *cli_sets(400)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "run the same command again to resume" in err and "Traceback" not in err
    header, rows = results.read_results(out)
    assert 2 <= len(rows) < 9
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr
    _, rows = results.read_results(out)
    assert len(rows) == 9 and [r["path"] for r in rows][:len(rows) - 1] == [
        str(folder / "clips" / f"c {n}.mp4") for n in range(8)]
