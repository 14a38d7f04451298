import os
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random diffusers UNet2DModel + DDPMScheduler folder (unet/, scheduler/)."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny_model")
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    unet.save_pretrained(d / "unet")
    DDPMScheduler(beta_schedule="linear").save_pretrained(d / "scheduler")
    return d


@pytest.fixture()
def one_thread():
    """torch on one thread for the test (tiny models: faster, and the other cores stay free), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gens(seeds):
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


@pytest.fixture()
def gens():
    """gens([0, 1, 2]) -> one seeded torch.Generator per image."""
    return _gens
