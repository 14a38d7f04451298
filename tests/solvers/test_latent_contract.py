"""The solver contract for the latent solvers (latent-dps, psld, lc-dps) on in-memory latent priors built from
tiny random diffusers models (an AutoencoderKL or a VQModel with block_out_channels (8, 16), a UNet2DModel over
its 4-channel latents): seeds reproduce, image i never depends on its batch-mates, super-resolution starts from
the right latent size, NFE/VJP per step as declared (`cost`), decoder/encoder passes counted in the metadata,
params() readable before a call and unchanged by it; the warm start goes through the encoder; pixel solvers and
latent solvers refuse each other's priors in one line. float64, as tests/solvers/test_contract.py."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from inversa import operators as ops
from inversa.errors import UserError
from inversa.pretrained import load_prior
from inversa.pretrained.latent import LatentPrior
from inversa.solvers import SOLVERS, make_solver
from inversa.solvers.params import declared_params

LATENT = [name for name, cls in SOLVERS.items() if getattr(cls, "latent", False)]
STEPS = 3


def tiny_latent_prior(kind: str = "kl", dtype=torch.float64) -> LatentPrior:
    """A LatentPrior of tiny random diffusers models: latents 4 x H/2 x W/2, images a multiple of 4 a side."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel, VQModel

    torch.manual_seed(0)
    blocks = dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, latent_channels=4,
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    ae = AutoencoderKL(**blocks) if kind == "kl" else VQModel(num_vq_embeddings=16, **blocks)
    unet = UNet2DModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)
    prior = LatentPrior(unet.eval().requires_grad_(False), DDPMScheduler(beta_schedule="linear"),
                        ae.eval().requires_grad_(False), name=f"tiny-latent-{kind}")
    return prior.to(dtype)


@pytest.fixture(scope="module")
def latent_prior():
    return tiny_latent_prior("kl")


@pytest.fixture(scope="module")
def problem():
    """Three clean 16x16 images and their noisy x2 super-resolution measurements (8x8)."""
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    op = ops.SuperResolution(2, noise=ops.GaussianNoise(0.05))
    return op, op.measure(x, generator=torch.Generator().manual_seed(1))


def _run(solver, y, op, seeds, steps=STEPS):
    return solver(y, op, generator=[torch.Generator().manual_seed(s) for s in seeds], num_steps=steps, progress=False)


def test_three_latent_solvers_are_registered():
    assert LATENT == ["latent-dps", "psld", "lc-dps"]
    for name in LATENT:
        assert not getattr(SOLVERS[name], "guided", False)  # CMI's pixel-space term cannot sit on them


@pytest.mark.parametrize("name", LATENT)
def test_latent_contract(name, latent_prior, problem):
    op, y = problem
    solver = make_solver(name, latent_prior)
    before = solver.params()
    json.dumps(before)
    assert {p.name for p in declared_params(SOLVERS[name])} <= set(before)
    assert before["clip_x0"] is False
    state = {k: (v if k == "prior" else copy.deepcopy(v)) for k, v in vars(solver).items()}

    a = _run(solver, y[:2], op, [0, 1])
    assert all(v is state[k] if k == "prior" else (torch.equal(v, state[k]) if isinstance(v, torch.Tensor) else v == state[k])
               for k, v in vars(solver).items()), "a call changed solver attributes"
    assert solver.params() == before
    assert a.x.shape == (2, 3, 16, 16) and a.x.dtype == torch.float64  # SR x2: 8x8 -> 16x16 pixels, 8x8 latents
    assert torch.isfinite(a.x).all() and a.x.min() >= 0 and a.x.max() <= 1

    b = _run(solver, y[:2], op, [0, 1])
    assert torch.equal(a.x, b.x), "the same seeds gave different images"
    assert not torch.equal(a.x, _run(solver, y[:2], op, [5, 6]).x)
    alone = _run(solver, y[1:2], op, [1])
    mate = _run(solver, torch.stack([y[2], y[1]]), op, [7, 1])
    for other in (alone.x[0], mate.x[1]):
        assert torch.allclose(a.x[1], other, atol=1e-9), (a.x[1] - other).abs().max()

    meta = a.metadata
    json.dumps(meta)
    assert meta["solver"] == name and meta["nfe"] == a.nfe and meta["vjp"] == a.vjp
    assert meta["latent_shape"] == [2, 4, 8, 8] and meta["prior"] == "tiny-latent-kl"
    assert set(before) <= set(meta)
    nfe, vjp = SOLVERS[name].cost
    if SOLVERS[name].cost_up_to:
        assert a.nfe <= nfe * STEPS and a.vjp <= vjp * STEPS
    else:
        assert (a.nfe, a.vjp) == (nfe * STEPS, vjp * STEPS)
    # decoder passes, apart from the network's: one decode per step for the data term, one for the result
    assert meta["decoder_forward"] == STEPS + 1
    if name == "lc-dps":
        assert a.vjp == 0 and meta["decoder_vjp"] >= 2 * STEPS and meta["decoder_jvp"] >= 2 * STEPS
        assert meta["cg_solves"] == STEPS
    else:
        assert meta["decoder_vjp"] == STEPS and meta["decoder_jvp"] == 0
        assert meta["encoder_forward"] == (STEPS if name == "psld" else 0) and meta["encoder_vjp"] == meta["encoder_forward"]


