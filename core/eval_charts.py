"""Plotly figures of the Compare page: grouped metric bars, per-image spread, quality vs cost with the Pareto
front, PR curves and confusion matrices (no Streamlit here)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.charts import UNTRAINED_COLOR, model_label
from core.tasks.outputs import ConfusionMatrix, PRCurve

LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))


def grouped_metric_bars(summary: pd.DataFrame, title: str) -> go.Figure:
    """One group per model, one bar per metric (mean over runs, min-max whiskers); untrained models' names say so."""
    df = summary.assign(label=[model_label(m, w) for m, w in zip(summary["model"], summary["weights"])])
    fig = go.Figure()
    for metric, grp in df.groupby("metric", sort=False):
        fig.add_trace(go.Bar(
            name=metric, x=grp["label"], y=grp["mean"],
            error_y=dict(type="data", symmetric=False, array=grp["max"] - grp["mean"], arrayminus=grp["mean"] - grp["min"]),
            customdata=grp[["runs", "infinite"]].to_numpy(),
            hovertemplate=f"%{{x}}<br>{metric} %{{y:.4g}}<br>runs %{{customdata[0]}} (infinite: %{{customdata[1]}})<extra></extra>",
        ))
    untrained = sorted({lbl for lbl, w in zip(df["label"], df["weights"]) if w == "random"})
    fig.update_layout(barmode="group", title=title, height=440, **LAYOUT)
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    if untrained:
        fig.update_xaxes(tickfont=dict(color="#333"))
        fig.add_annotation(text="untrained: " + ", ".join(untrained), showarrow=False, xref="paper", yref="paper",
                           x=0, y=1.07, font=dict(color=UNTRAINED_COLOR))
    return fig


