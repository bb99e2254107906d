"""A trial's training batches: gathered by index from the host images (mapped from the node's
split cache), copied to the model's device through pinned memory, augmented there (train/loop.py).

The trial's subset is an index into the whole split, so a 5 % Dp holds no copy of its images; the
device holds the model, its optimizer state and the batches in flight, never the set. Each epoch's
order is drawn on the device by the loop's generator (as before, so runs are reproducible) and
brought to the host once per epoch: a copy per step would make the host wait for the device every
step. On a GPU two pinned buffers alternate: the host gathers batch k+1 into one while batch k's
copy, issued without blocking, may still read the other; a CUDA event says when a buffer is free.
When the images already sit on the model's device (small sets, tests), batches are indexed there.

Left out: worker processes for gathering (one gather of a batch is a memory copy of a few MB, far
below a step of the paper's models) and decoding per batch (the split cache holds decoded images).
"""

from __future__ import annotations

import torch

PINNED_BUFFERS = 2   # one being filled on the host while the other's copy may be in flight


class Batches:
    """The training subset `index` of (images, labels) as batches on `device`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor | None,
                 device: torch.device):
        self.images, self.device = images, device
        self.index = None if index is None else index.to("cpu")
        subset = labels if index is None else labels[index.to(labels.device)]
        self.labels = subset.to(device)          # labels are small: the subset's live on device
        self.staged = device.type == "cuda" and images.device.type == "cpu"
        self.buffers: list[tuple[torch.Tensor, torch.cuda.Event | None]] = []
        self.order = self.rows = None

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, order: torch.Tensor) -> None:
        """Start an epoch in `order` (a permutation of the subset's positions, on `device`)."""
        self.order = order
        if self.images.device.type == order.device.type:
            self.rows = order if self.index is None else self.index.to(order.device)[order]
        else:   # one device -> host copy per epoch
            host = order.cpu()
            self.rows = host if self.index is None else self.index[host]

    def get(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images, labels) of the epoch's positions [start, stop), on `device`."""
        labels = self.labels[self.order[start:stop]]
        rows = self.rows[start:stop]
        if not self.staged:
            return self.images[rows].to(self.device), labels
        buffer, done = self._buffer(len(rows))
        if done is not None:
            done.synchronize()                   # its previous copy has left the buffer
        out = torch.index_select(self.images, 0, rows, out=buffer[:len(rows)])
        images = out.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.buffers.append((buffer, event))
        return images, labels

    def _buffer(self, n: int) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        """The oldest pinned buffer of at least n images, or a new one while there are fewer than
        PINNED_BUFFERS (a larger batch than before replaces it)."""
        if len(self.buffers) >= PINNED_BUFFERS:
            buffer, event = self.buffers.pop(0)
            if len(buffer) >= n:
                return buffer, event
            event.synchronize()
        shape = (n, *self.images.shape[1:])
        return torch.empty(shape, dtype=torch.uint8, pin_memory=True), None
