"""The task registry: task name -> the Task object that does everything task-specific (core.tasks.base.Task)."""
from __future__ import annotations

from core.errors import InvalidInput
from core.tasks.base import Task

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise InvalidInput(f"Unknown task {name!r}; the tasks are {', '.join(_TASKS)}.") from None


def all_tasks() -> list[Task]:
    """In the order pages list them (Task.order)."""
    return sorted(_TASKS.values(), key=lambda t: t.order)


def task_names() -> tuple[str, ...]:
    return tuple(t.name for t in all_tasks())
