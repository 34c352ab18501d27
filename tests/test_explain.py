"""Explanations: the sanity checks of issue 12 (target sensitivity, Adebayo et al.'s model randomisation, a
constructed model whose logit depends on one tube), relevance against hand-checkable values and against the dense
matrix product of Chefer et al.'s rule, and the errors where a method does not apply."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import videoattn_core as vac
from videoattn_core.attention.explanations import explain
from videoattn_core.attention.gradcam import gradcam_layers
from videoattn_core.models.layers import AttentionCore, AttentionLayout

T, S, P = 4, 24, 8  # frames, pixels, patch: a 4×3×3 token grid
H = W = S // P


def _timesformer(attention_type="divided_space_time", **overrides):
    torch.manual_seed(0)
    return vac.build_model("timesformer_base", embed_dim=32, depth=2, num_heads=2, num_frames=T, img_size=S,
                           patch_size=P, num_classes=5, attention_type=attention_type, **overrides).eval()


def _clip(seed=1):
    return torch.randn(1, 3, T, S, S, generator=torch.Generator().manual_seed(seed))


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = (np.argsort(np.argsort(v.ravel())) for v in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.mark.parametrize("method", ["relevance", "gradcam"])
@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time"])
def test_two_targets_give_different_maps(method, attention_type):
    model, x = _timesformer(attention_type), _clip()
    first, second = (explain(model, x, target=c, method=method) for c in (0, 1))
    assert (first.target, second.target) == (0, 1)
    assert first.tokens.shape == (T, H, W) and first.frames.shape == (T, S, S)
    assert _rank_correlation(first.tokens, second.tokens) < 0.8  # an explanation that ignores the target or the classifier gives 1


@pytest.mark.parametrize("method", ["relevance", "gradcam"])
def test_randomising_the_classifier_changes_the_map(method):
    """Adebayo et al. (NeurIPS 2018), model-parameter randomisation of the top layer: a map that survives a
    re-drawn classifier does not explain the classifier."""
    model, x = _timesformer(), _clip()
    trained = explain(model, x, target=0, method=method).tokens
    randomised = copy.deepcopy(model)
    torch.manual_seed(1)
    nn.init.normal_(randomised.head.weight, std=0.02)
    nn.init.zeros_(randomised.head.bias)
    assert _rank_correlation(trained, explain(randomised, x, target=0, method=method).tokens) < 0.8  # an explanation that ignores the target or the classifier gives 1


def test_default_target_is_the_top_class_and_bad_targets_are_refused():
    model, x = _timesformer(), _clip()
    with torch.no_grad():
        top = int(model(x).argmax())
    assert explain(model, x).target == top
    with pytest.raises(vac.ConfigError, match="from 0 to 4"):
        explain(model, x, target=5)
    with pytest.raises(vac.ConfigError, match="relevance, rollout, gradcam"):
        explain(model, x, method="saliency")


class TubeModel(nn.Module):
    """A constructed transformer: 2×2-pixel patches of one frame each (a 2×3×3 grid of a 2×6×6 clip), a CLS
    token, ``depth`` joint attention layers whose values are zero outside one tube (the cells at ``tube`` in every
    frame), logit = u · CLS. So the logit depends on the tube's pixels only, and the attention's gradient is
    ∂logit/∂A[·, k] = u · v_k, zero for every key outside the tube."""

    grid = (2, 3, 3)

    def __init__(self, depth: int, tube: tuple[int, int], uniform: bool = False):
        super().__init__()
        t, h, w = self.grid
        mask = torch.zeros(t, h, w)
        mask[:, tube[0], tube[1]] = 1.0
        self.register_buffer("mask", torch.cat((torch.ones(1), mask.flatten()))[:, None])  # CLS, then (t h w)
        self.u = torch.tensor([1.0, 2.0, -1.0, 0.5])
        self.cls = nn.Parameter(torch.tensor([[0.3, -0.2, 0.1, 0.4]]))
        self.uniform = uniform  # q = 0: every attention row is uniform, so A = 1/(1 + N) exactly
        self.layers = nn.ModuleList(AttentionCore("joint", 0.5) for _ in range(depth))
        self.layout = AttentionLayout("joint", self.grid, "b", "(t h w)", cls=True)

    def embed(self, x):  # (1, 3, 2, 6, 6) → (1 + 18, 4): pixel sums and fixed features per patch
        patches = x[0].unfold(2, 2, 2).unfold(3, 2, 2).sum(dim=(-1, -2))  # (3, T, H, W)
        s = patches.abs().sum(0).flatten()[:, None]  # (N, 1) positive patch strength, ordered (t h w)
        return torch.cat((self.cls, s * torch.tensor([[1.0, 0.5, -0.25, 1.5]])), dim=0)

    def values(self, tokens):  # v_k = mask_k · (|tokens_k|·1) · u: u · v_k = mask_k · Σ|tokens_k| · |u|² ≥ 0
        return self.mask * tokens.abs().sum(-1, keepdim=True) * self.u

    def forward(self, x):
        tokens = self.embed(x)
        for core in self.layers:
            q = torch.zeros_like(tokens) if self.uniform else tokens
            out = core(q[None, None], tokens[None, None], self.values(tokens)[None, None], None, self.layout)
            tokens = tokens + out[0, 0]
        return (tokens[0] @ self.u)[None, None]  # (1, 1) logit


def _tube_clip():
    return torch.rand(1, 3, 2, 6, 6, generator=torch.Generator().manual_seed(3)) + 0.1


def test_relevance_of_one_uniform_layer_by_hand():
    """One layer, A = 1/19 everywhere: relevance of patch k = A · (u · v_k) = mask_k · Σ|tokens_k| · |u|² / 19."""
    model, x = TubeModel(depth=1, tube=(1, 2), uniform=True), _tube_clip()
    result = explain(model, x, method="relevance")
    tokens = model.embed(x)[1:]
    expected = (model.mask[1:, 0] * tokens.abs().sum(-1) * float(model.u @ model.u) / 19).detach()
    np.testing.assert_allclose(result.tokens.ravel(), expected.numpy(), rtol=1e-5)
    assert np.count_nonzero(result.tokens) == 2  # the tube's cell in both frames


def test_relevance_lands_on_the_tube_the_logit_depends_on():
    model, x = TubeModel(depth=2, tube=(2, 0)), _tube_clip()
    result = explain(model, x, method="relevance")
    inside = np.zeros(model.grid, dtype=bool)
    inside[:, 2, 0] = True
    assert (result.tokens[inside] > 0).all() and (result.tokens[~inside] == 0).all()
    # on the frames: the tube's 2×2 pixels at rows 4-5, columns 0-1 in both frames carry the largest values
    for frame in result.frames:
        assert np.unravel_index(frame.argmax(), frame.shape)[0] >= 3
        assert np.unravel_index(frame.argmax(), frame.shape)[1] <= 2


def _probabilities_and_gradients(model, x, target: int) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]:
    """Every attention's probabilities in call order, kept in the graph, and their gradients of the target logit."""
    probs: list[torch.Tensor] = []
    cores = [m for m in model.modules() if isinstance(m, AttentionCore)]
    for core in cores:
        core.sink, core.capture_graph = (lambda c: probs.append(c.probs)), True
    try:
        logit = model(x)[0, target]
    finally:
        for core in cores:
            core.sink, core.capture_graph = None, False
    return probs, torch.autograd.grad(logit, probs)


