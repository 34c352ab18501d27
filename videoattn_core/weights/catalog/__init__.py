"""The catalog of published checkpoints, one module per family, each entry naming the page its numbers come from.

Sources, each entry naming the page its numbers come from:

- torchvision's Kinetics-400 weights (``torchvision/models/video/mvit.py``, ``swin_transformer.py``:
  ``MViT_V1_B_Weights``, ``MViT_V2_S_Weights``, ``Swin3D_T/S/B_Weights``): url, the sha256 prefix in the file
  name, the ``VideoClassification`` recipe, params, GFLOPS and acc@1/acc@5;
- the Hugging Face conversions of TimeSformer (``facebook/timesformer-{base,hr}-finetuned-{k400,k600,ssv2}``; the
  large models were published as ``fcakyon/timesformer-large-finetuned-{k400,k600}`` by the author of the port):
  the sha256 of ``pytorch_model.bin`` recorded in its Git LFS pointer where it could be found, and the
  processor's mean/std (0.45/0.225 since the Dec. 2022 revision) and shortest-edge/crop sizes;
- the official repositories' releases: facebookresearch/TimeSformer (Dropbox), PySlowFast's model zoo (MViT v1 and
  v2) and SwinTransformer/Video-Swin-Transformer (GitHub releases). None publishes a hash.
"""

from __future__ import annotations

from .records import WeightsEntry


def build_catalog() -> list[WeightsEntry]:
    """Every entry, family by family (each preset's first entry is its default)."""
    from . import mvit_swin, timesformer, videomae, vivit, vjepa2

    return [*timesformer.entries(), *mvit_swin.entries(), *vivit.entries(), *videomae.entries(), *vjepa2.entries()]
