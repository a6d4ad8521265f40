"""Image-model lab core: models, engine, tasks, metrics and services. Never imports streamlit."""
