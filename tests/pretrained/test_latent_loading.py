"""Latent priors load from LDMPipeline and Stable-Diffusion-layout folders and pipeline objects: the weights,
scheduler and text conditioning are the pipeline's own (checked against diffusers running the same folder),
and everything else is refused in one line that names what is accepted."""

import json
import shutil

import pytest
import torch
from tiny_pipelines import TOKENIZER_MAX_LENGTH, ldm_pipeline, stable_diffusion_pipeline

from inversa.errors import UserError
from inversa.pretrained import load_prior
from inversa.pretrained.latent import LatentPrior
from inversa.pretrained.loading import HUB_FILES, HUB_SKIPPED


def _z(prior, n=2, side=16, seed=0):
    return torch.randn(prior.latent_shape((n, 3, side, side)), generator=torch.Generator().manual_seed(seed))


def test_ldm_folder_is_the_pipelines_unet_and_vqvae(ldm_dir):
    from diffusers import LDMPipeline

    prior = load_prior(str(ldm_dir))
    assert isinstance(prior, LatentPrior) and prior.kind == "latent" and prior.prompt is None
    info = prior.describe()
    assert (info["unet"], info["autoencoder"], info["scaling_factor"], info["downscale"], info["latent_channels"]) == \
        ("UNet2DModel", "VQModel", 1.0, 2, 3)
    assert prior.encoder_hidden_states is None and type(prior.scheduler).__name__ == "DDIMScheduler"
    pipe = LDMPipeline.from_pretrained(ldm_dir)
    z = _z(prior)
    assert z.shape == (2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(prior.net(z, 700), pipe.unet(z, torch.full((2,), 700)).sample)
        # LDMPipeline decodes latents / scaling_factor (diffusers 0.42); the VQModel quantises inside decode.
        torch.testing.assert_close(prior.decode(z), pipe.vqvae.decode(z / pipe.vqvae.config.scaling_factor).sample)
    torch.testing.assert_close(prior.alphas_cumprod, pipe.scheduler.alphas_cumprod.double())
    x = prior.decode(z)
    assert x.shape == (2, 3, 16, 16) and prior.encode(x).shape == z.shape


def test_stable_diffusion_folder_uses_the_empty_prompt_embedding_diffusers_computes(sd_dir):
    from diffusers import StableDiffusionPipeline

    prior = load_prior(str(sd_dir))
    pipe = StableDiffusionPipeline.from_pretrained(sd_dir, safety_checker=None, requires_safety_checker=False)
    assert prior.prompt == "" and prior.describe()["conditioning"] == "empty prompt"
    assert (prior.describe()["autoencoder"], prior.scaling_factor, prior.latent_channels) == ("AutoencoderKL", 0.5, 4)
    with torch.no_grad():
        empty = pipe.encode_prompt("", "cpu", 1, False)[0]
        cat = pipe.encode_prompt("a cat", "cpu", 1, False)[0]
    assert prior.encoder_hidden_states.shape == (1, TOKENIZER_MAX_LENGTH, 16)
    torch.testing.assert_close(prior.encoder_hidden_states, empty)
    z = _z(prior, n=3)
    with torch.no_grad():  # the fixed conditioning is expanded to the batch and reaches the UNet
        torch.testing.assert_close(prior.net(z, 400), pipe.unet(z, torch.full((3,), 400), encoder_hidden_states=empty.expand(3, -1, -1)).sample)
        torch.testing.assert_close(prior.decode(z), pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample)

    with_prompt = load_prior(str(sd_dir), prompt="a cat")
    assert with_prompt.prompt == "a cat" and with_prompt.describe()["conditioning"] == "prompt 'a cat'"
    torch.testing.assert_close(with_prompt.encoder_hidden_states, cat)
    assert not torch.allclose(cat, empty)
    with torch.no_grad():
        assert not torch.allclose(with_prompt.net(z, 400), prior.net(z, 400))  # the prompt changes the prediction


def test_any_scheduler_class_and_v_prediction_are_read_from_the_folder(sd_dir, tmp_path):
    from diffusers import EulerDiscreteScheduler

    d = tmp_path / "sd_v"
    shutil.copytree(sd_dir, d)
    shutil.rmtree(d / "scheduler")
    euler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="v_prediction")
    euler.save_pretrained(d / "scheduler")
    prior = load_prior(str(d))
    assert type(prior.scheduler).__name__ == "EulerDiscreteScheduler" and prior.prediction_type == "v_prediction"
    torch.testing.assert_close(prior.alphas_cumprod, euler.alphas_cumprod.double())
    z = _z(prior, n=1)
    a = prior.abar(300)
    with torch.no_grad():
        v = prior.net(z, 300)
        pred = prior.predict(z, 300)
    torch.testing.assert_close(pred.x0hat, a**0.5 * z - (1 - a) ** 0.5 * v)  # unclipped, v-prediction


