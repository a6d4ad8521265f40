"""The shipped Streamlit config keeps the protections on (DESIGN.md hostile input 25)."""
import tomllib
from pathlib import Path

from core.config import get_settings

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_streamlit_config_is_locked_down():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"]["enableCORS"] is True
    assert cfg["server"]["allowedHosts"] == ["localhost", "127.0.0.1"]
    assert cfg["client"]["showErrorDetails"] == "none"
    assert cfg["browser"]["gatherUsageStats"] is False


def test_settings_defaults_and_overrides(settings_env, tmp_path):
    s = get_settings()
    assert s.data_dir == tmp_path and s.database_url.startswith("sqlite:///")
    assert s.weights_dir == tmp_path / "weights" and s.max_pixels == 40_000_000
    settings_env(IMGLAB_MAX_PIXELS=1000, IMGLAB_DEVICE="cpu")
    assert get_settings().max_pixels == 1000 and get_settings().device == "cpu"
