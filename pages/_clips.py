"""The clips a page may read: the samples shipped in ``assets/``, an upload (kept in the session), or — opened from
the Evaluation page — a clip file of the server under the folders ``$VIDEOATTN_DATA_DIR`` names (clip id
``file:<absolute path>``; any other path in a link is refused)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from videoattn_core import VideoAttnError
from videoattn_core.evaluation import results

ASSETS = Path(__file__).resolve().parent.parent / "assets"
#: the sample a page shows first: a real scene; the synthetic clips (known motion) follow for tests and probing
DEFAULT_CLIP = "big_buck_bunny"
#: the credit a sample's licence asks for, shown under the sample box (sources in assets/README.md)
CLIP_CREDITS = {"big_buck_bunny": "Big Buck Bunny © Blender Foundation, [CC BY 3.0]"
                                  "(https://creativecommons.org/licenses/by/3.0/): a 5.3 s excerpt, scaled to "
                                  "640×360, without sound"}
#: the prefix of a server clip's id
FILE = "file:"


def sample_clips() -> dict[str, Path]:
    """The sample clips shipped in ``assets/``, by name (file stem): the default first, then by name."""
    paths = sorted(ASSETS.glob("*.mp4"), key=lambda p: (p.stem != DEFAULT_CLIP, p.stem))
    return {p.stem: p for p in paths}


def default_clip() -> str:
    return next(iter(sample_clips()), "")


def parse_clip(text: str) -> str:
    if text == "upload":
        raise ValueError(f"an uploaded clip cannot travel in a link; showing the sample clip {default_clip()} "
                         f"instead")
    if text.startswith(FILE):
        try:
            return FILE + str(results.server_clip(text[len(FILE):]))
        except VideoAttnError as exc:
            raise ValueError(str(exc)) from None
    if text not in sample_clips():
        raise ValueError(f"clip must be one of the sample clips: {', '.join(sample_clips())}")
    return text


def clip_file(clip: str) -> Path:
    """The file of a sample's name or a server clip's id (checked again: the folders may have changed)."""
    if clip.startswith(FILE):
        return results.server_clip(clip[len(FILE):])
    return sample_clips()[clip]


def clip_options(page: str) -> list[str]:
    """The sample box's choices: the samples, and the server clip the page's link opened, if any."""
    options = list(sample_clips())
    current = st.session_state.get(f"{page}.clip")
    return options + [current] if isinstance(current, str) and current.startswith(FILE) else options
