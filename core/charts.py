"""Plotly figures over stored results (no Streamlit here)."""
from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from core.metrics import registry as metric_registry

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


def _bounded(name: str, values: pd.Series) -> bool:
    """An accuracy-like curve: a score between 0 and 1 by definition (so its axis is 0 to 1 as well)."""
    finite = values.dropna()
    return metric_registry.is_fraction(name) and bool(finite.between(0.0, 1.0).all())


def training_curves(points: pd.DataFrame, names: list[str], labels: dict[int, str] | None = None) -> go.Figure:
    """One line per (job, curve) over epochs; several jobs overlaid so their curves compare directly.
    Curves on very different scales (loss vs accuracy) go on a second y axis; accuracy-like curves get a 0-100%
    axis and losses one from 0, so a one-epoch curve (a single point) reads as a value, not a zoomed-in axis."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    shown = points[points["name"].isin(names)]
    present = [n for n in names if n in set(shown["name"])]
    losses = [n for n in present if "loss" in n]
    others = [n for n in present if n not in losses]
    single = shown["epoch"].nunique() <= 1
    for (job_id, name), grp in shown.groupby(["job_id", "name"], sort=True):
        grp = grp.sort_values("epoch")
        label = (labels or {}).get(int(job_id), f"job #{job_id}")
        fig.add_trace(go.Scatter(x=grp["epoch"], y=grp["value"], mode="lines+markers", name=f"{label}: {name}",
                                 marker=dict(size=10 if single else 6),
                                 line=dict(dash="dot" if name in losses else "solid")),
                      secondary_y=name not in losses and bool(losses))
    last = int(shown["epoch"].max()) if not shown.empty else 1
    fig.update_xaxes(title_text="epoch", dtick=1, range=[0.5, max(last, 1) + 0.5])
    metric_axis = bool(losses)  # the metrics' axis: the second one beside losses, else the only one
    bounded = bool(others) and all(_bounded(n, shown.loc[shown["name"] == n, "value"]) for n in others)
    if bounded:
        title = others[0].replace("_", " ") if len(others) == 1 else "score"
        fig.update_yaxes(range=[0, 1.05], tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0], tickformat=".0%",
                         title_text=title, secondary_y=metric_axis)
    if losses:
        values = shown.loc[shown["name"].isin(losses), "value"].dropna()
        low, top = (float(values.min()), float(values.max())) if not values.empty else (0.0, 0.0)
        loss_range = [min(0.0, low * 1.15), top * 1.15] if top > 0 else None
        fig.update_yaxes(title_text="loss", range=loss_range, secondary_y=False)
        if others and not bounded:
            fig.update_yaxes(title_text="validation metric", secondary_y=True)
    elif not bounded:
        fig.update_yaxes(title_text="value", secondary_y=False)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def sweep_bars(table: pd.DataFrame, columns: tuple[str, ...] = ("train", "validation", "test")) -> go.Figure:
    """Grouped bars: one group per optimizer (job), one bar per split."""
    fig = go.Figure()
    labels = [f"{o} (#{j})" for o, j in zip(table["optimizer"], table["job"])]
    for col in columns:
        if col in table and table[col].notna().any():
            fig.add_trace(go.Bar(name=col, x=labels, y=table[col], text=[f"{v:.1%}" if pd.notna(v) else "" for v in table[col]],
                                 textposition="auto"))
    fig.update_layout(barmode="group", yaxis=dict(title="accuracy", tickformat=".0%"), height=380,
                      margin=dict(l=10, r=10, t=30, b=10), title="train / validation / test accuracy per optimizer")
    return fig


def sweep_summary_bars(summary: pd.DataFrame) -> go.Figure:
    """Grouped bars of the mean accuracy per optimizer and split, error bars one standard deviation over the
    repeats (none for a single repeat)."""
    fig = go.Figure()
    for split, part in summary.groupby("split", sort=False):
        fig.add_trace(go.Bar(name=str(split), x=part["optimizer"], y=part["mean"],
                             error_y=dict(type="data", array=part["std"].fillna(0)),
                             customdata=part[["std", "repeats"]].to_numpy(),
                             hovertemplate="%{x}: %{y:.1%} ± %{customdata[0]:.1%} (sd), %{customdata[1]} repeats"
                                           "<extra></extra>"))
    fig.update_layout(barmode="group", yaxis=dict(title="accuracy", tickformat=".0%"), height=380,
                      margin=dict(l=10, r=10, t=30, b=10),
                      title="mean accuracy per optimizer over repeats (bars: ± one standard deviation)")
    return fig


def degradation_curves(points: pd.DataFrame, x_title: str, y_title: str, title: str) -> go.Figure:
    """One line per model: the metric at each corruption level (ImageNet-C style degradation curves)."""
    fig = go.Figure()
    for model, part in points.groupby("model", sort=False):
        part = part.sort_values("level")
        fig.add_trace(go.Scatter(x=part["level"], y=part["value"], mode="lines+markers", name=str(model),
                                 customdata=part[["run_id"]].to_numpy(),
                                 hovertemplate=f"{model}<br>{x_title}: %{{x:g}}<br>{y_title}: %{{y:.4g}}"
                                               "<br>run #%{customdata[0]}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=460,
                      margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def experiment_curve(summary: pd.DataFrame, arms: list[str], title: str, x_label: str, y_label: str,
                     log_x: bool = False) -> go.Figure:
    """Mean per arm against x with 95%-interval error bars (none for a single seed); every seed's value is in the
    hover text's count."""
    fig = go.Figure()
    for arm in arms:
        part = summary[summary["arm"] == arm].sort_values("x")
        if part.empty:
            continue
        upper = (part["ci_high"] - part["mean"]).fillna(0)
        lower = (part["mean"] - part["ci_low"]).fillna(0)
        fig.add_trace(go.Scatter(
            x=part["x"], y=part["mean"], mode="lines+markers", name=arm,
            error_y=dict(type="data", symmetric=False, array=upper, arrayminus=lower),
            customdata=part[["n", "std"]].to_numpy(),
            hovertemplate=f"{arm}<br>{x_label}: %{{x:.4g}}<br>mean %{{y:.2f}} ± %{{customdata[1]:.2f}} (sd), "
                          "%{customdata[0]} repeats<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=x_label, yaxis_title=y_label, height=460,
                      margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.2))
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def preference_figure(table: pd.DataFrame) -> go.Figure:
    """Bradley-Terry ratings with their 95% intervals, best at the top (models without a rating left out)."""
    df = table[table["rating"].notna()].iloc[::-1].copy()
    df["model"] = [html.escape(str(m)) for m in df["model"]]  # titles are people's text; Plotly renders tags in labels
    fig = go.Figure(go.Scatter(
        x=df["rating"], y=df["model"], mode="markers", marker=dict(size=11, color=TRAINED_COLOR),
        error_x=dict(type="data", symmetric=False, array=df["high"] - df["rating"], arrayminus=df["rating"] - df["low"]),
        hovertemplate="%{y}<br>rating %{x:.0f}<extra></extra>"))
    fig.update_layout(xaxis_title="preference rating (Elo points, 95% interval)", height=100 + 45 * len(df),
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig
