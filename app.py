"""videoattn — the Streamlit router. Pages live in ``pages/``; they stay thin and call ``videoattn_core``.

Every page keeps its whole state in the URL's query string (see ``pages/_state.py``), so a copied link
reopens the same view: ``/?model=mvit_v2_s`` opens the Model page on MViTv2-S.
"""

import streamlit as st

from pages import _state as state

st.set_page_config(page_title="videoattn", layout="wide")
st.navigation(state.router_pages()).run()
