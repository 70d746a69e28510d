"""Built-in datasets: the real chest X-ray sets of the field and one embedded simulated set.

Which ones, and their summaries: the table in ``cxrbench.plugins`` (BUILTINS)."""

from cxrbench.hookspecs import hookimpl
from cxrbench.plugins import register_builtins


@hookimpl
def cxrbench_register_datasets(registry):
    register_builtins(registry, "datasets")
