"""SELLER clienteling app: the router. Run with `streamlit run app/main.py`."""
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

from app import auth  # noqa: E402  (needs the path above)

# nothing of the client book before this returns: it draws the sign-in form and stops otherwise
scope = auth.require_scope()

# not "pages/": Streamlit treats a pages/ folder as the legacy multipage app and serves a deep
# link (e.g. /experiments) on a fresh server without running this router first
PAGES = Path(__file__).parent / "app_pages"
pages = [st.Page(PAGES / "clienteling.py", title="Clienteling", icon=":material/person_search:", default=True)]
if scope.may("experiments"):
    pages.append(st.Page(PAGES / "experiments.py", title="Experiments", icon=":material/science:"))
if scope.may("audit"):
    pages.append(st.Page(PAGES / "activity.py", title="Activity log", icon=":material/history:"))
if scope.may("model"):
    pages.append(st.Page(PAGES / "model.py", title="Model", icon=":material/memory:"))
if scope.may("users"):
    pages.append(st.Page(PAGES / "users.py", title="Users", icon=":material/group:"))
page = st.navigation(pages)

with st.sidebar:
    auth.account_box(scope)
page.run()
