"""V-JEPA 2 at a second weight seed and other sizes, against a plain-function transcription of Hugging Face's
``VJEPA2ForVideoClassification`` forward.

The fixture holds the port's logits at weight seed 1 only, at full size. The functions below restate the forward of
``transformers/models/vjepa2/modeling_vjepa2.py`` (``VJEPA2Embeddings``, ``VJEPA2Layer`` with
``VJEPA2RopeAttention`` and ``rotate_queries_or_keys``, ``VJEPA2Encoder``, ``VJEPA2AttentivePooler`` with its
self- and cross-attention layers, the classifier; eager attention) directly on a state dict under the port's
on-disk names, read off its ``config.json`` fields, without our model. The transcription is first held to the
seed-1 fixture logits; it then judges our model, loaded by ``vac.load_checkpoint`` from a ``save_pretrained``-like
directory, at weight seed 2 on a truncated key set (fewer encoder and predictor layers, a short low-resolution
clip, other head counts), on both attention paths.

One property of the port is kept as written: its RoPE positions are taken from a grid of
``crop_size // patch_size`` tokens per row (the config's), not from the input's, so the transcription is only
meaningful on square inputs of the config's ``crop_size`` (the official repository passes the input's grid).
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import videoattn_core as vac
from reference import Reference, relative_error

ACTIVATIONS = {"gelu": F.gelu}  # ACT2FN["gelu"]: the exact (erf) GELU


def _linear(x, sd, prefix):
    return F.linear(x, sd[prefix + ".weight"], sd[prefix + ".bias"])


def _layer_norm(x, sd, prefix, eps):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + ".weight"], sd[prefix + ".bias"], eps)


def _attend(q, k, v, scaling):
    """``eager_attention_forward``: softmax in float32 of q·kᵀ·scaling, then ·v; returns (B, N, heads, d)."""
    probs = torch.softmax(q @ k.transpose(-1, -2) * scaling, dim=-1, dtype=torch.float32).to(q.dtype)
    return (probs @ v).transpose(1, 2)


def _heads(x, heads):
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)  # (B, heads, N, d)


def rotate_queries_or_keys(x, pos):
    """The port's function: x (B, heads, N, D), pos (N,). The frequency vector of D/2 entries is repeated (not
    interleaved) across D channels, while the rotation pairs channels (2i, 2i+1)."""
    d = x.shape[-1]
    omega = torch.arange(d // 2, dtype=x.dtype) / (d / 2.0)
    omega = 1.0 / 10000 ** omega  # (D/2,)
    freq = pos.unsqueeze(-1) * omega  # (N, D/2)
    sin, cos = freq.sin().repeat(1, 1, 1, 2), freq.cos().repeat(1, 1, 1, 2)  # (1, 1, N, D)
    y1, y2 = x.unflatten(-1, (-1, 2)).unbind(dim=-1)
    turned = torch.stack((-y2, y1), dim=-1).flatten(-2)
    return x * cos + turned * sin


def position_ids(n, cfg):
    """``VJEPA2RopeAttention.get_position_ids`` without masks: frame, row and column of token i, on the grid of
    ``crop_size // patch_size`` tokens per side fixed by the config."""
    grid = cfg["crop_size"] // cfg["patch_size"]
    ids = torch.arange(n)
    per_frame = grid * grid
    frame = ids // per_frame
    height = (ids - per_frame * frame) // grid
    width = (ids - per_frame * frame) - grid * height
    return frame, height, width


