"""SELLER clienteling app: the router. Run with `streamlit run app/main.py`."""
import os
import sys
from pathlib import Path

import streamlit as st

st.set_page_config(page_title="SELLER · Clienteling", page_icon=":material/diamond:", layout="wide")

# `streamlit run app/main.py` puts app/ on sys.path; the repo root makes `import app.…` work too
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# two touches the theme file cannot make: quieter metric figures, no wrapping of long boutique names
st.html("""<style>
[data-testid="stMetricValue"] { font-size: 1.45rem; }
[data-testid="stMetricLabel"] p { text-transform: uppercase; letter-spacing: .08em; font-size: .72rem; }
</style>""")

# not "pages/": Streamlit treats a pages/ folder as the legacy multipage app and serves a deep
# link (e.g. /experiments) on a fresh server without running this router first
PAGES = Path(__file__).parent / "app_pages"
page = st.navigation([
    st.Page(PAGES / "clienteling.py", title="Clienteling", icon=":material/person_search:", default=True),
    st.Page(PAGES / "experiments.py", title="Experiments", icon=":material/science:"),
    st.Page(PAGES / "model.py", title="Model", icon=":material/memory:"),
])

with st.sidebar:
    st.text_input("Associate id", key="associate_id",
                  value=st.session_state.get("associate_id") or os.environ.get("SELLER_ASSOCIATE", "associate-1"),
                  help="Votes are stored under this id, never under a client's name.")
page.run()
