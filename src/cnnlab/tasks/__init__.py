"""Tasks: what changes between classification, localization, detection and segmentation — targets, heads, loss,
metrics, decoding and drawing. The Trainer, the run folder, infer, deploy and serve stay one and ask the task.

`make_task(name, classes, input_size, **args)` gives a `Task` bound to a run's classes and input size;
`RunMeta.make_task()` the task of a model file. A new task is one module with a `Task` subclass, registered in
TASKS (see docs/architecture.md, "Tasks").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnlab.tasks.base import Task, TaskModel
from cnnlab.tasks.classify import Classify
from cnnlab.tasks.detect import Detect
from cnnlab.tasks.localize import Localize
from cnnlab.tasks.segment import Segment

TASKS: dict[str, type[Task]] = {t.name: t for t in (Classify, Localize, Detect, Segment)}


def list_tasks() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> type[Task]:
    """The task class registered as `name`; an unknown name lists the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}'; choose from {', '.join(TASKS)}")
    return TASKS[name]


def make_task(name: str, classes: Sequence[str], input_size: Sequence[int], **args: Any) -> Task:
    """Task `name` bound to `classes` and `input_size` (C, H, W), with its own arguments `args`."""
    return get_task(name)(classes, input_size, **args)


__all__ = ["TASKS", "Task", "TaskModel", "get_task", "list_tasks", "make_task"]
