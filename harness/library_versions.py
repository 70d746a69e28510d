"""The installed version of every library that computes a number cxrbench reports.

Read from the installed distributions' metadata (importlib.metadata): nothing is imported, so
naming diffusers' version does not cost importing diffusers. A library that is not installed is
named with None (fairlearn, for instance, is needed only by the subgroup metrics).
"""

from __future__ import annotations

from importlib import metadata

#: distribution names (as pip knows them), each computing something a record or table reports:
#: networks and training (torch, torchvision, timm, diffusers, segmentation-models-pytorch),
#: quality metrics (torchmetrics, clean-fid), statistics (scipy, scikit-learn, numpy, pandas,
#: fairlearn) and image decoding (pydicom, pillow)
LIBRARIES = ("torch", "torchvision", "timm", "diffusers", "torchmetrics", "clean-fid", "scipy", "scikit-learn",
             "numpy", "pandas", "pydicom", "pillow", "segmentation-models-pytorch", "fairlearn")


def library_versions() -> dict[str, str | None]:
    """``{distribution: installed version or None}`` for every one of :data:`LIBRARIES`."""
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found
