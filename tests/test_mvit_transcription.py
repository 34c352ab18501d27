"""MViT v1-B and v2-S at a second weight seed, against a plain-function transcription of torchvision's forward.

The fixtures hold torchvision's logits at weight seed 1 only. The functions below restate the forward of
``torchvision/models/video/mvit.py`` (``MViT``, ``PositionalEncoding``, ``MultiscaleBlock``,
``MultiscaleAttention``, ``Pool``, ``_add_rel_pos``, and the ``mvit_v1_b`` / ``mvit_v2_s`` builders) directly on a
state dict in torchvision's key layout, without our model. The transcription is first held to the seed-1 fixture
logits; it then judges our model, loaded through ``vac.load_checkpoint``, at seed 2 on both attention paths.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import videoattn_core as vac
from reference import Reference, relative_error

# torchvision's builders: both models share heads and strides; v1 pools queries only where stride_q is given,
# v2 everywhere (kernel 3, stride 1 elsewhere); key/value pooling uses kernel 3 in every block of both.
HEADS = [1, 2, 2] + [4] * 11 + [8, 8]
STRIDE_Q = {1: (1, 2, 2), 3: (1, 2, 2), 14: (1, 2, 2)}
STRIDE_KV = [(1, 8, 8), (1, 4, 4), (1, 4, 4)] + [(1, 2, 2)] * 11 + [(1, 1, 1)] * 2
IS_V2 = {"mvit_v1_b": False, "mvit_v2_s": True}  # v2: rel_pos_embed, residual_pool, proj_after_attn
EPS = 1e-6  # torchvision's norm_layer: LayerNorm(eps=1e-6), in the pooling too


def layer_norm(x, sd, prefix):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + ".weight"], sd[prefix + ".bias"], EPS)


def linear(x, sd, prefix):
    return F.linear(x, sd[prefix + ".weight"], sd[prefix + ".bias"])


def pool(x, thw, pool_fn, sd=None, norm=None):
    """torchvision ``Pool``: the CLS token bypasses the pooling; the norm (if any) runs after it, CLS included."""
    squeeze = x.ndim == 3
    if squeeze:
        x = x.unsqueeze(1)  # (B, L, C) -> (B, 1, L, C)
    cls, x = x[:, :, :1], x[:, :, 1:]  # (B, N, 1, C), (B, N, T·H·W, C)
    b, n, _, c = x.shape
    x = pool_fn(x.transpose(2, 3).reshape(b * n, c, *thw))  # (B·N, C, T', H', W')
    thw = tuple(x.shape[2:])
    x = torch.cat((cls, x.reshape(b, n, c, -1).transpose(2, 3)), dim=2)  # (B, N, 1 + T'·H'·W', C)
    if norm is not None:
        x = layer_norm(x, sd, norm)
    return (x.squeeze(1) if squeeze else x), thw


def conv_pool(sd, prefix, stride):
    weight = sd[prefix + ".pool.weight"]  # (hd, 1, 3, 3, 3): depthwise, no bias, padding kernel // 2
    return lambda x: F.conv3d(x, weight, stride=stride, padding=[k // 2 for k in weight.shape[2:]],
                              groups=weight.shape[0])


def rel_table(table, q_size, k_size):
    """One axis of ``_add_rel_pos``: the (q, k, hd) rows for every query/key offset, the table resized linearly to
    the 2·max − 1 offsets that occur and the coordinates scaled when the two grids differ."""
    length = 2 * max(q_size, k_size) - 1
    if table.shape[0] != length:
        table = F.interpolate(table.T.unsqueeze(0), size=length, mode="linear").squeeze(0).T
    q_ratio, k_ratio = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
    dist = torch.arange(q_size)[:, None] * q_ratio - (torch.arange(k_size)[None, :] + (1.0 - k_size)) * k_ratio
    return table[dist.long()]


def rel_pos_bias(q, q_thw, k_thw, sd, prefix):
    """(B, N, Lq, Lk) bias of the patch tokens (no CLS) from the decomposed tables rel_pos_{h,w,t}."""
    (qt, qh, qw), (kt, kh, kw) = q_thw, k_thw
    b, n, _, hd = q.shape
    rt = rel_table(sd[prefix + ".rel_pos_t"], qt, kt)  # (qt, kt, hd)
    rh = rel_table(sd[prefix + ".rel_pos_h"], qh, kh)  # (qh, kh, hd)
    rw = rel_table(sd[prefix + ".rel_pos_w"], qw, kw)  # (qw, kw, hd)
    r_q = q[:, :, 1:].reshape(b, n, qt, qh, qw, hd)
    rel_h = torch.einsum("bnthwc,hkc->bnthwk", r_q, rh)  # (B, N, qt, qh, qw, kh)
    rel_w = torch.einsum("bnthwc,wkc->bnthwk", r_q, rw)  # (B, N, qt, qh, qw, kw)
    rel_t = torch.einsum("bnthwc,tkc->bnthwk", r_q, rt)  # (B, N, qt, qh, qw, kt)
    bias = rel_t[..., :, None, None] + rel_h[..., None, :, None] + rel_w[..., None, None, :]
    return bias.reshape(b, n, qt * qh * qw, kt * kh * kw)  # (.., qt, qh, qw, kt, kh, kw) flattened


def attention(x, thw, sd, prefix, heads, stride_q, stride_kv, v2):
    b, length, _ = x.shape
    qkv = linear(x, sd, prefix + ".qkv")
    out_dim = qkv.shape[-1] // 3
    hd = out_dim // heads
    q, k, v = qkv.reshape(b, length, 3, heads, hd).permute(2, 0, 3, 1, 4)  # 3 × (B, heads, L, hd)
    k, k_thw = pool(k, thw, conv_pool(sd, prefix + ".pool_k", stride_kv), sd, prefix + ".pool_k.norm_act.0")
    v, _ = pool(v, thw, conv_pool(sd, prefix + ".pool_v", stride_kv), sd, prefix + ".pool_v.norm_act.0")
    if prefix + ".pool_q.pool.weight" in sd:
        q, thw = pool(q, thw, conv_pool(sd, prefix + ".pool_q", stride_q), sd, prefix + ".pool_q.norm_act.0")
    scores = (q / math.sqrt(hd)) @ k.transpose(2, 3)  # (B, heads, Lq, Lk)
    if v2:
        scores[:, :, 1:, 1:] += rel_pos_bias(q, thw, k_thw, sd, prefix)
    x = scores.softmax(dim=-1) @ v  # (B, heads, Lq, hd)
    if v2:  # residual pooling, without the CLS token (residual_with_cls_embed=False)
        x[:, :, 1:] += q[:, :, 1:]
    x = x.transpose(1, 2).reshape(b, -1, out_dim)  # (B, Lq, heads·hd)
    return linear(x, sd, prefix + ".project.0"), thw


def block(x, thw, sd, i, v2):
    prefix = f"blocks.{i}"
    stride_q = STRIDE_Q.get(i, (1, 1, 1))
    project = prefix + ".project.weight" in sd
    x_norm1 = layer_norm(x, sd, prefix + ".norm1")
    x_attn, thw_new = attention(x_norm1, thw, sd, prefix + ".attn", HEADS[i], stride_q, STRIDE_KV[i], v2)
    if project and v2:  # proj_after_attn: the channels grow in the attention, the residual is projected first
        x = linear(x_norm1, sd, prefix + ".project")
    if i in STRIDE_Q:  # pool_skip: max pooling with kernel stride + 1 where the stride is > 1
        kernel = [s + 1 if s > 1 else s for s in stride_q]
        x, _ = pool(x, thw, lambda t: F.max_pool3d(t, kernel, stride_q, [k // 2 for k in kernel]))
    x = x + x_attn
    x_norm2 = layer_norm(x, sd, prefix + ".norm2")
    mlp = linear(F.gelu(linear(x_norm2, sd, prefix + ".mlp.0")), sd, prefix + ".mlp.3")
    if project and not v2:  # v1: the channels grow in the MLP; the residual is projected from norm2's output
        x = linear(x_norm2, sd, prefix + ".project")
    return x + mlp, thw_new


def torchvision_forward(sd, video, v2):
    x = F.conv3d(video, sd["conv_proj.weight"], sd["conv_proj.bias"], stride=(2, 4, 4), padding=(1, 3, 3))
    thw = tuple(x.shape[2:])
    x = x.flatten(2).transpose(1, 2)  # (B, T·H·W, C)
    cls = sd["pos_encoding.class_token"].expand(x.shape[0], 1, -1)
    x = torch.cat((cls, x), dim=1)  # (B, 1 + T·H·W, C)
    if not v2:  # separable absolute positions: temporal row t + spatial row h·W + w, and the CLS position
        temporal, spatial = sd["pos_encoding.temporal_pos"], sd["pos_encoding.spatial_pos"]  # (T, C), (H·W, C)
        pos = (temporal[:, None] + spatial[None]).reshape(-1, x.shape[-1])  # (T·H·W, C), t-major
        x = x + torch.cat((sd["pos_encoding.class_pos"][None], pos))
    for i in range(len(HEADS)):
        x, thw = block(x, thw, sd, i, v2)
    return linear(layer_norm(x, sd, "norm")[:, 0], sd, "head.1")


def torchvision_shapes(name, frames, size):
    """Shapes that depend on the input size in a torchvision model built with ``spatial_size=(size, size)`` and
    ``temporal_size=frames``: the builder tracks its grid as ``size // stride`` after each query stride."""
    t, s = frames // 2, size // 4
    shapes = {}
    if not IS_V2[name]:
        return {"pos_encoding.spatial_pos": [s * s, 96], "pos_encoding.temporal_pos": [t, 96]}
    for i in range(len(HEADS)):
        q, kv = s // STRIDE_Q.get(i, (1, 1, 1))[1], s // STRIDE_KV[i][1]
        shapes[f"blocks.{i}.attn.rel_pos_h"] = shapes[f"blocks.{i}.attn.rel_pos_w"] = [2 * max(q, kv) - 1, 96]
        shapes[f"blocks.{i}.attn.rel_pos_t"] = [2 * t - 1, 96]
        s //= STRIDE_Q.get(i, (1, 1, 1))[1]
    return shapes


