"""The shared loop in the latent space of a `LatentPrior` (inversa/pretrained/latent.py): the base of the
latent solvers (latent DPS, PSLD, LC-DPS).

The chain runs on z_t, shaped `prior.latent_shape(image shape)`, the image shape being the operator's
input shape for the measurement (so super-resolution starts from the right latent size). The measurement
stays in pixels on the model's [-1, 1] scale, as the pixel loop prepares it (y_m = 2y - A(1), sigma_m =
2 sigma); data terms compare it with A(D(z0hat)), D the autoencoder's decoder. A warm start (start < 1)
diffuses E(2 * naive_inverse(y) - 1), E the encoder, forward to the first timestep. The final z is decoded
and mapped to [0, 1].

Decoder and encoder passes are counted per call apart from the network's (NFE/VJP): `decoder_forward`,
`decoder_vjp`, `decoder_jvp`, `encoder_forward`, `encoder_vjp` in the run metadata (the final decode of
the result is counted too). `clip_x0` (default False here) clamps the decoded estimate D(z0hat) to [-1, 1]
inside the data term; the latent z0hat itself is never clipped (latents are unbounded).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inversa.solvers.base import Context, Solver, SolverOutput


@dataclass
class LatentContext(Context):
    decoder_forward: int = 0  # decoder passes (each D(z) evaluation, with or without a graph)
    decoder_vjp: int = 0  # backward passes through the decoder (v -> J_D^T v, or inside a gradient)
    decoder_jvp: int = 0  # forward-mode products v -> J_D v
    encoder_forward: int = 0
    encoder_vjp: int = 0

    def record(self) -> dict:
        return {**super().record(), "decoder_forward": self.decoder_forward, "decoder_vjp": self.decoder_vjp,
                "decoder_jvp": self.decoder_jvp, "encoder_forward": self.encoder_forward, "encoder_vjp": self.encoder_vjp}


class LatentSolver(Solver):
    """A `Solver` whose chain lives in a latent prior's latent space (see the module docstring). Subclasses
    set `name`, `cost` and a hook, as pixel solvers do, and reach pixels through `decode`/`encode`."""

    latent = True
    guided = False  # composed terms (CMI) work on pixel-space x0hat: none sits on a latent solver
    context = LatentContext

    def __init__(self, prior, *, clip_x0: bool = False, **kwargs):
        super().__init__(prior, clip_x0=clip_x0, **kwargs)

    # --- pixels <-> latents, counted --------------------------------------------------------------
    def decode(self, z: torch.Tensor, ctx: LatentContext | None) -> torch.Tensor:
        """D(z) on the model's [-1, 1] scale (clamped in-graph when clip_x0), in z's graph."""
        if ctx is not None:
            ctx.decoder_forward += 1
        x = self.prior.decode(z)
        return x.clamp(-1, 1) if self.clip_x0 else x

    def encode(self, x: torch.Tensor, ctx: LatentContext | None) -> torch.Tensor:
        if ctx is not None:
            ctx.encoder_forward += 1
        return self.prior.encode(x)

    # --- the loop ---------------------------------------------------------------------------------
    def __call__(self, y: torch.Tensor, operator, *, generator=None, num_steps: int = 100, callback=None,
                 progress: bool = True, x_T: torch.Tensor | None = None) -> SolverOutput:
        problem, pixels, y = self.measurement_problem(y, operator, generator)
        shape = tuple(self.prior.latent_shape(pixels))  # one UserError for sizes the model cannot take
        z_init = None
        if self.start < 1 and x_T is None:
            with torch.no_grad():
                z_init = self.prior.encode(2 * problem.operator.naive_inverse(y) - 1)
        out = self.run(shape, problem, num_steps=num_steps, callback=callback, progress=progress, x_T=x_T,
                       x_init=z_init)
        if z_init is not None:
            out.metadata["encoder_forward"] += 1
        return out

    def sample(self, shape, **kwargs):
        from inversa.errors import UserError

        raise UserError(f"solver {self.name} restores a measurement; it does not generate without one")

    def to_image(self, z: torch.Tensor, ctx: LatentContext | None = None) -> torch.Tensor:
        """The final latent decoded to an image in [0, 1]."""
        with torch.no_grad():
            x = self.prior.decode(z)
        return ((x + 1) / 2).clamp(0, 1)

    def run(self, shape, problem, **kwargs) -> SolverOutput:
        out = super().run(shape, problem, **kwargs)
        out.metadata["decoder_forward"] += 1  # the result's decode by `to_image`
        out.metadata["latent_shape"] = list(shape)
        return out
