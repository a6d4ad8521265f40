"""Widgets whose choice lives in the URL query params, so a copied link reproduces the view; and the CSV/JSON
export of any table a view shows."""
from __future__ import annotations

import json
from typing import Any
from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st

from ui.state import notice, opened_from_link
from ui.text import plain


def _warn_unknown(label: str, raw: str) -> None:
    """Only a link someone opened is reported: a value the app itself left in the URL (say the task of the
    previous Compare view, which the new view does not offer) is replaced silently."""
    if opened_from_link():
        notice(f"{plain(label)} in this link: “{plain(raw, 200)}”. Not among the choices here (not in the store, or "
               "not shown by this view), so the default is shown instead.")


def pick(label: str, options: Sequence[Any], param: str, key: str, format_func: Callable[[Any], str] = str,
         default: int = 0, sidebar: bool = False) -> Any:
    """A select box kept in ?param=; a value in the link that is not an option is reported and ignored."""
    options = list(options)
    raw = st.query_params.get(param)
    match = [i for i, o in enumerate(options) if str(o) == raw]
    if raw is not None and not match:
        _warn_unknown(label, raw)
    where = st.sidebar if sidebar else st
    value = where.selectbox(label, options, index=match[0] if match else min(default, max(len(options) - 1, 0)),
                            key=key, format_func=format_func)
    if value is not None:
        st.query_params[param] = str(value)
    return value


def pick_step(label: str, options: Sequence[Any], param: str, key: str, default: Any,
              format_func: Callable[[Any], str] = str) -> Any:
    """A select slider kept in ?param= (a value in the link that is not a step is reported and ignored)."""
    options = list(options)
    raw = st.query_params.get(param)
    match = [o for o in options if str(o) == raw or _same_number(o, raw)]
    if raw is not None and not match:
        _warn_unknown(label, raw)
    value = st.select_slider(label, options, value=match[0] if match else default, key=key, format_func=format_func)
    st.query_params[param] = str(value)
    return value


def _same_number(option: Any, raw: str | None) -> bool:
    """0.50 in a link is the step 0.5."""
    try:
        return isinstance(option, float) and raw is not None and abs(float(raw) - option) < 1e-9
    except ValueError:
        return False


def pick_fraction(label: str, param: str, key: str, default: float, step: float = 0.01) -> float:
    """A slider over [0, 1] kept in ?param= (rounded to the step; a link's value outside it is reported)."""
    raw = st.query_params.get(param)
    value = default
    if raw is not None:
        try:
            parsed = float(raw)
        except ValueError:
            parsed = float("nan")
        if 0.0 <= parsed <= 1.0:
            value = round(round(parsed / step) * step, 6)
        else:
            _warn_unknown(label, raw)
    chosen = float(st.slider(label, 0.0, 1.0, value, step, key=key))
    st.query_params[param] = f"{chosen:g}"
    return chosen


def pick_many(label: str, options: Sequence[Any], param: str, key: str, default: Sequence[Any] = (),
              format_func: Callable[[Any], str] = str, limit: int = 12) -> list:
    """A multiselect kept in ?param=a,b,c (unknown entries of a link are reported and dropped)."""
    options = list(options)
    by_text = {str(o): o for o in options}
    raw = st.query_params.get(param)
    wanted = [p for p in (raw or "").split(",") if p] if raw is not None else None
    chosen = [by_text[p] for p in wanted if p in by_text][:limit] if wanted is not None else list(default)
    if wanted and len(chosen) < len(wanted):
        _warn_unknown(label, ",".join(p for p in wanted if p not in by_text))
    value = st.multiselect(label, options, default=chosen, key=key, format_func=format_func, max_selections=limit)
    st.query_params[param] = ",".join(str(v) for v in value)
    return value


def keep_only(params: Sequence[str]) -> None:
    """Drop query params another view left behind, so the link names only what this view uses."""
    for name in list(st.query_params.keys()):
        if name not in params:
            del st.query_params[name]


def to_json(df: pd.DataFrame) -> str:
    """Records with ISO dates; +/-inf written as the strings "inf"/"-inf" (JSON has no infinity)."""
    def clean(v):
        if isinstance(v, float):
            if v != v:
                return None
            if v in (float("inf"), float("-inf")):
                return "inf" if v > 0 else "-inf"
        if hasattr(v, "isoformat"):
            return v.isoformat()
        if hasattr(v, "item"):
            return clean(v.item())
        return v
    return json.dumps([{k: clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")], indent=1)


# What a spreadsheet takes as the start of a formula (OWASP, "CSV Injection"), full-width forms included; leading
# spaces, tabs and line breaks are skipped by spreadsheets before they look.
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_SKIPPED = " \t\r\n\u00a0"


def spreadsheet_safe(text: str) -> str:
    """`text` as a spreadsheet cell that stays text: one that would start a formula gets a leading apostrophe, which
    Excel and LibreOffice hide."""
    return "'" + text if text.lstrip(_SKIPPED)[:1] in _FORMULA_START else text


def to_csv(df: pd.DataFrame) -> bytes:
    """The table as a CSV for spreadsheets: UTF-8 with a byte-order mark (without it Excel reads σ or é as two
    letters each), and every text cell and column name that a spreadsheet would run as a formula made text. A
    dataset, class or file name is chosen by whoever uploaded it, and the person who opens the export may be someone
    else. Our own rather than defusedcsv, which judges a cell by its text: it would turn -0.5 into text too, and it
    misses a formula behind a leading space. Numbers are left as they are; the JSON download is the exact data."""
    types = pd.api.types
    columns = {}
    for i in range(df.shape[1]):  # by position: a name may repeat
        values = df.iloc[:, i]
        if not (types.is_numeric_dtype(values) or types.is_datetime64_any_dtype(values)):
            values = values.astype(object).map(lambda v: spreadsheet_safe(v) if isinstance(v, str) else v)
        columns[i] = values.reset_index(drop=True)
    safe = pd.DataFrame(columns)
    safe.columns = [spreadsheet_safe(c) if isinstance(c, str) else c for c in df.columns]
    return safe.to_csv(index=False).encode("utf-8-sig")


def export_buttons(df: pd.DataFrame, name: str, key: str) -> None:
    """CSV and JSON downloads of exactly the table shown."""
    left, right, _ = st.columns([1, 1, 4])
    left.download_button("CSV", to_csv(df), f"{name}.csv", "text/csv", key=f"{key}_csv",
                         icon=":material/download:")
    right.download_button("JSON", to_json(df), f"{name}.json", "application/json", key=f"{key}_json",
                          icon=":material/data_object:")
