"""Datasets as the Benchmark page sees them: the builtin/synthetic catalog and uploaded archives."""
from __future__ import annotations

from dataclasses import dataclass

from core.data import uploads
from core.errors import InvalidInput
from core.users import User, acting, require
from core.data.datasets import DatasetInfo, degradation_words, describe, list_datasets, spec_from_name
from core.config import get_settings
from core.services.quotas import storing, upload_room
from core.tasks import get_task

_SOURCES = {"upload": "uploaded", "builtin": "sample photo", "sample": "sample photo"}


def dataset_title(name: str | None, stored: str | None = None) -> str:
    """What a stored dataset name means, in words: builtin sets from their spec, Playground inputs as
    'camera (sample photo), noise σ 30', uploads by the title stored with them. Outside text: show it plain."""
    if not name:
        return stored or "no dataset"
    spec = spec_from_name(name)
    if spec is not None:
        return describe(spec)
    if ":" in name and not name.startswith("upload("):  # a Playground input: '<kind>:<file>[+n][|degradation]'
        kind, rest = name.split(":", 1)
        source, _, degradation = rest.partition("|")
        first, plus, more = source.rpartition("+")
        text = f"{first} and {more} more" if plus and more.isdigit() else source
        text += f" ({_SOURCES.get(kind, kind)})"
        params = dict(p.split("=", 1) for p in degradation.split(",") if "=" in p)
        words = degradation_words(params.get("type", ""), params)
        return text + (", " + words if words else "")
    return stored or name


@dataclass(frozen=True)
class UploadSummary:
    id: str
    title: str
    task: str
    operation: str | None
    items: int
    categories: tuple[str, ...]
    report: tuple[str, ...]
    owner: str | None = None  # who uploaded it (None: from before owners were kept)
    bytes: int = 0  # as stored

    @property
    def label(self) -> str:
        return f"{self.title} ({self.items} images, {self.task}{', ' + self.operation if self.operation else ''})"


def _summary(ds, owner: str | None) -> UploadSummary:
    return UploadSummary(ds.spec["id"], ds.title, ds.task, ds.operation, len(ds.samples), tuple(ds.categories or ()),
                         ds.report, owner, uploads.folder_bytes(uploads.uploads_root() / ds.spec["id"]))


def catalog(task: str | None = None) -> list[DatasetInfo]:
    return list_datasets(task)


def upload_dataset(data: bytes, filename: str, operation: str | None = None, user: User | None = None) -> UploadSummary:
    """Stored for the uploader, within their dataset storage quota."""
    user = acting(user)
    with storing(user):
        stored = uploads.save_upload(data, filename, operation, owner=user.name, room_bytes=upload_room(user))
    return _summary(stored, user.name)


def delete_upload(upload_id: str, user: User | None = None) -> None:
    """The dataset's files go; runs already stored on it stay (with its title)."""
    entry = uploads.manifest_of(upload_id)
    require(acting(user), entry.get("owner"), f"delete the dataset {entry.get('title', upload_id)}")
    uploads.delete_upload(upload_id)


def rename_upload(upload_id: str, title: str, user: User | None = None) -> None:
    entry = uploads.manifest_of(upload_id)
    require(acting(user), entry.get("owner"), f"rename the dataset {entry.get('title', upload_id)}")
    if not (title or "").strip():
        raise InvalidInput("Give the dataset a title.")
    uploads.rename_upload(upload_id, title.strip())


def uploaded(task: str | None = None) -> list[UploadSummary]:
    """From the manifests written at upload time (no image is decoded to list them)."""
    out = []
    for entry in uploads.list_uploads():
        if "task" not in entry:  # extraction never finished: not a usable dataset
            continue
        summary = UploadSummary(entry["id"], entry["title"], entry["task"], entry.get("operation"), entry["items"],
                                tuple(entry.get("categories", ())), tuple(entry.get("report", ())), entry.get("owner"),
                                int(entry.get("bytes") or 0))
        if task is None or get_task(task).lists_upload(summary.task, bool(entry.get("has_masks"))):
            out.append(summary)
    return out


def dataset_upload_mb() -> int:
    """The largest dataset archive the app reads, in MB (the uploader states it)."""
    return get_settings().max_dataset_bytes // 2**20
