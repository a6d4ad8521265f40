"""Reference weights trained by this project, shipped in the repository (reference_weights/).

Each model has `<name>.safetensors` and `<name>.json`: the manifest holds the file's SHA-256, the full training
recipe (the Fine-tune job's parameters), the job's curves and summary, and the held-out benchmark scores.
`python -m bench.train_reference` writes them. A file whose hash differs from its manifest is refused: the
weights would no longer be the ones the manifest's numbers describe. Loading hashes the very bytes it
deserialises; the listing (`problem`) uses the hash cached by path, modification time and size.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from core.config import REFERENCE_DIR_ENV, get_settings
from core.models.hashing import file_sha256
from core.errors import InvalidCheckpoint, WeightsUnavailable

DIR_ENV = REFERENCE_DIR_ENV  # another folder of reference weights (tests, a retrained set)
ORIGIN = "trained by this project"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,59}$")
_WORD = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
_MAX_MANIFEST_BYTES = 2 << 20
_MAX_WEIGHTS_BYTES = 200 << 20


def reference_dir() -> Path:
    """IMGLAB_REFERENCE_DIR, else the repository's reference_weights/ (Settings.reference_dir)."""
    return get_settings().reference_dir


def _mismatch(name: str, actual: str, expected: str) -> str:
    return (f"the reference weights of {name} do not match their manifest (SHA-256 {actual[:12]}… instead of "
            f"{expected[:12]}…): the file was changed or damaged, so it is not used. Restore "
            f"reference_weights/{name}.safetensors from the repository or retrain it with "
            "`python -m bench.train_reference`")


@dataclass(frozen=True)
class ReferenceWeights:
    name: str
    path: Path
    manifest: dict

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def origin(self) -> str:
        return f"{ORIGIN} (reference_weights/{self.name}.safetensors)"

    def summary(self) -> str:
        """One line for the Models page and the pickers, built only from numbers and simple words of the
        manifest (it is shown on screen)."""
        held, job, recipe = self.manifest.get("held_out", {}), self.manifest.get("job", {}), self.manifest.get("recipe", {})
        scores = ", ".join(f"{k} {v:.4g}" for k, v in list(held.get("metrics", {}).items())[:6]
                           if _word(k) and _number(v))
        dataset = held.get("dataset", {}).get("name", "")
        where = f" on {dataset}" if _word(dataset) else ""
        steps, lr = job.get("steps"), recipe.get("lr")
        budget = ", ".join(part for part in (
            f"{steps} steps" if _number(steps) else "",
            f"{recipe['optimizer']} lr {lr:g}" if _word(recipe.get("optimizer")) and _number(lr) else "",
            f"{job['train_time_s'] / 60:.0f} min on {self.manifest['device']}"
            if _number(job.get("train_time_s")) and _word(self.manifest.get("device")) else "") if part)
        return f"{ORIGIN}: held-out {scores or 'scores not recorded'}{where}" + (f" ({budget})" if budget else "")

    def problem(self) -> str | None:
        """Why these weights cannot be used (hash mismatch), or None."""
        actual = file_sha256(self.path)
        return None if actual == self.sha256 else _mismatch(self.name, actual, self.sha256)

    def load(self) -> tuple[dict[str, torch.Tensor], str]:
        """The state dict and its SHA-256, both from one read of the file; WeightsUnavailable on a mismatch."""
        from safetensors.torch import load as load_safetensors

        if self.path.stat().st_size > _MAX_WEIGHTS_BYTES:
            raise WeightsUnavailable(self.name, f"reference_weights/{self.name}.safetensors is too large", "")
        data = self.path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != self.sha256:
            raise WeightsUnavailable(self.name, _mismatch(self.name, actual, self.sha256),
                                     "You can also run it with random weights, labelled untrained.")
        try:
            return load_safetensors(data), actual
        except Exception:  # noqa: BLE001 -- any parse error of a file that matches its hash is a broken release
            raise InvalidCheckpoint(f"The reference weights of {self.name} are not a readable safetensors file.") from None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _word(value) -> bool:
    return isinstance(value, str) and bool(_WORD.match(value))


def _valid(data) -> bool:
    if not isinstance(data, dict) or not re.fullmatch(r"[0-9a-f]{64}", str(data.get("sha256", ""))):
        return False
    for key in ("held_out", "job", "recipe"):
        if not isinstance(data.get(key, {}), dict):
            return False
    held = data.get("held_out", {})
    return isinstance(held.get("metrics", {}), dict) and isinstance(held.get("dataset", {}), dict)


@lru_cache(maxsize=128)
def _manifest(path: str, mtime_ns: int, size: int) -> dict | None:
    if size > _MAX_MANIFEST_BYTES:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.loads(fh.read(_MAX_MANIFEST_BYTES + 1))
    except (OSError, ValueError):
        return None
    return data if _valid(data) else None


def find_reference(name: str) -> ReferenceWeights | None:
    """The shipped reference weights of `name` (hash not yet checked), or None when there are none or their
    manifest is unreadable."""
    if not _NAME.match(name or ""):
        return None
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
