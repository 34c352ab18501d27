"""The GPU path: the reference fixtures' logits through the run pipeline on CUDA, in float32 and bfloat16, on both
attention paths; shifted windows on a padded grid (the grouped path's index tables on the device); inspection,
capture, the compiled forward and the memory estimate on the device.

Marked ``gpu``: they need a CUDA device and are skipped, with that reason, on machines without one (CI has none).
``bash bench/gpu_check.sh`` runs them on a GPU machine with the GPU benchmarks. ``VIDEOATTN_TEST_DEVICE=cpu`` runs
the same checks on the CPU, which is how their own logic is checked where no GPU is lent.

Float32 runs with TF32 off (cuDNN convolutions use it by default), so that the device computes the fixtures' float32
network: relative logit error ≤ 1e-4, as on the CPU. Bfloat16 is held to :data:`BF16_TOLERANCE`; on the CPU, where
its matmuls and attention also accumulate in float32, the fixtures' bfloat16 logits are 0.5–1.3 % off
(``VIDEOATTN_TEST_DEVICE=cpu``, torch 2.13).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import videoattn_core as vac
from reference import Reference, relative_error
from videoattn_core.run.runtime import load_model, plan_run


def _test_device() -> torch.device | None:
    asked = os.environ.get("VIDEOATTN_TEST_DEVICE")
    if asked:
        return torch.device(asked)
    return torch.device("cuda") if torch.cuda.is_available() else None


DEVICE = _test_device()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    DEVICE is None, reason="no CUDA device here: the GPU checks run on a GPU machine (bash bench/gpu_check.sh), "
                           "or on the CPU with VIDEOATTN_TEST_DEVICE=cpu")]

#: fixture → (preset, overrides): every published implementation the CPU parity tests compare with
FIXTURES = {
    "timesformer_divided": ("timesformer_base", {}),
    "timesformer_joint": ("timesformer_base", {"attention_type": "joint_space_time"}),
    "timesformer_space_only": ("timesformer_base", {"attention_type": "space_only"}),
    "mvit_v1_b": ("mvit_v1_b", {}),
    "mvit_v2_s": ("mvit_v2_s", {}),
    "swin3d_t": ("swin3d_t", {}),
    "videomae_base": ("videomae_base", {}),
    "vivit_b": ("vivit_b", {}),
    "vjepa2_vitl": ("vjepa2_vitl", {}),
}
BF16_TOLERANCE = 0.04


@contextmanager
def _exact_float32():
    """TF32 off for matmuls and cuDNN convolutions while inside; the previous settings restored afterwards."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _checkpoint(ref: Reference, folder: Path) -> Path:
    """The fixture's weights as a user hands them over: a ``save_pretrained`` directory (with its config.json)
    for the Hugging Face layouts that come with one, else one ``.safetensors`` file."""
    save_file(ref.state_dict(), str(folder / "model.safetensors"))
    if "hf_config" not in ref.meta:
        return folder / "model.safetensors"
    (folder / "config.json").write_text(json.dumps(ref.meta["hf_config"]))
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Fixture name → its checkpoint on disk, written once per module."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = _checkpoint(Reference(name), tmp_path_factory.mktemp(name))
        return made[name]

    return get


def _run_model(fixture: str, path: Path, dtype: str, **overrides) -> torch.nn.Module:
    preset, implied = FIXTURES[fixture]
    plan = plan_run(preset, checkpoint=path, device=str(DEVICE), dtype=dtype, overrides={**implied, **overrides},
                    estimate=False)
    assert plan.device.type == DEVICE.type
    model = load_model(plan).model
    assert {p.device.type for p in model.parameters()} == {DEVICE.type}
    return model


@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_reference_logits_on_the_device_in_float32_on_both_attention_paths(fixture, checkpoints):
    ref = Reference(fixture)
    model = _run_model(fixture, checkpoints(fixture), "float32")
    assert sum(p.numel() for p in model.parameters()) == ref.params
    x = ref.input().to(DEVICE)
    with _exact_float32(), torch.no_grad():
        fused = model(x).cpu()
        vac.set_fused_attention(model, False)
        explicit = model(x).cpu()
    assert relative_error(fused, ref.logits) <= 1e-4
    assert relative_error(explicit, ref.logits) <= 1e-4


