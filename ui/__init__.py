"""Streamlit-side helpers shared by the pages (caching of engines, error display)."""
