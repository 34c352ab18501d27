"""App pages through Streamlit's AppTest."""

from streamlit.testing.v1 import AppTest


def test_home_lists_presets_with_parameter_counts():
    at = AppTest.from_file("app.py", default_timeout=120).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert int(table.set_index("preset").loc["timesformer_base", "parameters"]) == 121_566_352
