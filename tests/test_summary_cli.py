"""``python -m videoattn_core summary``: the table, the JSON, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from videoattn_core.cli.main import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse ends usage errors (and --help) with SystemExit
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_table_has_layers_and_totals(capsys):
    code, out, err = run(capsys, "summary", "timesformer_base")
    assert code == 0 and err == ""
    assert "blocks.0" not in out  # names are shown indented by depth, last part only
    assert "temporal_attn" in out and "(B·H·W) T C" in out
    assert "params        121,566,352" in out
    assert "MACs          196,053,480,192 (196.05 G) per view" in out and "fvcore" in out
    assert "FLOPs         392,106,960,384 (392.11 G) per view" in out and "FlopCounterMode" in out
    assert "views         3" in out


def test_depth_limits_the_rows(capsys):
    code, out, _ = run(capsys, "summary", "timesformer_base", "--depth", "1")
    assert code == 0
    assert "patch_embed" in out and "qkv" not in out


def test_json_with_overrides(capsys):
    code, out, _ = run(capsys, "summary", "timesformer_base", "--set", "attention_type=joint_space_time",
                       "--frames", "8", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["params"] == 86_112_400
    assert data["macs"] / 1e9 == pytest.approx(179.71, rel=0.01)
    assert data["flops"] == 2 * data["macs"]
    assert data["input_shape"] == [1, 3, 8, 224, 224]
    assert data["config"]["attention_type"] == "joint_space_time"
    assert data["layers"][0]["name"] == "" and {"name", "type", "input_shape", "output_shape", "layout",
                                                "params", "macs", "category"} <= set(data["layers"][1])


def test_several_overrides_after_one_set(capsys):
    code, out, _ = run(capsys, "summary", "timesformer_base", "--set", "depth=2", "num_classes=10", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["config"]["depth"], data["config"]["num_classes"]) == (2, 10)


@pytest.mark.parametrize("args, message", [
    (["summary", "no_such_model"], "unknown model 'no_such_model'; available: "),
    (["summary", "timesformer_base", "--set", "depth=abc"], "depth must be an integer from 1 to 128"),
    (["summary", "timesformer_base", "--set", "colour=red"], "unknown hyperparameter 'colour'"),
    (["summary", "timesformer_base", "--set", "depth"], "--set expects FIELD=VALUE"),
    (["summary", "timesformer_base", "--set", "attention_type=diagonal"], "one of 'divided_space_time'"),
    (["summary", "timesformer_base", "--set", "num_heads=5"], "not divisible by num_heads=5"),
    (["summary", "timesformer_base", "--frames", "0"], "frames must be an integer from 1 to"),
    (["summary", "timesformer_base", "--frames", "many"], "argument --frames: invalid int value: 'many'"),
    (["summary", "timesformer_base", "--size", "100"], "multiple of 16"),
    (["summary"], "the following arguments are required: MODEL"),
    (["summarise", "timesformer_base"], "invalid choice: 'summarise'"),
])
def test_errors_are_one_line_with_status_2(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert "Traceback" not in err


def test_unknown_model_error_lists_presets(capsys):
    _, _, err = run(capsys, "summary", "nope")
    assert "timesformer_base" in err and "timesformer_l" in err


def test_module_entry_point():
    ok = subprocess.run([sys.executable, "-m", "videoattn_core", "summary", "timesformer_base", "--json"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["params"] == 121_566_352
    bad = subprocess.run([sys.executable, "-m", "videoattn_core", "summary", "timesformer_base", "--set", "x=1"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: unknown hyperparameter 'x'") and bad.stderr.count("\n") == 1


def test_one_memory_estimate_in_the_summary_the_plan_and_the_table(capsys):
    """``summary --json`` reports the run plan's memory estimate (an upper bound of a forward on the CPU in float32,
    the figure the Model page shows), not the weights and live tensors alone; the table says the same total."""
    import videoattn_core as vac
    from videoattn_core.units import human_bytes

    assert main(["summary", "mvit_v2_s", "--json"]) == 0
    memory = json.loads(capsys.readouterr().out)["memory"]
    plan = vac.runtime.plan_run("mvit_v2_s", device="cpu").memory
    assert memory["total_bytes"] == plan["total_bytes"] == plan["loose_total_bytes"]
    assert memory["total_bytes"] > memory["weights_bytes"] + memory["live_tensor_peak_bytes"]
    assert (memory["device"], memory["dtype_bytes"]) == ("cpu", 4)
    assert main(["summary", "mvit_v2_s"]) == 0
    assert f"memory        {human_bytes(plan['total_bytes'])} at most" in capsys.readouterr().out