def _dense_divided_relevance(model, x, target):
    """Chefer et al.'s rule with dense (1 + T·H·W)² matrices, tokens ordered CLS, then (t h w); the divided
    layout written from TimeSformer's own rearranges: temporal groups are the H·W positions (tokens: the T
    frames), spatial groups the T frames (tokens: CLS, then the frame's H·W patches; the CLS output is the mean
    of its T copies)."""
    probs, grads = _probabilities_and_gradients(model, x, target)
    n = 1 + T * H * W
    R = torch.eye(n, dtype=torch.float64)
    for p, g in zip(probs, grads):
        rel = (g * p.detach()).clamp(min=0).mean(dim=1).double()  # (G, Nq, Nk)
        A = torch.zeros(n, n, dtype=torch.float64)
        if p.shape[-1] == T:  # temporal: group = position y·W + x, token = frame
            for pos in range(H * W):
                idx = 1 + torch.arange(T) * H * W + pos
                A[idx[:, None], idx[None, :]] += rel[pos]
        else:  # spatial: group = frame
            for t in range(T):
                idx = torch.cat((torch.zeros(1, dtype=torch.long), 1 + t * H * W + torch.arange(H * W)))
                A[idx[1:, None], idx[None, :]] += rel[t, 1:]
                A[0, idx] += rel[t, 0] / T
        R = R + A @ R
    return R[0, 1:].reshape(T, H, W).numpy()


