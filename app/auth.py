"""Who is using the app: sign-in, sign-out, idle expiry, and the signed-in person's ClientScope.

Local accounts (seller.feedback.users) are the default. When `.streamlit/secrets.toml` holds an
`[auth]` section, Streamlit's own OIDC sign-in (`st.login`) replaces the password form, and the
identity provider's email must be the username of an existing account (its role and boutiques
come from there). Nothing of the client book is drawn before `require_scope` has returned.
"""
from __future__ import annotations

import secrets
import time
from datetime import timedelta

import streamlit as st

from app import services
from seller import settings
from seller.feedback.audit import AuditLog
from seller.feedback.store import FeedbackStore, FeedbackStoreError, resolve_url
from seller.feedback.users import AccountDirectory, AccountError, AccountInfo, SignInError
from seller.scope import ClientScope

SIGNED_IN = "_signed_in"  # session state: {"username", "last_active" (epoch s)}
SCOPE = "_scope"  # session state: this run's ClientScope, for the pages
# first run on the sample store: (username, role, boutiques)
DEMO_ACCOUNTS = [("demo-admin", "admin", ()), ("demo-manager", "manager", ()),
                 ("demo-tokyo", "associate", ("Tokyo Ginza",)),
                 ("demo-paris", "associate", ("Paris Avenue Montaigne", "Paris Rue Saint-Honoré"))]


def idle_limit_s() -> float:
    """env `SELLER_IDLE_MINUTES`: minutes without interaction before a session signs out."""
    try:
        return 60 * settings.idle_minutes()
    except ValueError as e:
        st.error(str(e))
        st.stop()


def serving_sample() -> bool:
    return settings.data_dir() is None


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all
        return False


@st.cache_resource(show_spinner=False)
def _access(_store: FeedbackStore, url: str) -> tuple[AccountDirectory, AuditLog]:
    return AccountDirectory(_store), AuditLog(_store)


def access() -> tuple[AccountDirectory, AuditLog]:
    """The account directory and the audit log; without them nobody can sign in, so stop."""
    store = services.feedback_store()
    try:
        if store.value is None:
            raise FeedbackStoreError(store.notice)
        return _access(store.value, resolve_url())
    except FeedbackStoreError as e:
        st.error(f":material/error: Sign-in is unavailable: the account database cannot be opened. {e}")
        st.stop()


@st.cache_resource(show_spinner=False)
def _demo_accounts_made(_directory: AccountDirectory, url: str) -> bool:
    """First run on the sample store: make the demo accounts and print their passwords, once."""
    directory = _directory
    if directory.count():
        return False
    boutiques = set(services.dataset().clients["home_boutique"].dropna())
    made = []
    for username, role, homes in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(12)
        try:
            directory.add(username, role, homes, password=password, known_boutiques=boutiques,
                          sample_only=True, display_name=f"Demo {role}", actor="first-run")
        except AccountError:  # another server process made it first
            continue
        made.append(f"  {username:<14} {role:<10} {password}  {', '.join(homes) or 'all boutiques'}")
    if made:
        print("SELLER first run on the sample store: demo accounts (shown once, sample data only):",
              *made, "Reset one with: seller users set-password --username NAME --password-stdin",
              sep="\n", flush=True)
    return bool(made)


def signed_in() -> bool:
    """Whether this session holds a sign-in (still to be checked for idleness by require_scope)."""
    return SIGNED_IN in st.session_state


def require_scope() -> ClientScope:
    """The signed-in person's scope; otherwise the sign-in form is drawn and the run stops."""
    directory, log = access()
    if serving_sample():
        _demo_accounts_made(directory, resolve_url())
    account = _oidc_account(directory, log) if oidc_configured() else _local_account(directory, log)
    scope = ClientScope.of(services.dataset(), account)
    st.session_state[SCOPE] = scope
    _expire_when_idle()
    return scope


def scope(permission: str | None = None) -> ClientScope:
    """For pages: the scope the router established this run, when it grants `permission`."""
    current = st.session_state.get(SCOPE)
    if current is None or SIGNED_IN not in st.session_state:
        st.error("Sign in first.")
        st.stop()
    if permission is not None and not current.may(permission):
        st.error(f"Your role ({current.role}) does not open this page.")
        st.stop()
    return current


