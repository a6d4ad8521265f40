"""Plotly figures over stored results (no Streamlit here)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

UNTRAINED_COLOR, TRAINED_COLOR = "#d62728", "#1f77b4"


def model_label(model: str, weights_status: str) -> str:
    return f"{model} (untrained)" if weights_status == "random" else model


def metric_bar(summary: pd.DataFrame, metric: str) -> go.Figure:
    """Mean of `metric` per model with min-max whiskers; untrained models in red and labelled so."""
    df = summary.copy()
    df["label"] = [model_label(m, w) for m, w in zip(df["model"], df["weights"])]
    hib = df["higher_is_better"].dropna()
    better = None if hib.empty else bool(hib.iloc[0])
    df = df.sort_values("mean", ascending=not better if better is not None else True, na_position="last")
    conventions = sorted({c for c in df["convention"].dropna() if c})
    fig = go.Figure(
        go.Bar(
            x=df["label"], y=df["mean"],
            error_y=dict(type="data", symmetric=False, array=df["max"] - df["mean"], arrayminus=df["mean"] - df["min"]),
            marker_color=[UNTRAINED_COLOR if w == "random" else TRAINED_COLOR for w in df["weights"]],
            customdata=df[["runs", "infinite"]].to_numpy(),
            hovertemplate="%{x}<br>mean %{y:.4g}<br>runs %{customdata[0]} (infinite: %{customdata[1]})<extra></extra>",
        )
    )
    arrow = {True: " (higher is better)", False: " (lower is better)", None: ""}[better]
    title = f"{metric}{arrow}" + (f" — {'; '.join(conventions)}" if conventions else "")
    fig.update_layout(title=title, yaxis_title=metric, height=420, margin=dict(l=10, r=10, t=50, b=10))
    return fig