def test_divided_relevance_equals_the_dense_product():
    model, x = _timesformer(), _clip()
    expected = _dense_divided_relevance(model, x, target=3)
    np.testing.assert_allclose(explain(model, x, target=3).tokens, expected, rtol=1e-4, atol=1e-9)


def test_rollout_through_explain_and_why_not():
    model, x = _timesformer(), _clip()
    result = explain(model, x, method="rollout")
    np.testing.assert_allclose(result.tokens.sum(), 1.0, rtol=1e-5)
    swin = vac.build_model("swin3d_t", depths=(1, 1, 1, 1), window_size=(4, 3, 3), num_frames=8, img_size=32)
    with pytest.raises(ValueError, match="windowed and pooled attention"):
        explain(swin, torch.randn(1, 3, 8, 32, 32), method="rollout")


@pytest.mark.parametrize("preset, overrides, shape, grid", [
    ("swin3d_t", dict(depths=(1, 1, 1, 1), window_size=(4, 3, 3), num_frames=8, img_size=32), (8, 32, 32),
     (4, 8, 8)),
    ("mvit_v2_s", dict(depths=(1, 1, 1, 1), img_size=64, num_frames=4), (4, 64, 64), (2, 16, 16)),
    ("videomae_base", dict(embed_dim=32, depth=2, num_heads=2, num_frames=4, img_size=32, num_classes=5),
     (4, 32, 32), (2, 2, 2)),
])
def test_relevance_on_windows_pooling_and_mean_readout(preset, overrides, shape, grid):
    torch.manual_seed(0)
    model = vac.build_model(preset, **overrides).eval()
    result = explain(model, torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(2)), target=1)
    assert result.tokens.shape == grid and result.frames.shape == shape
    assert (result.tokens >= 0).all() and result.tokens.sum() > 0


@pytest.mark.parametrize("preset, overrides, shape", [
    ("mvit_v2_s", dict(depths=(1, 1, 1, 1), img_size=64, num_frames=4), (4, 64, 64)),  # a factored bias in bf16
    ("swin3d_t", dict(depths=(1, 1, 1, 1), window_size=(4, 3, 3), num_frames=8, img_size=32), (8, 32, 32)),
])
def test_relevance_in_bfloat16_follows_float32s(preset, overrides, shape):
    """The app offers bfloat16 on the CPU: relevance runs in it (MViTv2's relative positions factored in half
    precision, Swin's grouped windows), and its map is float32's to bfloat16's rounding."""
    torch.manual_seed(0)
    model = vac.build_model(preset, **overrides).eval()
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(2))
    full = explain(model, x, target=1)
    half = explain(model.to(torch.bfloat16), x.to(torch.bfloat16), target=1)
    assert half.tokens.shape == full.tokens.shape and np.isfinite(half.tokens).all()
    assert np.corrcoef(half.tokens.ravel(), full.tokens.ravel())[0, 1] > 0.99


def test_gradcam_on_fiery_and_relevance_refused_there():
    torch.manual_seed(0)
    model = vac.build_model("fiery_temporal", in_channels=12, start_out_channels=16, input_hw=(6, 8))
    x = torch.randn(1, model.config.receptive_field + 1, 12, 6, 8)
    result = explain(model, x, method="gradcam", target=2)
    assert result.layer == gradcam_layers(model)[-1] and result.tokens.shape == (x.shape[1], 6, 8)
    assert result.logits is None and result.tokens.max() > 0
    with pytest.raises(ValueError, match="convolutional"):
        explain(model, x, method="relevance")
    with pytest.raises(vac.ConfigError, match="model.0"):
        explain(model, x, method="gradcam", layer="head")


def _factorized_encoder(classifier=None):
    torch.manual_seed(0)
    model = vac.build_model("vivit_b", embed_dim=32, depth=2, temporal_depth=2, num_heads=4, mlp_dim=48,
                            num_frames=8, img_size=48, num_classes=7, attention_type="factorized_encoder",
                            classifier=classifier).eval()
    with torch.no_grad():  # larger weights than the initialisation's, so the attention is far from uniform
        for p in model.parameters():
            p.normal_(std=0.3)
    return model, torch.randn(1, 3, 8, 48, 48, generator=torch.Generator().manual_seed(4))


