"""Clienteling: pick a client, read their history, present recommendations with explanations.

Everything of the client book comes through the signed-in person's ClientScope."""
import pandas as pd
import streamlit as st

from app import auth, services, views
from seller.data.schema import EXPLANATION_STYLES
from seller.feedback.store import FeedbackStoreError, Vote
from seller.scope import has_consent

K = 5  # cards per client: what an associate can present in one conversation

scope = auth.scope()
_, audit_log = auth.access()
data = services.dataset()
store = services.feedback_store()
if store.notice:
    st.error(f":material/error: Feedback is not being saved. {store.notice}")


def audit(action: str, **fields) -> None:
    try:
        audit_log.record(scope.username, action, **fields)
    except FeedbackStoreError as e:
        st.error(f":material/error: The activity log could not be written. {e}")


def refuse(client_id: str) -> None:
    """A client asked for by URL or left in session state that this scope does not reach."""
    st.error(f":material/block: Client {client_id} is not one of your boutiques' clients.")
    audit("client_refused", client_id=str(client_id)[:64])


# -- client picker ----------------------------------------------------------------------------
clients = scope.clients
with st.sidebar:
    outreach = scope.outreach_clients()
    st.download_button(f"Outreach list ({len(outreach)} consenting clients, CSV)", outreach.to_csv(index=False),
                       file_name="seller_outreach.csv", mime="text/csv", icon=":material/campaign:",
                       on_click=audit, args=("export_outreach",), kwargs={"detail": f"{len(outreach)} clients"},
                       help="Your clients who consented to marketing, as ids; the others are never listed.")
# a deep link (?client=C005) opens that client, when the scope reaches it
linked = st.query_params.get("client")
if linked and linked != st.session_state.get("_linked_client"):
    st.session_state["_linked_client"] = linked
    if scope.contains(linked):
        st.session_state["client_id"] = linked
    else:
        refuse(linked)
wanted = st.session_state.get("client_id")
if wanted is not None and not scope.contains(wanted):
    refuse(wanted)
    del st.session_state["client_id"]
search, tier, boutique = st.columns([2, 1, 1])
query = search.text_input("Search clients", placeholder="Name or client id", key="client_query")
tiers = tier.multiselect("Tier", sorted(clients["tier"].dropna().unique()), key="tier_filter")
boutiques = boutique.multiselect("Boutique", sorted(clients["home_boutique"].dropna().unique()),
                                 key="boutique_filter")
shown = views.filter_clients(clients, query, tiers, boutiques)
if shown.empty:
    st.info("No client matches this search." if len(clients) else "Your boutiques have no clients in this data.")
    st.stop()
labels = {row.client_id: views.client_label(row._asdict()) for row in shown.itertuples(index=False)}
if st.session_state.get("client_id") not in labels:  # filtered out: the picker starts afresh
    st.session_state.pop("client_id", None)
client_id = st.selectbox(f"Client ({len(shown)} of {len(clients)})", list(labels),
                         format_func=labels.get, key="client_id")
client = scope.client(client_id)
if st.session_state.get("_opened_client") != client_id:
    st.session_state["_opened_client"], st.session_state["_shown_explanations"] = client_id, set()
    audit("open_client", client_id=client_id)
shown_text = views.shown_text
history = views.client_events(scope.events(client_id), data.items, client_id)
summary = views.spend_summary(history)

# -- header -----------------------------------------------------------------------------------
st.header(shown_text(client.get("display_name"), client_id), anchor=False)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Tier", shown_text(client.get("tier")))
c2.metric("Boutique", shown_text(client.get("home_boutique")))
c3.metric("Lifetime spend", views.money(summary["spend"], summary["currency"]))
last = summary["last_visit"]
c4.metric("Last boutique visit", last.strftime("%d %b %Y") if last is not None else "—")
if not has_consent(client.get("consent_marketing")):
    st.warning(":material/do_not_disturb_on: **No marketing consent.** This client is left out of "
               "outreach lists: present in person only, do not send these suggestions.")

# -- recommendations --------------------------------------------------------------------------
rec_model = services.recommender()
explainer = services.explainer()
if rec_model.value is None:
    st.warning(f":material/info: {rec_model.notice}")
    recs = []
else:
    recs = scope.guard(rec_model.value).recommend(client_id, k=K)
if explainer.value is None:
    st.info(f":material/info: {explainer.notice}")

experiment = services.experiment()
assigned = experiment.assign(scope.username, client_id)
choice = st.segmented_control(
    "Explanation style", ["experiment", *EXPLANATION_STYLES], default="experiment", key="style_choice",
    format_func=lambda s: f"Experiment: {assigned}" if s == "experiment" else s.capitalize())
style = assigned if choice in (None, "experiment") else choice
variant = assigned if choice in (None, "experiment") else "manual"

items = data.items.set_index("item_id")
st.subheader("Timeline", anchor=False)
focus = None
if recs:
    focus = st.columns([2, 3])[0].selectbox(
        "Highlight the events behind", [r.item_id for r in recs], key=f"focus-{client_id}",
        format_func=lambda i: items.loc[i, "name"])
timeline = st.empty()


# the timeline highlights what the focused card's explanation cites (or, before it is written,
# the events that weighed most): drawn now, redrawn once a new explanation has been written
def draw_timeline(explained: dict) -> None:
    if focus in explained:
        cited, label = list(explained[focus].cited_event_ids), "Cited by the explanation"
    elif focus is not None:
        cited, label = [e for e, _ in next(r for r in recs if r.item_id == focus).top_events], "Weighed most"
    else:
        cited, label = [], ""
    with timeline:
        if history.empty:
            st.caption("No events recorded for this client.")
        else:
            st.plotly_chart(views.timeline_figure(history, cited, label), width="stretch",
                            config={"displayModeBar": False})


