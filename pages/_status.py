"""Status boxes that say which step failed.

``st.status`` turns red when its block raises but keeps the label of the step it was on ("decoding the clip…"),
which reads as still working. :func:`steps` names each step as it starts and, on an error, relabels the box
"failed while <step>" in the error state; the page then shows the error's message below it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st


class Steps:
    """The status box of one run: :meth:`step` names what it does now, :meth:`fail` and :meth:`done` end it."""

    def __init__(self, box) -> None:
        self.box = box
        self.current = "starting"
        self.ended = False

    def step(self, what: str) -> None:
        self.current = what
        self.box.update(label=f"{what}…")

    def fail(self, what: str | None = None) -> None:
        """End in the error state, saying what failed (the current step by default)."""
        self.ended = True
        self.box.update(label=f"failed while {what or self.current}", state="error")

    def done(self, label: str) -> None:
        self.ended = True
        self.box.update(label=label, state="complete")


@contextmanager
def steps(label: str, where=None) -> Iterator[Steps]:
    """A collapsed status box (in the container ``where``, by default where the page writes); an exception raised
    inside (a user's error included) leaves it "failed while <step>" and goes on up to the page, which shows its
    message."""
    with (where or st).status(label, expanded=False) as box:
        run = Steps(box)
        try:
            yield run
        except Exception:
            if not run.ended:
                run.fail()
            raise