def _dense_factorized_encoder_relevance(model, x, target):
    """Chefer et al.'s rule with dense matrices for ViViT model 2, written from Scenic's model: the spatial
    encoder's tokens are, per frame t, [CLS_t, then its H'·W' patches] (no CLS with 'gap'), the temporal
    encoder's [CLS, then the T' frame tokens]; frame token t is what the spatial ``pool`` reads from frame t (its
    CLS, or the mean of its tokens). Row = readout · R_temporal · hand-over · R_spatial, restricted to the
    patches."""
    probs, grads = _probabilities_and_gradients(model, x, target)
    t, h, w = model.config.grid
    token = model.config.pooling == "token"
    n_s, n_t = t * (token + h * w), token + t  # spatial tokens: group-major [CLS_t?, patches of t]
    R_s, R_t = torch.eye(n_s, dtype=torch.float64), torch.eye(n_t, dtype=torch.float64)
    for p, g in zip(probs, grads):
        rel = (g * p.detach()).clamp(min=0).mean(dim=1).double()  # (G, Nq, Nk)
        if rel.shape[0] == t:  # one spatial group per frame
            A = torch.block_diag(*rel)
            R_s = R_s + A @ R_s
        else:
            R_t = R_t + rel[0] @ R_t
    readout = torch.zeros(n_t, dtype=torch.float64)
    if token:
        readout[0] = 1.0
    else:
        readout[:] = 1.0 / t
    handover = torch.zeros(n_t, n_s, dtype=torch.float64)
    per_frame = token + h * w
    for f in range(t):
        if token:
            handover[1 + f, f * per_frame] = 1.0
        else:
            handover[f, f * per_frame:(f + 1) * per_frame] = 1.0 / (h * w)
    row = readout @ R_t @ handover @ R_s
    return row.reshape(t, per_frame)[:, token:].reshape(t, h, w).numpy()