@pytest.mark.parametrize("name", LATENT)
def test_warm_start_encodes_the_naive_inverse(name, latent_prior, problem):
    op, y = problem
    out = _run(make_solver(name, latent_prior, start=0.5), y[:1], op, [0], steps=4)
    assert out.metadata["num_steps"] == 2 and out.metadata["encoder_forward"] >= 1
    assert torch.isfinite(out.x).all()


def test_vq_autoencoder_runs(problem):
    op, y = problem
    out = _run(make_solver("lc-dps", tiny_latent_prior("vq"), cg_iters=2, sqrt_iters=2), y[:1], op, [0])
    assert out.x.shape == (1, 3, 16, 16) and torch.isfinite(out.x).all()


def test_image_sizes_the_latent_model_cannot_take_are_refused(latent_prior):
    op = ops.Inpainting(torch.ones(10, 10), noise=ops.GaussianNoise(0.05))
    with pytest.raises(UserError, match="multiples of 4"):
        make_solver("latent-dps", latent_prior)(torch.rand(1, 3, 10, 10, dtype=torch.float64), op, num_steps=2,
                                                 progress=False)


@pytest.mark.parametrize("name", ["dps", "c-dps", "ddrm"])
def test_pixel_solvers_refuse_a_latent_prior(name, latent_prior):
    with pytest.raises(UserError) as exc:
        make_solver(name, latent_prior)
    msg = str(exc.value)
    assert "\n" not in msg and "tiny-latent-kl" in msg and "latent-dps, psld, lc-dps" in msg


@pytest.mark.parametrize("name", LATENT)
def test_latent_solvers_refuse_a_pixel_prior(name, tiny_model_dir):
    pixel = load_prior(str(tiny_model_dir))
    with pytest.raises(UserError) as exc:
        make_solver(name, pixel)
    msg = str(exc.value)
    assert "\n" not in msg and "pixel-space prior" in msg and "dps" in msg and "psld" not in msg.split(";")[1]


@pytest.mark.parametrize(("name", "params", "word"), [
    ("latent-dps", {"scale": -1}, "scale"), ("psld", {"omega": -0.1}, "omega"), ("psld", {"gamma": -1}, "gamma"),
    ("lc-dps", {"cg_iters": 0}, "cg_iters"), ("lc-dps", {"step_variance": "x"}, "step_variance"),
    ("lc-dps", {"delta": 0}, "delta"), ("lc-dps", {"cov_product": "fd"}, "cov_product")])
def test_parameters_are_checked_in_one_line(name, params, word, latent_prior):
    with pytest.raises(UserError, match=word) as exc:
        make_solver(name, latent_prior, **params)
    assert "\n" not in str(exc.value)


def test_psld_weights_follow_the_official_ldm_scripts(latent_prior, problem):
    op, y = problem
    out = _run(make_solver("psld", latent_prior), y[:1], op, [0], steps=2)
    assert out.metadata["omega_used"] == 0.9 and out.metadata["gamma"] == 0.1  # SR: omega 0.9 (run/inverse_sr_ldm.sh)
    inp = ops.Inpainting(torch.ones(16, 16), noise=ops.GaussianNoise(0.05))
    out = _run(make_solver("psld", latent_prior), inp.measure(torch.rand(1, 3, 16, 16, dtype=torch.float64)), inp, [0], steps=2)
    assert out.metadata["omega_used"] == 0.1
