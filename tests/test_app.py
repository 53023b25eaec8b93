"""The Streamlit app through streamlit.testing: sign-in, picker, cards, votes into a real SQLite file."""
import os
import sqlite3
import time

import pytest

pytest.importorskip("streamlit")
from argon2 import PasswordHasher  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from seller.data.dataset import load_sample  # noqa: E402
from seller.feedback.store import FeedbackStore  # noqa: E402
from seller.feedback.users import AccountDirectory  # noqa: E402
from seller.paths import REPO_ROOT  # noqa: E402

MAIN = str(REPO_ROOT / "app" / "main.py")
NO_RECOMMENDER = "No recommender installed"
NO_EXPLAINER = "Explanation model not installed"


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def tiny_model_dir(sample, tmp_path_factory):
    """A model folder holding only a small, really trained recommender (no explainer): the app
    must show real recommendations and say the explanation model is not installed."""
    recommend = pytest.importorskip("seller.recommend", reason="the recommender needs torch")
    config = recommend.RecommenderConfig(d_model=16, n_layers=1, n_heads=1, use_text=False, epochs=1,
                                         max_minutes=1.0, valid_clients=20)
    folder = tmp_path_factory.mktemp("tiny_model")
    recommend.train_recommender(sample, config, log=lambda *a, **k: None).save_pretrained(folder / "recommender")
    return folder


PASSWORD = "correct horse battery"
GINZA = "Tokyo Ginza"


