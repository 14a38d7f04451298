"""Parametrisation of the generic operator tests; the factory lives in operator_cases.py."""

import pytest
import torch

from operator_cases import CASES, DTYPES, Case


def pytest_generate_tests(metafunc):
    """`case`: every (operator, size, batch, dtype); `batched_case`: those with batch 3."""
    for fixture, cases in (("case", CASES), ("batched_case", [c for c in CASES if c[2] > 1])):
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, cases, indirect=True,
                                 ids=[f"{n}-{'x'.join(map(str, s))}-b{b}-{d}" for n, s, b, d in cases])


@pytest.fixture
def case(request):
    name, size, batch, dt = request.param
    return Case(name, size, batch, DTYPES[dt])


batched_case = case


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: intra-op threads only add scheduling overhead (seconds per test on
    a busy 2-core machine), so operator tests run single-threaded; the setting is restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
