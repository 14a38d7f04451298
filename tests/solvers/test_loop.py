"""The shared loop's reverse step agrees with diffusers' schedulers; respacing; errors."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from inversa.errors import UserError
from inversa.pretrained.prior import DiffusionPrior
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


# --- warm start (start < 1): SDEdit / CCDF from the operator's naive inverse -------------------------

def _inpaint16():
    from inversa.operators import GaussianNoise, Inpainting

    m = torch.zeros(4, 4, dtype=torch.float64)
    m.view(-1)[::2] = 1
    return Inpainting(m, noise=GaussianNoise(0.0)).double()


def test_start_keeps_the_last_timesteps_and_validates(gauss16):
    full = Solver(gauss16).timesteps(25)
    part = Solver(gauss16, start=0.3).timesteps(25)
    assert part == [t for t in full if t < 300] and len(part) == 8
    assert Solver(gauss16, start=1e-4).timesteps(25) == [0]  # never empty: at least the last step
    for bad in (0, -0.5, 1.5):
        with pytest.raises(UserError, match="start"):
            Solver(gauss16, start=bad)
    with pytest.raises(UserError, match="start"):
        Solver(gauss16, start=0.5).sample((1, 1, 4, 4), num_steps=10, progress=False)


def test_start_begins_from_the_naive_inverse(gauss16, gens):
    """A tiny start runs one step at t = 0 from the naive inverse: the result is that image (up to the
    sqrt(1 - abar_0) = 0.01 noise); a full start does not stay there."""
    op = _inpaint16()
    y = op(torch.rand(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    naive = op.naive_inverse(y)
    near = Solver(gauss16, start=1e-4, clip_x0=False)(y, op, generator=gens([0, 1]), num_steps=25, progress=False)
    assert near.nfe == 1 and near.metadata["start"] == 1e-4
    assert (near.x - naive).abs().max() < 0.03
    far = Solver(gauss16, clip_x0=False)(y, op, generator=gens([0, 1]), num_steps=25, progress=False)
    assert (far.x - naive).abs().max() > 0.1


def test_start_keeps_the_step_size_and_batch_invariance(gauss16, gens):
    """DPS's step is scale * T / num_steps whatever the start (the spacing of the steps it runs), and
    image i's warm-started result does not depend on its batch-mates."""
    from inversa.solvers import DPS

    op = _inpaint16()
    ys = op(torch.rand(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    warm = DPS(gauss16, start=0.4)
    batch = warm(ys, op, generator=gens([5, 6, 7]), num_steps=20, progress=False)
    cold = DPS(gauss16)(ys, op, generator=gens([5, 6, 7]), num_steps=20, progress=False)
    assert batch.metadata["step_size"] == cold.metadata["step_size"] and batch.nfe == 8 and cold.nfe == 20
    alone = warm(ys[1:2], op, generator=gens([6]), num_steps=20, progress=False).x
    assert torch.equal(batch.x[1:2], alone)
