"""videoattn — the Streamlit router. Pages live in ``pages/``; they stay thin and call ``videoattn_core``.

Every page keeps its whole state in the URL's query string (see ``pages/_common.py``), so a copied link
reopens the same view: ``/?model=mvit_v2_s`` opens the Model page on MViTv2-S.
"""

import streamlit as st

st.set_page_config(page_title="videoattn", layout="wide")

navigation = st.navigation([
    st.Page("pages/model.py", title="Model", icon=":material/view_in_ar:", url_path="model", default=True),
    st.Page("pages/run.py", title="Run", icon=":material/play_arrow:", url_path="run"),
    st.Page("pages/attention.py", title="Attention", icon=":material/visibility:", url_path="attention"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("pages/home.py", title="Presets", icon=":material/list:", url_path="presets"),
])
navigation.run()
