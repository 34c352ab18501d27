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

import importlib
import pkgutil

from .records import WeightsEntry

#: the families' modules in the order the catalog lists them; a module added later (its ``entries()``) follows
#: without being named here
_ORDER = ["timesformer", "mvit_swin", "vivit", "videomae", "vjepa2"]


def build_catalog() -> list[WeightsEntry]:
    """Every entry, family by family (each preset's first entry is its default): every module of this package but
    ``records`` gives its ``entries()``."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.name != "records" and not m.name.startswith("_")]
    out: list[WeightsEntry] = []
    for name in sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n)):
        out.extend(importlib.import_module(f"{__name__}.{name}").entries())
    return out
