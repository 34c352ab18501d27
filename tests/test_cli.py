"""The command line: output and error handling."""

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "videoattn_core", *args], capture_output=True, text=True,
                          timeout=300)


def test_models_lists_presets():
    result = run_cli("models")
    assert result.returncode == 0
    assert "timesformer_base" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
