"""Built-in segmenters (U-Nets with one input channel and per-pixel logits).

Which ones, and their summaries: the table in ``cxrbench.plugins`` (BUILTINS)."""

from cxrbench.hookspecs import hookimpl
from cxrbench.plugins import register_builtins


@hookimpl
def cxrbench_register_segmenters(registry):
    register_builtins(registry, "segmenters")
