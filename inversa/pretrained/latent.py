"""A latent diffusion prior: a diffusers UNet over the latents of an autoencoder.

`LatentPrior` is a `DiffusionPrior` whose state z_t lives in latent space: `predict(z_t, t)` gives the
latent eps and Tweedie mean z0hat (never clipped: latents are not bounded), and `decode(z)` /
`encode(x)` map between latents and pixels on the model's [-1, 1] scale, `decode` inside the
autograd graph (latent solvers take gradients through it). Latents are scaled as the diffusers
pipelines scale them: z = scaling_factor * (the autoencoder's latent), decode(z) = D(z / scaling_factor).

The autoencoder is a diffusers `AutoencoderKL` or `VQModel` (`decode(z).sample`; `encode(x)` gives
`.latent_dist` or `.latents`) or any module with the same two calls (the linear-autoencoder oracle
returns plain tensors). A `UNet2DConditionModel` runs with a fixed conditioning
(`encoder_hidden_states`, e.g. the empty prompt's text embedding, computed once by the loader),
expanded to the batch.
"""

from __future__ import annotations

import torch

from inversa.errors import UserError
from inversa.pretrained.prior import DiffusionPrior, Prediction, _get


class LatentPrior(DiffusionPrior):
    """`model` (UNet over latents) + `scheduler` + `autoencoder`. `downscale`: pixels per latent pixel
    along each side (default: 2^(number of the autoencoder's blocks - 1), the diffusers convention);
    `encoder_hidden_states`: the (1, L, D) conditioning of a `UNet2DConditionModel`, or None."""

    kind = "latent"
    prompt: str | None = None  # the text the conditioning was computed from ("" = empty prompt); None: unconditional UNet

    def __init__(self, model: torch.nn.Module, scheduler, autoencoder: torch.nn.Module, *, scaling_factor: float | None = None,
                 downscale: int | None = None, encoder_hidden_states: torch.Tensor | None = None, name: str = "custom",
                 source: str = ""):
        super().__init__(model, scheduler, name=name, source=source)
        self.autoencoder = autoencoder
        acfg = getattr(autoencoder, "config", {})
        self.scaling_factor = float(scaling_factor if scaling_factor is not None else _get(acfg, "scaling_factor", 1.0))
        blocks = _get(acfg, "block_out_channels", None)
        self.downscale = int(downscale if downscale is not None else 2 ** (len(blocks) - 1) if blocks else 1)
        self.latent_channels = self.in_channels
        self.image_channels = int(_get(acfg, "in_channels", 3))
        # The UNet's own stride, in pixels: latents must be multiples of size_multiple.
        self.size_multiple = self.size_multiple * self.downscale
        if encoder_hidden_states is not None:
            self.register_buffer("encoder_hidden_states", encoder_hidden_states.detach().clone(), persistent=False)
        else:
            self.encoder_hidden_states = None

    def latent_shape(self, image_shape) -> tuple[int, ...]:
        """(N, C_latent, H / downscale, W / downscale) for images of shape (N, C, H, W); one UserError if
        H or W is not a multiple of `size_multiple`."""
        n, _, h, w = image_shape
        if h % self.size_multiple or w % self.size_multiple:
            raise UserError(f"image size {h}x{w} does not fit latent model {self.name}: height and width must be "
                            f"multiples of {self.size_multiple}")
        return (n, self.latent_channels, h // self.downscale, w // self.downscale)

    def net(self, x_t: torch.Tensor, t: int, **kwargs) -> torch.Tensor:
        if self.encoder_hidden_states is not None and "encoder_hidden_states" not in kwargs:
            kwargs["encoder_hidden_states"] = self.encoder_hidden_states.to(x_t.dtype).expand(x_t.shape[0], -1, -1)
        return super().net(x_t, t, **kwargs)

    def predict(self, x_t: torch.Tensor, t: int, *, clip: bool = True, **kwargs) -> Prediction:
        return super().predict(x_t, t, clip=False, **kwargs)  # latents are unbounded: never clipped

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> pixels on [-1, 1] (not clamped), differentiable."""
        out = self.autoencoder.decode((z / self.scaling_factor).to(self.dtype_of_autoencoder))
        out = getattr(out, "sample", out)
        return out.to(z.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels on [-1, 1] -> latents (the posterior mean of a KL autoencoder, the unquantised latents of a
        VQ one), scaled by `scaling_factor`."""
        out = self.autoencoder.encode(x.to(self.dtype_of_autoencoder))
        if hasattr(out, "latent_dist"):
            out = out.latent_dist.mean
        elif hasattr(out, "latents"):
            out = out.latents
        return out.to(x.dtype) * self.scaling_factor

    def describe(self) -> dict:
        """What `inversa models info` prints: the classes, scaling, geometry and conditioning."""
        if self.encoder_hidden_states is None:
            conditioning = "none (unconditional UNet)"
        elif self.prompt is None:
            conditioning = f"fixed encoder_hidden_states {tuple(self.encoder_hidden_states.shape)}"
        else:
            conditioning = "empty prompt" if self.prompt == "" else f"prompt {self.prompt!r}"
        return {"kind": self.kind, "unet": type(self.model).__name__, "autoencoder": type(self.autoencoder).__name__,
                "scaling_factor": self.scaling_factor, "downscale": self.downscale, "latent_channels": self.latent_channels,
                "image_channels": self.image_channels, "conditioning": conditioning, "prompt": self.prompt,
                "scheduler": type(self.scheduler).__name__, "prediction": self.prediction_type,
                "size_multiple": self.size_multiple}

    @property
    def dtype_of_autoencoder(self) -> torch.dtype:
        return next(self.autoencoder.parameters(), torch.empty(0)).dtype
