"""Device, dtype and input handling shared by every metric module.

All metric numerics run in torch float64 so that CPU and CUDA give the same numbers to ~1e-12 and the
final reductions (inner products over T² or T(T-1)/2 entries) keep full precision.  TF32 is switched
off explicitly while a metric runs on CUDA (it only affects float32 matmuls, which we do not use, but a
caller's global setting must never leak into the metric values).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

DTYPE = torch.float64

# Largest number of float64 entries one (batch, T, T) block may hold before X is processed in chunks.
MAX_BLOCK_ENTRIES = 1 << 25  # 256 MiB of float64


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available) as a torch device."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'auto'")
    return dev


@contextlib.contextmanager
def exact_numerics(device: torch.device) -> Iterator[None]:
    """Disable TF32 for the duration of a metric call and restore the caller's flags afterwards."""
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def as_batch(data: np.ndarray | torch.Tensor, device: torch.device, name: str) -> torch.Tensor:
    """A (batch, T, features) float64 tensor on ``device`` from (B, T, p) or (B, T) input."""
    t = torch.as_tensor(np.asarray(data) if not isinstance(data, torch.Tensor) else data)
    if t.ndim == 2:
        t = t[..., None]
    if t.ndim != 3:
        raise ValueError(f"{name} must have shape (batch, frames, features); got {tuple(t.shape)}")
    return t.to(device=device, dtype=DTYPE)


def as_single(data: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    """One sentence's (T, p) matrix (a 1-D input is one feature) as a (1, T, p) float64 array."""
    a = np.asarray(data.detach().cpu() if isinstance(data, torch.Tensor) else data, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (frames, features); got {a.shape}")
    return a[None]


def finite_rows(x: torch.Tensor) -> torch.Tensor:
    """(B,) bool: whether every value of each batch item is finite."""
    flat = x.reshape(x.shape[0], -1)
    if flat.device.type == "cpu":
        # numpy's isfinite is ~10× faster than torch's on CPU
        return torch.from_numpy(np.isfinite(flat.numpy()).all(axis=1))
    return torch.isfinite(flat).all(dim=1)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of a result tensor."""
    return x.detach().to("cpu", DTYPE).numpy().copy()


def chunks(total: int, per_item: int, limit: int = MAX_BLOCK_ENTRIES) -> Iterator[slice]:
    """Slices over ``range(total)`` holding at most ``limit`` entries of ``per_item`` each (≥ 1 item)."""
    step = max(1, limit // max(per_item, 1))
    for start in range(0, total, step):
        yield slice(start, min(total, start + step))
