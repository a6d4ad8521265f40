"""Image Model Lab: a router over pages/ (st.navigation)."""
import streamlit as st

from ui.state import APP_ICON, app_routes, guarded, startup

# The tab icon is a file served by this app: a material icon or emoji would be fetched from a font/CDN server.
st.set_page_config(page_title="Image Model Lab", page_icon=str(APP_ICON), layout="wide")
guarded(startup)
app_routes()
page = st.navigation(
    {
        "Run": [st.Page("pages/playground.py", title="Playground", icon=":material/science:", default=True),
                st.Page("pages/benchmark.py", title="Benchmark", icon=":material/speed:"),
                st.Page("pages/finetune.py", title="Fine-tune", icon=":material/tune:"),
                st.Page("pages/experiments.py", title="Experiments", icon=":material/experiment:"),
                st.Page("pages/arena.py", title="Arena", icon=":material/how_to_vote:"),
                st.Page("pages/models.py", title="Models", icon=":material/model_training:")],
        "Analyse": [st.Page("pages/results.py", title="Results", icon=":material/table_chart:"),
                    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
                    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:")],
    }
)
page.run()