def test_in_memory_pipelines_give_the_same_prior_as_their_folders(ldm_dir, sd_dir, tmp_path):
    z = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    folder, memory = load_prior(str(ldm_dir)), load_prior(ldm_pipeline())  # the builder is seeded: same weights
    assert memory.name == "LDMPipeline" and isinstance(memory, LatentPrior)
    with torch.no_grad():
        torch.testing.assert_close(memory.net(z, 10), folder.net(z, 10))
        torch.testing.assert_close(memory.decode(z), folder.decode(z))
    pytest.importorskip("transformers")
    pipe = stable_diffusion_pipeline(tmp_path / "tok")
    folder, memory = load_prior(str(sd_dir), prompt="faces"), load_prior(pipe, prompt="faces")
    assert memory.prompt == "faces"
    torch.testing.assert_close(memory.encoder_hidden_states, folder.encoder_hidden_states)
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(memory.net(z, 10), folder.net(z, 10))


def test_decoder_is_differentiable_for_latent_solvers(ldm_dir):
    prior = load_prior(str(ldm_dir))
    z = _z(prior, n=1).requires_grad_(True)
    (prior.decode(z) ** 2).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


# --- refusals: one line, naming what is accepted ---

def _one_line(fn, match):
    with pytest.raises(UserError, match=match) as err:
        fn()
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_conditional_unet_without_its_autoencoder_is_refused(sd_dir, tmp_path):
    msg = _one_line(lambda: load_prior(str(sd_dir / "unet")), "UNet2DConditionModel without its autoencoder")
    assert "accepted:" in msg and "LDMPipeline" in msg
    # The same UNet with no _class_name in its config: diffusers itself would stop with "cross_attention_dim must be specified".
    bare = tmp_path / "bare_unet"
    shutil.copytree(sd_dir / "unet", bare)
    cfg = json.loads((bare / "config.json").read_text())
    del cfg["_class_name"]
    (bare / "config.json").write_text(json.dumps(cfg))
    assert "cross_attention_dim" not in _one_line(lambda: load_prior(str(bare)), "without its autoencoder")
    # A Stable-Diffusion folder whose vae/ was left behind is not a latent pipeline.
    novae = tmp_path / "novae"
    shutil.copytree(sd_dir, novae)
    shutil.rmtree(novae / "vae")
    index = json.loads((novae / "model_index.json").read_text())
    del index["vae"]
    (novae / "model_index.json").write_text(json.dumps(index))
    _one_line(lambda: load_prior(str(novae)), "without its autoencoder")


@pytest.mark.parametrize("change, message", [
    ({"addition_embed_type": "text_time"}, r"extra conditioning \(addition_embed_type='text_time'"),  # SDXL
    ({"num_class_embeds": 1000}, r"extra conditioning \(num_class_embeds=1000"),  # the x4 upscaler's noise level
    ({"in_channels": 9}, "takes 9 input channels but the autoencoder's latents have 4"),  # SD inpainting
])
def test_unets_needing_more_than_latent_and_text_are_refused(sd_dir, tmp_path, change, message):
    d = tmp_path / "changed"
    shutil.copytree(sd_dir, d)
    cfg = json.loads((d / "unet" / "config.json").read_text())
    (d / "unet" / "config.json").write_text(json.dumps({**cfg, **change}))
    assert "accepted:" in _one_line(lambda: load_prior(str(d)), message)


def test_missing_text_encoder_or_tokenizer_is_refused(sd_dir, tmp_path):
    for part in ("text_encoder", "tokenizer"):
        d = tmp_path / f"no_{part}"
        shutil.copytree(sd_dir, d)
        shutil.rmtree(d / part)
        _one_line(lambda d=d: load_prior(str(d)), f"UNet2DConditionModel but no {part}/")


