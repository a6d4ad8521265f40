"""File hashes for weight provenance (SHA-256), cached by path, modification time and size.

The cache is for provenance and display only: code that decides whether to load a file hashes the very bytes
it loads (core.models.reference.ReferenceWeights.load)."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=64)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = Path(path).stat()
    return _sha256_cached(str(path), st.st_mtime_ns, st.st_size)
