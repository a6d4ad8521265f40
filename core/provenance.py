"""Code and library versions stored with every run."""
from __future__ import annotations

import platform
import subprocess
from functools import lru_cache

from core.config import REPO_ROOT

APP_VERSION = "0.1.0"


@lru_cache(maxsize=1)
def code_version() -> str:
    """`git describe`-like: commit hash (+"-dirty") when run from a checkout, else the app version."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return f"v{APP_VERSION}"


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    import numpy
    import timm
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "none",
    }
