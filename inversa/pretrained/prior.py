"""A diffusion prior: a diffusers model called as `model(x, t).sample` plus a diffusers scheduler.

The prior speaks the model's [-1, 1] scale. It turns raw network outputs (eps-, sample- or
v-prediction, optionally with a learned-range variance in extra channels) into
`Prediction(eps, x0hat, var_values)` and gives the reverse-step mean and variance, so solvers never
touch checkpoint formats or prediction types.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inversa.device import flush_denormals
from inversa.errors import UserError

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


@dataclass
class Prediction:
    eps: torch.Tensor
    x0hat: torch.Tensor
    var_values: torch.Tensor | None = None  # learned-range interpolation in [-1, 1], or None


class DiffusionPrior(torch.nn.Module):
    """Wraps `model` (diffusers `UNet2DModel` convention) and `scheduler` (any diffusers scheduler
    exposing `alphas_cumprod`, `config.num_train_timesteps`, `config.prediction_type`)."""

    kind = "pixel"  # the space the model's state lives in ("latent": `inversa.pretrained.latent.LatentPrior`)

    def __init__(self, model: torch.nn.Module, scheduler, *, name: str = "custom", source: str = ""):
        super().__init__()
        self.model = model
        self.scheduler = scheduler
        self.name, self.source = name, source
        cfg = scheduler.config
        self.prediction_type = cfg.get("prediction_type", "epsilon")
        if self.prediction_type not in PREDICTION_TYPES:
            raise UserError(f"prediction_type {self.prediction_type!r} is not supported; accepted: {', '.join(PREDICTION_TYPES)}")
        self.num_train_timesteps = int(cfg.num_train_timesteps)
        # float64 schedule: the respaced step coefficients lose digits in float32 near t = 0.
        self.register_buffer("alphas_cumprod", torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64).clone(), persistent=False)
        mcfg = getattr(model, "config", {})
        self.in_channels = int(_get(mcfg, "in_channels", 3))
        out_channels = int(_get(mcfg, "out_channels", self.in_channels))
        self.learned_variance = out_channels == 2 * self.in_channels
        self.sample_size = _get(mcfg, "sample_size", None)
        # Each down block halves H and W: inputs must be multiples of 2^(blocks-1).
        self.size_multiple = 2 ** max(len(_get(mcfg, "block_out_channels", (0,))) - 1, 0)
        self.nfe = 0
        self.__dict__["_call"] = model  # the network or its compiled wrapper; not a second registered submodule
        self.precision, self.channels_last, self.checkpointing, self.compiled = "fp32", None, False, False
        self._nhwc = False  # the network weights' present layout (set on first use, see `_use_nhwc`)
        self._has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters(), torch.empty(0)).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters(), torch.empty(0)).dtype

    def abar(self, t: int) -> float:
        return float(self.alphas_cumprod[t]) if t >= 0 else 1.0

    PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

    def configure(self, *, precision: str = "fp32", channels_last: bool | None = None, checkpointing: bool = False,
                  compile: bool = False) -> "DiffusionPrior":
        """Speed/memory options of the network call; none changes what is computed beyond rounding.
        precision: autocast the network to "bf16"/"fp16" (GPUs; the sampler stays in float32);
        channels_last: NHWC memory layout of the network's weights and inputs, True/False, or None (the
        default): on for convolutional networks on CPU, where oneDNN's NHWC convolutions are the faster
        ones, off elsewhere (docs/performance.md, `bench/layout.py`); checkpointing: recompute activations
        in the backward pass (DPS-type methods at large sizes: less memory, one more forward); compile:
        `torch.compile` the network (minutes of compilation first)."""
        if precision not in self.PRECISIONS:
            raise UserError(f"precision {precision!r} is unknown; accepted: {', '.join(self.PRECISIONS)}")
        if channels_last is not None and not isinstance(channels_last, bool):
            raise UserError(f"channels_last must be True, False or None (automatic), got {channels_last!r}")
        self.precision, self.channels_last, self.checkpointing = precision, channels_last, bool(checkpointing)
        if checkpointing:
            if not getattr(self.model, "_supports_gradient_checkpointing", False):
                raise UserError(f"the {type(self.model).__name__} network does not support gradient checkpointing")
            self.model.enable_gradient_checkpointing()
        elif hasattr(self.model, "disable_gradient_checkpointing") and getattr(self.model, "is_gradient_checkpointing", False):
            self.model.disable_gradient_checkpointing()
        self.__dict__["_call"] = torch.compile(self.model) if compile else self.model
        self.compiled = bool(compile)
        return self

    def _use_nhwc(self, device: torch.device) -> bool:
        """Whether this call runs NHWC (`configure`'s channels_last, or on CPU when it is None); converts the
        weights once when that changes (a device move can change it)."""
        want = self.channels_last if self.channels_last is not None else self._has_conv and device.type == "cpu"
        if want != self._nhwc:
            self.model.to(memory_format=torch.channels_last if want else torch.contiguous_format)
            self._nhwc = want
        return want

    def net(self, x_t: torch.Tensor, t: int, **kwargs) -> torch.Tensor:
        tt = torch.full((x_t.shape[0],), int(t), device=x_t.device, dtype=torch.long)
        self.nfe += 1
        x = x_t.to(self.dtype)
        if x.dim() == 4 and self._use_nhwc(x.device):
            x = x.contiguous(memory_format=torch.channels_last)
        low = self.PRECISIONS[self.precision]
        with torch.autocast(x.device.type, dtype=low, enabled=low is not None), flush_denormals(x.device):
            out = self._call(x, tt, **kwargs)
        return (out.sample if hasattr(out, "sample") else out).to(x_t.dtype).contiguous()

    def predict(self, x_t: torch.Tensor, t: int, *, clip: bool = True, **kwargs) -> Prediction:
        """One network evaluation -> eps and the Tweedie mean x0hat (clipped to [-1,1] in-graph if `clip`)."""
        out = self.net(x_t, t, **kwargs)
        var_values = None
        if self.learned_variance:
            out, var_values = out.chunk(2, dim=1)
        a = self.abar(t)
        sa, s1a = a**0.5, (1 - a) ** 0.5
        if self.prediction_type == "epsilon":
            eps = out
            x0 = (x_t - s1a * eps) / sa
        elif self.prediction_type == "sample":
            x0 = out
            eps = (x_t - sa * x0) / s1a
        else:  # v = sqrt(a) eps - sqrt(1-a) x0
            x0 = sa * x_t - s1a * out
            eps = s1a * x_t + sa * out
        if clip:
            x0 = x0.clamp(-1, 1)
        return Prediction(eps=eps, x0hat=x0, var_values=var_values)

    def step_mean_var(self, x_t, t: int, t_prev: int, pred: Prediction, *, eta: float = 1.0):
        """Mean and variance of p(x_{t_prev} | x_t) for a (respaced) step t -> t_prev.

        eta = 1 is the DDPM ancestral step (posterior q(x_prev | x_t, x0hat), with the learned-range
        variance when the model has one); eta = 0 is deterministic DDIM; in between, DDIM(eta).
        eps is recomputed from the (clipped) x0hat so both forms agree at eta = 1.
        """
        a, ap = self.abar(t), self.abar(t_prev)
        beta = 1 - a / ap
        beta_tilde = (1 - ap) / (1 - a) * beta
        eps = (x_t - a**0.5 * pred.x0hat) / (1 - a) ** 0.5
        var = eta**2 * beta_tilde
        mean = ap**0.5 * pred.x0hat + max(1 - ap - var, 0.0) ** 0.5 * eps
        if pred.var_values is not None and eta == 1.0:
            # guided-diffusion learned range: interpolate log-variance between beta_tilde and beta.
            min_log = torch.log(torch.tensor(max(beta_tilde, 1e-20), dtype=torch.float64)).item()
            frac = (pred.var_values + 1) / 2
            var = torch.exp(frac * torch.log(torch.tensor(beta)).item() + (1 - frac) * min_log)
        return mean, var


def _get(cfg, key, default):
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)
