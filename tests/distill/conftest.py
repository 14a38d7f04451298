"""Tiny random class-conditional models (pixel UNet, latent DiT + VAE), a tiny classifier and tiny
ImageFolders, built in the test session: no downloads, a few seconds on a CPU."""

import json

import pytest
import torch
from distill_folders import CLASS_NAMES, write_image_folder

NUM_CLASSES = len(CLASS_NAMES)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("INVERSA_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def cond_model_dir(tmp_path_factory):
    """A 1-channel 16x16 UNet2DModel with 3 classes + a null class, conditioning.json, scheduler."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("cond_model")
    UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                norm_num_groups=4, add_attention=False, num_class_embeds=NUM_CLASSES + 1).save_pretrained(d / "unet")
    DDPMScheduler(beta_schedule="linear").save_pretrained(d / "scheduler")
    (d / "conditioning.json").write_text(json.dumps({"num_classes": NUM_CLASSES, "null_class": NUM_CLASSES,
                                                     "class_names": CLASS_NAMES}))
    return d


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory):
    """A random ConvNet-2 (width 8) classifier folder for 16x16 grey images."""
    from safetensors.torch import save_file

    from inversa.distill.nets import make_net

    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("classifier")
    cfg = dict(arch="convnet", arch_kwargs={"width": 8, "depth": 2}, in_channels=1, num_classes=NUM_CLASSES,
               input_size=16, input_range=[0, 1], mean=[0.5], std=[0.25], class_names=CLASS_NAMES)
    net = make_net("convnet", in_channels=1, num_classes=NUM_CLASSES, size=16, width=8, depth=2)
    save_file(net.state_dict(), d / "model.safetensors")
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture(scope="session")
def real_dir(tmp_path_factory):
    """A tiny real dataset: train/ (8 per class) and test/ (4 per class) ImageFolders."""
    d = tmp_path_factory.mktemp("real")
    write_image_folder(d / "train", 8, seed=0)
    write_image_folder(d / "test", 4, seed=1)
    return d
