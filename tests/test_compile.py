"""``torch.compile`` as an opt-in: the compiled forward gives the eager logits, captures and inspections still work,
and what can go wrong (no C++ compiler, a compilation that fails) ends in a typed error or a warned eager fallback,
never a traceback."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import videoattn_core as vac
from videoattn_core.cli.main import main
from videoattn_core.run.compiled import CompileFallbackWarning, CompiledModel
from videoattn_core.models.layers import AttentionCore
from videoattn_core.run.runtime import plan_run

from test_inspection import SMALL, _small, _small_id

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "assets" / "moving_square.mp4"
TINY = dict(embed_dim=32, depth=1, num_heads=2, num_frames=2, img_size=16, patch_size=8, num_classes=5)
TINY_SET = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]


def _pair(**compile_options):
    torch.manual_seed(0)
    eager = vac.build_model("timesformer_base", **TINY)
    x = torch.randn(eager.config.input_shape())
    return eager, CompiledModel(eager, **compile_options), x


def _failing_backend(gm, example_inputs):
    raise RuntimeError("this backend cannot compile anything")


@pytest.mark.slow
def test_compiled_forward_gives_the_eager_logits_and_inspects_through_the_eager_module():
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    eager = vac.build_model("timesformer_base", **TINY)
    torch.manual_seed(0)
    compiled = vac.build_model("timesformer_base", compile=True, **TINY)
    assert isinstance(compiled, CompiledModel) and compiled.config == eager.config
    x = torch.randn(eager.config.input_shape())
    graphs = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        expected, got = eager(x), compiled(x)
    assert compiled.fallback_reason is None  # really compiled, not an eager fallback
    assert counters["stats"]["unique_graphs"] > graphs
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

    # inspection and capture name the eager module's layers and run its forward (the sinks are seen)
    assert vac.attention_layers(compiled) == vac.attention_layers(eager)
    layer = vac.attention_layers(compiled)[0]
    result = vac.inspect(compiled, x, [layer])
    torch.testing.assert_close(result.logits, expected, rtol=1e-5, atol=1e-5)
    assert result.attention[layer].probs.shape[-1] == result.attention[layer].probs.shape[-2]
    assert result.measured_macs and result.layers[0].name == ""
    assert all(m.sink is None for m in compiled.modules() if isinstance(m, AttentionCore))
    # relevance's gradient sinks too: the same map as the eager model's, not the sinkless compiled graph's zeros
    maps = [torch.from_numpy(vac.explain(m, x, target=1).tokens) for m in (compiled, eager)]
    assert maps[0].sum() > 0
    torch.testing.assert_close(maps[0], maps[1], rtol=1e-5, atol=1e-9)
    with torch.no_grad():  # and the compiled forward is back in use, with the same numbers
        torch.testing.assert_close(compiled(x), expected, rtol=1e-5, atol=1e-5)
    assert compiled.fallback_reason is None


def test_without_a_cpp_compiler_compile_is_a_typed_error(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(vac.ConfigError, match="C\\+\\+ compiler"):
        vac.build_model("timesformer_base", compile=True, **TINY)
    code = main(["predict", "timesformer_base", "--clip", str(CLIP), "--device", "cpu", "--compile", *TINY_SET])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("error: --compile needs a C++ compiler")


def test_a_failed_compilation_falls_back_to_eager_with_one_warning():
    eager, compiled, x = _pair(backend=_failing_backend)
    with torch.no_grad():
        expected = eager(x)
        with pytest.warns(CompileFallbackWarning, match="torch.compile failed .*cannot compile anything"):
            got = compiled(x)
        assert torch.equal(got, expected)
        assert "cannot compile anything" in compiled.fallback_reason
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the fallback is for good: no second attempt, no second warning
            assert torch.equal(compiled(x), expected)


def test_an_input_error_under_compile_is_the_eager_error_and_no_fallback():
    _, compiled, x = _pair(backend=_failing_backend)
    with pytest.raises(ValueError) as compiled_error, torch.no_grad():
        compiled(x[:, :, :, :12])
    with pytest.raises(ValueError) as eager_error, torch.no_grad():
        compiled._orig_mod(x[:, :, :, :12])
    assert str(compiled_error.value) == str(eager_error.value)
    assert compiled.fallback_reason is None


def test_predict_command_reports_a_compile_fallback_in_one_line(monkeypatch, capsys):
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real(model, backend=_failing_backend))
    code = main(["predict", "timesformer_base", "--clip", str(CLIP), "--device", "cpu", "--compile", *TINY_SET])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    warned = [line for line in captured.err.splitlines() if "torch.compile failed" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: torch.compile failed"), captured.err
    assert "note: torch.compile failed" in captured.out
    # the plan says the run is compiled
    plan = plan_run("timesformer_base", None, overrides=TINY, device="cpu", compile=True, estimate=False)
    assert plan.compile and plan.to_dict()["compile"] is True


# --------------------------------------------------------------------------------- whole graphs
# A graph break splits a compiled forward into pieces that Inductor cannot fuse across (and on CUDA, pieces that one
# CUDA graph cannot hold); every family must trace as one graph, on a grid the windows pad, and again once a second
# batch size makes Dynamo trace the batch as a symbol. (Dynamo alone, backend="eager": Inductor is tested below.)

SWIN_PADDED = dict(embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=(2, 7, 7), img_size=80, num_frames=4,
                   num_classes=10)  # shifted windows on a 20 × 20 token grid, padded to 21 × 21


def _one_graph_at_batches(compiled, eager, rtol: float, atol: float) -> int:
    """``compiled`` gives ``eager``'s logits at batches 1, 2 and 3 with no graph break; the number of graphs."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    with torch.no_grad():
        for batch in (1, 2, 3):
            x = torch.randn(eager.config.input_shape(batch=batch))
            torch.testing.assert_close(compiled(x), eager(x), rtol=rtol, atol=atol)
    assert not counters["graph_break"], dict(counters["graph_break"])
    graphs = counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    return graphs


