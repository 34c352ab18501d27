"""App pages through Streamlit's AppTest."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_home_lists_presets_with_parameter_counts():
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert int(table.set_index("preset").loc["timesformer_base", "parameters"]) == 121_566_352
