"""Datasets as the Benchmark page sees them: the builtin/synthetic catalog and uploaded archives."""
from __future__ import annotations

from dataclasses import dataclass

from core.data import uploads
from core.data.datasets import PHOTO_SETS, DatasetInfo, list_datasets


@dataclass(frozen=True)
class UploadSummary:
    id: str
    title: str
    task: str
    operation: str | None
    items: int
    categories: tuple[str, ...]
    report: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.title} ({self.items} images, {self.task}{', ' + self.operation if self.operation else ''})"


def _summary(ds) -> UploadSummary:
    return UploadSummary(ds.spec["id"], ds.title, ds.task, ds.operation, len(ds.samples), tuple(ds.categories or ()),
                         ds.report)


def catalog(task: str | None = None) -> list[DatasetInfo]:
    return list_datasets(task)


def upload_dataset(data: bytes, filename: str, operation: str | None = None) -> UploadSummary:
    return _summary(uploads.save_upload(data, filename, operation))


def uploaded(task: str | None = None) -> list[UploadSummary]:
    """From the manifests written at upload time (no image is decoded to list them)."""
    out = []
    for entry in uploads.list_uploads():
        if "task" not in entry:  # extraction never finished: not a usable dataset
            continue
        summary = UploadSummary(entry["id"], entry["title"], entry["task"], entry.get("operation"), entry["items"],
                                tuple(entry.get("categories", ())), tuple(entry.get("report", ())))
        instance_ok = task == "segmentation" and summary.task == "detection" and entry.get("has_masks")
        if task is None or summary.task == task or instance_ok:
            out.append(summary)
    return out
