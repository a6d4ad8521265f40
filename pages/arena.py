"""Arena: several models answer the same image side by side; blind A/B votes in rounds a teacher opens; a
preference leaderboard beside PSNR/SSIM/LPIPS. The view and the round live in the URL (?view=vote&round=3)."""
import streamlit as st

from ui.arena_views import VIEWS
from ui.state import device_picker, page_setup
from ui.url_state import keep_only, pick

page_setup()

st.title("Arena")
engine = device_picker()
view = pick("View", list(VIEWS), "view", "arena_view", format_func=lambda v: VIEWS[v][0])
keep_only(("view", "round"))
VIEWS[view][1](engine)
