"""videoattn — the Streamlit router. Pages live in ``pages/``; they stay thin and call ``videoattn_core``.

Every page keeps its whole state in the URL's query string (see ``pages/_state.py``), so a copied link
reopens the same view: ``/?model=mvit_v2_s`` opens the Model page on MViTv2-S.

Once per server, a low-priority background process fills the disk cache of summaries with every preset's Model page
(``python -m videoattn_core.inspection.summary_cache``; off with ``VIDEOATTN_PREWARM=0``), so that the first visitor
of a preset does not wait for its summary and growth curves.
"""

import gc
import os
import subprocess
import sys

import streamlit as st

from pages import _state as state
from videoattn_core.run import devices

devices.flush_denormals()  # first, so that this script thread's intra-op workers start with it


@st.cache_resource(show_spinner=False)
def _warm_summaries() -> subprocess.Popen | None:
    if os.environ.get("VIDEOATTN_PREWARM", "1") == "0":
        return None
    command = [sys.executable, "-m", "videoattn_core.inspection.summary_cache"]
    if hasattr(os, "nice"):
        command = ["nice", "-n", "19", *command]
    try:
        return subprocess.Popen(command, cwd=os.path.dirname(os.path.abspath(__file__)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:  # no nice, or no process allowed: the pages compute on demand
        return None


@st.cache_resource(show_spinner=False)
def _freeze_long_lived_objects() -> bool:
    """Once per server, after its first page: move what the imports made (torch, plotly, the core: millions of
    objects that live as long as the process) out of the garbage collector's sight. Python's full collections
    otherwise walk them all, ~0.7 s each on a 2-core machine, at unforeseeable moments of a visitor's page."""
    gc.collect()
    gc.freeze()
    return True


st.set_page_config(page_title="videoattn", layout="wide")
_warm_summaries()
state.run_router()
_freeze_long_lived_objects()
