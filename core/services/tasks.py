"""What the pages need to know about the tasks, from the task registry (core.tasks): their names and titles in
the pages' order, which options a benchmark of a task takes, which Compare views its runs feed."""
from __future__ import annotations

from dataclasses import dataclass

from core.tasks import all_tasks, get_task


@dataclass(frozen=True)
class TaskInfo:
    name: str
    title: str
    viewable: bool  # the Compare page's image viewer can redraw its runs' outputs
    tables: frozenset[str]  # "per_class", "class_table", "methods"


def task_infos() -> list[TaskInfo]:
    return [TaskInfo(t.name, t.title, t.viewable, t.tables) for t in all_tasks()]


def task_names() -> list[str]:
    return [t.name for t in all_tasks()]


def tasks_with_table(table: str) -> tuple[str, ...]:
    """Tasks whose benchmark runs feed the Compare view `table`."""
    return tuple(t.name for t in all_tasks() if table in t.tables)


def viewable_tasks() -> tuple[str, ...]:
    return tuple(t.name for t in all_tasks() if t.viewable)


def benchmark_options(task: str, operation: str | None) -> tuple[str, ...]:
    """The benchmark parameters (besides batch size) that matter for `task`'s models of `operation`."""
    return get_task(task).options_for(operation)


def operation_for(task: str, dataset_task: str, dataset_operation: str | None) -> str | None:
    """The model operation that scores a dataset (an uploaded detection set with masks: instance segmentation)."""
    return get_task(task).operation_for(dataset_task, dataset_operation)
