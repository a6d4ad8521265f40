"""Safe extraction of uploaded dataset archives (zip).

Refused before anything is written: not a zip, too many entries (counted from the end-of-central-directory
record and a walk over the central directory's headers, before zipfile builds its index), encrypted members,
absolute or `..` paths, symlinks and other special files. Only members the caller accepts (images,
annotations) are written; the others are listed, never extracted. While writing, the bytes actually
decompressed are counted (the sizes a zip declares are not trusted): a member over its own cap is dropped,
and extraction stops at the total cap with the partial folder removed. Members are written under a fresh
temporary folder that is renamed into place only when complete.
"""
from __future__ import annotations

import io
import shutil
import stat
import struct
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

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


_EOCD, _EOCD64, _LOCATOR64, _CENTRAL = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07", b"PK\x01\x02"


def count_entries(data: bytes, limit: int) -> int:
    """Entries of a zip from its end records, checked before zipfile parses the index (a 1M-entry index costs
    over a GB as ZipInfo objects). The count the record declares (ZIP64 too) is refused when over `limit`;
    then the central directory's headers are walked, without keeping anything, so a record understating the
    count is caught too. Returns the count; raises InvalidArchive."""
    not_zip = InvalidArchive("The upload is not a readable zip archive.")
    end = data.rfind(_EOCD, max(0, len(data) - 22 - 65535))
    if end < 0 or len(data) - end < 22:
        raise not_zip
    declared, cd_size, cd_offset = struct.unpack_from("<HII", data, end + 10)
    record = end
    loc = end - 20
    if loc >= 0 and data[loc:loc + 4] == _LOCATOR64:  # ZIP64: the real numbers are in the zip64 end record
        (rec64,) = struct.unpack_from("<Q", data, loc + 8)
        record = loc - 56 if data[loc - 56:loc - 52] == _EOCD64 else rec64
        if record < 0 or data[record:record + 4] != _EOCD64:
            raise not_zip
        declared, cd_size, cd_offset = struct.unpack_from("<QQQ", data, record + 32)
    too_many = f"The archive holds {{}} entries; the limit is {limit}. Split it into smaller zips."
    if declared > limit:
        raise InvalidArchive(too_many.format(declared))
    pos, stop, count = record - cd_size, record, 0  # as zipfile: the directory ends where the end record starts
    if pos < 0:
        raise not_zip
    while pos + 46 <= stop and data[pos:pos + 4] == _CENTRAL:
        count += 1
        if count > limit:
            raise InvalidArchive(too_many.format(f"more than {limit}"))
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        pos += 46 + name_len + extra_len + comment_len
    return count


def extract_zip(data: bytes, dest_root: Path, name: str,
                accept: Callable[[PurePosixPath], int | None] | None = None) -> tuple[Path, list[str]]:
    """Extract `data` into dest_root/name (replacing nothing: an existing folder is returned as is).
    `accept(path)` gives a member's byte cap, or None to leave it out (never written). Returns the folder
    and what was left out, in words."""
    settings = get_settings()
    if len(data) > settings.max_dataset_bytes:
        raise InvalidArchive(f"The archive is {len(data) / 2**20:.1f} MiB; the limit is "
                             f"{settings.max_dataset_bytes / 2**20:.0f} MiB (IMGLAB_MAX_DATASET_MB).")
    count_entries(data, settings.max_archive_entries)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise InvalidArchive("The upload is not a readable zip archive.") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > settings.max_archive_entries:
            raise InvalidArchive(f"The archive holds {len(infos)} entries; the limit is {settings.max_archive_entries}.")
        plan: list[tuple[zipfile.ZipInfo, PurePosixPath, int]] = []
        left_out: list[str] = []
        folders: list[PurePosixPath] = []  # of left-out files: kept (empty), so a class folder still shows
        for info in infos:
            if info.flag_bits & 0x1:
                raise InvalidArchive("The archive is encrypted; upload an unencrypted zip.")
            rel = _member_path(info)
            if rel is None:
                continue
            cap = settings.max_extract_bytes if accept is None else accept(rel)
            if cap is None:
                left_out.append(f"skipped {str(rel)[:120]}: not an accepted image or annotation file")
                folders.append(rel.parent)
            elif info.file_size > cap:
                left_out.append(f"skipped {str(rel)[:120]}: larger than the {cap / 2**20:.0f} MiB a file may be")
                folders.append(rel.parent)
            else:
                plan.append((info, rel, cap))
        if not plan:
            raise InvalidArchive("The archive holds no image or annotation files.")
        final = dest_root / name
        if final.exists():
            return final, []
        dest_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_root))
        try:
            for folder in folders:
                (tmp / folder).mkdir(parents=True, exist_ok=True)
            written = 0
            for info, rel, cap in plan:
                target = (tmp / rel).resolve()
                if not target.is_relative_to(tmp.resolve()):
                    raise InvalidArchive(f"The member {info.filename[:80]!r} would be written outside the dataset folder.")
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    member = 0
                    with zf.open(info) as src, open(target, "xb") as dst:
                        while chunk := src.read(CHUNK):
                            written += len(chunk)
                            member += len(chunk)
                            if written > settings.max_extract_bytes:
                                raise InvalidArchive(
                                    f"The archive expands beyond {settings.max_extract_bytes / 2**20:.0f} MiB "
                                    "(IMGLAB_MAX_EXTRACT_MB); extraction stopped and the partial files were removed.")
                            if member > cap:  # its declared size lied: drop it, keep going
                                break
                            dst.write(chunk)
                    if member > cap:
                        target.unlink()
                        left_out.append(f"skipped {str(rel)[:120]}: larger than the {cap / 2**20:.0f} MiB a file may be")
                except FileExistsError:
                    raise InvalidArchive(f"The archive holds {info.filename[:80]!r} twice.") from None
                # NotImplementedError: zipfile's answer to an unsupported compression method
                except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
                    raise InvalidArchive(f"The member {info.filename[:80]!r} could not be read ({type(exc).__name__}).") from None
            try:
                tmp.rename(final)
            except OSError:  # another upload of the same archive won the race
                shutil.rmtree(tmp, ignore_errors=True)
            return final, left_out
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
