"""Batched Lanczos tridiagonalisation of a symmetric operator given as a function, and the matrix
functions it gives: f(M) v ≈ ||v|| Q_m f(T_m) e_1 (e.g. M^{1/2} v for sampling N(0, M)) and
v^T f(M) v ≈ ||v||² e_1^T f(T_m) e_1 (e.g. log-determinants by stochastic Lanczos quadrature).

Hand-written because torch has no matrix-free Lanczos; each image is its own Krylov space (per-image
inner products, `cg.bdot`), so image i never depends on its batch-mates. Full reorthogonalisation
(m is small). A row whose Krylov space is exhausted stops contributing (its later basis vectors are 0).
"""

from __future__ import annotations

import torch

from inversa.solvers.cg import _bview as _view
from inversa.solvers.cg import bdot


def lanczos(matvec, v: torch.Tensor, steps: int):
    """(Q, T, norm): Q a list of m basis tensors shaped like v, T (B, m, m) tridiagonal, norm (B,) = ||v||."""
    nv = bdot(v, v).sqrt()
    q = v / _view(torch.where(nv > 0, nv, torch.ones_like(nv)), v)
    q_prev, beta = torch.zeros_like(v), torch.zeros_like(nv)
    basis, alphas, betas = [q], [], []
    alive = nv > 0
    for i in range(steps):
        w = matvec(q)
        alpha = bdot(q, w)
        w = w - _view(alpha, w) * q - _view(beta, w) * q_prev
        for b in basis:
            w = w - _view(bdot(b, w), w) * b
        alphas.append(torch.where(alive, alpha, torch.zeros_like(alpha)))
        if i == steps - 1:
            break
        beta_new = bdot(w, w).sqrt()
        alive = alive & (beta_new > 1e-10 * alpha.abs().clamp(min=1e-30))  # Krylov space exhausted
        beta = torch.where(alive, beta_new, torch.zeros_like(beta_new))
        betas.append(beta)
        q_prev, q = q, torch.where(_view(alive, w), w / _view(torch.where(alive, beta, torch.ones_like(beta)), w),
                                   torch.zeros_like(w))
        basis.append(q)
        if not bool(alive.any()):
            break
    m = len(alphas)
    T = torch.diag_embed(torch.stack(alphas, 1))
    if m > 1:
        off = torch.stack(betas[: m - 1], 1)
        T = T + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    return basis[:m], T, nv


def _ritz(T):
    """Eigen-decomposition of T with Ritz values clamped at 0 (the operator is a covariance: PSD)."""
    evals, evecs = torch.linalg.eigh(T)
    return evals.clamp(min=0), evecs


def sqrt_apply(matvec, z: torch.Tensor, steps: int) -> torch.Tensor:
    """M^{1/2} z by `steps` Lanczos iterations (`steps` products): for z ~ N(0, I), a sample of
    N(0, M). Negative Ritz values (a non-PSD estimate of M) are clamped to 0."""
    Q, T, nz = lanczos(matvec, z, steps)
    evals, evecs = _ritz(T)
    coef = (evecs * evals.sqrt().unsqueeze(1)) @ evecs[:, 0, :].unsqueeze(-1)  # f(T) e_1, (B, m, 1)
    out = torch.zeros_like(z)
    for j, q in enumerate(Q):
        out = out + _view(coef[:, j, 0] * nz, z) * q
    return out


def log_quadratic(matvec, v: torch.Tensor, steps: int) -> torch.Tensor:
    """v^T log(M) v per image by Lanczos quadrature (Golub–Meurant), M SPD."""
    _, T, nv = lanczos(matvec, v, steps)
    evals, evecs = torch.linalg.eigh(T)
    return nv**2 * (evecs[:, 0, :] ** 2 * evals.clamp(min=1e-30).log()).sum(1)
