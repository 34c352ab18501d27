"""Home page: the presets this build knows, with their parameter counts (derived from the built models)."""

import streamlit as st

from pages import _cache as cache
from pages import _state as state
from pages import _widgets as widgets

state.ensure_router()
state.enter_page("presets")
st.title("videoattn")
st.write("Build, inspect and compare video transformers.")


st.dataframe(cache.preset_rows(), hide_index=True, column_config=widgets.count_columns("parameters"))
