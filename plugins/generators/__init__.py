"""Built-in generators: the two reference generators and the learned ones.

Which ones, and their summaries: the table in ``cxrbench.plugins`` (BUILTINS)."""

from cxrbench.hookspecs import hookimpl
from cxrbench.plugins import register_builtins


@hookimpl
def cxrbench_register_generators(registry):
    register_builtins(registry, "generators")
