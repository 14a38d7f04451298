"""Session fixtures: tiny random latent pipeline folders of the real layouts (see tiny_pipelines.py)."""

import pytest
from tiny_pipelines import save_dit, save_ldm, save_stable_diffusion


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def ldm_dir(tmp_path_factory):
    return save_ldm(tmp_path_factory.mktemp("tiny_ldm") / "ldm")


@pytest.fixture(scope="session")
def sd_dir(tmp_path_factory):
    pytest.importorskip("transformers", reason="the Stable-Diffusion layout's text encoder needs transformers")
    return save_stable_diffusion(tmp_path_factory.mktemp("tiny_sd") / "sd")


@pytest.fixture(scope="session")
def dit_dir(tmp_path_factory):
    return save_dit(tmp_path_factory.mktemp("tiny_dit") / "dit")
