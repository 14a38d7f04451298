"""PSLD — posterior sampling with latent diffusion (Rout, Raoof, Daras, Caramanis, Dimakis & Shakkottai,
"Solving Linear Inverse Problems Provably via Posterior Sampling with Latent Diffusion Models",
NeurIPS 2023, arXiv:2307.00619; official code github.com/LituRout/PSLD).

[paper] Latent DPS plus a "gluing" term: the decoded estimate, with its measured part replaced by the
measurement, must encode back to the latent estimate. With D/E the decoder/encoder and A^T the adjoint,
    x~ = A^T y + (I - A^T A) D(z0hat)            (= D(z0hat) + A^T (y - A D(z0hat)))
    f(z_t) = omega ||y - A D(z0hat)||_2 + gamma ||z0hat - E(x~)||_2
    z_{t-1} = z'_{t-1} - zeta_t grad_{z_t} f,
the gradient through the network, the decoder and the encoder (one backward pass).
[code] stable-diffusion/ldm/models/diffusion/psld.py (`p_sample_ddim`): `meas_error` = the norm of
(predicted measurement - y), `inpaint_error` = the norm of (encoded glued image - pred_z_0), `error =
inpaint_error * gamma + meas_error * omega`, and `z_prev = z_prev - grad(error, z_t)` after a DDIM step
(`ddim_eta` 0, 1000 steps: scripts/inverse.py). Weights: scripts/inverse.py defaults gamma 0.1, omega 1
(Stable Diffusion runs); the latent-diffusion FFHQ-256 runs (run/inverse_*_ldm.sh, `--ffhq256`) use
gamma 0.1 and omega 0.1 (box/random inpainting, Gaussian/motion deblur) or omega 0.9 (super-resolution).
Our defaults are those LDM weights, the class of model (UNet over a VQ/KL autoencoder at 256²) this
project loads: `omega=None` takes 0.9 for super-resolution and 0.1 otherwise, `gamma=0.1`.

Deviations, named:
- norms per sample (the code takes one norm over the whole batch, which couples batch-mates);
- A^T is the exact adjoint (the code borrows DPS's `transpose`, the identity for blur and nearest
  upsampling for SR, which is the paper's formula only for inpainting);
- no noise is added to the predicted measurement (the code passes A D(z0hat) through the noiser);
- [inferred] the step: zeta_t = scale * T/N with scale 1 (at N = T = 1000 exactly the code's unit step),
  capped by DPS's Polyak step (inherited from `inversa.solvers.dps.DPS`) with target f* = omega sigma
  sqrt(m), the gluing term's floor taken as 0; step_rule="stride" is the uncapped rule;
- the ancestral (DDPM) sampler by default, as every solver here (the code's DDIM eta 0 is sampler="ddim").

Cost per step: 1 network forward + 1 VJP; 1 decoder forward + 1 VJP; 1 encoder forward + 1 VJP (none when
gamma = 0, which is latent DPS with weight omega). Arguments: omega, gamma, and DPS's scale,
rescale_for_steps, step_rule; the latent loop's sampler, eta, clip_x0, start.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inversa.errors import UserError
from inversa.solvers.base import StepState
from inversa.solvers.latent_dps import LatentDPS, LatentDPSContext
from inversa.solvers.registry import register

# omega of the official latent-diffusion (FFHQ-256) scripts, by our operator names; 0.1 for the others.
LDM_OMEGA = {"super_resolution": 0.9}
DEFAULT_OMEGA = 0.1
DEFAULT_GAMMA = 0.1


@dataclass
class PSLDContext(LatentDPSContext):
    omega: float = 0.0  # the measurement weight of this call (the task's when `omega` is None)


@register("psld")
class PSLD(LatentDPS):
    """Latent DPS plus PSLD's gluing term ||z0hat - E(A^T y + (I - A^T A) D(z0hat))||: 1 forward + 1 VJP per step."""

    label = "PSLD (latent DPS with gluing)"
    summary = ("latent DPS plus a term that keeps the decoded estimate consistent with the autoencoder; the "
               "published method for latent models")
    paper_steps = 1000  # the official script's 1000 DDIM steps
    cost = (1, 1)
    context = PSLDContext

    def __init__(self, prior, *, omega: float | None = None, gamma: float = DEFAULT_GAMMA, scale: float | None = 1.0,
                 **kwargs):
        super().__init__(prior, scale=scale, **kwargs)
        if omega is not None and not omega >= 0:
            raise UserError(f"omega must be a non-negative number (the measurement weight), got {omega}")
        if not gamma >= 0:
            raise UserError(f"gamma must be a non-negative number (the gluing weight), got {gamma}")
        self.omega, self.gamma = omega, float(gamma)

    def prepare(self, problem, timesteps, num_steps=None):
        ctx = super().prepare(problem, timesteps, num_steps)
        ctx.omega = float(self.omega if self.omega is not None else LDM_OMEGA.get(problem.operator.name, DEFAULT_OMEGA))
        ctx.f_star = ctx.omega * ctx.f_star  # Polyak's target: the weighted residual at its noise level
        return ctx

    def run_metadata(self, ctx):
        return {**super().run_metadata(ctx), "omega_used": ctx.omega}

    def residual_norm(self, s: StepState) -> torch.Tensor:
        """f = omega ||y - A D(z0hat)|| + gamma ||z0hat - E(D(z0hat) + A^T (y - A D(z0hat)))|| per sample."""
        p, op = s.problem, s.problem.operator
        x = self.decode(s.pred.x0hat, s.ctx)
        r = p.y - op.A(x)
        f = s.ctx.omega * r.flatten(1).norm(dim=1)
        if self.gamma > 0:
            glued = self.encode(x + op.A_adjoint(r), s.ctx)
            s.ctx.encoder_vjp += 1  # the gradient of f runs back through the encoder too
            f = f + self.gamma * (s.pred.x0hat - glued).flatten(1).norm(dim=1)
        return f
