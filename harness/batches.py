"""Which training images form each optimizer step's batch, and how they reach the device.

* :func:`_batches`: one shuffled pass (epoch-defined recipes);
* :class:`_BatchStream`: fixed-size batches from consecutive passes (steps budgets);
* :class:`_Gather`: ``images[idx]``, through pinned double buffers on CUDA.

Split from training.py, whose job is the optimisation itself.
"""

from __future__ import annotations


def _batches(n: int, batch_size: int, generator):
    """Shuffled index batches; a trailing batch of a single image is dropped (BatchNorm)."""
    import torch

    perm = torch.randperm(n, generator=generator)
    out = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(out) > 1 and len(out[-1]) < 2:
        out.pop()
    return out


class _BatchStream:
    """Batches of exactly ``batch_size`` indices from consecutive shuffled passes over ``n``
    images (a batch may span two passes): a steps budget sees the same number of images per step
    whether the training set holds 47 images or 51,000."""

    def __init__(self, n: int, batch_size: int, generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.pending = []

    def next(self):
        import torch

        while len(self.pending) < self.batch_size:
            self.pending.extend(torch.randperm(self.n, generator=self.generator).tolist())
        batch, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size:]
        return torch.tensor(batch, dtype=torch.long)


class _Gather:
    """``images[idx]`` for the training loop. On CUDA the rows are gathered into one of two
    page-locked staging buffers, so the copy to the GPU is asynchronous; a buffer is reused only
    after the copy that last read it has finished (a CUDA event, not a device-wide sync)."""

    def __init__(self, images, device: str):
        self.images, self.cuda = images, str(device).startswith("cuda")
        self.buffers, self.events, self.turn = [], [None, None], 0

    def __call__(self, idx):
        import torch

        if not self.cuda:
            return self.images[idx]
        idx = torch.as_tensor(idx, dtype=torch.long)
        if not self.buffers or self.buffers[0].shape[0] < len(idx):
            shape = (len(idx), *self.images.shape[1:])
            self.buffers = [torch.empty(shape, dtype=self.images.dtype).pin_memory() for _ in range(2)]
        k, self.turn = self.turn, 1 - self.turn
        if self.events[k] is not None:
            self.events[k].synchronize()
        out = self.buffers[k][: len(idx)]
        torch.index_select(self.images, 0, idx, out=out)
        return _OnCopy(out, self.events, k)


class _OnCopy:
    """A pinned batch whose ``.to(device, non_blocking=True)`` records when the copy is done."""

    def __init__(self, tensor, events, k):
        self.tensor, self.events, self.k = tensor, events, k

    def to(self, device, non_blocking=True):
        import torch

        moved = self.tensor.to(device, non_blocking=non_blocking)
        self.events[self.k] = torch.cuda.Event()
        self.events[self.k].record()
        return moved