def apply_rotary_embeddings(qk, pos_ids):
    head_dim = qk.shape[-1]
    part = int(2 * ((head_dim // 3) // 2))  # d_dim = h_dim = w_dim
    pieces = [rotate_queries_or_keys(qk[..., i * part:(i + 1) * part], pos) for i, pos in enumerate(pos_ids)]
    return torch.cat(pieces + [qk[..., 3 * part:]], dim=-1)


def encoder_layer(h, sd, prefix, cfg, pos_ids):
    eps, heads, act = cfg["layer_norm_eps"], cfg["num_attention_heads"], ACTIVATIONS[cfg["hidden_act"]]
    b, n, c = h.shape
    y = _layer_norm(h, sd, prefix + "norm1", eps)
    q = _heads(_linear(y, sd, prefix + "attention.query"), heads)
    k = _heads(_linear(y, sd, prefix + "attention.key"), heads)
    v = _heads(_linear(y, sd, prefix + "attention.value"), heads)
    k, q = apply_rotary_embeddings(k, pos_ids), apply_rotary_embeddings(q, pos_ids)
    ctx = _attend(q, k, v, (c // heads) ** -0.5).reshape(b, n, c)
    h = h + _linear(ctx, sd, prefix + "attention.proj")
    y = _layer_norm(h, sd, prefix + "norm2", eps)
    return h + _linear(act(_linear(y, sd, prefix + "mlp.fc1")), sd, prefix + "mlp.fc2")


def pooler(h, sd, cfg):
    """``VJEPA2AttentivePooler``: the self-attention layers over the tokens, then the learned query cross-attends
    to the layer-normed tokens (the query itself is not normed; no output projection), with a residual on it."""
    eps, heads, act = cfg["layer_norm_eps"], cfg["num_attention_heads"], ACTIVATIONS[cfg["hidden_act"]]
    b, n, c = h.shape
    scaling = (c // heads) ** -0.5
    for i in range(cfg["num_pooler_layers"]):
        p = f"pooler.self_attention_layers.{i}."
        y = _layer_norm(h, sd, p + "layer_norm1", eps)
        q, k, v = (_heads(_linear(y, sd, p + f"self_attn.{name}"), heads) for name in ("q_proj", "k_proj", "v_proj"))
        h = h + _linear(_attend(q, k, v, scaling).reshape(b, n, c), sd, p + "self_attn.out_proj")
        y = _layer_norm(h, sd, p + "layer_norm2", eps)
        h = h + _linear(act(_linear(y, sd, p + "mlp.fc1")), sd, p + "mlp.fc2")
    p = "pooler.cross_attention_layer."
    queries = sd["pooler.query_tokens"].repeat(b, 1, 1)  # (B, 1, C)
    y = _layer_norm(h, sd, p + "layer_norm1", eps)
    q = _heads(_linear(queries, sd, p + "cross_attn.q_proj"), heads)
    k = _heads(_linear(y, sd, p + "cross_attn.k_proj"), heads)
    v = _heads(_linear(y, sd, p + "cross_attn.v_proj"), heads)
    out = queries + _attend(q, k, v, scaling).reshape(b, 1, c)
    y = _layer_norm(out, sd, p + "layer_norm2", eps)
    out = out + _linear(act(_linear(y, sd, p + "mlp.fc1")), sd, p + "mlp.fc2")
    return out.squeeze(1)


def hf_forward(sd, cfg, x):
    """Logits of ``VJEPA2ForVideoClassification`` for a clip ``x (B, C, T, H, W)`` (the port takes B T C H W and
    swaps the axes back before its Conv3d). The predictor is skipped, as the classifier does."""
    e = "vjepa2.encoder."
    w = sd[e + "embeddings.patch_embeddings.proj.weight"]  # (C, 3, tubelet, patch, patch)
    h = F.conv3d(x, w, sd[e + "embeddings.patch_embeddings.proj.bias"], stride=w.shape[2:])
    h = h.flatten(2).transpose(1, 2)  # (B, T'·H'·W', C), tokens ordered (t h w)
    pos_ids = position_ids(h.shape[1], cfg)
    for i in range(cfg["num_hidden_layers"]):
        h = encoder_layer(h, sd, f"{e}layer.{i}.", cfg, pos_ids)
    h = _layer_norm(h, sd, e + "layernorm", cfg["layer_norm_eps"])
    return _linear(pooler(h, sd, cfg), sd, "classifier")


# ---------------------------------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def ref():
    return Reference("vjepa2_vitl")


@pytest.mark.slow
def test_transcription_reproduces_the_fixture_logits(ref):
    with torch.no_grad():
        transcribed = hf_forward(ref.state_dict(1), ref.meta["hf_config"], ref.input())
    assert relative_error(transcribed, ref.logits) <= 1e-5


def _truncated(ref, weight_seed, depth, predictor_depth):
    """The fixture's entries (shapes unchanged) without encoder layers ≥ depth and predictor layers ≥
    predictor_depth: what ``save_pretrained`` writes for a config with those layer counts."""
    state = ref.state_dict(weight_seed)

    def keep(name):
        for prefix, limit in (("vjepa2.encoder.layer.", depth), ("vjepa2.predictor.layer.", predictor_depth)):
            if name.startswith(prefix):
                return int(name[len(prefix):].split(".")[0]) < limit
        return True
    return {k: v for k, v in state.items() if keep(k)}


# (encoder depth, attention heads, frames, crop): 8 heads of 128 channels rotate 3 × 42 channels and pass 2
SIZES = [(2, 16, 4, 64), (3, 8, 6, 48)]


@pytest.mark.parametrize("depth,heads,frames,crop", SIZES)
def test_seed_two_at_reduced_sizes_matches_the_transcription_on_both_paths(ref, tmp_path, depth, heads, frames,
                                                                           crop):
    cfg = {**ref.meta["hf_config"], "num_hidden_layers": depth, "num_attention_heads": heads,
           "frames_per_clip": frames, "crop_size": crop, "pred_num_hidden_layers": 1}
    state = _truncated(ref, 2, depth, 1)
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    x = torch.randn(2, 3, frames, crop, crop, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf_forward(state, cfg, x)

    model = vac.build_model("vjepa2_vitl", depth=depth, num_heads=heads, num_frames=frames, img_size=crop,
                            predictor_depth=1)
    report = vac.load_checkpoint(model, tmp_path)
    assert report.layout == "Hugging Face (VJEPA2ForVideoClassification)"
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for v in state.values())
    with torch.no_grad():
        vac.set_fused_attention(model, True)
        fused = model(x)
        vac.set_fused_attention(model, False)
        explicit = model(x)
    assert fused.shape == (2, 174)
    assert relative_error(fused, expected) <= 1e-5
    assert relative_error(explicit, expected) <= 1e-5
