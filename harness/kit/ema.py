"""An exponential moving average of a module's weights, for sampling from smoothed weights.

Usage: ``ema = EMA(model, decay=0.999)`` after building the model, ``ema.update(model)`` after
every optimiser step, and sample from (and save) ``ema.shadow``, a frozen copy of the model.
torch is imported inside :meth:`EMA.update`, so importing this module stays cheap.
"""

from __future__ import annotations

import copy
from typing import Any


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied).

    The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` so that short runs
    (the tiny preset) still get a useful average.
    """

    def __init__(self, model: Any, decay: float):
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    def update(self, model: Any) -> None:
        import torch

        self.num_updates += 1
        n = self.num_updates
        d = min(self.decay, (1.0 + n) / (10.0 + n))
        with torch.no_grad():
            for ps, p in zip(self.shadow.parameters(), model.parameters()):
                ps.lerp_(p.detach().to(ps.dtype), 1.0 - d)
            for bs, b in zip(self.shadow.buffers(), model.buffers()):
                bs.copy_(b)
