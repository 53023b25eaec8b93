"""Experiments: thumbs-up rates per explanation style, their uncertainty, and what to test next."""
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import auth, services
from app.views import BRONZE, GOLD, INK, SLATE
from seller.feedback import experiments as ex
from seller.feedback.store import FeedbackStoreError

auth.scope("experiments")
st.header("Explanation-style experiment", anchor=False)
experiment = services.experiment()
st.caption(f"Experiment **{experiment.name}**: each (associate, client) pair is assigned a style "
           "by a deterministic hash; styles an associate picks by hand are recorded as `manual`.")
st.dataframe(pd.DataFrame({"variant": experiment.variants, "traffic share": experiment.shares}),
             hide_index=True, width=420, column_config={"traffic share": st.column_config.NumberColumn(format="percent")})

store = services.feedback_store()
if store.value is None:
    st.error(f":material/error: {store.notice}")
    st.stop()
try:
    votes = store.value.votes()
except FeedbackStoreError as e:
    st.error(f":material/error: {e}")
    st.stop()

a, b, c = st.columns(3)
a.metric("Votes", len(votes))
b.metric("Associates", votes["associate_id"].nunique())
c.metric("Thumbs-up rate", f"{(votes['vote'] > 0).mean():.0%}" if len(votes) else "—")
if votes.empty:
    st.info("No feedback yet: votes on the Clienteling page appear here.")
    st.stop()

in_test = votes[votes["variant"].isin(experiment.variants)]
rates = ex.variant_rates(votes)
st.subheader("Thumbs-up rate per variant (Wilson 95% CI)", anchor=False)
fig = go.Figure(go.Bar(
    x=rates["variant"], y=rates["rate"], marker_color=BRONZE, text=rates["votes"].map("n = {}".format),
    textposition="inside", insidetextanchor="start", textfont=dict(color="white"),
    error_y=dict(type="data", symmetric=False, array=rates["ci_high"] - rates["rate"],
                 arrayminus=rates["rate"] - rates["ci_low"], color=INK)))
fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis=dict(range=[0, 1], tickformat=".0%"),
                  paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
st.dataframe(rates, hide_index=True, column_config={
    k: st.column_config.NumberColumn(format="percent") for k in ("rate", "ci_low", "ci_high")})

result = ex.compare_variants(in_test)
if result is None:
    st.caption("A test needs votes on at least two experiment variants.")
else:
    verdict = "differ" if result.p_value < 0.05 else "show no significant difference"
    st.markdown(f"**{result.method}** over {', '.join(result.variants)}: statistic "
                f"{result.statistic:.3f}, p = {result.p_value:.4f}: the rates {verdict} at the 5% level.")

st.subheader("Sample size", anchor=False)
s1, s2, s3, s4 = st.columns(4)
baseline = s1.number_input("Baseline rate", 0.01, 0.99, float(min(max((in_test["vote"] > 0).mean()
                           if len(in_test) else 0.6, 0.05), 0.95)), step=0.01, format="%.2f")
uplift = s2.number_input("Uplift to detect (points)", 0.5, 40.0, 5.0, step=0.5) / 100
alpha = s3.number_input("Significance α", 0.001, 0.2, 0.05, step=0.01, format="%.3f")
power = s4.number_input("Power", 0.5, 0.99, 0.8, step=0.05)
try:
    n = ex.sample_size_per_variant(baseline, uplift, alpha, power)
    st.markdown(f"**{n:,} votes per variant** ({n * len(experiment.variants):,} in all) to detect "
                f"{baseline:.0%} → {baseline + uplift:.0%}.")
except ValueError as e:
    st.warning(str(e))

st.subheader("Rate over time", anchor=False)
freq = st.segmented_control("Period", ["D", "W", "MS"], default="D", key="period",
                            format_func={"D": "Day", "W": "Week", "MS": "Month"}.get) or "D"
over = ex.rate_over_time(votes, freq=freq)
trend = go.Figure([go.Scatter(x=g["period"], y=g["cumulative_rate"], name=v, mode="lines+markers",
                              customdata=g[["votes", "rate"]],
                              hovertemplate="%{x|%d %b %Y}: cumulative %{y:.0%} (period: %{customdata[1]:.0%} "
                                            "of %{customdata[0]})<extra>" + v + "</extra>")
                   for v, g in over.groupby("variant")])
trend.update_layout(height=280, margin=dict(l=10, r=10, t=10, b=10), yaxis=dict(range=[0, 1], tickformat=".0%"),
                    paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                    colorway=[BRONZE, SLATE, INK, GOLD], legend=dict(orientation="h", y=1.1))
st.plotly_chart(trend, width="stretch", config={"displayModeBar": False})

st.download_button("Export votes (CSV)", ex.to_csv(votes), file_name="seller_feedback.csv",
                   mime="text/csv", icon=":material/download:")
