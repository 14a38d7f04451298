"""`inversa models list/info` with latent priors: the LDM hub model is listed (nothing downloaded), and `info`
on a latent folder states the autoencoder, scaling, geometry and conditioning."""

import json

import pytest
import torch
from pretrained.tiny_pipelines import save_dit, save_ldm, save_stable_diffusion

from inversa.cli import main


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("latent_models")
    out = {"ldm": save_ldm(d / "ldm"), "dit": save_dit(d / "dit")}
    try:
        import transformers  # noqa: F401

        out["sd"] = save_stable_diffusion(d / "sd")
    except ImportError:
        pass
    yield out
    torch.set_num_threads(threads)


def _info(capsys, *argv) -> dict:
    assert main(["models", "info", *argv]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "input sides must be multiples of 4"
    return dict(line.split(": ", 1) for line in lines[:-1])


def test_list_shows_the_ldm_hub_model_as_latent_without_downloading(capsys, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("list must not download"))
    assert main(["models", "list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("CompVis/ldm-celebahq-256"))
    assert line.split()[1] == "hub-latent"
    assert main(["models", "list", "--json"]) == 0
    rows = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert rows["CompVis/ldm-celebahq-256"]["space"] == "latent" and rows["google/ddpm-cat-256"]["space"] == "pixel"


def test_info_on_an_ldm_folder(folders, capsys):
    info = _info(capsys, str(folders["ldm"]))
    assert info["kind"] == "latent" and info["unet"].startswith("UNet2DModel,") and info["autoencoder"].startswith("VQModel,")
    assert (info["scaling factor"], info["downscale factor"], info["latent channels"]) == ("1", "2", "3")
    assert info["conditioning"] == "none (unconditional UNet)" and info["scheduler"] == "DDIMScheduler"
    assert info["sample size"] == "16 (latent 8)"


def test_info_on_a_stable_diffusion_folder_states_the_prompt(folders, capsys):
    if "sd" not in folders:
        pytest.skip("the Stable-Diffusion layout's text encoder needs transformers")
    info = _info(capsys, str(folders["sd"]))
    assert info["unet"].startswith("UNet2DConditionModel,") and info["autoencoder"].startswith("AutoencoderKL,")
    assert (info["scaling factor"], info["latent channels"], info["conditioning"]) == ("0.5", "4", "empty prompt")
    assert _info(capsys, str(folders["sd"]), "--prompt", "old")["conditioning"] == "prompt 'old'"


def test_info_refuses_a_dit_folder_in_one_line(folders, capsys):
    assert main(["models", "info", str(folders["dit"])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "inversa distill" in err and "accepted:" in err
