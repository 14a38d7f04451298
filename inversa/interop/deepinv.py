"""deepinv interop: our operators as deepinv physics, deepinv physics as our operators, our prior as
a deepinv denoiser. Needs deepinv (`pip install 'inversa[deepinv]'`).

    physics = to_deepinv(inversa.make_preset("sr4", 64))      # a deepinv LinearPhysics
    physics = to_deepinv(inversa.make_preset("sr4", 64), (3, 64, 64))   # its SVD: a DecomposablePhysics (DDRM)
    op = from_deepinv(dinv.physics.BlurFFT((3, 64, 64), filter=k), sigma=0.025)   # an inversa operator
    denoiser = PriorDenoiser(inversa.load_prior())             # denoiser(x, sigma), x in [0, 1]

Conventions: both libraries put images in [0, 1] and give noise std on that scale. deepinv's
`physics(x)` is the noisy measurement, `physics.A(x)` the noiseless one (our `op.measure(x)` and
`op.A(x)`). Kernels are oriented oppositely: deepinv's `BlurFFT(filter=k)` is our
`Blur(k.flip(-2, -1), "circular")` (the same for symmetric kernels). Shapes of wrapped deepinv operators are read off their adjoint, so any `LinearPhysics`
whose `A_adjoint` maps a measurement to an image works.
"""

from __future__ import annotations

import torch

from inversa._extras import require
from inversa.errors import UserError
from inversa.operators.base import LinearOperator
from inversa.operators.noise import GaussianNoise

dinv = require("deepinv", "deepinv", "inversa.interop.deepinv")


class InversaPhysics(dinv.physics.LinearPhysics):
    """An inversa `LinearOperator` as a deepinv `LinearPhysics` (Gaussian noise of the operator's sigma)."""

    def __init__(self, operator: LinearOperator, **kwargs):
        if not isinstance(operator, LinearOperator):
            raise UserError(f"operator of type {type(operator).__name__}: expected an inversa LinearOperator")
        super().__init__(noise_model=_noise_model(operator), **kwargs)
        self.operator = operator

    def A(self, x, *args, **kwargs):
        return self.operator.A(x)

    def A_adjoint(self, y, *args, **kwargs):
        return self.operator.A_adjoint(y)


