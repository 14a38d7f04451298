"""The shared loop's reverse step agrees with diffusers' schedulers; respacing; errors."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from inversa.errors import UserError
from inversa.pretrained.prior import DiffusionPrior, Prediction
from inversa.solvers import Solver


class _Net(torch.nn.Module):
    def __init__(self, out_channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, out_channels, 3, padding=1)
        self.config = {"in_channels": 3, "out_channels": out_channels}

    def forward(self, x, t):
        return type("O", (), {"sample": torch.tanh(self.conv(x)) + 0 * t.view(-1, 1, 1, 1)})


@pytest.mark.parametrize("learned", [False, True])
@pytest.mark.parametrize("num_steps", [1000, 50])
def test_ancestral_step_matches_diffusers_ddpm(learned, num_steps):
    torch.manual_seed(0)
    sched = DDPMScheduler(beta_schedule="linear", variance_type="learned_range" if learned else "fixed_small", clip_sample=True)
    prior = DiffusionPrior(_Net(6 if learned else 3), sched)
    sched.set_timesteps(num_steps)
    ts = [int(t) for t in sched.timesteps]
    x = torch.randn(2, 3, 8, 8)
    for i in [0, len(ts) // 2, len(ts) - 2]:
        t, tp = ts[i], ts[i + 1]
        out = prior.net(x, t)
        ref = sched.step(out, t, x, generator=torch.Generator().manual_seed(1)).prev_sample
        pred = prior.predict(x, t)
        mean, var = prior.step_mean_var(x, t, tp, pred)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        ours = mean + torch.as_tensor(var, dtype=mean.dtype) ** 0.5 * noise
        assert torch.allclose(ours, ref, atol=2e-4), (t, (ours - ref).abs().max())


def test_ddim_step_matches_diffusers():
    torch.manual_seed(0)
    sched = DDIMScheduler(beta_schedule="linear", clip_sample=True, set_alpha_to_one=True)
    prior = DiffusionPrior(_Net(3), DDPMScheduler(beta_schedule="linear"))
    sched.set_timesteps(25)
    ts = [int(t) for t in sched.timesteps]
    x = torch.randn(2, 3, 8, 8)
    t, tp = ts[3], ts[4]
    ref = sched.step(prior.net(x, t), t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    mean, var = prior.step_mean_var(x, t, tp, prior.predict(x, t), eta=0.0)
    assert var == 0 and torch.allclose(mean, ref, atol=1e-5)


def test_prediction_types_agree():
    """eps-, x0- and v-parameterisations of the same denoiser give the same eps and x0hat."""
    x, eps = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    t = 500
    for ptype in ("epsilon", "sample", "v_prediction"):
        sched = DDPMScheduler(beta_schedule="linear", prediction_type=ptype)
        a = float(sched.alphas_cumprod[t])
        x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
        target = {"epsilon": eps, "sample": x0, "v_prediction": a**0.5 * eps - (1 - a) ** 0.5 * x0}[ptype]
        prior = DiffusionPrior(_Const(target), sched)
        p = prior.predict(x, t, clip=False)
        assert torch.allclose(p.eps, eps, atol=1e-4) and torch.allclose(p.x0hat, x0, atol=1e-4)


class _Const(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value
        self.p = torch.nn.Parameter(torch.zeros(()))
        self.config = {"in_channels": 3, "out_channels": 3}

    def forward(self, x, t):
        return type("O", (), {"sample": self.value})


def test_timesteps_respaced_and_validated(gauss16):
    s = Solver(gauss16)
    ts = s.timesteps(10)
    assert len(ts) == 10 and ts[0] > ts[-1] and ts[-1] == 0
    for bad in (0, -3, 1001, 2.5):
        with pytest.raises(UserError, match="num_steps"):
            s.timesteps(bad)
