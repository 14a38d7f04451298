"""DSG: every guided step lands on the sphere of radius sqrt(sum s_t²) around the unconditional mean,
rate 1 steps straight down the gradient, a sanity band on the correlated Gaussian, parameter checks,
seeds, batch invariance, SR, counts, and CMI on DSG."""

import pytest
import torch

from inversa.errors import UserError
from inversa.solvers import make_solver
from inversa.solvers.cg import bdot

from baselines_oracle import SHAPE, block_mask, correlated_prior, inpainting, problem_full, run_moments, ys_for
from oracle import check_seeds_and_batch_invariance, check_super_resolution, gens


@pytest.mark.parametrize("rate", [0.0, 0.2, 1.0])
def test_guided_steps_stay_on_the_sphere(rate):
    prior, op = correlated_prior(), inpainting()
    y, _, _ = problem_full(prior, op)
    solver = make_solver("dsg", prior, rate=rate, clip_x0=False)
    seen = []

    def check(s, x_prev):
        mean, var = solver.step_moments(s)
        if s.last:
            assert torch.equal(x_prev, mean)
            return
        radius = torch.as_tensor(var, dtype=mean.dtype).expand_as(mean).sum().sqrt()
        d = x_prev - mean
        assert torch.allclose(bdot(d, d).sqrt(), radius, rtol=1e-10)
        if rate == 1.0:  # d is -r g / ||g||: a multiple of the likelihood's descent direction
            with torch.enable_grad():
                x = s.x_t.detach().requires_grad_(True)
                r = s.problem.y - op.A(solver.predict(x, s.t).x0hat)
                (g,) = torch.autograd.grad(r.flatten(1).norm(dim=1).sum(), x)
            cos = -bdot(d, g) / (bdot(d, d) * bdot(g, g)).sqrt()
            assert cos.item() == pytest.approx(1.0, abs=1e-9)
        seen.append(s.index)

    solver(y, op, generator=gens([0]), num_steps=6, progress=False, callback=check)
    assert seen == [0, 1, 2, 3, 4]


# Correlated Gaussian (σ = 0.3, length 1.5), σ_y = 0.025, defaults, 100 steps, 2048 samples. Measured:
# inpainting mean error 0.094 (DPS 0.048), variance ratio observed 2.5-3.3, unobserved 0.73-0.76;
# blur 0.144, 1.06-1.46. The sphere argument needs many pixels (here 16), so a loose band:
# mean error < 0.3, ratios in [0.15, 5].
@pytest.mark.parametrize("kind", ["inpainting", "blur"])
def test_correlated_gaussian_sanity_band(kind):
    from baselines_oracle import blur

    prior = correlated_prior()
    op = inpainting() if kind == "inpainting" else blur()
    obs = block_mask().bool().reshape(-1) if kind == "inpainting" else None
    err, ro, ru, out = run_moments(make_solver("dsg", prior, clip_x0=False), prior, op, 100, observed=obs)
    assert (out.nfe, out.vjp) == (100, 99)
    assert err < 0.3 and 0.15 <= min(ro.min(), ru.min()) and max(ro.max(), ru.max()) <= 5


def test_parameters_are_checked_in_one_line():
    prior = correlated_prior()
    for bad, fragment in (({"rate": 1.5}, "rate must be in [0, 1]"), ({"interval": 0}, "interval must be a whole number")):
        with pytest.raises(UserError, match=fragment.replace("[", "\\[").replace("]", "\\]")):
            make_solver("dsg", prior, **bad)
    assert make_solver("dsg", prior).params()["rate"] == 0.2


def test_interval_guides_every_kth_step(gauss16):
    op = inpainting()
    y = op.measure(torch.rand(1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
                   generator=torch.Generator().manual_seed(4))
    out = make_solver("dsg", gauss16, interval=3)(y, op, generator=gens([0]), num_steps=9, progress=False)
    assert (out.nfe, out.vjp) == (9, 3)  # steps 0, 3, 6 guided


def test_seeds_batch_invariance_and_super_resolution(gauss16):
    op = inpainting()
    check_seeds_and_batch_invariance(make_solver("dsg", gauss16), op, ys_for(gauss16, op))
    out = check_super_resolution(lambda p: make_solver("dsg", p))
    assert out.nfe == 6 and out.vjp == 5


def test_cmi_composes_onto_dsg():
    prior, op = correlated_prior(), inpainting()
    y, _, _ = problem_full(prior, op)
    plain = make_solver("dsg", prior)(y, op, generator=gens([0]), num_steps=4, progress=False)
    out = make_solver("cmi-dps", prior, base="dsg")(y, op, generator=gens([0]), num_steps=4, progress=False)
    assert out.metadata["solver"] == "cmi-dps" and out.metadata["base"] == "dsg"
    assert out.nfe == 4 + 3 and torch.isfinite(out.x).all()  # CMI's extra forward on the 3 guided steps
    assert not torch.equal(out.x, plain.x)  # the term changes the direction on the sphere
