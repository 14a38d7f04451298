"""The network's forward and the shared loop run with denormals flushed on CPU, and leave the thread's mode
as they found it."""

import pytest
import torch

from inversa.device import flush_denormals, flushing_denormals
from inversa.pretrained.analytic import gaussian_prior

if not torch.set_flush_denormal(False):  # the thread's default mode, and whether the CPU has the switch
    pytest.skip("this CPU has no flush-to-zero mode", allow_module_level=True)


class Recorder(torch.nn.Module):
    """An eps-network that records the denormal mode it runs under."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x, t, **kwargs):
        self.seen.append(flushing_denormals())
        return self.inner(x, t, **kwargs)


@pytest.mark.parametrize("before", [False, True])
def test_forward_flushes_and_restores(before):
    prior = gaussian_prior(torch.zeros(1, 4, 4), torch.ones(1, 4, 4), dtype=torch.float32)
    rec = Recorder(prior.model)
    prior.__dict__["_call"] = rec
    torch.set_flush_denormal(before)
    try:
        prior.predict(torch.randn(2, 1, 4, 4), 500)
        assert rec.seen == [True] and flushing_denormals() is before
        with flush_denormals("cpu"):
            assert flushing_denormals()
        assert flushing_denormals() is before
    finally:
        torch.set_flush_denormal(False)


def test_flush_changes_only_denormals():
    x = torch.tensor([1e-39, 1e-30, -2.5], dtype=torch.float32)
    with flush_denormals("cpu"):
        y = x * 1.0
    assert y.tolist()[0] == 0.0 and y[1:].equal(x[1:]) and (x * 1.0)[0] != 0
