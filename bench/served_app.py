"""The app served by ``streamlit run`` on a free port of 127.0.0.1 for the benchmarks that drive it from outside
(``bench/app_response.py``, ``bench/server_memory.py``): without its background warm-up of summaries, with
``cache_dir`` as its disk cache of summaries, its output in ``log_path``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def serve(cache_dir: str, log_path: Path, timeout_s: float = 120) -> tuple[subprocess.Popen, str]:
    """Start the server; return it and its base URL once ``/_stcore/health`` answers (else exit with the log's
    path)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log_path, "wb") as log:  # a file, never a pipe nobody reads
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true",
                                 "--server.fileWatcherType", "none"],
                                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "VIDEOATTN_CACHE_DIR": cache_dir, "VIDEOATTN_PREWARM": "0",
                                     "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return proc, base
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"streamlit did not start; see {log_path}")
