"""Torch devices named by users: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", "mps";
and the CPU's denormal mode around a network forward.

Checked before any model is loaded, so a device that is not there is one line, not a torch traceback.
"""

from __future__ import annotations

import contextlib
import threading

import torch

from inversa.errors import UserError

AUTO = "auto"


def resolve_device(spec: str | torch.device | None = AUTO) -> torch.device:
    """The torch device for `spec` (None or "auto": cuda when available, else cpu); UserError if it
    is malformed or not present on this machine."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec is None or str(spec).strip().lower() == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(spec).strip())
    except (RuntimeError, ValueError):
        raise UserError(f"device {spec!r} is not a torch device; accepted: auto, cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise UserError(f"device {spec!r} is not available: this machine has no CUDA GPU; accepted: auto, cpu")
        if dev.index is not None and dev.index >= n:
            raise UserError(f"device {spec!r} is not available: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1})")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"device {spec!r} is not available on this machine; accepted: auto, cpu")
    elif dev.type != "cpu":
        raise UserError(f"device {spec!r} is not supported; accepted: auto, cpu, cuda, cuda:N, mps")
    return dev


def flushing_denormals() -> bool:
    """Whether this thread flushes denormal floats to zero (torch has a setter only, no getter)."""
    return float(torch.tensor(1e-39, dtype=torch.float32).mul(1.0)) == 0.0


@contextlib.contextmanager
def flush_denormals(device: torch.device | str):
    """On CPU, denormal floats flushed to zero inside the block and the thread's earlier mode restored after
    (elsewhere, nothing). Why: arithmetic on denormals is many times slower on x86, a network's activations
    produce some, and how many depends on the input; values below 1.2e-38 do not matter to a sampler.
    Only the calling thread's mode is set (torch's switch is per thread). Nested blocks (a forward inside
    the sampling loop) cost nothing: only the outermost one probes and sets the mode."""
    if torch.device(device).type != "cpu" or getattr(_flush, "active", False):
        yield
        return
    # False where the mode was already on, or where the CPU has no such mode: nothing to restore
    switched = not flushing_denormals() and torch.set_flush_denormal(True)
    _flush.active = True
    try:
        yield
    finally:
        _flush.active = False
        if switched:
            torch.set_flush_denormal(False)


_flush = threading.local()  # whether this thread is inside a flush_denormals block
