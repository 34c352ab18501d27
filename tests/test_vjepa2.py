"""V-JEPA 2: parity with the Hugging Face port, its key layout, 3D RoPE, the attentive pooler's cross-attention."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import videoattn_core as vac
from reference import Reference, assert_both_paths_match, relative_error
from videoattn_core.attention import maps as attention_maps
from videoattn_core.cost import flops
from videoattn_core.models import vjepa2

SMALL = dict(embed_dim=48, depth=2, num_heads=3, num_frames=4, img_size=32, patch_size=8, num_classes=7,
             pooler_depth=1, predictor_depth=1, predictor_embed_dim=24, predictor_num_heads=2)


def _small(**overrides):
    torch.manual_seed(0)
    return vac.build_model("vjepa2_vitl", **{**SMALL, **overrides})


def _to_huggingface(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under the Hugging Face port's on-disk names (q, k, v split again), written from the
    names in the fixture's keys.json, independently of the loader's rules."""
    out = {}
    for name, value in model.state_dict().items():
        parts = name.split(".")
        if name.startswith("blocks.") or name.startswith("predictor.predictor_blocks."):
            encoder = name.startswith("blocks.")
            i, tail = (parts[1], parts[2:]) if encoder else (parts[2], parts[3:])
            root = "vjepa2.encoder.layer" if encoder else "vjepa2.predictor.layer"
            if tail[0] == "attn" and tail[1] == "qkv":
                for piece, part in zip(value.chunk(3), ("query", "key", "value")):
                    out[f"{root}.{i}.attention.{part}.{tail[2]}"] = piece
            elif tail[0] == "attn":
                out[f"{root}.{i}.attention.proj.{tail[2]}"] = value
            else:
                out[f"{root}.{i}.{'.'.join(tail)}"] = value
        elif name.startswith("pooler.blocks."):
            i, rest = parts[2], parts[3:]
            if rest[:2] == ["attn", "qkv"]:
                for piece, part in zip(value.chunk(3), ("q_proj", "k_proj", "v_proj")):
                    out[f"pooler.self_attention_layers.{i}.self_attn.{part}.{rest[2]}"] = piece
            elif rest[:2] == ["attn", "proj"]:
                out[f"pooler.self_attention_layers.{i}.self_attn.out_proj.{rest[2]}"] = value
            else:
                rest[0] = {"norm1": "layer_norm1", "norm2": "layer_norm2"}.get(rest[0], rest[0])
                out[f"pooler.self_attention_layers.{i}.{'.'.join(rest)}"] = value
        elif name.startswith("pooler.cross_attention_block."):
            rest = parts[2:]
            base = "pooler.cross_attention_layer"
            if rest[:2] == ["xattn", "kv"]:
                k, v = value.chunk(2)
                out[f"{base}.cross_attn.k_proj.{rest[2]}"], out[f"{base}.cross_attn.v_proj.{rest[2]}"] = k, v
            elif rest[:2] == ["xattn", "q"]:
                out[f"{base}.cross_attn.q_proj.{rest[2]}"] = value
            else:
                rest[0] = {"norm1": "layer_norm1", "norm2": "layer_norm2"}.get(rest[0], rest[0])
                out[f"{base}.{'.'.join(rest)}"] = value
        elif name.startswith("predictor.mask_tokens."):
            continue
        else:
            out[{"patch_embed.proj.weight": "vjepa2.encoder.embeddings.patch_embeddings.proj.weight",
                 "patch_embed.proj.bias": "vjepa2.encoder.embeddings.patch_embeddings.proj.bias",
                 "norm.weight": "vjepa2.encoder.layernorm.weight", "norm.bias": "vjepa2.encoder.layernorm.bias",
                 "pooler.query_tokens": "pooler.query_tokens",
                 "linear.weight": "classifier.weight", "linear.bias": "classifier.bias",
                 "predictor.predictor_embed.weight": "vjepa2.predictor.embeddings.predictor_embeddings.weight",
                 "predictor.predictor_embed.bias": "vjepa2.predictor.embeddings.predictor_embeddings.bias",
                 "predictor.predictor_norm.weight": "vjepa2.predictor.layernorm.weight",
                 "predictor.predictor_norm.bias": "vjepa2.predictor.layernorm.bias",
                 "predictor.predictor_proj.weight": "vjepa2.predictor.proj.weight",
                 "predictor.predictor_proj.bias": "vjepa2.predictor.proj.bias"}[name]] = value
    if hasattr(model, "predictor"):
        out["vjepa2.predictor.embeddings.mask_tokens"] = torch.stack(list(model.predictor.mask_tokens))
    return out


