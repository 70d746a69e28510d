"""Registration only: cheap to import (no torch), so `cxrbench plugins` stays fast."""

from cxrbench.hookspecs import hookimpl


@hookimpl
def cxrbench_register_generators(registry):
    # a lazy "module:Class" reference: the generator module (and torch) load only when used
    registry.add(
        "cvae",
        "cxrbench_example_vae.generator:CVAEGenerator",
        summary="example plugin: small conditional VAE on cxrbench.kit.LearnedGenerator",
    )
