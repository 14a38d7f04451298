"""MCG — Improving Diffusion Models for Inverse Problems using Manifold Constraints (Chung, Sim, Ryu &
Ye, NeurIPS 2022, arXiv:2206.00941).

Each step (the paper's Algorithm 1, with i -> t and x_{i-1} -> x_{t-1}):
1. x'_{t-1}: the unconditional reverse step from x_t (the shared loop's ancestral or DDIM step);
2. the manifold-constrained gradient: x''_{t-1} = x'_{t-1} - zeta_t grad_{x_t} ||y - A x0hat(x_t)||,
   the gradient taken through the network's clean estimate x0hat, so the step stays near the data
   manifold at noise level t;
3. the projection onto the measurement at the next noise level:
   x_{t-1} = x''_{t-1} + A^†(y_{t-1} - A x''_{t-1}),   y_{t-1} = sqrt(ab_{t-1}) y + sqrt(1 - ab_{t-1}) A z,
   z ~ N(0, I) drawn per image, i.e. y_{t-1} ~ q(y_{t-1} | y) = N(sqrt(ab_{t-1}) y, (1 - ab_{t-1}) A A^T)
   (the paper's noisy measurement). For inpainting (A^† = A^T, A A^T = I) this is the paper's
   x_{t-1} = (I - P^T P) x''_{t-1} + P^T y_{t-1}; for other operators A^† is the operator's closed
   form (SR, circular blur) or CG on the normal equations. At the last step (ab = 1) y_{t-1} = y.
   Deviation: the DPS authors' code noises y to level t (not t-1) with noise drawn in measurement
   space; the noise laws agree for inpainting, where A A^T = I.

Symbols: zeta_t is the paper's alpha; `scale`, `rescale_for_steps` and `step_rule` set it exactly as in
DPS (`inversa/solvers/dps.py`: per-sample norm ||y - A x0hat||, not squared, the reference scale per
task times T/N, Polyak's cap by default). The paper weights the squared norm by W and tunes alpha per
task; the DPS authors' re-implementation of MCG (the `mcg` conditioning method of
DPSdiffusion/diffusion-posterior-sampling, guided_diffusion/condition_methods.py) takes the plain norm with DPS's scale, which is the form
here. The projection writes y's noise into x at every step: the method targets noiseless or
low-noise measurements (the DPS paper's critique of it on noisy ones).

Arguments: those of DPS (`scale`, `rescale_for_steps`, `step_rule`) and the loop's (`sampler`, `eta`,
`clip_x0`, `start`). One forward and one VJP per step, plus A^† (closed form, or CG without a network
call). A gradient-guided base: CMI composes onto it (`make_solver("cmi-dps", prior, base="mcg")`).
"""

from __future__ import annotations

import torch

from inversa.solvers.base import StepState, randn
from inversa.solvers.dps import DPS
from inversa.solvers.registry import register


@register("mcg")
class MCG(DPS):
    """Manifold-constrained gradient: the DPS step, then a projection onto the noised measurement."""
    paper_steps = 1000  # 1000 steps, as the DPS authors' MCG runs

    label = "MCG (manifold-constrained gradient)"
    summary = ("DPS's step followed by a projection onto the photo's pixels at each noise level; best on "
               "noiseless inpainting, copies the noise of a noisy photo")
    cost = (1, 1)

    def step(self, s: StepState) -> torch.Tensor:
        x = super().step(s)  # x''_{t-1}: unconditional step + manifold-constrained gradient
        p, A = s.problem, s.problem.operator
        ab = self.prior.abar(s.t_prev)  # 1 at the last step (t_prev = -1)
        y_prev = ab**0.5 * p.y
        if ab < 1:
            z = randn(x.shape, p.generators, device=x.device, dtype=x.dtype)
            y_prev = y_prev + (1 - ab) ** 0.5 * A.A(z)
        return (x + A.A_dagger(y_prev - A.A(x))).detach()
