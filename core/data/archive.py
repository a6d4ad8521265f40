"""Safe extraction of uploaded dataset archives (zip).

Refused before anything is written: not a zip, too many entries, encrypted members, absolute or `..`
paths, symlinks and other special files. While writing, the bytes actually decompressed are counted (the
sizes a zip declares are not trusted), and extraction stops at the cap; the partial folder is removed.
Members are written under a fresh temporary folder that is renamed into place only when complete.
"""
from __future__ import annotations

import io
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from core.config import get_settings
from core.errors import InvalidInput

CHUNK = 1 << 16


class InvalidArchive(InvalidInput):
    pass


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The relative path a member will take, or None for a directory entry; raises on hostile names."""
    raw = info.filename
    name = raw.replace("\\", "/")
    if "\x00" in name:
        raise InvalidArchive("The archive holds a member name with a NUL byte; refused.")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise InvalidArchive(f"The archive holds an absolute path ({raw[:80]!r}); refused, nothing was extracted.")
    if any(part == ".." for part in path.parts):
        raise InvalidArchive(f"The archive holds a path that leaves its folder ({raw[:80]!r}); refused, nothing was extracted.")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise InvalidArchive(f"The archive holds a symbolic link ({raw[:80]!r}); refused, nothing was extracted.")
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvalidArchive(f"The archive holds a special file ({raw[:80]!r}); refused.")
    if info.is_dir():
        return None
    parts = [p for p in path.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def extract_zip(data: bytes, dest_root: Path, name: str) -> Path:
    """Extract `data` into dest_root/name (replacing nothing: an existing folder is returned as is)."""
    settings = get_settings()
    if len(data) > settings.max_dataset_bytes:
        raise InvalidArchive(f"The archive is {len(data) / 2**20:.1f} MiB; the limit is "
                             f"{settings.max_dataset_bytes / 2**20:.0f} MiB (IMGLAB_MAX_DATASET_MB).")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise InvalidArchive("The upload is not a readable zip archive.") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > settings.max_archive_entries:
            raise InvalidArchive(f"The archive holds {len(infos)} entries; the limit is {settings.max_archive_entries}.")
        plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in infos:
            if info.flag_bits & 0x1:
                raise InvalidArchive("The archive is encrypted; upload an unencrypted zip.")
            rel = _member_path(info)
            if rel is not None:
                plan.append((info, rel))
        if not plan:
            raise InvalidArchive("The archive holds no files.")
        final = dest_root / name
        if final.exists():
            return final
        dest_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_root))
        try:
            written = 0
            for info, rel in plan:
                target = (tmp / rel).resolve()
                if not target.is_relative_to(tmp.resolve()):
                    raise InvalidArchive(f"The member {info.filename[:80]!r} would be written outside the dataset folder.")
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(target, "xb") as dst:
                        while chunk := src.read(CHUNK):
                            written += len(chunk)
                            if written > settings.max_extract_bytes:
                                raise InvalidArchive(
                                    f"The archive expands beyond {settings.max_extract_bytes / 2**20:.0f} MiB "
                                    "(IMGLAB_MAX_EXTRACT_MB); extraction stopped and the partial files were removed.")
                            dst.write(chunk)
                except FileExistsError:
                    raise InvalidArchive(f"The archive holds {info.filename[:80]!r} twice.") from None
                # NotImplementedError: zipfile's answer to an unsupported compression method
                except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
                    raise InvalidArchive(f"The member {info.filename[:80]!r} could not be read ({type(exc).__name__}).") from None
            try:
                tmp.rename(final)
            except OSError:  # another upload of the same archive won the race
                shutil.rmtree(tmp, ignore_errors=True)
            return final
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
