import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(max(1, torch.get_num_threads()))
# the app's disk cache of summaries (and the servers the browser tests start) use a folder of this run only, and no
# server warms it in the background
os.environ.setdefault("VIDEOATTN_CACHE_DIR", tempfile.mkdtemp(prefix="videoattn-test-cache-"))
os.environ.setdefault("VIDEOATTN_PREWARM", "0")



@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