drawn_with = {}
if focus is not None and explainer.value is not None:
    cached = services.cached_explanation(explainer.value, client_id, focus, style)
    if cached is not None:
        drawn_with[focus] = cached
draw_timeline(drawn_with)

st.subheader("Recommendations", anchor=False)
votes = {}
if store.value is not None:
    try:
        votes = store.value.votes_of(scope.username, client_id)
    except FeedbackStoreError as e:
        st.error(f":material/error: {e}")


def cast(vote: Vote) -> None:
    try:
        audit_log.vote(vote)  # the vote and its audit row, in one transaction
        st.toast("Thank you: feedback saved.", icon=":material/check:")
    except FeedbackStoreError as e:
        st.session_state["vote_error"] = str(e)


if err := st.session_state.pop("vote_error", None):
    st.error(f":material/error: Vote not saved. {err}")

# cards first (item facts at once), then explanations: cached ones straight away, the new ones
# decoded together as parallel sequences and streamed into their cards (the first card's words first)
slots, texts = {}, {}
for rec in recs:
    item = items.loc[rec.item_id]
    with st.container(border=True, key=f"card-{rec.item_id}"):
        facts, slots[rec.item_id] = st.columns([2, 5])
        facts.markdown(f"**{item['name']}**  \n{shown_text(item.get('maison'), '')}")
        facts.caption(" · ".join(v for v in (item.get("category"), item.get("color"), item.get("material"))
                                 if isinstance(v, str) and v))
        if pd.notna(item.get("price")):
            facts.markdown(views.money(item["price"], item.get("currency") or ""))
        texts[rec.item_id] = slots[rec.item_id].empty()

explained, failed = {}, {}
if explainer.value is not None and recs:
    model = scope.guard(explainer.value)
    missing = []
    for rec in recs:
        cached = services.cached_explanation(model, client_id, rec.item_id, style)
        if cached is None:
            missing.append(rec.item_id)
            texts[rec.item_id].caption("Writing…")
        else:
            explained[rec.item_id] = cached
            texts[rec.item_id].markdown(cached.text)
    try:
        if missing:
            explained.update(services.stream_explanations(
                model, client_id, missing, style, lambda item_id, text: texts[item_id].markdown(text)))
            for item_id in missing:
                texts[item_id].markdown(explained[item_id].text)
    except Exception as e:  # a failed generation is reported on its cards; the rest of the page stays
        for item_id in missing:
            if item_id not in explained:
                failed[item_id] = f"{type(e).__name__}: {e}"
                texts[item_id].error(f"Explanation failed for item {item_id}: {failed[item_id]}")
    # on record: which explanations this person was shown, once per opening of the client
    seen = st.session_state.setdefault("_shown_explanations", set())
    new = [(i, e.model_version) for i, e in explained.items() if (i, style, e.model_version) not in seen]
    if new:
        audit_rows = [dict(client_id=client_id, item_id=i, detail=f"{style} {m}"[:255]) for i, m in new]
        try:
            audit_log.record_many(scope.username, "explanation_shown", audit_rows)
            seen.update((i, style, m) for i, m in new)
        except FeedbackStoreError as e:
            st.error(f":material/error: The activity log could not be written. {e}")

for rec in recs:
    exp = explained.get(rec.item_id)
    slot = slots[rec.item_id]
    if explainer.value is None:
        texts[rec.item_id].caption("Explanation unavailable: the explanation model is not installed.")
    if exp is not None:
        basis = views.rests_on(history, exp.cited_event_ids)
        label = exp.label
        # a claim the catalogue cannot confirm (e.g. a colour on a piece known only by name) is said so
        unchecked = "Could not check: " + "; ".join(exp.unchecked_claims) if exp.unchecked_claims else ""
        if basis or label or unchecked:
            slot.caption(" · ".join(p for p in (basis, label, unchecked) if p))
    with slot.expander("Why", icon=":material/insights:"):
        if exp is not None:
            st.caption("Adapter experts (gate weights)")
            st.bar_chart(views.gate_frame(exp.gate_weights), x="expert", y="weight",
                         horizontal=True, height=160, color="#8C6A3F")
        weighed = views.weighing_events(history, rec.top_events)
        if len(weighed):
            st.caption("History events that weighed most")
            st.dataframe(weighed, hide_index=True, width="stretch")
        else:
            st.caption("No history events weighed on this recommendation.")
    if exp is not None:
        current = votes.get((rec.item_id, style, exp.model_version))
        vote = dict(associate_id=scope.username, client_id=client_id, item_id=rec.item_id,
                    style=style, variant=variant, explanation=exp.text, model_version=exp.model_version,
                    latency_ms=1000 * exp.latency_s if exp.latency_s is not None else None)
        up, down, _ = slot.columns([1, 1, 8])
        # keyed by client too: while a newly picked client's page runs, the previous client's
        # cards are still on screen, and their buttons must never pass for the new client's
        up.button("", icon=":material/thumb_up:", key=f"up-{client_id}-{rec.item_id}", help="Helpful explanation",
                  type="primary" if current == 1 else "secondary", disabled=store.value is None,
                  on_click=cast, args=(Vote(**vote, vote=1),))
        down.button("", icon=":material/thumb_down:", key=f"down-{client_id}-{rec.item_id}",
                    help="Unhelpful explanation", type="primary" if current == -1 else "secondary",
                    disabled=store.value is None, on_click=cast, args=(Vote(**vote, vote=-1),))

if focus in explained and focus not in drawn_with:
    draw_timeline(explained)
