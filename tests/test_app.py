"""The Streamlit app through streamlit.testing: picker, cards, votes into a real SQLite file."""
import os
import sqlite3

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from seller.data.dataset import load_sample  # noqa: E402
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


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("SELLER_DB_PATH", str(tmp_path / "feedback.db"))
    monkeypatch.delenv("SELLER_DB_URL", raising=False)
    monkeypatch.delenv("SELLER_DATA", raising=False)
    monkeypatch.setenv("SELLER_ASSOCIATE", "A-test")
    return tmp_path


def busiest_client(sample) -> str:
    return sample.events["client_id"].value_counts().index[0]


def open_client(client_id: str) -> AppTest:
    """The app opened on `client_id` (preselected: explaining a first default client would double
    the run time). The timeout is generous: generation shares 2 cores with everything else."""
    at = AppTest.from_file(MAIN, default_timeout=600)
    at.session_state["client_id"] = client_id
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="client_id").value == client_id
    return at


def notices(at) -> str:
    return " | ".join(e.value for e in [*at.info, *at.warning, *at.error])


def card_titles(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**")]


def test_client_search_filters_and_header(monkeypatch, env, sample, tiny_model_dir):
    monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))  # the picker needs no explanations
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
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
    assert (associate, client, item, vote) == ("A-test", client_id, item_id, 1)
    assert text.strip() and style in ("feature", "style", "occasion") and variant == style
    assert version and latency > 0
    name = sample.clients.set_index("client_id").loc[client_id, "display_name"]
    assert name not in " ".join(map(str, rows[0]))  # ids only, never the client's name

    at.button(key=f"down-{client_id}-{item_id}").click().run()  # a changed mind updates the same row
    with sqlite3.connect(env / "feedback.db") as conn:
        assert conn.execute("SELECT count(*), min(vote) FROM feedback").fetchone() == (1, -1)

    at.switch_page("app_pages/experiments.py").run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Votes"] == "1"


def test_unwritable_db_shows_error_and_still_recommends(monkeypatch, env, sample, tiny_model_dir):
    if not (REPO_ROOT / "models" / "sample" / "config.json").exists():
        monkeypatch.setenv("SELLER_MODEL", str(tiny_model_dir))  # recommendations without explanations
    blocker = env / "not_a_dir"
    blocker.write_text("a file where the database folder should be")
    monkeypatch.setenv("SELLER_DB_PATH", str(blocker / "feedback.db"))
    at = open_client(busiest_client(sample))
    errors = [e.value for e in at.error]
    assert any("Feedback is not being saved" in e and "not_a_dir" in e for e in errors), errors
    assert {m.label for m in at.metric} >= {"Tier", "Boutique", "Lifetime spend"}
    assert len(card_titles(at)) == 5
    assert all(b.disabled for b in at.button if str(b.key).startswith(("up-", "down-")))
    at.switch_page("app_pages/experiments.py").run()
    assert any("not_a_dir" in e.value for e in at.error)


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
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    at.switch_page("app_pages/model.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    # The speed metrics are server-wide (earlier tests in this process may have generated).
    assert {k: metrics[k] for k in ("Explanation model", "Recommender")} == {
        "Explanation model": "not installed", "Recommender": "Recommender"}
    hardware = at.dataframe[0].value
    assert hardware.set_index("").loc["CPU cores", "value"] == str(os.cpu_count())
