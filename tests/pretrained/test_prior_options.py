"""The prior's speed/memory options change nothing but rounding, and bad values are one line."""

import pytest
import torch

from inversa.errors import UserError
from inversa.operators import make_preset
from inversa.pretrained import load_prior
from inversa.solvers import DPS


@pytest.fixture()
def prior(tiny_model_dir):
    return load_prior(str(tiny_model_dir))


def _net_and_vjp(prior, x):
    xr = x.clone().requires_grad_(True)
    out = prior.net(xr, 500)
    (g,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum(), xr)
    return out.detach(), g


@pytest.mark.parametrize("options", [{"channels_last": True}, {"channels_last": False}, {"checkpointing": True},
                                     {"channels_last": False, "checkpointing": True}])
def test_layout_and_checkpointing_keep_results(prior, options):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ref_out, ref_g = _net_and_vjp(prior, x)
    keys = set(prior.state_dict())
    prior.configure(**options)
    out, g = _net_and_vjp(prior, x)
    assert out.is_contiguous() and out.dtype == x.dtype
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g, ref_g, atol=1e-5, rtol=1e-5)
    assert set(prior.state_dict()) == keys  # no second copy of the weights
    prior.configure()  # back to the defaults: the same numbers again
    out2, g2 = _net_and_vjp(prior, x)
    assert torch.equal(out2, ref_out) and torch.equal(g2, ref_g)


def _conv_weight(prior):
    return next(m.weight for m in prior.model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))


def test_convolutional_networks_run_nhwc_on_cpu_by_default(prior):
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = prior.net(x, 500)
    w = _conv_weight(prior)
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    assert out.is_contiguous()  # what the samplers see is NCHW either way
    prior.configure(channels_last=False)
    ref = prior.net(x, 500)
    assert _conv_weight(prior).is_contiguous()  # converted back once, at the next call
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_the_automatic_layout_follows_the_device(prior):
    prior.net(torch.zeros(1, 3, 16, 16), 500)
    assert _conv_weight(prior).is_contiguous(memory_format=torch.channels_last)
    assert prior._use_nhwc(torch.device("cuda")) is False  # GPUs: NCHW unless asked (decided, not moved)
    assert _conv_weight(prior).is_contiguous()
    prior.configure(channels_last=True)
    assert prior._use_nhwc(torch.device("cuda")) is True


def test_networks_without_convolutions_keep_their_layout():
    from inversa.pretrained.analytic import gaussian_prior

    prior = gaussian_prior(torch.zeros(1, 4, 4), cov=torch.eye(16, dtype=torch.float64))
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    out = prior.net(x, 300)
    assert out.shape == x.shape and not prior._nhwc


def test_bad_layout_is_one_line(prior):
    with pytest.raises(UserError, match="channels_last must be True, False or None \\(automatic\\), got 'yes'"):
        prior.configure(channels_last="yes")


def test_reduced_precision_is_close_and_solvers_run(prior, gens):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = prior.net(x, 500)
    prior.configure(precision="bf16")
    low = prior.net(x, 500)
    assert low.dtype == torch.float32 and 0 < (low - ref).abs().max() < 0.1
    op = make_preset("sr4", 16)
    y = op.measure(torch.rand(1, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    out = DPS(prior)(y, op, generator=gens([0]), num_steps=3, progress=False)
    assert torch.isfinite(out.x).all() and out.x.shape == (1, 3, 16, 16)


def test_bad_precision_is_one_line(prior):
    with pytest.raises(UserError, match="precision 'fp8' is unknown; accepted: fp32, bf16, fp16"):
        prior.configure(precision="fp8")


@pytest.mark.slow
def test_compiled_network_matches(prior):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ref_out, ref_g = _net_and_vjp(prior, x)
    prior.configure(compile=True)
    out, g = _net_and_vjp(prior, x)
    torch.testing.assert_close(out, ref_out, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g, ref_g, atol=1e-4, rtol=1e-4)