def both_paths(model, x):
    with torch.no_grad():
        vac.set_fused_attention(model, True)
        fused = model(x)
        vac.set_fused_attention(model, False)
        explicit = model(x)
    return fused, explicit


@pytest.mark.parametrize("name", ["mvit_v1_b", "mvit_v2_s"])
def test_size_dependent_shapes_follow_the_torchvision_builder(name):
    ref = Reference(name)
    fixture = {e["name"]: e["shape"] for e in ref.keys}
    shapes = torchvision_shapes(name, 16, 224)
    assert shapes and all(fixture[key] == shape for key, shape in shapes.items())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mvit_v1_b", "mvit_v2_s"])
def test_transcription_reproduces_the_fixture_logits(name):
    ref = Reference(name)
    with torch.no_grad():
        transcribed = torchvision_forward(ref.state_dict(1), ref.input(), IS_V2[name])
    assert relative_error(transcribed, ref.logits) <= 1e-5


@pytest.mark.parametrize("name", ["mvit_v1_b", "mvit_v2_s"])
def test_seed_two_at_8_frames_112_px_matches_the_transcription_on_both_paths(name):
    """At 112 px the last stage's grid is 4×4 while torchvision's builder tracks 7 // 2 = 3, so MViTv2's last
    relative-position tables hold 5 offsets (resized to 7 in the forward, which the logits cannot see: that block's
    relative terms and residual pooling touch only patch queries, and the head reads the CLS token); v1 gets a
    4×28×28 positional embedding."""
    ref = Reference(name)
    state = ref.state_dict(2, shapes=torchvision_shapes(name, 8, 112))
    x = torch.randn(1, 3, 8, 112, 112, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = torchvision_forward(state, x, IS_V2[name])
    model = vac.build_model(name, num_frames=8, img_size=112)
    report = vac.load_checkpoint(model, state)
    assert report.layout.startswith("torchvision") and report.tensors == len(state)
    fused, explicit = both_paths(model, x)
    assert relative_error(fused, expected) <= 1e-4
    assert relative_error(explicit, expected) <= 1e-4
