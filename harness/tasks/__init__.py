"""Downstream tasks: what a cell trains on the (real and synthetic) data and how it is scored.

The runner builds a cell's data the same way for every task (real training subset, generator
fit and synthetic set, tuning set, test sets, the leakage guard) and hands the task what
differs: which targets a training example carries (labels or masks), the model and its fixed
training recipe, the metrics, and the model's part of the record. A spec picks one with
``task: classification | segmentation`` (default classification: specs, records and cell ids
without the key are unchanged). A new task is a new module here, registered in :data:`TASKS`.
"""

from __future__ import annotations

from importlib import import_module

from cxrbench.errors import ConfigError

#: task name -> "module:Class"
TASKS = {
    "classification": "cxrbench.tasks.classification:ClassificationTask",
    "segmentation": "cxrbench.tasks.segmentation:SegmentationTask",
}


def get_task(name: str):
    """The task object of ``name`` (one instance per call; tasks hold no state)."""
    if name not in TASKS:
        raise ConfigError(f"task: unknown task {name!r}; known: {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(import_module(module), cls)()