# --- the published network ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_logits_match_the_hugging_face_reference(tmp_path):
    """Full size (ViT-L, 16×256, 375 M parameters): the fixture's weights in a save_pretrained directory."""
    ref = Reference("vjepa2_vitl")
    save_file(ref.state_dict(), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(ref.meta["hf_config"]))
    model = vac.build_model("vjepa2_vitl", device="meta").to_empty(device="cpu")  # every tensor is loaded
    report = vac.load_checkpoint(model, tmp_path)
    assert report.layout == "Hugging Face (VJEPA2ForVideoClassification)"
    assert report.metadata["config"]["num_labels"] == 174
    assert sum(p.numel() for p in model.parameters()) == ref.params == 375_485_998
    assert_both_paths_match(model, ref)


def test_fixture_keys_map_exactly_onto_the_model():
    """Every on-disk name of the Hugging Face port lands on one of our tensors with its shape, and none is left."""
    ref = Reference("vjepa2_vitl")
    state = {e["name"]: torch.empty(e["shape"], device="meta") for e in ref.keys}
    model = vac.build_model("vjepa2_vitl", device="meta")
    converted = vjepa2._from_huggingface(state, model.config)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == ours
    assert sum(math.prod(e["shape"]) for e in ref.keys) == ref.params == sum(p.numel() for p in model.parameters())


def test_hugging_face_layout_round_trips_at_reduced_depth(tmp_path):
    source = _small()
    save_file(_to_huggingface(source), str(tmp_path / "model.safetensors"))
    model = _small()
    torch.nn.init.zeros_(model.linear.weight)
    report = vac.load_checkpoint(model, tmp_path / "model.safetensors")
    assert report.layout.startswith("Hugging Face")
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


def test_mismatching_checkpoint_names_the_hyperparameters(tmp_path):
    save_file(_to_huggingface(_small(num_classes=5, pooler_depth=2)), str(tmp_path / "model.safetensors"))
    with pytest.raises(vac.CheckpointError, match=r"built with num_classes=5, .*pooler_depth=2"):
        vac.load_checkpoint(_small(), tmp_path / "model.safetensors")


# --- 3D RoPE --------------------------------------------------------------------------------------------------