class DeepinvOperator(LinearOperator):
    """A deepinv `LinearPhysics` as an inversa operator: `A`, `A_adjoint` from the physics, Gaussian
    noise of std `sigma` ([0, 1] units; default: the physics' own Gaussian noise level, else 0)."""

    name = "deepinv"

    def __init__(self, physics, sigma: float | None = None, channels: int | None = None):
        if not isinstance(physics, dinv.physics.LinearPhysics):
            raise UserError(f"physics of type {type(physics).__name__}: expected a deepinv LinearPhysics")
        if sigma is None:
            sigma = float(getattr(physics.noise_model, "sigma", 0.0) or 0.0)
        super().__init__(noise=GaussianNoise(float(sigma)), channels=channels)
        # Not a registered submodule: Module.to(dtype) would cast deepinv's complex spectra (BlurFFT)
        # to real. `to` moves it across devices only; deepinv promotes dtypes itself.
        self.__dict__["physics"] = physics

    def to(self, *args, **kwargs):
        device = kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))), None))
        if device is not None:
            self.physics.to(device)
        return super().to(*args, **kwargs)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.physics.A(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.physics.A_adjoint(y)

    def input_shape(self, output_shape: tuple[int, ...]) -> tuple[int, ...]:
        p = next(self.physics.parameters(), next(self.physics.buffers(), torch.empty(0)))
        return tuple(self.physics.A_adjoint(torch.zeros(output_shape, dtype=p.dtype, device=p.device)).shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        p = next(self.physics.parameters(), next(self.physics.buffers(), torch.empty(0)))
        return tuple(self.physics.A(torch.zeros(input_shape, dtype=p.dtype, device=p.device)).shape)

    def metadata(self) -> dict:
        return {**super().metadata(), "operator": f"deepinv.{type(self.physics).__name__}"}


class InversaSVDPhysics(dinv.physics.DecomposablePhysics):
    """An inversa operator with a closed-form SVD as a deepinv `DecomposablePhysics`: A = U diag(s) V^T
    with deepinv's `U`, `U_adjoint`, `V`, `V_adjoint` our `U`, `U_T`, `V`, `V_T` and its `mask` our
    singular values for images of `shape` ((C, H, W), or (B, C, H, W) for an operator holding B
    per-image masks or kernels). deepinv's DDRM needs this class (with one mask for the batch: B = 1),
    and its `prox_l2` / `A_dagger` become closed forms (DiffPIR's data step)."""

    def __init__(self, operator: LinearOperator, shape: tuple[int, ...], **kwargs):
        operator.check_svd("deepinv's DecomposablePhysics")
        shape = tuple(shape) if len(shape) == 4 else (1, *shape)
        like = torch.zeros(shape, device=_device(operator))  # default dtype: deepinv's samplers work in it
        s = operator.singulars(like)  # batch 1 unless the operator holds per-image masks or kernels
        mask = s.expand(s.shape[0], *operator.V_T(like).shape[1:]).clone()  # deepinv indexes it by element
        super().__init__(U=operator.U, U_adjoint=operator.U_T, V=operator.V, V_adjoint=operator.V_T, mask=mask,
                         img_size=shape[1:], noise_model=_noise_model(operator), device=like.device, **kwargs)
        self.__dict__["operator"] = operator  # not a submodule: deepinv's .to() must not recast it


def _noise_model(operator: LinearOperator):
    """deepinv's Gaussian noise of the operator's sigma (its zero-noise model for sigma 0)."""
    return dinv.physics.GaussianNoise(sigma=operator.sigma) if operator.sigma > 0 else dinv.physics.ZeroNoise()


def _device(operator: LinearOperator) -> torch.device:
    return next((b.device for b in operator.buffers()), torch.device("cpu"))


def to_deepinv(operator: LinearOperator, shape: tuple[int, ...] | None = None,
               **kwargs) -> InversaPhysics | InversaSVDPhysics:
    """`operator` as a deepinv physics: a `DecomposablePhysics` (closed-form SVD, what deepinv's DDRM
    needs) when the image `shape` ((C, H, W) or (B, C, H, W)) is given and the operator has an SVD,
    a `LinearPhysics` otherwise (kwargs go to the physics, e.g. max_iter for A_dagger)."""
    if shape is not None and operator.has_svd:
        return InversaSVDPhysics(operator, tuple(shape), **kwargs)
    return InversaPhysics(operator, **kwargs)


def from_deepinv(physics, *, sigma: float | None = None, channels: int | None = None) -> DeepinvOperator:
    """A deepinv `LinearPhysics` as an inversa operator, usable by every solver."""
    return DeepinvOperator(physics, sigma=sigma, channels=channels)


class PriorDenoiser(torch.nn.Module):
    """An inversa `DiffusionPrior` as a deepinv denoiser: `denoiser(x, sigma)` with x in [0, 1]
    carrying Gaussian noise of std sigma ([0, 1] units). The prior runs at the training timestep whose
    variance-exploding noise level is nearest to sigma (on the model's [-1, 1] scale, 2 sigma), and
    returns Tweedie's x0 = x - sigma eps, as deepinv's own DiffUNet does."""

    def __init__(self, prior):
        super().__init__()
        self.prior = prior
        s = ((1 - prior.alphas_cumprod) / prior.alphas_cumprod).sqrt()  # VE noise level of each timestep
        self.register_buffer("ve_sigma", s.float(), persistent=False)

    def forward(self, x: torch.Tensor, sigma, *args, **kwargs) -> torch.Tensor:
        sigma_m = 2 * torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)[0]  # [-1, 1] scale
        t = int((self.ve_sigma.to(x.device) - sigma_m).abs().argmin())
        a = self.prior.abar(t)
        x_m = 2 * x - 1
        eps = self.prior.net(x_m * a**0.5, t)
        x0 = (x_m - sigma_m * eps).clamp(-1, 1)
        return (x0 + 1) / 2