def spread_figure(values: pd.DataFrame, metric: str, kind: str = "box", title: str | None = None) -> go.Figure:
    """Per-image distribution of `metric` per model, as box or violin plots with every image as a point."""
    fig = go.Figure()
    finite = values[np.isfinite(values["value"].astype(float))]
    for model, grp in finite.groupby("model", sort=True):
        common = dict(y=grp["value"], name=model, text=grp["image"], hovertemplate="%{text}: %{y:.4g}<extra>" + model + "</extra>")
        if kind == "violin":
            fig.add_trace(go.Violin(box_visible=True, meanline_visible=True, points="all", **common))
        else:
            fig.add_trace(go.Box(boxpoints="all", jitter=0.4, boxmean=True, **common))
    fig.update_layout(title=title or f"{metric} per image", yaxis_title=metric, height=440, showlegend=False,
                      margin=LAYOUT["margin"])
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def pareto_scatter(points: pd.DataFrame, x_title: str, y_title: str, log_x: bool = False) -> go.Figure:
    """Quality (y) against cost (x), one marker per model; the Pareto front joined by a line."""
    fig = go.Figure()
    colors = [UNTRAINED_COLOR if u else ("#2ca02c" if p else "#1f77b4") for u, p in zip(points["untrained"], points["pareto"])]
    labels = [model_label(m, "random" if u else "") for m, u in zip(points["model"], points["untrained"])]
    fig.add_trace(go.Scatter(x=points["x"], y=points["y"], mode="markers+text", text=labels, textposition="top center",
                             marker=dict(size=11, color=colors), name="models",
                             hovertemplate="%{text}<br>" + x_title + " %{x:.4g}<br>" + y_title + " %{y:.4g}<extra></extra>"))
    front = points[points["pareto"]].sort_values("x")
    if len(front):
        fig.add_trace(go.Scatter(x=front["x"], y=front["y"], mode="lines", name="Pareto front",
                                 line=dict(color="#2ca02c", dash="dash", shape="hv")))
    fig.update_layout(title=f"{y_title} vs {x_title} (Pareto front in green)", xaxis_title=x_title, yaxis_title=y_title,
                      height=460, **LAYOUT)
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def pr_figure(curves: dict[str, PRCurve], title: str) -> go.Figure:
    """Precision-recall curve per class at IoU 0.5 (as stored with a detection run)."""
    fig = go.Figure()
    for name, c in sorted(curves.items()):
        if c.recall:
            fig.add_trace(go.Scatter(x=c.recall, y=c.precision, mode="lines", name=name, customdata=c.score or None,
                                     hovertemplate=f"{name}<br>recall %{{x:.3f}}<br>precision %{{y:.3f}}"
                                                   "<br>score ≥ %{customdata:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis=dict(title="recall", range=[0, 1.02]), yaxis=dict(title="precision", range=[0, 1.02]),
                      height=440, **LAYOUT)
    return fig


def confusion_figure(confusion: ConfusionMatrix, title: str, normalize: bool = True) -> go.Figure:
    """Rows: true class, columns: predicted class; row-normalised (recall on the diagonal) or counts."""
    labels = [str(label) for label in confusion.labels]
    return count_matrix_figure(np.asarray(confusion.matrix, float), labels, labels, title, normalize, "images")


def operating_point_figure(curve: pd.DataFrame, chosen: tuple[float, float, float], best: tuple[float, float, float],
                           title: str) -> go.Figure:
    """Micro PR curve over all classes at one IoU threshold, with the chosen point and the max-F1 point marked;
    each point is (recall, precision, score threshold)."""
    fig = go.Figure(go.Scatter(x=curve["recall"], y=curve["precision"], mode="lines", name="all classes",
                               customdata=curve[["score threshold", "F1"]].to_numpy(),
                               hovertemplate="recall %{x:.3f}<br>precision %{y:.3f}<br>score ≥ %{customdata[0]:.3f}"
                                             "<br>F1 %{customdata[1]:.3f}<extra></extra>"))
    for (r, p, s), name, symbol in ((best, "max F1", "star"), (chosen, "chosen point", "circle")):
        fig.add_trace(go.Scatter(x=[r], y=[p], mode="markers", name=f"{name} (score ≥ {s:.2f})",
                                 marker=dict(size=14, symbol=symbol, line=dict(width=1, color="black"))))
    fig.update_layout(title=title, xaxis=dict(title="recall", range=[0, 1.02]), yaxis=dict(title="precision", range=[0, 1.02]),
                      height=440, **LAYOUT)
    return fig


def count_matrix_figure(m: np.ndarray, rows: list[str], columns: list[str], title: str, normalize: bool = True,
                        unit: str = "images") -> go.Figure:
    """A heatmap of counts (rows: true, columns: predicted), row-normalised or as counts; category axes, so every
    label gets its tick, even "0".."9"."""
    z = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
    text = [[f"{v:.0%}" if normalize else f"{int(v)}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=columns, y=rows, colorscale="Blues", text=text, texttemplate="%{text}",
                               customdata=m, hovertemplate=f"true %{{y}}<br>predicted %{{x}}<br>%{{customdata:.0f}} {unit}"
                                                           "<extra></extra>",
                               zmin=0, zmax=1 if normalize else None))
    fig.update_yaxes(autorange="reversed", title="true class", type="category", tickmode="array", tickvals=rows,
                     ticktext=rows, dtick=1, automargin=True)
    longest = max(map(len, columns), default=0)
    fig.update_xaxes(title="predicted class", tickangle=-45 if longest > 6 else 0, type="category", tickmode="array",
                     tickvals=columns, ticktext=columns, dtick=1, automargin=True)
    fig.update_layout(title=title, height=max(360, 40 * len(rows) + 140 + 6 * longest), margin=LAYOUT["margin"])
    return fig


def model_bars(table: pd.DataFrame, column: str, y_title: str, title: str, higher_is_better: bool | None) -> go.Figure:
    """One bar per model (the `column` value of each row), best first; untrained models in red and named so."""
    df = table[table[column].notna()].copy()
    if higher_is_better is not None:
        df = df.sort_values(column, ascending=not higher_is_better)
    labels = [model_label(m, w) for m, w in zip(df["model"], df["weights"])]
    fig = go.Figure(go.Bar(
        x=labels, y=df[column].astype(float), customdata=df[["run_id", "runs"]].to_numpy(),
        marker_color=[UNTRAINED_COLOR if w == "random" else "#1f77b4" for w in df["weights"]],
        hovertemplate="%{x}<br>" + y_title + " %{y:.4g}<br>run #%{customdata[0]} (newest of %{customdata[1]})<extra></extra>"))
    fig.update_layout(title=title, yaxis_title=y_title, height=440, margin=LAYOUT["margin"])
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig
