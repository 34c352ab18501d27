"""The Model page's layer table: what is downloaded is what is shown."""

from __future__ import annotations

import videoattn_core as vac
from videoattn_core.inspection import rows

from test_app import open_app


def test_the_csv_holds_the_filtered_rows():
    at = open_app("model", model="timesformer_base", depth="2", search="norm")
    assert not at.exception, [e.value for e in at.exception]
    table = rows.layer_rows(vac.summarize("timesformer_base", depth=2))
    shown = [r for r in table if "norm" in r["name"].lower() or "norm" in r["type"].lower()]
    assert 0 < len(shown) < len(table)
    labels = [b.proto.label for b in at.get("download_button")]
    assert f"Download the {len(shown)} rows shown as CSV" in labels, labels
