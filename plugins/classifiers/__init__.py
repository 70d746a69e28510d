"""Built-in classifiers (timm architectures with one input channel).

Which ones, and their summaries: the table in ``cxrbench.plugins`` (BUILTINS)."""

from cxrbench.hookspecs import hookimpl
from cxrbench.plugins import register_builtins


@hookimpl
def cxrbench_register_classifiers(registry):
    register_builtins(registry, "classifiers")
