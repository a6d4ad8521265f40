"""What a user owns, on the pages that make it: their quotas, their uploaded datasets and their models, with
rename and delete for the owner (or an admin)."""
from __future__ import annotations

import streamlit as st

from core import services
from core.users import may_change
from ui.identity import current_user
from ui.state import guarded
from ui.text import plain


def quota_caption() -> None:
    usage = guarded(services.usage, current_user())
    if usage is not None:
        st.caption(plain(f"Your share of this server: {usage.words()}"))


def _done(fn, *args) -> bool:
    fn(*args)
    return True


def _manage(noun: str, items: list[tuple[str, str]], key: str, rename, delete) -> None:
    """A picker over the (id, label) `items` the user may change, with rename and (confirmed) delete."""
    flash = st.session_state.pop(f"{key}_flash", None)
    if flash:
        st.success(flash)
    if not items:
        st.caption(f"You have no {noun}s to manage yet.")
        return
    labels = dict(items)
    chosen = st.selectbox(f"{noun.capitalize()} to rename or delete", list(labels), key=f"{key}_pick",
                          format_func=labels.get)
    title = st.text_input("New title", key=f"{key}_title", max_chars=120)
    c1, c2 = st.columns(2)
    if c1.button("Rename", key=f"{key}_rename", disabled=not title.strip()):
        if guarded(_done, rename, chosen, title, current_user()):
            st.session_state[f"{key}_flash"] = f"Renamed to {plain(title.strip())}."
            st.rerun()
    if c2.button("Delete", key=f"{key}_delete", icon=":material/delete:"):
        st.session_state[f"{key}_confirm"] = chosen
    if st.session_state.get(f"{key}_confirm") == chosen:
        st.warning(f"Delete {plain(labels[chosen])} and its files? Runs already stored stay in the results.")
        if st.button("Yes, delete it", key=f"{key}_yes", type="primary"):
            st.session_state.pop(f"{key}_confirm", None)
            if guarded(_done, delete, chosen, current_user()):
                st.session_state[f"{key}_flash"] = f"Deleted {plain(labels[chosen])}."
                st.rerun()


def _by(owner: str | None, user) -> str:
    """Whose it is, when it is not the user's own (an admin sees everyone's)."""
    return "" if owner == user.name else f", by {owner}" if owner else ", shared (from before users were recorded)"


def uploads_manager(key: str = "own_uploads") -> None:
    """The user's uploaded datasets (an admin: everyone's)."""
    user = current_user()
    items = [(u.id, f"{u.label}, {u.bytes / 2**20:.1f} MB{_by(u.owner, user)}")
             for u in guarded(services.uploaded) or [] if may_change(user, u.owner)]
    _manage("dataset", items, key, services.rename_upload, services.delete_upload)


def models_manager(key: str = "own_models") -> None:
    """The checkpoints registered as models that the user may change (an admin: all of them)."""
    user = current_user()
    items = [(m.name, f"{m.title} ({m.name}, {m.size_mb} MB{_by(m.owner, user)})")
             for m in guarded(services.stored_models) or [] if may_change(user, m.owner)]
    _manage("model", items, key, services.retitle_model, services.delete_model)
