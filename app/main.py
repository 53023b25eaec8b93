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

# not "pages/": Streamlit treats a pages/ folder as the legacy multipage app and serves a deep
# link (e.g. /experiments) on a fresh server without running this router first
PAGES = Path(__file__).parent / "app_pages"
# page file, title, icon, the permission it needs (seller.scope.PERMISSIONS)
PAGE_LIST = [("clienteling.py", "Clienteling", ":material/person_search:", None),
             ("experiments.py", "Experiments", ":material/science:", "experiments"),
             ("activity.py", "Activity log", ":material/history:", "audit"),
             ("model.py", "Model", ":material/memory:", "model"),
             ("users.py", "Users", ":material/group:", "users")]


def pages(allowed=lambda permission: True) -> list:
    return [st.Page(PAGES / file, title=title, icon=icon, default=file == "clienteling.py")
            for file, title, icon, permission in PAGE_LIST if permission is None or allowed(permission)]


if not auth.signed_in():
    # registered, never run: a deep link (/experiments) then survives the sign-in's rerun
    st.navigation(pages(), position="hidden")
# nothing of the client book before this returns: it draws the sign-in form and stops otherwise
scope = auth.require_scope()
page = st.navigation(pages(scope.may))

with st.sidebar:
    auth.account_box(scope)
page.run()
