"""Text from outside the app (URLs, file names, datasets, manifests, job messages) shown as plain text.

st.warning, st.error, st.caption, st.markdown and widget labels all render Markdown (links, bold, colours
`:red[..]`, LaTeX `$..$`, headings, lists) and turn bare URLs and e-mail addresses into live links. Streamlit has
no plain-text switch for them, so every ASCII punctuation character of outside text is backslash-escaped
(CommonMark allows that for all of them) and line breaks become spaces. The link-maker works on the decoded
text, after escapes, so an invisible WORD JOINER (U+2060) goes after "://", before the "." of "www." and
before "@": what was typed is what is shown, and nothing in it is clickable.
"""
from __future__ import annotations

import re
import string

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_BREAKS = re.compile(r"[\r\n\t\f\v\u2028\u2029]+")
_LINK_STARTS = re.compile(r"(://)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)
JOINER = "\u2060"


def plain(value: object, limit: int | None = None) -> str:
    """`value` as Markdown source that renders as exactly its text (cut to `limit` characters first)."""
    text = _BREAKS.sub(" ", str(value))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _LINK_STARTS.sub(lambda m: (m.group(1) or "") + JOINER, text)
    return _PUNCTUATION.sub(r"\\\1", text)
