"""The one place that decides device and precision.

CUDA with bf16 autocast when present, CPU float32 otherwise. Plugins receive the device as an
argument (a string such as "cpu" or "cuda:0") and call :func:`autocast` around their forward
passes instead of deciding precision themselves.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def resolve_device(requested: str | None = "auto") -> str:
    """Turn "auto" / None / "cpu" / "cuda[:N]" into a concrete device string."""
    import torch

    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        from cxrbench.errors import CxrbenchError

        raise CxrbenchError(f"--device {requested} was asked for but CUDA is not available; use --device cpu")
    return requested


def autocast(device: str):
    """bf16 autocast on CUDA, a no-op on CPU (CPU stays float32 for exactness and speed)."""
    import torch

    if str(device).startswith("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision(device: str) -> str:
    """The precision :func:`autocast` gives on ``device`` (recorded with every result)."""
    return "bf16-autocast" if str(device).startswith("cuda") else "float32"


#: `cxrbench run --compile` sets it: classifier and diffusion networks go through torch.compile
COMPILE_ENV = "CXRBENCH_COMPILE"


def compile_enabled() -> bool:
    return os.environ.get(COMPILE_ENV, "0") not in ("", "0", "false", "no")


def maybe_compile(module):
    """``torch.compile(module)`` when asked for (``--compile``), else ``module`` unchanged.
    Off by default: compiling costs minutes up front and pays off only on long GPU runs."""
    if not compile_enabled():
        return module
    import torch

    return torch.compile(module)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) for a reproducible cell."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


#: OpenMP threads that wait for work sleep instead of spinning: on a shared CPU a spinning
#: thread burns the core another job needs. Measured (issue #15): resnet18 training at 32 px
#: with one competing process ran 107 images/s with PASSIVE against 57 with the default.
DEFAULT_OMP_WAIT_POLICY = "PASSIVE"


def prepare_cpu_threads(threads: int | None = None) -> None:
    """Call before torch is imported (OpenMP reads its environment once): the wait policy (a
    value the user set is kept) and, when given, the number of threads (``--threads``)."""
    os.environ.setdefault("OMP_WAIT_POLICY", DEFAULT_OMP_WAIT_POLICY)
    if threads is not None:
        if threads < 1:
            from cxrbench.errors import CxrbenchError

            raise CxrbenchError(f"--threads {threads}: give at least 1")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["MKL_NUM_THREADS"] = str(threads)
        import sys

        if "torch" in sys.modules:  # imported already (e.g. in-process callers): set it directly
            sys.modules["torch"].set_num_threads(threads)


def hardware_summary(device: str) -> dict:
    """What the result record says about the machine."""
    import platform

    import torch

    info = {
        "device": device,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        # the same cell trained on two CPU models (or instruction sets) can differ in the last
        # digits of every weight, and a short training run turns that into a different AUROC:
        # a re-run that does not match says why here
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "precision": precision(device),
        "torch_compile": compile_enabled(),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        info["gpu"] = torch.cuda.get_device_name(idx)
        info["cuda"] = torch.version.cuda
    return info


def cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere platform.processor()), or None."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
