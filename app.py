"""videoattn — the Streamlit router. Pages live in ``pages/``; they stay thin and call ``videoattn_core``."""

import streamlit as st

st.set_page_config(page_title="videoattn", layout="wide")

navigation = st.navigation([
    st.Page("pages/home.py", title="Home", default=True),
])
navigation.run()