def make_accounts(db_path) -> None:
    """anna: associate of Tokyo Ginza; max: manager; root: admin (real argon2id, small parameters)."""
    store = FeedbackStore(f"sqlite:///{db_path}")
    directory = AccountDirectory(store, hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
    directory.add("anna", "associate", [GINZA], password=PASSWORD)
    directory.add("max", "manager", password=PASSWORD)
    directory.add("root", "admin", password=PASSWORD)
    store.dispose()


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("SELLER_DB_PATH", str(tmp_path / "feedback.db"))
    monkeypatch.delenv("SELLER_DB_URL", raising=False)
    monkeypatch.delenv("SELLER_DATA", raising=False)
    monkeypatch.delenv("SELLER_IDLE_MINUTES", raising=False)
    make_accounts(tmp_path / "feedback.db")
    return tmp_path


def busiest_client(sample) -> str:
    return sample.events["client_id"].value_counts().index[0]


def field(at, label):
    return next(t for t in at.text_input if t.label == label)


def sign_in(at, username: str, password: str = PASSWORD) -> AppTest:
    field(at, "Username").input(username)
    field(at, "Password").input(password)
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception, at.exception
    return at


def signed_in(username: str = "max", client_id: str | None = None, timeout: int = 180) -> AppTest:
    """The app after signing in through the form, on `client_id` when given (preselected:
    explaining a first default client would double the run time)."""
    at = AppTest.from_file(MAIN, default_timeout=timeout)
    if client_id is not None:
        at.session_state["client_id"] = client_id
    at.run()
    assert not at.exception, at.exception
    return sign_in(at, username)


def open_client(client_id: str, username: str = "max") -> AppTest:
    """The timeout is generous: generation shares 2 cores with everything else."""
    at = signed_in(username, client_id, timeout=600)
    assert at.selectbox(key="client_id").value == client_id
    return at


def page_text(at) -> str:
    """Everything the page holds, as the protobufs Streamlit would send to the browser."""
    out, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        if getattr(node, "proto", None) is not None:
            out.append(str(node.proto))
        stack.extend(getattr(node, "children", {}).values())
    return "\n".join(out)


def audit_rows(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT username, action, client_id, item_id FROM audit_events ORDER BY id").fetchall()


def notices(at) -> str:
    return " | ".join(e.value for e in [*at.info, *at.warning, *at.error])


def card_titles(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**")]


def test_client_search_filters_and_header(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))  # the picker needs no explanations
    at = signed_in("max")
    target = sample.clients.iloc[3]
    at.text_input(key="client_query").set_value(target["display_name"].split()[-1].lower()).run()
    options = at.selectbox(key="client_id").options
    assert any(target["client_id"] in o for o in options) and len(options) < len(sample.clients)
    at.text_input(key="client_query").set_value("").run()
    at.multiselect(key="tier_filter").set_value([target["tier"]]).run()
    tier_ids = set(sample.clients.loc[sample.clients["tier"] == target["tier"], "client_id"])
    assert {o.split(" · ")[-1] for o in at.selectbox(key="client_id").options} == tier_ids
    at.selectbox(key="client_id").set_value(target["client_id"]).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tier"] == target["tier"] and metrics["Boutique"] == target["home_boutique"]
    assert metrics["Lifetime spend"] != "" and "Last boutique visit" in metrics


def test_recommendations_render_without_explainer(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    at = open_client(busiest_client(sample))
    assert NO_EXPLAINER in notices(at) and NO_RECOMMENDER not in notices(at), notices(at)
    assert not [b for b in at.button if str(b.key).startswith("up-")]  # nothing to vote on
    titles = card_titles(at)
    assert len(titles) == 5, titles
    names = set(sample.items["name"])
    assert all(t.split("**")[1] in names for t in titles)
    assert len(at.get("plotly_chart")) == 1


@pytest.mark.slow
def test_vote_is_stored_and_counted(env, sample):
    client_id = busiest_client(sample)
    at = open_client(client_id)
    assert NO_EXPLAINER not in notices(at), notices(at)  # the shipped model must load
    ups = [b for b in at.button if str(b.key).startswith("up-")]
    assert len(ups) == 5
    item_id = ups[0].key.removeprefix(f"up-{client_id}-")
    ups[0].click().run()
    assert not at.exception, at.exception
    with sqlite3.connect(env / "feedback.db") as conn:
        rows = conn.execute("SELECT associate_id, client_id, item_id, vote, explanation, style, variant, "
                            "model_version, latency_ms FROM feedback").fetchall()
    assert len(rows) == 1
    associate, client, item, vote, text, style, variant, version, latency = rows[0]
    assert (associate, client, item, vote) == ("max", client_id, item_id, 1)  # the signed-in account
    assert text.strip() and style in ("feature", "style", "occasion") and variant == style
    assert version and latency > 0
    name = sample.clients.set_index("client_id").loc[client_id, "display_name"]
    assert name not in " ".join(map(str, rows[0]))  # ids only, never the client's name

    at.button(key=f"down-{client_id}-{item_id}").click().run()  # a changed mind updates the same row
    with sqlite3.connect(env / "feedback.db") as conn:
        assert conn.execute("SELECT count(*), min(vote) FROM feedback").fetchone() == (1, -1)
    rows = [r for r in audit_rows(env / "feedback.db") if r[0] == "max"]
    assert rows[0][:3] == ("max", "sign_in", None) and ("max", "open_client", client_id, None) in rows
    shown = {r[3] for r in rows if r[1] == "explanation_shown"}
    assert len(shown) == 5 and item_id in shown and all(r[2] == client_id for r in rows[1:])
    assert [r for r in rows if r[1] == "vote"] == [("max", "vote", client_id, item_id)] * 2

    at.switch_page("app_pages/experiments.py").run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Votes"] == "1"


def test_unwritable_db_refuses_sign_in_and_shows_no_client(monkeypatch, env, sample, tiny_model_dir):
    """Accounts live in the feedback database: without it nobody signs in (fail closed)."""
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    blocker = env / "not_a_dir"
    blocker.write_text("a file where the database folder should be")
    monkeypatch.setenv("SELLER_DB_PATH", str(blocker / "feedback.db"))
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("Sign-in is unavailable" in e and "not_a_dir" in e for e in errors), errors
    assert not at.text_input and not at.metric
    text = page_text(at)
    assert not [n for n in sample.clients["display_name"] if n in text]


def test_views_shape_client_data(sample):
    from app import views
    client_id = busiest_client(sample)
    history = views.client_events(sample.events, sample.items, client_id)
    assert history["timestamp"].is_monotonic_increasing and len(history) == (sample.events.client_id == client_id).sum()
    prices = sample.items.set_index("item_id")["price"]
    mine = sample.events[sample.events.client_id == client_id]
    expected = (prices[mine[mine.event_type == "purchase"].item_id].sum()
                - prices[mine[mine.event_type == "return"].item_id].sum())
    summary = views.spend_summary(history)
    assert summary["spend"] == pytest.approx(expected)
    assert summary["last_visit"] == mine[mine.channel == "boutique"].timestamp.max()
    found = views.filter_clients(sample.clients, client_id.lower(), [], [])
    assert found["client_id"].tolist() == [client_id]
    assert views.gate_frame({"complement": 0.7, "style": 0.3})["weight"].tolist() == [0.7, 0.3]
    assert views.gate_frame([[0.25, 0.75]])["expert"].tolist() == ["expert 0", "expert 1"]
    top = [(history["event_id"].iloc[-1], 0.6), (history["event_id"].iloc[0], 0.4)]
    table = views.weighing_events(history, top)
    assert table["weight"].tolist() == ["60%", "40%"]
    fig = views.timeline_figure(history, [top[0][0]], "Cited by the explanation")
    assert [t.name for t in fig.data][-1] == "Cited by the explanation" and len(fig.data[-1].x) == 1


def test_model_page_reports_versions_and_hardware(monkeypatch, env, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    at = signed_in("root")
    at.switch_page("app_pages/model.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    # The speed metrics are server-wide (earlier tests in this process may have generated).
    assert {k: metrics[k] for k in ("Explanation model", "Recommender")} == {
        "Explanation model": "not installed", "Recommender": "Recommender"}
    hardware = at.dataframe[0].value
    assert hardware.set_index("").loc["CPU cores", "value"] == str(os.cpu_count())


def test_signed_out_page_holds_no_client_name(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.session_state["client_id"] = busiest_client(sample)  # even a client left in session state
    at.query_params["client"] = busiest_client(sample)
    at.run()
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    text = page_text(at)
    assert "Sign in" in text and not [n for n in sample.clients["display_name"] if n in text]
    assert not [c for c in sample.clients["client_id"] if f'"{c}"' in text]
    assert not at.metric and not at.selectbox
    for wrong in ("nobody", "anna"):  # unknown user, wrong password: one clear message
        sign_in(at, wrong, "not the password")
        assert [e.value for e in at.error] == ["Unknown username or wrong password."]
        assert not at.metric
    sign_in(at, "anna smith;", PASSWORD)
    assert "Username may hold only" in at.error[0].value
    sign_in(at, "anna", "")
    assert at.error[0].value == "Enter your password."


def test_associate_reaches_only_their_boutiques_clients(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    clients = sample.clients.set_index("client_id")
    ginza = set(clients.index[clients["home_boutique"] == GINZA])
    other = busiest_client(sample) if clients.loc[busiest_client(sample), "home_boutique"] != GINZA \
        else next(c for c in clients.index if c not in ginza)
    at = signed_in("anna")
    # the picker: only Ginza's clients, and the boutique filter offers only Ginza
    assert {o.split(" · ")[-1] for o in at.selectbox(key="client_id").options} == ginza
    assert at.multiselect(key="boutique_filter").options == [GINZA]
    at.text_input(key="client_query").set_value(other).run()
    assert any("No client matches" in i.value for i in at.info)
    at.text_input(key="client_query").set_value("").run()
    # session state: a client id planted there is refused, not shown
    planted = signed_in("anna", client_id=other)
    assert any(f"Client {other} is not one of your boutiques' clients" in e.value for e in planted.error)
    assert planted.selectbox(key="client_id").value in ginza
    assert clients.loc[other, "display_name"] not in page_text(planted)
    # a URL parameter: the same
    fresh = signed_in("anna")
    fresh.query_params["client"] = other
    fresh.run()
    assert any(f"Client {other} is not one" in e.value for e in fresh.error)
    assert clients.loc[other, "display_name"] not in page_text(fresh)
    # pages above the role are not in the navigation at all
    for page in ("experiments", "activity", "model", "users"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            fresh.switch_page(f"app_pages/{page}.py")
    refused = [r for r in audit_rows(env / "feedback.db") if r[1] == "client_refused"]
    assert refused == [("anna", "client_refused", other, None)] * 2

    manager = signed_in("max")  # a manager opens the same client by the same URL parameter
    manager.query_params["client"] = other
    manager.run()
    assert not manager.error and manager.selectbox(key="client_id").value == other
    assert clients.loc[other, "display_name"] in [h.value for h in manager.header]
    assert ("max", "open_client", other, None) in audit_rows(env / "feedback.db")
    manager.switch_page("app_pages/experiments.py").run()
    assert not manager.exception, manager.exception
    assert "Votes" in {m.label for m in manager.metric}


def test_five_wrong_passwords_lock_the_username(monkeypatch, env, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    for _ in range(5):
        sign_in(at, "anna", "not the password")
    sign_in(at, "anna", PASSWORD)  # the right password, too late
    assert "locked after 5 failed sign-ins" in at.error[0].value and not at.metric
    sign_in(at, "max", PASSWORD)  # other usernames are not affected
    assert not at.error and at.metric


def test_idle_session_expires(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("SELLER_IDLE_MINUTES", "10")
    at = signed_in("max", busiest_client(sample))
    assert at.metric
    state = dict(at.session_state["_signed_in"])
    state["last_active"] = time.time() - 9 * 60  # not yet
    at.session_state["_signed_in"] = state
    at.run()
    assert at.metric
    state["last_active"] = time.time() - 10 * 60 - 1
    at.session_state["_signed_in"] = state
    at.run()
    assert not at.exception, at.exception
    assert any("ended after 10 minutes without activity" in i.value for i in at.info)
    assert not at.metric and [t.label for t in at.text_input] == ["Username", "Password"]
    assert sample.clients.set_index("client_id").loc[busiest_client(sample), "display_name"] not in page_text(at)
    assert "client_id" not in at.session_state  # the next person does not inherit the client
    assert ("max", "session_expired", None, None) in audit_rows(env / "feedback.db")


def test_sign_out_forgets_the_session(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    at = signed_in("anna")
    assert "Signed in as **anna** · associate · Tokyo Ginza" in [c.value for c in at.caption]
    next(b for b in at.button if b.label == "Sign out").click().run()
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"] and not at.metric
    assert "client_id" not in at.session_state


def test_no_marketing_consent_is_marked(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    clients = sample.clients
    without = clients.loc[~clients["consent_marketing"], "client_id"].iloc[0]
    with_consent = clients.loc[clients["consent_marketing"], "client_id"].iloc[0]
    at = signed_in("max", without)
    assert any("No marketing consent" in w.value for w in at.warning)
    at.selectbox(key="client_id").set_value(with_consent).run()
    assert not any("No marketing consent" in w.value for w in at.warning)
    outreach = next(b for b in at.get("download_button") if "Outreach list" in b.proto.label)
    assert f"({clients['consent_marketing'].sum()} consenting clients" in outreach.proto.label


def test_first_run_on_the_sample_makes_demo_accounts_printed_once(monkeypatch, tmp_path, capsys, sample,
                                                                 tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("SELLER_DB_PATH", str(tmp_path / "fresh.db"))
    monkeypatch.delenv("SELLER_DB_URL", raising=False)
    monkeypatch.delenv("SELLER_DATA", raising=False)
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    printed = capsys.readouterr().out
    assert "demo accounts (shown once, sample data only)" in printed
    passwords = {line.split()[0]: line.split()[2] for line in printed.splitlines() if line.startswith("  demo-")}
    assert set(passwords) == {"demo-admin", "demo-manager", "demo-tokyo", "demo-paris"}
    AppTest.from_file(MAIN, default_timeout=180).run()  # a second session: nothing printed again
    assert "demo-" not in capsys.readouterr().out
    sign_in(at, "demo-tokyo", passwords["demo-tokyo"])
    assert {o.split(" · ")[-1] for o in at.selectbox(key="client_id").options} == set(
        sample.clients.loc[sample.clients["home_boutique"] == GINZA, "client_id"])
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        hashes = [h for (h,) in conn.execute("SELECT password_hash FROM accounts")]
    assert len(hashes) == 4 and all(h.startswith("$argon2id$") for h in hashes)
    assert not set(passwords.values()) & set(hashes)

    # the same accounts on another client book: refused
    monkeypatch.setenv("SELLER_DATA", str(REPO_ROOT / "sample_data"))
    other = AppTest.from_file(MAIN, default_timeout=180)
    other.run()
    sign_in(other, "demo-manager", passwords["demo-manager"])
    assert "only on the shipped sample store" in other.error[0].value and not other.metric


def test_oidc_replaces_the_password_form_when_configured(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "seller", "client_secret": "s",
                          "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}
    at.run()
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Sign in with your company account"]
    assert not at.text_input and not at.metric
    assert not [n for n in sample.clients["display_name"] if n in page_text(at)]


def test_manager_reads_and_exports_the_activity_log(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    client_id = busiest_client(sample)
    signed_in("anna" if sample.clients.set_index("client_id").loc[client_id, "home_boutique"] == GINZA
              else "max", client_id)
    at = signed_in("max")
    at.switch_page("app_pages/activity.py").run()
    assert not at.exception, at.exception
    log = at.dataframe[0].value
    assert {"sign_in", "open_client"} <= set(log["action"]) and list(log.columns) == [
        "at", "username", "action", "client_id", "item_id", "detail"]
    assert not [n for n in sample.clients["display_name"] if n in log.to_csv()]  # ids only
    at.multiselect(key="audit_actions").set_value(["open_client"]).run()
    assert set(at.dataframe[0].value["action"]) == {"open_client"}
    export = next(b for b in at.get("download_button") if "activity log" in b.proto.label)
    assert export.proto.label == "Export the activity log (CSV)"


def test_admin_adds_an_account_on_the_users_page(monkeypatch, env, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))
    at = signed_in("root")
    at.switch_page("app_pages/users.py").run()
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value["username"]) == {"anna", "max", "root"}
    field(at, "New username").input("bea!")
    field(at, "Initial password").input(PASSWORD)
    next(b for b in at.button if b.label == "Add").click().run()
    assert "username 'bea!' is not allowed" in at.error[0].value
    field(at, "New username").input("bea")
    at.selectbox[0].set_value("associate")
    field(at, "Initial password").input(PASSWORD)
    next(b for b in at.button if b.label == "Add").click().run()
    assert "an associate needs at least one boutique" in at.error[0].value
    field(at, "New username").input("bea")
    at.multiselect[0].set_value([GINZA])
    field(at, "Initial password").input(PASSWORD)
    next(b for b in at.button if b.label == "Add").click().run()
    assert not at.error and "Account bea added." in [s.value for s in at.success]
    assert sign_in(AppTest.from_file(MAIN, default_timeout=180).run(), "bea").metric


def test_model_page_shows_where_the_shipped_models_weights_went(monkeypatch, env):
    from seller.llm.buffers import current_decision

    monkeypatch.delenv("SELLER_MODEL", raising=False)
    at = signed_in("root", timeout=600)
    at.switch_page("app_pages/model.py").run()
    assert not at.exception, at.exception
    hardware = at.dataframe[1].value.set_index("")["value"]
    assert "CPU_Mapped" in hardware["LLM weights in"] and "AVX2" in hardware["llama.cpp CPU features"]
    want = current_decision()
    assert hardware["llama.cpp extra buffer types"].startswith(f"{'on' if want.use_extra else 'off'} (auto: ")
    assert hardware["CPU"] and hardware["CPU AMX flags"]
