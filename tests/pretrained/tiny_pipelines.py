"""Tiny random-weight diffusers pipelines of the real latent layouts, saved with `save_pretrained`.

Importable by any test (`from tiny_pipelines import save_ldm, ...` with tests/pretrained on the path, or
`tests.pretrained.tiny_pipelines`); each builder writes a folder and returns its path:

- `save_ldm(dir)`: `LDMPipeline` (vqvae/ VQModel + unet/ UNet2DModel + scheduler/ DDIMScheduler), the layout
  of CompVis/ldm-celebahq-256 at toy sizes: 16x16 images, 8x8x3 latents (downscale 2);
- `save_stable_diffusion(dir, prediction_type=...)`: `StableDiffusionPipeline` (vae/ AutoencoderKL + unet/
  UNet2DConditionModel + text_encoder/ CLIPTextModel + tokenizer/ CLIPTokenizer + scheduler/), 16x16 images,
  8x8x4 latents; the tokenizer is built offline from a byte-level vocabulary written here;
- `save_dit(dir, id2label=...)`: `DiTPipeline` (transformer/ DiTTransformer2DModel + vae/ AutoencoderKL +
  scheduler/), 3 classes, 8x8 images, 4x4x4 latents.

Weights are random and seeded; a load plus a few network calls takes well under a second on one CPU thread.
The Stable-Diffusion builder needs the `transformers` package (CLIP).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TOKENIZER_MAX_LENGTH = 8  # CLIP uses 77; the text encoder's position table must be at least this long
CROSS_ATTENTION_DIM = 16


def byte_level_vocab() -> tuple[dict[str, int], list[str]]:
    """A CLIP-style byte-level BPE vocabulary with no merges: every byte as a token, alone and as a word end
    ("</w>"), plus <|startoftext|> / <|endoftext|>. Any text tokenizes (one token per byte)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):  # GPT-2's bytes_to_unicode: printable stand-ins for the other bytes
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, []


def tiny_clip(tokenizer_dir: Path):
    """(CLIPTokenizer, CLIPTextModel): the tokenizer loaded from vocab.json + merges.txt written into
    `tokenizer_dir`, a 1-layer text encoder of width CROSS_ATTENTION_DIM."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = byte_level_vocab()
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (tokenizer_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tokenizer_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=TOKENIZER_MAX_LENGTH)
    torch.manual_seed(3)
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=CROSS_ATTENTION_DIM, intermediate_size=32,
                            num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=TOKENIZER_MAX_LENGTH,
                            bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                            pad_token_id=vocab["<|endoftext|>"])
    return tokenizer, CLIPTextModel(config).eval()


def tiny_kl_vae(latent_channels: int = 4, blocks=(8, 16)):
    from diffusers import AutoencoderKL

    n = len(blocks)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=blocks, latent_channels=latent_channels,
                         norm_num_groups=4, layers_per_block=1, sample_size=16, scaling_factor=0.5)


def tiny_vq_vae():
    from diffusers import VQModel

    return VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                   up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                   latent_channels=3, num_vq_embeddings=32, norm_num_groups=4, sample_size=16, scaling_factor=1.0)


def ldm_pipeline():
    """An in-memory `LDMPipeline` (seeded)."""
    from diffusers import DDIMScheduler, LDMPipeline, UNet2DModel

    torch.manual_seed(0)
    vqvae = tiny_vq_vae()
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, attention_head_dim=4)
    # The hub model's scheduler family and betas (linear 0.0015 -> 0.0195 in the LDM paper's config).
    scheduler = DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False)
    return LDMPipeline(vqvae=vqvae, unet=unet, scheduler=scheduler)


def stable_diffusion_pipeline(tokenizer_dir: Path, *, prediction_type: str = "epsilon"):
    """An in-memory `StableDiffusionPipeline` (seeded; no safety checker). `tokenizer_dir`: where the
    tokenizer's vocabulary files are written (any scratch folder)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    tokenizer, text_encoder = tiny_clip(Path(tokenizer_dir))
    torch.manual_seed(1)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=4,
                                cross_attention_dim=CROSS_ATTENTION_DIM, attention_head_dim=4)
    vae = tiny_kl_vae()
    # Stable Diffusion's betas ("scaled_linear" 0.00085 -> 0.012); SD-2 style folders use v_prediction.
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def dit_pipeline(id2label: dict | None = None):
    """An in-memory `DiTPipeline` with 3 classes (+ the null class 3), learned sigma, 4x4x4 latents."""
    from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(2)
    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                        num_layers=1, sample_size=4, patch_size=2, num_embeds_ada_norm=3, norm_num_groups=4)
    vae = tiny_kl_vae(blocks=(8, 16))
    scheduler = DDIMScheduler(beta_schedule="linear", clip_sample=False)
    return DiTPipeline(transformer=transformer, vae=vae, scheduler=scheduler, id2label=id2label)


def save_ldm(path) -> Path:
    path = Path(path)
    ldm_pipeline().save_pretrained(path, safe_serialization=True)
    return path


def save_stable_diffusion(path, *, prediction_type: str = "epsilon") -> Path:
    path = Path(path)
    stable_diffusion_pipeline(path.with_name(path.name + "-tokenizer-src"), prediction_type=prediction_type).save_pretrained(
        path, safe_serialization=True)
    return path


def save_dit(path, id2label: dict | None = None) -> Path:
    path = Path(path)
    dit_pipeline(id2label).save_pretrained(path, safe_serialization=True)
    return path
