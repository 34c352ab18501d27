"""The Attention page's query: the CLS token, or a token ``(t, y, x)`` on the layer's query grid.

A query the layer cannot take (no CLS token, a position off its grid) is replaced by a token on the shown frame, the
centre of that frame's token slice, whose map shows on the frame; so is a query kept across a model change whose map
would leave the shown frame empty. Each replacement comes with a note that says what changed: in a link's words
(``query=9,9,9 ignored: …``) where a link asked for it, else naming the model and layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from videoattn_core.figures import token_time_index

def describe(query: Any) -> str:
    return "CLS" if query == "cls" else "(" + ", ".join(map(str, query)) + ")"


@dataclass(frozen=True)
class QueryChoice:
    """What a query is checked against: the layer's query grid, its CLS token, the shown frame."""

    grid: tuple[int, int, int]  # T×H×W of the layer's queries
    has_cls: bool
    frame: int  # the shown frame, of ``frames``
    frames: int
    layer: str
    model: str
    from_link: bool  # the query came from a link the user opened

    @property
    def on_frame(self) -> tuple[int, int, int]:
        """The centre token of the shown frame's token slice."""
        t, h, w = self.grid
        return token_time_index(self.frame, self.frames, t), h // 2, w // 2

    @property
    def default(self) -> Any:
        return "cls" if self.has_cls else self.on_frame

    def check(self, wanted: Any) -> tuple[Any, str | None]:
        """``(query, note)``: ``wanted`` where the layer can take it (note None), else its replacement."""
        grid = "×".join(map(str, self.grid))
        if wanted == "cls":
            if self.has_cls:
                return "cls", None
            why = ("query=cls ignored: this layer has no CLS token" if self.from_link else
                   f"the CLS query is not in {self.layer} of {self.model} (no CLS token)")
            return self._replace(why)
        if all(0 <= v < n for v, n in zip(wanted, self.grid)):
            return tuple(wanted), None
        why = (f"query={','.join(map(str, wanted))} ignored: outside this layer's {grid} query grid" if self.from_link
               else f"query {describe(wanted)} is not on {self.model}'s {grid} query grid of {self.layer}")
        return self._replace(why)

    def shows(self, amap: Any, query: Any) -> bool:
        """Whether the query's map shows anything on the shown frame (NaN: keys it cannot attend)."""
        if query == "cls":
            return True
        values = np.asarray(amap.values, dtype=np.float64)
        return bool(np.isfinite(values[token_time_index(self.frame, self.frames, values.shape[0])]).any())

    def invisible(self, query: Any) -> tuple[Any, str]:
        """The replacement of a query kept across a model change whose map leaves the shown frame empty."""
        return self._replace(f"query {describe(query)} attends to nothing on frame {self.frame} in {self.layer} of "
                             f"{self.model}")

    def _replace(self, why: str) -> tuple[Any, str]:
        return self.on_frame, f"{why}; showing {describe(self.on_frame)} on frame {self.frame}"

    def widget_values(self, query: Any, state: Mapping[str, Any]) -> dict[str, Any]:
        """The page's query widgets for ``query`` (the sliders keep their positions, within the grid, under CLS)."""
        if query == "cls":
            t, y, x = (min(state.get(f"attention.{axis}", 0), n - 1) for axis, n in zip(("qt", "qy", "qx"), self.grid))
        else:
            t, y, x = query
        return {"attention.query_kind": "cls" if query == "cls" else "patch", "attention.qt": t, "attention.qy": y,
                "attention.qx": x}
