"""Built-in post-processors (steps of the ordered chain applied to synthetic images).

Which ones, and their summaries: the table in ``cxrbench.plugins`` (BUILTINS)."""

from cxrbench.hookspecs import hookimpl
from cxrbench.plugins import register_builtins


@hookimpl
def cxrbench_register_postprocessors(registry):
    register_builtins(registry, "postprocessors")
