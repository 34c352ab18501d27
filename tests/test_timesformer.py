"""TimeSformer: parity with the published implementations, every checkpoint layout, configs and inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import save_file

import official_keys
import videoattn_core as vac
from reference import Reference, assert_both_paths_match, relative_error
from torch.profiler import ProfilerActivity, profile
from videoattn_core.models import layers

VARIANTS = {
    "timesformer_divided": "divided_space_time",
    "timesformer_joint": "joint_space_time",
    "timesformer_space_only": "space_only",
}


def hf_official_forward(state: dict[str, torch.Tensor], x: torch.Tensor, attention_type: str) -> torch.Tensor:
    """TimeSformer's forward written out on Hugging Face's key names: the official repository's
    ``VisionTransformer`` (timesformer/models/vit.py), which ``TimesformerForVideoClassification`` transcribes
    (eps 1e-6, qkv bias, exact GELU). The token grid is read from the input as the official code does (Hugging Face
    reads it from its config, the same at the built size), the embeddings resized by nearest neighbour; space-only
    averages the frames' tokens after the blocks, as the official code (and the fixture) does."""
    e, n = "timesformer.embeddings.", "timesformer.encoder.layer."

    def ln(y, name):
        return F.layer_norm(y, y.shape[-1:], state[name + ".weight"], state[name + ".bias"], 1e-6)

    def attention(y, name, heads=12):
        b, length, c = y.shape
        q, k, v = F.linear(y, state[name + ".attention.qkv.weight"], state[name + ".attention.qkv.bias"]) \
            .reshape(b, length, 3, heads, c // heads).permute(2, 0, 3, 1, 4)  # 3 × (B, heads, L, d)
        attn = ((q @ k.transpose(-2, -1)) * (c // heads) ** -0.5).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(b, length, c)
        return F.linear(out, state[name + ".output.dense.weight"], state[name + ".output.dense.bias"])

    b, _, t = x.shape[:3]
    w_patch = state[e + "patch_embeddings.projection.weight"]
    h = F.conv2d(rearrange(x, "b c t h w -> (b t) c h w"), w_patch, state[e + "patch_embeddings.projection.bias"],
                 stride=w_patch.shape[-1])
    gh, gw = h.shape[-2:]
    h = h.flatten(2).transpose(1, 2)  # (B·T) N C
    c = h.shape[-1]
    h = torch.cat((state[e + "cls_token"].expand(b * t, -1, -1), h), 1)
    pos = state[e + "position_embeddings"]
    if pos.shape[1] != h.shape[1]:
        p = round((pos.shape[1] - 1) ** 0.5)
        grid = F.interpolate(pos[0, 1:].T.reshape(1, c, p, p), size=(gh, gw), mode="nearest")
        pos = torch.cat((pos[:, :1], grid.flatten(2).transpose(1, 2)), 1)
    h = h + pos
    if attention_type != "space_only":
        cls = h[:b, :1]
        h = rearrange(h[:, 1:], "(b t) n m -> (b n) t m", b=b, t=t)
        time = state[e + "time_embeddings"]
        if time.shape[1] != t:
            time = F.interpolate(time.transpose(1, 2), size=t, mode="nearest").transpose(1, 2)
        h = torch.cat((cls, rearrange(h + time, "(b n) t m -> b (n t) m", b=b, t=t)), 1)
    for i in range(12):
        p = f"{n}{i}."
        if attention_type == "divided_space_time":
            xt = rearrange(h[:, 1:], "b (h w t) m -> (b h w) t m", h=gh, w=gw, t=t)
            res = rearrange(attention(ln(xt, p + "temporal_layernorm"), p + "temporal_attention"),
                            "(b h w) t m -> b (h w t) m", b=b, h=gh, w=gw)
            xt = h[:, 1:] + F.linear(res, state[p + "temporal_dense.weight"], state[p + "temporal_dense.bias"])
            cls = h[:, :1]
            xs = rearrange(xt, "b (h w t) m -> (b t) (h w) m", h=gh, w=gw, t=t)
            xs = torch.cat((cls.repeat(1, t, 1).reshape(b * t, 1, c), xs), 1)
            res = attention(ln(xs, p + "layernorm_before"), p + "attention")
            res_cls = res[:, 0].reshape(b, t, c).mean(1, keepdim=True)  # the frames' class tokens averaged
            res = rearrange(res[:, 1:], "(b t) (h w) m -> b (h w t) m", b=b, h=gh, w=gw)
            h = torch.cat((cls, xt), 1) + torch.cat((res_cls, res), 1)
        else:
            h = h + attention(ln(h, p + "layernorm_before"), p + "attention")
        y = F.gelu(F.linear(ln(h, p + "layernorm_after"), state[p + "intermediate.dense.weight"],
                            state[p + "intermediate.dense.bias"]))
        h = h + F.linear(y, state[p + "output.dense.weight"], state[p + "output.dense.bias"])
    if attention_type == "space_only":
        h = rearrange(h, "(b t) n m -> b t n m", b=b).mean(1)
    h = ln(h, "timesformer.layernorm")[:, 0]
    return F.linear(h, state["classifier.weight"], state["classifier.bias"])


@pytest.mark.slow
@pytest.mark.parametrize("fixture", list(VARIANTS))
def test_logits_match_reference_on_both_paths_and_a_second_seed(fixture, tmp_path):
    """The fixture (weight seed 1) on the fused and the explicit path; the transcription reproduces the fixture, then
    stands in for the reference at weight seed 2 (on a 4-frame 96 px clip, which resizes the embeddings)."""
    ref = Reference(fixture)
    model = official_keys.build_unfilled("timesformer_base", attention_type=VARIANTS[fixture])
    assert sum(p.numel() for p in model.parameters()) == ref.params

    hf_file = tmp_path / "model.safetensors"
    seed1 = ref.state_dict()
    save_file(seed1, str(hf_file))
    report = vac.load_checkpoint(model, hf_file)
    assert report.layout.startswith("Hugging Face") and report.tensors == len(ref.keys)
    assert_both_paths_match(model, ref)
    with torch.no_grad():
        assert relative_error(hf_official_forward(seed1, ref.input(), VARIANTS[fixture]),
                              ref.logits) <= 1e-5

        state = ref.state_dict(weight_seed=2)
        x = torch.randn(2, 3, 4, 96, 96, generator=torch.Generator().manual_seed(3))
        expected = hf_official_forward(state, x, VARIANTS[fixture])
        vac.load_checkpoint(model, state)
        explicit = model(x)
        fused = vac.set_fused_attention(model, True)(x)
    assert relative_error(fused, expected) <= 1e-4 and relative_error(explicit, expected) <= 1e-4


OFFICIAL = official_keys.load("timesformer_vit_base_patch16_224")


def test_official_key_list_is_the_published_model():
    assert OFFICIAL["parameters"] == {"divided_space_time": 121_566_352, "joint_space_time": 86_112_400,
                                      "space_only": 86_106_256}  # the published counts (shared/reference)


@pytest.mark.parametrize("attention_type", list(VARIANTS.values()))
def test_official_checkpoint_with_the_official_names_loads(attention_type):
    """What the official training saves in its .pyth files: {"model_state": {"model.<name>": ...}}, the names exactly
    as the official VisionTransformer has them (tests/data/official_keys)."""
    official_keys.assert_official_checkpoint_loads(
        official_keys.build_unfilled("timesformer_base", attention_type=attention_type),
        OFFICIAL["keys"][attention_type],
        lambda state: {"epoch": 15, "model_state": state, "cfg": "TIMESFORMER: ..."},
        lambda name: name.removeprefix("model."), "official (facebookresearch/TimeSformer)",
        torch.randn(1, 3, 2, 32, 32))


def test_hf_bin_file_and_save_pretrained_directory(tmp_path):
    ref = Reference("timesformer_joint")
    state = ref.state_dict()
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text('{"id2label": {"0": "abseiling"}}')
    model = vac.build_model("timesformer_base", attention_type="joint_space_time")
    report = vac.load_checkpoint(model, tmp_path)  # the directory, as save_pretrained writes it
    assert report.metadata["config"]["id2label"]["0"] == "abseiling"
    with torch.no_grad():
        assert relative_error(model(ref.input()), ref.logits) <= 1e-4
    bin_model = vac.build_model("timesformer_base", attention_type="joint_space_time")
    vac.load_checkpoint(bin_model, tmp_path / "pytorch_model.bin")
    assert torch.equal(bin_model.head.weight, model.head.weight)


def test_published_parameter_counts():
    counts = {"timesformer_base": 121_566_352, "timesformer_hr": 122_024_080, "timesformer_l": 121_633_936}
    for name, expected in counts.items():
        model = vac.build_model(name, device="meta")
        assert sum(p.numel() for p in model.parameters()) == expected, name


def _small(**overrides):
    base = dict(embed_dim=64, depth=2, num_heads=4, num_frames=4, img_size=32, patch_size=8, num_classes=10)
    base.update(overrides)
    return vac.build_model("timesformer_base", **base)


@pytest.mark.parametrize("attention_type", list(VARIANTS.values()))
def test_sdpa_and_explicit_paths_agree(attention_type):
    model = _small(attention_type=attention_type)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        fused = model(x)
        vac.set_fused_attention(model, False)
        explicit = model(x)
    assert fused.shape == (2, 10)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


def test_temporal_relative_bias_variant():
    model = _small(temporal_relative_bias=True)
    table = model.blocks[0].temporal_attn.relative_position_bias_table
    assert table.shape == (2 * 4 - 1, 4)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        before = model(x)
        table.copy_(torch.randn_like(table))
        after = model(x)
        vac.set_fused_attention(model, False)
        explicit = model(x)
        longer = model(torch.randn(1, 3, 6, 32, 32))  # offsets beyond the table are clamped
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, explicit, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(longer).all()


def _seed_code_temporal_bias(table: torch.Tensor, num_ttokens: int) -> torch.Tensor:
    """The seed code's rule, step by step: ``coords = arange(T)``, ``relative_coords = coords[:, None] -
    coords[None, :]``, ``+= T - 1``, ``table[relative_coords.view(-1)].view(T, T, -1).permute(2, 0, 1)``."""
    coords = torch.arange(num_ttokens)
    relative_coords = coords[:, None] - coords[None, :]
    relative_coords += num_ttokens - 1
    bias = table[relative_coords.view(-1)].view(num_ttokens, num_ttokens, -1)
    return bias.permute(2, 0, 1).contiguous()


def test_temporal_relative_bias_follows_the_seed_codes_indexing():
    model = _small(temporal_relative_bias=True)
    attn = model.blocks[0].temporal_attn
    with torch.no_grad():
        attn.relative_position_bias_table.copy_(torch.randn_like(attn.relative_position_bias_table))
    table = attn.relative_position_bias_table.detach()
    torch.testing.assert_close(attn.relative_bias(4), _seed_code_temporal_bias(table, 4), rtol=0, atol=0)
    # query frame 0 attending to key frame 3 reads row 0 − 3 + 3 = 0; the reverse reads row 6
    assert torch.equal(attn.relative_bias(4)[:, 0, 3], table[0]) and torch.equal(attn.relative_bias(4)[:, 3, 0], table[6])


def test_embeddings_resized_for_other_frames_and_resolution():
    model = _small()
    x = torch.randn(1, 3, 6, 48, 40)  # 6 frames, a 6×5 patch grid instead of 4 frames and 4×4
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 10) and torch.isfinite(out).all()

    # the resized embeddings are nearest-neighbour copies of the built ones
    pos = model._pos_embed(8, 8)
    assert pos.shape == (1, 65, 64)
    grid = model.pos_embed[0, 1:].reshape(4, 4, 64)
    torch.testing.assert_close(pos[0, 1:].reshape(8, 8, 64)[::2, ::2], grid)
    time = model._time_embed(8)
    torch.testing.assert_close(time[0, ::2], model.time_embed[0])


def test_resizing_matches_a_model_built_for_that_size():
    """A model built for 4 frames at 32 px, run on 4 frames at 32 px, equals itself; a model built for another
    size given the resized embeddings computes the same logits as the resizing path."""
    small = _small()
    big = _small(num_frames=8, img_size=64)
    state = {k: v for k, v in small.state_dict().items() if k not in ("pos_embed", "time_embed")}
    big.load_state_dict(state, strict=False)
    with torch.no_grad():
        big.pos_embed.copy_(small._pos_embed(8, 8))
        big.time_embed.copy_(small._time_embed(8))
        x = torch.randn(1, 3, 8, 64, 64)
        torch.testing.assert_close(small(x), big(x))


@pytest.mark.parametrize("overrides, field, words", [
    (dict(embed_dim=100, num_heads=12), "num_heads", "not divisible by num_heads"),
    (dict(img_size=230), "img_size", "multiple of patch_size"),
    (dict(attention_type="space_time_magic"), "attention_type", "one of"),
    (dict(depth=0), "depth", "from 1 to 128"),
    (dict(num_frames=-4), "num_frames", "from 1"),
    (dict(patch_size=0), "patch_size", "from 1"),
    (dict(mlp_ratio=float("nan")), "mlp_ratio", "a number"),
    (dict(qkv_bias="yes"), "qkv_bias", "true or false"),
    (dict(num_classes=2.5), "num_classes", "an integer"),
    (dict(temporal_relative_bias=True, attention_type="joint_space_time"), "temporal_relative_bias",
     "divided_space_time"),
    (dict(frobnicate=3), "frobnicate", "known:"),
])
def test_impossible_configs_raise_config_error(overrides, field, words):
    with pytest.raises(vac.ConfigError) as info:
        vac.build_model("timesformer_base", device="meta", **overrides)
    assert info.value.field == field
    assert field in str(info.value) and words in str(info.value)


def test_unknown_model_lists_presets():
    with pytest.raises(vac.ConfigError, match="available: timesformer_base"):
        vac.build_model("timesformer_huge")


@pytest.mark.parametrize("shape", [(3, 8, 32, 32), (1, 1, 4, 32, 32), (1, 3, 4, 30, 32), (1, 3, 4, 4, 4)])
def test_wrong_input_shape_says_what_is_expected(shape):
    model = _small()
    with pytest.raises(ValueError, match=r"expected a float tensor \(B, C, T, H, W\) with C=3.*multiple of 8"):
        model(torch.randn(*shape))


def test_integer_input_rejected():
    with pytest.raises(ValueError, match="float tensor"):
        _small()(torch.zeros(1, 3, 4, 32, 32, dtype=torch.uint8))


@pytest.mark.skipif(not layers.onednn_bfloat16(), reason="this CPU has no native bfloat16 (AMX, AVX-512 BF16)")
def test_bfloat16_inference_runs_the_temporal_projections_as_one_product_and_keeps_the_logits():
    """In bfloat16 inference the temporal attention's ``proj`` and ``temporal_fc`` run composed (one product a block
    fewer); the logits stay as close to the float64 network's as the two products', and a hook on either layer
    sees its call (the two products then run)."""
    model = _small(depth=3)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05) if p.dim() > 1 else p.uniform_(-0.05, 0.05)  # temporal_fc and the biases nonzero
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact = model.double()(x.double())
        model.bfloat16()

        def forward() -> tuple[torch.Tensor, int]:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                out = model(x.bfloat16())
            return out, sum(event.name == "mkldnn::_linear_pointwise" for event in prof.events())

        composed, products = forward()
        seen = []
        handle = model.blocks[1].temporal_fc.register_forward_hook(lambda *args: seen.append(1))
        two, two_products = forward()
        handle.remove()
    linears = sum(isinstance(m, layers.Linear) for m in model.modules())
    assert products == linears - 3 + 1  # a product a block fewer; the patch embedding is one more (a product)
    assert seen == [1] and two_products == products + 1  # the hooked block runs both layers, the others compose
    assert relative_error(composed.double(), exact) <= 2 * relative_error(two.double(), exact) + 1e-3
    assert composed.argmax(-1).tolist() == exact.argmax(-1).tolist()
