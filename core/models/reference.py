"""Reference weights trained by this project, shipped in the repository (reference_weights/).

Each model has `<name>.safetensors` and `<name>.json`: the manifest holds the file's SHA-256, the full training
recipe (the Fine-tune job's parameters), the job's curves and summary, and the held-out benchmark scores.
`python -m bench.train_reference` writes them. A file whose hash differs from its manifest is refused: the
weights would no longer be the ones the manifest's numbers describe.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.errors import InvalidCheckpoint

DIR_ENV = "IMGLAB_REFERENCE_DIR"  # another folder of reference weights (tests, a retrained set)
ORIGIN = "trained by this project"
_MAX_MANIFEST_BYTES = 2 << 20


def reference_dir() -> Path:
    configured = os.environ.get(DIR_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "reference_weights"


@dataclass(frozen=True)
class ReferenceWeights:
    name: str
    path: Path
    manifest: dict

    @property
    def sha256(self) -> str:
        return str(self.manifest.get("sha256", ""))

    def summary(self) -> str:
        """One line for the Models page: held-out scores and the training budget."""
        held = self.manifest.get("held_out", {})
        scores = ", ".join(f"{k} {_fmt(v)}" for k, v in held.get("metrics", {}).items())
        job = self.manifest.get("job", {})
        recipe = self.manifest.get("recipe", {})
        budget = f"{job.get('steps', '?')} steps, batch {recipe.get('batch_size', '?')}, {recipe.get('optimizer', '?')} " \
                 f"lr {recipe.get('lr', '?')}, {_fmt(job.get('train_time_s'))} s on {self.manifest.get('device', '?')}"
        where = held.get("dataset_title") or held.get("dataset", {}).get("name", "")
        return f"{ORIGIN}: held-out {scores} on {where} ({budget})"

    def verify(self) -> None:
        from core.models.weights import file_sha256

        actual = file_sha256(self.path)
        if actual != self.sha256:
            raise InvalidCheckpoint(
                f"The reference weights of {self.name} do not match their manifest (SHA-256 {actual[:12]}… instead "
                f"of {self.sha256[:12]}…): the file was changed or damaged, so it is not used. Restore "
                f"reference_weights/{self.name}.safetensors from the repository or retrain it with "
                "`python -m bench.train_reference`.")


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


@lru_cache(maxsize=128)
def _manifest(path: str, mtime_ns: int, size: int) -> dict | None:
    if size > _MAX_MANIFEST_BYTES:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("sha256"), str) else None


def find_reference(name: str) -> ReferenceWeights | None:
    """The shipped reference weights of `name` (not yet hash-checked), or None when there are none."""
    folder = reference_dir()
    meta, weights = folder / f"{name}.json", folder / f"{name}.safetensors"
    try:
        st = meta.stat()
    except OSError:
        return None
    manifest = _manifest(str(meta), st.st_mtime_ns, st.st_size)
    if manifest is None or not weights.is_file():
        return None
    return ReferenceWeights(name, weights, manifest)


def is_reference_file(path: Path) -> bool:
    try:
        return Path(path).resolve().parent == reference_dir().resolve() and Path(path).suffix == ".safetensors"
    except OSError:
        return False