@pytest.mark.parametrize("classifier", [None, "gap"])
def test_factorized_encoder_relevance_equals_the_dense_product(classifier):
    model, x = _factorized_encoder(classifier)
    expected = _dense_factorized_encoder_relevance(model, x, target=2)
    result = explain(model, x, target=2, method="relevance")
    assert result.tokens.shape == model.config.grid and result.frames.shape == (8, 48, 48)
    per_frame = expected.sum(axis=(1, 2))
    # the map varies in space and in time, so a hand-over that ignored the frame tokens' relevance would show
    assert expected.std(axis=(1, 2)).min() > 0 and np.ptp(per_frame) > 1e-3 * per_frame.max()
    np.testing.assert_allclose(result.tokens, expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_capture_keeps_the_forward_numbers():
    model, x = _timesformer(), _clip()
    with torch.no_grad():
        plain = model(x)
    explained = explain(model, x, target=0)
    np.testing.assert_allclose(explained.logits, plain[0].numpy(), rtol=1e-5, atol=1e-6)


# --- head statistics ---------------------------------------------------------------------------------------

def test_head_statistics_of_uniform_attention_by_hand():
    """Uniform attention over CLS + a 2×3×3 grid of 2-pixel, 1-frame tokens: entropy log 19, 1/19 to CLS, and
    the mean distances of all ordered pairs of patch cells (the ViT paper's definition)."""
    from itertools import product

    from videoattn_core.attention.head_stats import head_statistics

    stats = head_statistics(TubeModel(depth=1, tube=(0, 0), uniform=True), _tube_clip())
    cells = list(product(range(2), range(3), range(3)))
    space = np.mean([2 * np.hypot(a[1] - b[1], a[2] - b[2]) for a in cells for b in cells])
    time = np.mean([abs(a[0] - b[0]) for a in cells for b in cells])
    np.testing.assert_allclose(stats.entropy, [[np.log(19)]], rtol=1e-5)
    np.testing.assert_allclose(stats.to_cls, [[1 / 19]], rtol=1e-5)
    np.testing.assert_allclose(stats.space_px, [[space]], rtol=1e-5)
    np.testing.assert_allclose(stats.time_frames, [[time]], rtol=1e-5)


def test_head_statistics_of_divided_attention_and_the_figure():
    from videoattn_core import figures
    from videoattn_core.attention.head_stats import head_statistics

    stats = head_statistics(_timesformer(), _clip())
    assert stats.layers == ["blocks.0.temporal_attn", "blocks.0.attn", "blocks.1.temporal_attn", "blocks.1.attn"]
    time_layers = np.array([kind == "time" for kind in stats.kinds])
    assert (stats.space_px[time_layers] == 0).all() and (stats.space_px[~time_layers] > P / 2).all()
    assert (stats.time_frames[~time_layers] == 0).all() and (stats.time_frames[time_layers] > 0.5).all()
    assert np.isnan(stats.to_cls[time_layers]).all() and (stats.to_cls[~time_layers] > 0).all()
    fig = figures.head_statistics(stats.layers, {k: getattr(stats, k) for k in figures.HEAD_STATISTICS})
    assert len(fig.data) == 4 * 2  # four panels × two heads
    assert [a.text for a in fig.layout.annotations] == list(figures.HEAD_STATISTICS.values())


def test_explanation_animation_has_one_frame_per_clip_frame():
    from videoattn_core import figures

    model, x = _timesformer(), _clip()
    result = explain(model, x)
    images = np.zeros((T, S, S, 3), dtype=np.uint8)
    fig = figures.explanation_animation(images, result.frames)
    assert len(fig.frames) == T and [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ play", "❚❚ pause"]
    np.testing.assert_allclose(fig.frames[2].data[1].z, result.frames[2])


# --- command line ------------------------------------------------------------------------------------------

CLIP = "assets/rotating_bar.mp4"
SMALL_SETS = ["--set", "num_frames=4", "--set", "img_size=32", "--set", "patch_size=16", "--set", "embed_dim=32",
              "--set", "depth=1", "--set", "num_heads=2"]


def _cli(*args):
    from videoattn_core.cli.main import main

    return main(["explain", "timesformer_base", "--clip", CLIP, *SMALL_SETS, *args])


def _decoded_frames(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_cli_mp4_and_gif_decode_to_the_clips_sampled_frames(tmp_path, capsys):
    assert _cli("--target", "3", "--out", str(tmp_path / "e.json")) == 0
    summary = __import__("json").loads((tmp_path / "e.json").read_text())
    assert summary["target"] == 3 and summary["method"] == "relevance" and summary["random_init"]
    assert len(summary["frame_indices"]) == 4 and np.asarray(summary["tokens"]).shape == (4, 2, 2)
    for suffix in ("mp4", "gif"):
        assert _cli("--target", "3", "--out", str(tmp_path / f"e.{suffix}")) == 0
        decoded = _decoded_frames(tmp_path / f"e.{suffix}")
        # the 32 px frames enlarged 14 times to 448 px, the colour bar on their right
        assert len(decoded) == len(summary["frame_indices"]) and decoded[0].shape == (448, 448 + 128, 3)
    import av

    with av.open(str(tmp_path / "e.mp4")) as container:  # the range the colour bar states, in the metadata
        comment = container.metadata["comment"]
    assert comment.startswith("relevance: ") and "(dark) to" in comment
    assert "randomly initialised" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert _cli("--out", str(tmp_path / "e.png")) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {str(tmp_path / 'e.png')!r}: the file must end in " \
                                               ".mp4, .gif, .json"
    assert _cli("--target", "999", "--out", str(tmp_path / "e.json")) == 2
    assert "target must be a class index from 0 to 399" in capsys.readouterr().err
    assert _cli("--method", "gradcam", "--layer", "nope", "--out", str(tmp_path / "e.json")) == 2
    assert "layer='nope' is not a layer Grad-CAM can use; choose one of blocks.0" in capsys.readouterr().err


def test_overlay_keeps_the_frames_where_the_map_is_zero():
    from videoattn_core.figures.overlay import overlay_frames

    frames = np.full((2, 4, 4, 3), 200, dtype=np.uint8)
    heat = np.zeros((2, 4, 4))
    heat[1, 2, 3] = 5.0
    out = overlay_frames(frames, heat, opacity=0.5)
    np.testing.assert_array_equal(out[0, 0, 0], [100, 100, 102])  # half frame, half the ramp's darkest colour
    np.testing.assert_array_equal(out[1, 2, 3], [226, 228, 182])  # half frame, half the brightest


def _eight_joint_layers():
    """A deep enough model for memory tests, its clip, and the bytes of all its layers' attention probabilities."""
    from videoattn_core.attention.capture import capturing

    torch.manual_seed(0)
    model = vac.build_model("timesformer_base", depth=8, img_size=64, patch_size=8, num_frames=8, embed_dim=48,
                            num_heads=4, num_classes=5, attention_type="joint_space_time").eval()
    x = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    with capturing(model) as records, torch.no_grad():
        model(x)
    all_probs = sum(c.probs.numel() * c.probs.element_size() for _, c in records)
    return model, x, all_probs


@pytest.mark.parametrize("method, recompute", [("relevance", False), ("relevance", True), ("gradcam", False)])
def test_explanations_do_not_hold_every_layers_attention_until_the_backward(method, recompute):
    """What autograd holds for the backward at any one time (seen by saved-tensor hooks around the explanation,
    counted until released) stays well below all layers' attention probabilities together, which a plain backward
    holds at once (the map is the dense product's, tests above). Relevance runs the fused kernel and recomputes the
    probabilities in its backward pass a block of rows at a time; with ``recompute`` a checkpointed block keeps
    only its input, and its own graph lives while the backward goes through it. Grad-CAM starts the graph at its
    layer's output and captures only that layer's attention."""
    model, x, all_probs = _eight_joint_layers()
    import weakref

    class Saved:  # what autograd holds for the backward, counted while it holds it
        __slots__ = ("tensor", "__weakref__")

    held = {"now": 0, "peak": 0}

    def release(n):
        held["now"] -= n

    def pack(t):
        box, n = Saved(), t.numel() * t.element_size()
        box.tensor = t
        held["now"] += n
        held["peak"] = max(held["peak"], held["now"])
        weakref.finalize(box, release, n)
        return box

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda box: box.tensor):
        explain(model, x, target=1, method=method, recompute=recompute)
    # a tensor saved twice (softmax output, matrix product operand) counts twice: one block holds ~2.5 maps
    assert 0 < held["peak"] < 0.5 * all_probs, (held, all_probs)


def test_relevance_recomputing_the_blocks_gives_the_same_map():
    model, x = _timesformer(), _clip()
    np.testing.assert_allclose(explain(model, x, target=3).tokens,
                               explain(model, x, target=3, recompute=True).tokens, rtol=1e-5, atol=1e-9)


def test_gradcam_equals_the_published_rule_on_a_plain_forward():
    """Grad-CAM (Selvaraju et al.) computed here from a plain forward and backward of the model (fused attention,
    the layer's output kept with ``retain_grad``): weights = the gradient averaged over the token positions,
    map = ReLU(Σ_c weights_c · activations_c) on the (T, H, W) patch grid, the CLS token left out. The core runs
    the same backward from the score to the layer only, with the layer's own attention captured."""
    model, x = _timesformer("joint_space_time"), _clip()
    layer = "blocks.0"
    kept = []
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: kept.append(o))
    with torch.enable_grad():
        out = model(x)
        kept[0].retain_grad()
        out[0, 2].backward()
    handle.remove()
    acts, grads = kept[0][0, 1:].detach(), kept[0].grad[0, 1:]  # (T·H·W, C)
    weights = grads.mean(dim=0)
    # TimeSformer's token order is (h w t): the official code's rearrange "(b t) n m -> b (n t) m"
    expected = torch.relu(acts @ weights).reshape(S // P, S // P, T).permute(2, 0, 1).numpy()
    result = explain(model, x, method="gradcam", target=2, layer=layer)
    np.testing.assert_allclose(result.tokens, expected, rtol=1e-5, atol=1e-7)


def test_rollout_keeps_head_means_not_every_layers_probabilities():
    """Rollout reduces each layer's attention to its mean over heads as it arrives, and the forward that gives the
    logits captures nothing (fused attention): the tensors alive at once stay below half of all layers'
    probabilities together (counted by the dispatcher, as the memory estimate counts them)."""
    from videoattn_core.cost.memory import LiveBytes

    model, x, all_probs = _eight_joint_layers()
    tracker = LiveBytes([*model.parameters(), *model.buffers(), x])
    with tracker:
        explain(model, x, method="rollout")
    assert tracker.peak < 0.5 * all_probs, (tracker.peak, all_probs)


def test_cli_recompute_writes_the_same_map(tmp_path):
    import json

    assert _cli("--target", "3", "--out", str(tmp_path / "a.json")) == 0
    assert _cli("--target", "3", "--recompute", "--out", str(tmp_path / "b.json")) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    np.testing.assert_allclose(a["tokens"], b["tokens"], rtol=1e-5, atol=1e-9)