@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_reference_logits_on_the_device_in_bfloat16(fixture, checkpoints):
    ref = Reference(fixture)
    model = _run_model(fixture, checkpoints(fixture), "bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        logits = model(ref.input().to(DEVICE, torch.bfloat16))
    assert logits.dtype == torch.bfloat16
    assert relative_error(logits.float().cpu(), ref.logits) <= BF16_TOLERANCE


def test_shifted_windows_on_a_padded_grid_compute_on_the_device_what_they_compute_on_the_cpu(checkpoints):
    """swin3d_t at 256 px: a 64² token grid padded to 70² for 7² windows, where the grouped path gathers windows
    from the padded rows with index tables made for the device; the explicit path (dense masks) on the device
    and the CPU's fused path give the same logits."""
    path = checkpoints("swin3d_t")
    x = torch.randn(1, 3, 8, 256, 256, generator=torch.Generator().manual_seed(5))
    cpu_plan = plan_run("swin3d_t", checkpoint=path, device="cpu", overrides={"img_size": 256, "num_frames": 8},
                        estimate=False)
    with torch.no_grad():
        expected = load_model(cpu_plan).model(x)
    model = _run_model("swin3d_t", path, "float32", img_size=256, num_frames=8)
    with _exact_float32(), torch.no_grad():
        fused = model(x.to(DEVICE)).cpu()
        vac.set_fused_attention(model, False)
        explicit = model(x.to(DEVICE)).cpu()
    # float rounding only (the parity tolerance): a window or a mask gathered from the wrong rows is off by O(1)
    assert relative_error(fused, expected) <= 1e-4
    assert relative_error(explicit, expected) <= 1e-4


@pytest.mark.parametrize("fixture", ["swin3d_t", "mvit_v2_s", "timesformer_divided"])
def test_inspection_and_capture_on_the_device(fixture, checkpoints):
    """An inspection on the device: the plain forward's logits, per-layer times from the device's clock, the MACs
    the CPU's inspection counts, and captured probabilities equal to the CPU's for the same layer."""
    ref = Reference(fixture)
    path = checkpoints(fixture)
    preset, implied = FIXTURES[fixture]
    x = ref.input()
    cpu_model = load_model(plan_run(preset, checkpoint=path, device="cpu", overrides=implied, estimate=False)).model
    layer = vac.attention_layers(cpu_model)[1]
    expected = vac.inspect(cpu_model, x, [layer])
    model = _run_model(fixture, path, "float32")
    with _exact_float32():
        result = vac.inspect(model, x.to(DEVICE), [layer])
    assert relative_error(result.logits.cpu(), ref.logits) <= 1e-4
    assert (result.macs, result.measured_macs) == (expected.macs, expected.measured_macs)
    assert all(r.time_s is not None and r.time_s >= 0 for r in result.layers if r.calls)
    probs, expected_probs = result.attention[layer].probs, expected.attention[layer].probs
    assert probs.device.type == DEVICE.type and probs.shape == expected_probs.shape
    torch.testing.assert_close(probs.cpu(), expected_probs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("preset, config", [
    ("swin3d_t", dict(embed_dim=96, depths=(2, 2), num_heads=(3, 6), num_frames=8, img_size=64, num_classes=10)),
    ("mvit_v2_s", dict(embed_dim=32, depths=(1, 2), num_frames=8, img_size=64, num_classes=10)),
])
def test_compiled_forward_on_the_device_gives_the_eager_logits(preset, config):
    torch.manual_seed(0)
    eager = vac.build_model(preset, device=DEVICE, **config).eval()
    torch.manual_seed(0)
    compiled = vac.build_model(preset, device=DEVICE, compile=True, **config).eval()
    x = torch.randn(eager.config.input_shape(), device=DEVICE)
    with _exact_float32(), torch.no_grad():
        expected, got = eager(x), compiled(x)
    assert compiled.fallback_reason is None  # compiled, not an eager fallback
    assert relative_error(got.cpu(), expected.cpu()) <= 1e-4  # fused kernels round differently; a wrong graph: O(1)


@pytest.mark.skipif(DEVICE is None or DEVICE.type != "cuda", reason="the CUDA allocator's peak: CUDA only")
@pytest.mark.parametrize("preset", ["swin3d_t", "mvit_v2_s", "timesformer_base"])
def test_memory_estimate_bounds_the_device_peak_of_a_forward(preset):
    """What a run plans for its activations on CUDA bounds the allocator's peak over a forward (the second: the
    first also allocates cuBLAS's and cuDNN's workspaces once per process), within 1.5×."""
    from videoattn_core.cost.memory import memory_plan

    summary = vac.summarize(preset)
    plan = memory_plan(summary, DEVICE)
    model = vac.build_model(preset, device=DEVICE).eval()
    x = torch.randn(summary.config.input_shape(), device=DEVICE)
    with torch.no_grad():
        model(x)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = model(x)
        torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated() - before
    del out
    estimate = plan["activations_bytes"]
    assert measured <= estimate <= 1.5 * measured, (estimate, measured)
