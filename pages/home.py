"""Home page: the presets this build knows, with their parameter counts (derived from the built models)."""

import streamlit as st

import videoattn_core as vac
from pages import _common as common

common.ensure_router()
st.title("videoattn")
st.write("Build, inspect and compare video transformers.")


@st.cache_data
def preset_rows() -> list[dict]:
    rows = []
    for name in vac.list_models():
        model = vac.build_model(name, device="meta")
        rows.append({"preset": name, "description": vac.get_preset(name).description,
                     "parameters": sum(p.numel() for p in model.parameters())})
    return rows


st.dataframe(preset_rows(), hide_index=True)
