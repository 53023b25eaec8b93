"""Users: the accounts that may sign in, their roles and boutiques (admins only)."""
import pandas as pd
import streamlit as st

from app import auth, services
from seller.feedback.accounts import ROLES
from seller.feedback.store import FeedbackStoreError
from seller.feedback.users import AccountError

scope = auth.scope("users")
directory, _ = auth.access()
st.header("Users", anchor=False)
try:
    accounts = directory.list()
except FeedbackStoreError as e:
    st.error(f":material/error: {e}")
    st.stop()
st.dataframe(pd.DataFrame([{"username": a.username, "name": a.display_name, "role": a.role,
                            "boutiques": ", ".join(a.boutiques) or "all", "disabled": a.disabled,
                            "demo (sample only)": a.sample_only, "last sign-in": a.last_sign_in_at}
                           for a in accounts]), hide_index=True, width="stretch")


def attempt(change, done: str) -> None:
    try:
        change()
        st.success(done)
    except (AccountError, FeedbackStoreError) as e:
        st.error(str(e))


add, manage = st.columns(2)
with add.form("add_user", clear_on_submit=True):
    st.subheader("Add an account", anchor=False)
    username = st.text_input("New username")
    display_name = st.text_input("Display name")
    role = st.selectbox("Role", ROLES)
    known = sorted(services.dataset().clients["home_boutique"].dropna().unique())
    boutiques = st.multiselect("Boutiques", known, help="An associate sees these boutiques' clients.")
    password = st.text_input("Initial password", type="password")
    if st.form_submit_button("Add", type="primary"):
        attempt(lambda: directory.add(username, role, boutiques, password=password,
                                      display_name=display_name or None, known_boutiques=known,
                                      actor=scope.username), f"Account {username.strip().lower()} added.")
with manage.form("manage_user", clear_on_submit=True):
    st.subheader("Change an account", anchor=False)
    target = st.selectbox("Account", [a.username for a in accounts])
    new_password = st.text_input("New password (leave empty to keep)", type="password")
    enabled = st.radio("Status", ["keep", "disable", "enable"], horizontal=True)
    if st.form_submit_button("Apply") and target:
        if new_password:
            attempt(lambda: directory.set_password(target, new_password, actor=scope.username),
                    f"Password of {target} changed.")
        if enabled != "keep":
            attempt(lambda: directory.set_disabled(target, enabled == "disable", actor=scope.username),
                    f"Account {target} {enabled}d.")
