"""Parameter counts in the app's tables carry thousands separators (``21,142,672``, not ``21142672``): the tables'
column configuration, as AppTest receives it, formats them ``localized`` (the browser's separators)."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_page(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page(f"pages/{page}.py")
    at.query_params.clear()
    at.query_params.update(params)
    return at.run()


@pytest.mark.parametrize("page,params,columns", [
    ("compare", {"c1": "timesformer_base;depth=2", "c2": "mvit_v2_s", "n": "2"}, ("parameters",)),
    ("zoo", {}, ("params",)),
    ("model", {"model": "timesformer_base", "depth": "2"}, ("params", "MACs", "own params", "own MACs")),
    ("run", {"model": "timesformer_base", "depth": "2", "img_size": "64", "clip": "rotating_bar"},
     ("analytic MACs", "measured MACs")),
    ("home", {}, ("parameters",)),
], ids=["compare", "zoo", "model-layers", "run-measured", "presets"])
def test_parameter_counts_are_shown_with_thousands_separators(page, params, columns):
    """The data grid draws on a canvas; its accessible table holds the raw numbers, not the text drawn, so the
    format is read from the column configuration the browser receives."""
    at = open_page(page, **params)
    assert not at.exception, [e.value for e in at.exception]
    (table,) = [d for d in at.dataframe if set(columns) <= set(d.value.columns)]
    config = json.loads(table.proto.columns)
    for column in columns:
        assert table.value[column].dropna().map(float).max() >= 1e4, column  # counts that need a separator
        assert table.value[column].dtype.kind in "iuf"  # numbers, so the column still sorts as numbers
        assert config.get(column, {}).get("type_config") == {"type": "number", "format": "localized"}, column