def test_dit_and_other_pipelines_are_refused_for_restoration(dit_dir, tmp_path):
    _one_line(lambda: load_prior(str(dit_dir)), r"DiTPipeline .*`inversa distill --model`.*accepted:")
    from tiny_pipelines import dit_pipeline

    _one_line(lambda: load_prior(dit_pipeline()), r"pipeline DiTPipeline is a DiTPipeline.*inversa distill")
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyV22Pipeline", "movq": ["diffusers", "VQModel"],
                                                        "scheduler": ["diffusers", "DDPMScheduler"]}))
    _one_line(lambda: load_prior(str(other)), r"KandinskyV22Pipeline without a unet/: not supported; accepted:")
    flux = tmp_path / "flux"
    flux.mkdir()
    (flux / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"]}))
    _one_line(lambda: load_prior(str(flux)), r"FluxPipeline with a FluxTransformer2DModel: not supported for restoration")


def test_pickled_weights_are_not_loaded(ldm_dir, tmp_path):
    d = tmp_path / "ldm_bin"
    shutil.copytree(ldm_dir, d)
    w = d / "vqvae" / "diffusion_pytorch_model.safetensors"
    w.rename(w.with_suffix(".bin"))  # stands for a pickle: it must never be opened
    _one_line(lambda: load_prior(str(d)), r"vqvae' has no weights \(\*\.safetensors\); its \*\.bin files are pickles")


def test_a_prompt_is_refused_where_it_cannot_apply(ldm_dir, tiny_model_dir):
    _one_line(lambda: load_prior(str(ldm_dir), prompt="a face"), "prompt applies only to text-conditioned")
    _one_line(lambda: load_prior(str(tiny_model_dir), prompt="a face"), "prompt applies only to text-conditioned")
    _one_line(lambda: load_prior(ldm_pipeline(), prompt="a face"), "prompt applies only to text-conditioned")
    _one_line(lambda: load_prior(str(ldm_dir), prompt=3), "prompt must be text")


def test_hub_download_fetches_the_needed_safetensors_only():
    """The allow/ignore patterns of `_download`, applied the way huggingface_hub applies them, to the file lists
    of a Stable-Diffusion 1.5-style repo and of CompVis/ldm-celebahq-256 (names as on the hub)."""
    from huggingface_hub.utils import filter_repo_objects

    sd = ["model_index.json", "v1-5-pruned-emaonly.safetensors", "v1-5-pruned.ckpt", "unet/config.json",
          "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.safetensors",
          "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
          "text_encoder/pytorch_model.bin", "text_encoder/model.fp16.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt",
          "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "scheduler/scheduler_config.json",
          "safety_checker/config.json", "safety_checker/model.safetensors", "safety_checker/pytorch_model.bin",
          "feature_extractor/preprocessor_config.json", "unet/diffusion_pytorch_model.non_ema.safetensors"]
    got = set(filter_repo_objects(sd, allow_patterns=HUB_FILES, ignore_patterns=HUB_SKIPPED))
    assert {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
            "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt", "scheduler/scheduler_config.json"} <= got
    assert not {f for f in got if f.endswith((".bin", ".ckpt")) or ".fp16." in f or f.startswith("safety_checker/") and
                f.endswith(".safetensors") or f.startswith("v1-5")}
    ldm = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin",
           "vqvae/config.json", "vqvae/diffusion_pytorch_model.safetensors", "vqvae/diffusion_pytorch_model.bin",
           "scheduler/scheduler_config.json", "README.md"]
    assert set(filter_repo_objects(ldm, allow_patterns=HUB_FILES, ignore_patterns=HUB_SKIPPED)) == {
        "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vqvae/config.json",
        "vqvae/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json"}


def test_a_prompt_longer_than_the_text_encoder_is_truncated_with_a_warning(sd_dir):
    with pytest.warns(UserWarning, match="longer than the text encoder's 8 tokens and was truncated"):
        long = load_prior(str(sd_dir), prompt="a photograph")  # one token per byte here: 11 + 2 markers > 8
    with pytest.warns(UserWarning, match="truncated"):
        longer = load_prior(str(sd_dir), prompt="a photographic")  # the same first 8 tokens
    torch.testing.assert_close(long.encoder_hidden_states, longer.encoder_hidden_states)
