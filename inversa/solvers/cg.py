"""Batched conjugate gradients for symmetric positive-definite systems given as a function.

    x, info = cg(matvec, b, tol=1e-5, max_iter=50)
    info.residual  # (B,) relative residual ||b - M x|| / ||b|| (the recursive one CG tracks)

An image whose search direction meets non-positive curvature (p^T M p <= 0, possible when M holds an
estimated covariance) stops at its current iterate, as truncated CG does. Each image is its own system: per-image dot products and step sizes, and each image stops on its
own tolerance (its iterate is frozen once converged), so image i's iterates never depend on its
batch-mates. `matvec` must act on every image independently (all our operators do).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CGInfo:
    residual: torch.Tensor  # (B,) relative residual norm at exit
    iterations: torch.Tensor  # (B,) iterations each image ran
    converged: torch.Tensor  # (B,) bool: residual <= tol
    r: torch.Tensor | None = None  # the residual b - M x at exit (the recursive one CG tracks)

    def summary(self) -> str:
        return (f"CG: {int(self.converged.sum())}/{len(self.converged)} converged, "
                f"max residual {float(self.residual.max()):.2e}, iterations {self.iterations.tolist()}")


_GRAIN = 32768  # torch's CPU grain size: shorter rows are each reduced by one thread, in one order


class CGLog:
    """Worst conjugate-gradient outcome over a run (recorded in metadata)."""

    def __init__(self):
        self.solves, self.unconverged, self.max_residual, self.max_iterations = 0, 0, 0.0, 0

    def add(self, info):
        self.solves += 1
        self.unconverged += int((~info.converged).sum())
        self.max_residual = max(self.max_residual, float(info.residual.max()))
        self.max_iterations = max(self.max_iterations, int(info.iterations.max()))

    def as_dict(self, prefix="cg_"):
        return {f"{prefix}solves": self.solves, f"{prefix}unconverged": self.unconverged,
                f"{prefix}max_residual": self.max_residual, f"{prefix}max_iterations": self.max_iterations}


def bdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image inner products, shape (B,), bit-identical at any batch size. A batched reduction
    of long rows (or any on a GPU) splits the work by batch size and changes the last bits, so
    those images are reduced one by one."""
    if a.device.type == "cpu" and a[0].numel() <= _GRAIN:
        return (a * b).flatten(1).sum(1)
    return torch.stack([torch.dot(a[i].reshape(-1), b[i].reshape(-1)) for i in range(a.shape[0])])


def _bview(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def cg(matvec, b: torch.Tensor, x0: torch.Tensor | None = None, *, tol: float = 1e-5, max_iter: int = 50):
    """Solve M x = b image by image (M SPD, given as `matvec`). Stops image i when
    ||r_i|| <= tol ||b_i|| or after `max_iter` iterations; returns (x, CGInfo)."""
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = bdot(r, r)
    bnorm = bdot(b, b).sqrt()
    thresh = tol * bnorm
    done = rr.sqrt() <= thresh  # also b = 0 -> x = 0
    iters = torch.zeros(b.shape[0], dtype=torch.long, device=b.device)
    for _ in range(max_iter):
        if bool(done.all()):
            break
        active = ~done
        Mp = matvec(p)
        pMp = bdot(p, Mp)
        curved = pMp > 0  # non-positive curvature (an estimated matrix that is not SPD): stop that image there
        done, active = done | (active & ~curved), active & curved
        alpha = torch.where(active, rr / torch.where(active & (pMp > 0), pMp, torch.ones_like(pMp)), torch.zeros_like(rr))
        act = _bview(active, b)
        x = torch.where(act, x + _bview(alpha, b) * p, x)  # where, not +0*p: converged images stay bit-identical
        r_new = torch.where(act, r - _bview(alpha, b) * Mp, r)
        rr_new = bdot(r_new, r_new)
        beta = torch.where(active, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = torch.where(act, r_new + _bview(beta, b) * p, p)
        r, rr = r_new, torch.where(active, rr_new, rr)
        iters = iters + active.long()
        done = done | (rr.sqrt() <= thresh)
    rel = rr.sqrt() / torch.where(bnorm > 0, bnorm, torch.ones_like(bnorm))
    return x, CGInfo(residual=rel, iterations=iters, converged=rel <= tol, r=r)
