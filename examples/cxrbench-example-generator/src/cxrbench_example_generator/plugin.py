"""Registration only: cheap to import, so `cxrbench plugins` stays fast."""

from cxrbench.hookspecs import hookimpl


@hookimpl
def cxrbench_register_generators(registry):
    registry.add(
        "class-mean",
        "cxrbench_example_generator.generator:ClassMeanGenerator",
        summary="example plugin: per-label mean image + seeded smooth noise",
    )
