"""One module per task (classification, detection, segmentation, restoration, generation), each registering a
Task object (core.tasks.base.Task): preprocessing, evaluation over a dataset, which datasets fit, headline metric,
the viewer's picture, training step and validation. Everything else dispatches through `get_task(name)`."""
from core.tasks import classification, detection, generation, restoration, segmentation  # noqa: F401 (they register)
from core.tasks.registry import all_tasks, get_task, task_names

__all__ = ["all_tasks", "get_task", "task_names"]