def _official_rotation(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """rotate_queries_or_keys of facebookresearch/vjepa2 written out channel by channel: channel c of a part of D
    channels turns with angle pos·ω_(c mod D/2), partner c^1, sign − on even channels."""
    d = x.shape[-1]
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
    out = torch.empty_like(x, dtype=torch.float64)
    for c in range(d):
        angle = pos.double()[:, None] * omega[c % (d // 2)]  # (N, 1)
        partner = -x[..., c + 1] if c % 2 == 0 else x[..., c - 1]
        out[..., c] = x[..., c].double() * angle.cos()[:, 0] + partner.double() * angle.sin()[:, 0]
    return out


def test_rope_rotates_t_y_x_parts_as_the_official_code():
    head_dim, grid = 64, (3, 4, 5)
    part = vjepa2.rope_part(head_dim)
    assert part == 20  # ViT-L: 3 × 20 channels rotated, 4 pass
    assert (vjepa2.rope_part(80), vjepa2.rope_part(1408 // 22)) == (26, 20)  # ViT-H, ViT-g
    x = torch.randn(2, 3, math.prod(grid), head_dim)
    cos, sin = vjepa2.rope_tables(grid, head_dim)
    ours = vjepa2.turn(x, *vjepa2.full_width(cos, sin, head_dim))
    t, y, w = torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij")
    for i, pos in enumerate((t.flatten(), y.flatten(), w.flatten())):
        block = slice(i * part, (i + 1) * part)
        torch.testing.assert_close(ours[..., block].double(), _official_rotation(x[..., block], pos),
                                   rtol=1e-5, atol=1e-5)
    assert torch.equal(ours[..., 3 * part:], x[..., 3 * part:])
    assert torch.equal(ours[..., 0, :], x[..., 0, :])  # the token at (0, 0, 0) is not turned


def test_positions_follow_the_input_grid():
    """RoPE positions come from the clip's own grid: a wider clip is not the 32 px one's tokens renumbered."""
    model = _small()
    x = torch.randn(1, 3, 4, 32, 48)
    with torch.no_grad():
        logits = model(x)
        grid_tokens = model.forward_features(x)
    assert logits.shape == (1, 7) and grid_tokens.shape == (1, 2 * 4 * 6, 48)
    # with positions taken from a 4×4 grid (as a fixed-size table would) the wide clip's result changes
    cos, sin = vjepa2.rope_tables((2, 4, 6), model.config.head_dim)
    wrong_cos, _ = vjepa2.rope_tables((2, 6, 4), model.config.head_dim)
    assert not torch.allclose(cos, wrong_cos)


# --- paths, configs, errors ---------------------------------------------------------------------------------

def test_sdpa_and_explicit_paths_agree():
    model = _small()
    x = torch.randn(2, 3, 6, 32, 32)
    with torch.no_grad():
        fused = model(x)
        vac.set_fused_attention(model, False)
        explicit = model(x)
    assert relative_error(explicit, fused) < 1e-5


def test_bad_hyperparameters_and_inputs_are_refused():
    with pytest.raises(vac.ConfigError, match="num_heads"):
        vac.get_config("vjepa2_vitl", num_heads=7)
    with pytest.raises(vac.ConfigError, match="pooler_num_heads"):
        vac.get_config("vjepa2_vitl", pooler_num_heads=3)
    with pytest.raises(vac.ConfigError, match="tubelet_size"):
        vac.get_config("vjepa2_vitl", num_frames=15)
    with pytest.raises(ValueError, match="T a multiple of 2"):
        _small()(torch.randn(1, 3, 5, 32, 32))


def test_presets_follow_the_published_encoders():
    sizes = {"vjepa2_vitl": (1024, 24, 16, 4096, 16, 256, 174), "vjepa2_vitl_diving48": (1024, 24, 16, 4096, 32, 256, 48),
             "vjepa2_vitg_384": (1408, 40, 22, 6144, 64, 384, 174)}
    for name, (dim, depth, heads, hidden, frames, size, classes) in sizes.items():
        model = vac.build_model(name, device="meta")
        cfg = model.config
        assert (cfg.embed_dim, cfg.depth, cfg.num_heads, model.blocks[0].mlp.fc1.out_features,
                cfg.num_frames, cfg.img_size, cfg.num_classes) == (dim, depth, heads, hidden, frames, size, classes)
        assert len(model.pooler.blocks) == 3


# --- costs, inspection, the pooler's cross-attention --------------------------------------------------------

def test_summary_reproduces_the_published_figures():
    summary = vac.summarize("vjepa2_vitl")
    assert summary.input_shape == (1, 3, 16, 256, 256)
    assert summary.params == 375_485_998
    assert summary.macs / 1e9 == pytest.approx(935.83, rel=0.01)
    cores = [r for r in summary.layers if r.type == "AttentionCore"]
    tokens, dim = 8 * 16 * 16, 1024
    assert sum(r.macs for r in cores if r.attention_kind == "joint") == 27 * flops.joint_attention_macs(1, tokens, dim)
    cross = [r for r in cores if r.attention_kind == "cross"]
    assert len(cross) == 1 and cross[0].macs == 2 * 1 * tokens * dim
    for r in cores:
        q, k, v = r.input_shapes[:3]
        assert r.macs == flops.layout_attention_macs(r.attention_layout, 1, q[1] * q[3], v[1] * v[3])
    # the predictor is carried, not run: its parameters count, its MACs do not
    predictor = [r for r in summary.layers if r.name.startswith("predictor.")]
    in_files = sum(math.prod(e["shape"]) for e in Reference("vjepa2_vitl").keys if ".predictor." in e["name"])
    assert sum(r.params for r in predictor) == in_files > 20e6
    assert sum(r.macs for r in predictor) == 0 and not any(r.calls for r in predictor)


def test_cross_attention_map_is_where_the_query_looks():
    model = _small()
    x = torch.randn(2, 3, 4, 32, 32)
    seen = {}
    xattn = model.pooler.cross_attention_block.xattn
    handles = [xattn.q.register_forward_hook(lambda m, args, out: seen.update(q=out.detach())),
               xattn.kv.register_forward_hook(lambda m, args, out: seen.update(kv=out.detach()))]
    try:
        result = vac.inspect(model, x, ["pooler.cross_attention_block.xattn", "blocks.1.attn"])
    finally:
        for handle in handles:
            handle.remove()
    captured = result.attention["pooler.cross_attention_block.xattn"]
    assert captured.kind == "cross" and captured.layout.queries == 1
    assert captured.probs.shape == (2, 3, 1, 2 * 4 * 4)  # (B, heads, queries, T'·H'·W')
    heads, d = 3, 16
    q = seen["q"].reshape(2, 1, heads, d).transpose(1, 2)
    k = seen["kv"][..., :48].reshape(2, 32, heads, d).transpose(1, 2)
    expected = (q @ k.transpose(-2, -1) * d ** -0.5).softmax(-1)
    torch.testing.assert_close(captured.probs, expected)

    assert attention_maps.query_grid(captured) == ((2, 4, 4), True)
    amap = attention_maps.attention_map(captured, query="cls", batch=1)
    assert amap.grid == (2, 4, 4) and amap.cls_weight is None
    np.testing.assert_allclose(amap.values, expected[1].mean(0)[0].reshape(2, 4, 4).numpy(), rtol=1e-5)
    assert amap.values.sum() == pytest.approx(1.0, abs=1e-5)
    head = attention_maps.attention_map(captured, query="cls", head=2)
    np.testing.assert_allclose(head.values, expected[0, 2, 0].reshape(2, 4, 4).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="learned tokens"):
        attention_maps.attention_map(captured, query=(0, 1, 1))
    # the encoder's RoPE layer: joint over the (t h w) grid, no CLS
    encoder = result.attention["blocks.1.attn"]
    assert encoder.kind == "joint" and not encoder.layout.cls and encoder.probs.shape == (2, 3, 32, 32)
    # rollout starts from the learned query and goes back through the pooler and the encoder
    rolled = attention_maps.rollout(model, x)
    assert rolled.shape == (2, 4, 4) and rolled.sum() == pytest.approx(1.0, abs=1e-5)


# --- catalog --------------------------------------------------------------------------------------------------

def test_catalog_recipes_are_what_the_hub_processors_do():
    """transformers' VJEPA2VideoProcessor, as convert_vjepa2_to_hf.py saves it for each encoder (crop_size = the
    encoder's) and convert_vjepa2_classifier_to_hf.py copies it into the classifier repositories: its constructor
    sets the short side to int(crop_size · 256 / 224) (292 at 256 px, 438 at 384 px), centre-crops crop_size,
    rescales by 1/255, normalises with ImageNet's mean/std, bilinear. Frames and steps: the official
    configs/inference/*.yaml (ssv2 vitl 16×4 with 2 clips, vitg-384 64×2; diving48 32×2 with 4 clips)."""
    expected = {  # entry: (frames, frame step, short side, crop, clips)
        "vjepa2_vitl.hf_ssv2": (16, 4, 292, 256, 2),
        "vjepa2_vitl_diving48.hf_diving48": (32, 2, 292, 256, 4),
        "vjepa2_vitg_384.hf_ssv2": (64, 2, 438, 384, 2),
        "vjepa2_vitg_384_diving48.hf_diving48": (32, 2, 438, 384, 4),
    }
    entries = {e.name: e for e in vac.list_weights() if e.preset.startswith("vjepa2")}
    assert set(entries) == set(expected)
    for name, (frames, step, short_side, crop, clips) in expected.items():
        r = entries[name].recipe
        assert (r.num_frames, r.sampling_rate, r.resize, r.crop, r.clips, r.crops) == (frames, step, short_side,
                                                                                     crop, clips, 3)
        assert (r.mean, r.std, r.rescale, r.offset) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), None, 0.0)
        assert r.resampling == "huggingface" and "VJEPA2VideoProcessor" in r.source
        assert vac.get_config(entries[name].preset).img_size == crop


def test_three_crop_reads_resize_the_short_side_to_the_crop():
    """evals/video_classification_frozen/utils.py: make_transforms gives the multi-view evaluation
    (num_views_per_segment = 3 in every configs/inference/*.yaml) EvalVideoTransform(short_side_size=crop_size),
    which scales the short side to the crop itself and cuts 3 windows along the long side; int(crop · 256/224) is the
    single-view VideoTransform's side only. The protocol's views read 256 px here, one view 292 px."""
    from pathlib import Path

    from videoattn_core.cost import zoo
    from videoattn_core.clips.preprocessing import preprocess

    clip_file = Path(__file__).resolve().parent.parent / "assets" / "rotating_bar.mp4"  # 320×240
    entry = vac.get_entry("vjepa2_vitl.hf_ssv2")
    r = entry.recipe
    assert (r.resize, r.multi_crop_resize, r.to_dict()["multi_crop_resize"]) == (292, 256, 256)
    three = vac.load_clip(clip_file, entry.preset, recipe=r, views=(1, 3))
    frames = three.clip.view_frames(0)
    assert three.tensor.shape == (3, 3, 16, 256, 256)
    for k, position in enumerate(("first", "centre", "last")):  # 341×256 after the resize: windows along the width
        expected = preprocess(frames, resize=256, crop=256, mean=r.mean, std=r.std, resampling=r.resampling,
                              position=position)
        assert torch.equal(three.tensor[k], expected), position
    assert not torch.equal(three.tensor[1], preprocess(frames, resize=292, crop=256, mean=r.mean, std=r.std,
                                                       resampling=r.resampling))
    one = vac.load_clip(clip_file, entry.preset, recipe=r, views=(1, 1))
    assert torch.equal(one.tensor[0], preprocess(frames, resize=292, crop=256, mean=r.mean, std=r.std,
                                                 resampling=r.resampling))
    # a model built for other crops keeps both sides in proportion; the zoo states the protocol's side
    assert (r.adapted(crop=384).resize, r.adapted(crop=384).multi_crop_resize) == (438, 384)
    assert vac.get_entry("vjepa2_vitg_384.hf_ssv2").recipe.multi_crop_resize == 384
    assert zoo.point_of(entry).protocol.endswith("256 px crop (short side 256)")
    assert vac.get_entry("swin3d_t.official_k400").recipe.multi_crop_resize is None  # others read one short side


def test_hugging_face_config_json_sets_the_config():
    """A classifier directory's config.json (the fixture's, as transformers wrote it) builds the preset's network."""
    import json

    from reference import REFERENCE_DIR
    from videoattn_core.models.vjepa2 import hf_config_overrides

    hf_config = json.loads((REFERENCE_DIR / "vjepa2_vitl" / "meta.json").read_text())["hf_config"]
    config = vac.get_config("vjepa2_vitl", **hf_config_overrides(hf_config))
    preset = vac.get_config("vjepa2_vitl")
    assert config.replace(pooler_num_heads=preset.pooler_num_heads) == preset
    assert config.num_frames == 16  # frames_per_clip (64, the pretraining clips) does not set it
    assert hf_config_overrides({"model_type": "videomae", "hidden_size": 3}) == {}