def test_window_tables_carry_the_mark_torch_compiler_sets():
    """The window index tables are marked constant as ``torch.compiler.assume_constant_result`` marks a function
    (the attribute set directly: calling it imports TorchDynamo at import time). Fails if PyTorch marks otherwise."""
    from videoattn_core.models.windows import CONSTANT_RESULT_MARK, grouped_windows, shifted_window_order

    def probe():
        return 0

    before = set(vars(probe))
    torch.compiler.assume_constant_result(probe)
    assert set(vars(probe)) - before == {CONSTANT_RESULT_MARK}
    assert getattr(probe, CONSTANT_RESULT_MARK) is True
    assert all(getattr(f, CONSTANT_RESULT_MARK, False) is True for f in (grouped_windows, shifted_window_order))


def test_importing_the_library_does_not_load_torchdynamo():
    """``import videoattn_core`` (every command, the app's start) leaves TorchDynamo unloaded: ~1 s of import."""
    import subprocess
    import sys

    code = "import sys, videoattn_core, videoattn_core.cli.main; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("case", SMALL, ids=[_small_id(c) for c in SMALL])
def test_every_family_traces_as_one_graph_at_any_batch(case):
    model, _ = _small(case)
    model.eval()
    graphs = _one_graph_at_batches(torch.compile(model, backend="eager"), model, rtol=1e-5, atol=1e-6)
    assert graphs <= 2  # one for batch 1, one with the batch symbolic


@pytest.mark.slow
@pytest.mark.parametrize("preset, overrides", [
    ("swin3d_t", SWIN_PADDED),
    ("mvit_v2_s", dict(embed_dim=16, depths=(1, 2), img_size=64, num_frames=4, num_classes=10)),  # CLS + rel-pos
])
def test_compiled_windows_and_pooling_give_the_eager_logits(preset, overrides):
    torch.manual_seed(0)
    eager = vac.build_model(preset, **overrides).eval()
    torch.manual_seed(0)
    compiled = vac.build_model(preset, compile=True, **overrides).eval()
    x = torch.randn(eager.config.input_shape(batch=2))
    torch._dynamo.reset()
    with torch.no_grad():
        expected, got = eager(x), compiled(x)
    assert compiled.fallback_reason is None
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_compiled_window_model_takes_any_batch_in_one_graph():
    """A second batch size makes Dynamo trace the batch as a symbol: the window tables must not depend on it (they
    did, and every block then broke the graph). Inductor this time."""
    torch.manual_seed(0)
    eager = vac.build_model("swin3d_t", **SWIN_PADDED).eval()
    compiled = CompiledModel(eager)
    _one_graph_at_batches(compiled, eager, rtol=1e-4, atol=1e-5)
    assert compiled.fallback_reason is None