def _session_account(directory: AccountDirectory, log: AuditLog) -> AccountInfo | None:
    """The account of this session, unless it went idle, was disabled or removed meanwhile."""
    state = st.session_state.get(SIGNED_IN)
    if state is None:
        return None
    if time.time() - state["last_active"] > idle_limit_s():
        log.record(state["username"], "session_expired")
        sign_out(keep={"_expired": True})
        return None
    account = directory.get(state["username"])
    if account is None or account.disabled:
        sign_out()
        return None
    state["last_active"] = time.time()
    return account


def _local_account(directory: AccountDirectory, log: AuditLog) -> AccountInfo:
    account = _session_account(directory, log)
    if account is not None:
        return account
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.header("SELLER · Clienteling", anchor=False)
        if st.session_state.pop("_expired", False):
            st.info(f"Your session ended after {idle_limit_s() / 60:g} minutes without activity. "
                    "Sign in again.")
        with st.form("sign_in", clear_on_submit=True):
            username = st.text_input("Username", autocomplete="username")
            password = st.text_input("Password", type="password", autocomplete="current-password")
            submitted = st.form_submit_button("Sign in", type="primary")
        if submitted:
            try:
                account = directory.authenticate(username, password, serving_sample())
            except SignInError as e:
                st.error(e.message)
            except FeedbackStoreError as e:
                st.error(f":material/error: Sign-in could not be recorded. {e}")
            else:
                st.session_state[SIGNED_IN] = {"username": account.username, "last_active": time.time()}
                st.rerun()
        if serving_sample() and any(a.sample_only for a in directory.list()):
            st.caption("Sample store: on first run SELLER made demo accounts (" +
                       ", ".join(u for u, _, _ in DEMO_ACCOUNTS) + ") and printed their passwords once "
                       "in the terminal running `streamlit run`. Add your own with `seller users add`.")
    st.stop()


def _oidc_account(directory: AccountDirectory, log: AuditLog) -> AccountInfo:
    """Streamlit's OIDC sign-in; the provider's email names the SELLER account."""
    if not st.user.get("is_logged_in", False):
        _, middle, _ = st.columns([1, 2, 1])
        middle.header("SELLER · Clienteling", anchor=False)
        middle.button("Sign in with your company account", type="primary", on_click=st.login)
        st.stop()
    if (account := _session_account(directory, log)) is not None:
        return account
    if st.session_state.pop("_expired", False):  # idle: sign out of the provider's session too
        st.logout()
    email = str(st.user.get("email") or "").lower()
    account = directory.get(email) if email else None
    if account is None or account.disabled:
        st.error("No active SELLER account for this identity; ask an administrator to add it with "
                 "`seller users add --username <your email> --no-password ...`.")
        st.button("Sign out", on_click=st.logout)
        st.stop()
    log.record(account.username, "sign_in", detail="oidc")
    st.session_state[SIGNED_IN] = {"username": account.username, "last_active": time.time()}
    st.rerun()  # like a local sign-in: the router starts over signed in


def sign_out(keep: dict | None = None) -> None:
    """Forget everything of this session (its client, filters, widgets), not only the account."""
    st.session_state.clear()
    st.session_state.update(keep or {})


def _sign_out_clicked(username: str) -> None:
    access()[1].record(username, "sign_out")
    sign_out()
    if oidc_configured():
        st.logout()


def account_box(scope: ClientScope) -> None:
    """Sidebar: who is signed in, and the way out."""
    boutiques = ", ".join(scope.boutiques) if not scope.sees_all else "all boutiques"
    st.caption(f"Signed in as **{scope.username}** · {scope.role} · {boutiques}")
    st.button("Sign out", icon=":material/logout:", on_click=_sign_out_clicked, args=(scope.username,))


def _expire_when_idle() -> None:
    """A page left open is cleared once the idle limit passes, not only at the next click."""
    @st.fragment(run_every=timedelta(seconds=max(5.0, min(60.0, idle_limit_s() / 4))))
    def idle_watch() -> None:  # its own re-runs do not count as activity
        state = st.session_state.get(SIGNED_IN)
        if state is not None and time.time() - state["last_active"] > idle_limit_s():
            st.rerun()  # the whole app: the router signs the session out

    with st.sidebar:
        idle_watch()
