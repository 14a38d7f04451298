"""Latent DPS — DPS (Chung et al., ICLR 2023) in the latent space of a latent diffusion model, the data term
read through the decoder (the "Latent-DPS" baseline of Rout et al., NeurIPS 2023, and of the latent
diffusion inverse-problem literature since).

After the unconditional latent step z'_{t-1}:
    z_{t-1} = z'_{t-1} - zeta_t * grad_{z_t} ||y - A(D(z0hat(z_t)))||_2,
D the autoencoder's decoder (pixels on [-1, 1]), z0hat the latent Tweedie mean, the gradient through the
decoder and the network (one backward pass through both). The norm is per sample, so image i never
depends on its batch-mates. The step size is DPS's own rule, inherited from `inversa.solvers.dps.DPS`
(not restated): zeta_t = scale * T/N ("stride"), capped by default by Polyak's step
(f - sigma sqrt(m)) / ||grad f||², which brings the residual to its noise level and no further; `scale`
defaults to DPS's reference value for the task (0.3 SR/deblur, 0.5 inpainting).

[inferred] DPS's reference scales were set for pixel-space gradients; in a latent space the gradient's
size depends on the decoder's gain, so the Polyak cap (not the scale) is what sets the step on most
problems; the scale stays a parameter.

Cost per step: 1 network forward + 1 VJP through the network, 1 decoder forward + 1 decoder VJP (the same
backward pass; counted as `decoder_vjp` in the metadata). Arguments: DPS's (scale, rescale_for_steps,
step_rule) and the latent loop's (sampler, eta, clip_x0, start).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inversa.solvers.base import StepState
from inversa.solvers.dps import DPS, DPSContext
from inversa.solvers.latent import LatentContext, LatentSolver
from inversa.solvers.registry import register


@dataclass
class LatentDPSContext(LatentContext, DPSContext):
    pass


@register("latent-dps")
class LatentDPS(LatentSolver, DPS):
    """DPS through the decoder of a latent prior: 1 forward + 1 VJP (network and decoder) per step."""

    label = "Latent DPS"
    summary = ("DPS for latent models: the photo's residual pulled back through the decoder; plausible detail, "
               "can drift from the photo with few steps")
    paper_steps = None  # a baseline of the latent papers, no step count of its own
    cost = (1, 1)
    context = LatentDPSContext

    def residual_norm(self, s: StepState) -> torch.Tensor:
        """||y - A(D(z0hat))||_2 per sample, shape (B,), in the graph of z_t."""
        r = s.problem.y - s.problem.operator.A(self.decode(s.pred.x0hat, s.ctx))
        return r.flatten(1).norm(dim=1)

    def guidance(self, s: StepState) -> torch.Tensor:
        s.ctx.decoder_vjp += 1  # DPS's gradient of the residual runs back through the decoder once
        return super().guidance(s)
