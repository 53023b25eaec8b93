"""Activity log: who opened which client, which explanations they saw, how they voted (ids only)."""
from datetime import datetime, time, timezone

import streamlit as st

from app import auth
from seller.feedback import audit
from seller.feedback.store import FeedbackStoreError

scope = auth.scope("audit")
_, log = auth.access()
st.header("Activity log", anchor=False)
st.caption("Every sign-in, opened client, shown explanation and vote, with its time (UTC). "
           "Ids only: usernames, client and item ids, never a client's name.")
since = st.date_input("Since", value=None, key="audit_since", help="Leave empty for the whole log.")
try:
    frame = log.frame(datetime.combine(since, time.min, timezone.utc) if since else None)
except FeedbackStoreError as e:
    st.error(f":material/error: {e}")
    st.stop()
who, what, client = st.columns(3)
users = who.multiselect("Username", sorted(frame["username"].unique()), key="audit_users")
actions = what.multiselect("Action", list(audit.ACTIONS), key="audit_actions")
client_id = client.text_input("Client id", key="audit_client").strip()
if users:
    frame = frame[frame["username"].isin(users)]
if actions:
    frame = frame[frame["action"].isin(actions)]
if client_id:
    frame = frame[frame["client_id"] == client_id]
st.metric("Rows", len(frame))
st.dataframe(frame.iloc[::-1], hide_index=True, width="stretch")
st.download_button("Export the activity log (CSV)", audit.to_csv(frame), file_name="seller_activity.csv",
                   mime="text/csv", icon=":material/download:", on_click=log.record,
                   args=(scope.username, "export_audit"), kwargs={"detail": f"{len(frame)} rows"})
