"""Cost per step of a latent prior at the real CompVis/ldm-celebahq-256 configuration, with RANDOM weights.

Timing only — random weights say nothing about quality. Prints the median seconds (over --reps, after one
warm-up) of the pieces a latent solver's step is made of, at batch 1:

- UNet forward on a 1x3x64x64 latent (every solver, every step);
- decoder forward 64² latent -> 256² image (latent DPS / PSLD / LC-DPS: x0hat to pixels);
- decoder VJP (the data gradient of latent DPS and PSLD goes back through the decoder);
- decoder JVP (LC-DPS linearises the decoder: one JVP + one VJP per CG iteration), by torch.func.jvp and by the
  double-VJP trick (a VJP of the VJP: two backward passes).

The decoder is `LatentPrior.decode`, i.e. the VQModel's `decode` as LDMPipeline calls it: latents go through
the vector quantiser (nearest code; its straight-through estimator passes gradients and tangents unchanged),
`post_quant_conv` and the decoder. torch.func.jvp cannot go through the quantiser (torch.cdist has no
forward-mode derivative in torch 2.x: the bench prints the error it meets); since the straight-through estimator
passes tangents unchanged, the same JVP is the decoder's JVP at the quantised latent
(`decode(quantised, force_not_quantize=True)`), which the bench times instead, with the decoder's mid-block
attention on PyTorch's math SDPA backend (the fused CPU/GPU attention kernels have no forward-mode derivative
either). The double-VJP trick goes through `LatentPrior.decode` as it is, also on the math backend (the fused
attention backward cannot be differentiated again).

    python bench/latent_cost.py                # one thread, 2 reps (about 2 minutes on one core)
    python bench/latent_cost.py --threads 8 --reps 5 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

# The configuration of the hub folder CompVis/ldm-celebahq-256 (LDMPipeline). Values as in its unet/config.json,
# vqvae/config.json and scheduler/scheduler_config.json (diffusers 0.0.4 / 0.1.2 era; we read them from a public
# repository that copies the three files verbatim, and cross-checked them against CompVis/latent-diffusion's
# configs/latent-diffusion/celebahq-ldm-vq-4.yaml: model_channels 224 -> block_out_channels 224·(1, 2, 3, 4),
# attention at downsampling rates 2, 4, 8 -> the last three blocks, num_head_channels 32 -> attention_head_dim 32,
# image_size 64 and channels 3 -> sample_size 64, in/out_channels 3; first stage vq-f4: ch 128, ch_mult (1, 2, 4),
# num_res_blocks 2, z_channels 3, n_embed 8192; linear_start 0.0015, linear_end 0.0195, 1000 timesteps).
# Keys the hub files do not state take the diffusers defaults (norm_num_groups 32, the VQModel's scaling_factor).
UNET_CONFIG = {
    "sample_size": 64, "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
    "block_out_channels": (224, 448, 672, 896),
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    "attention_head_dim": 32, "act_fn": "silu", "center_input_sample": False, "downsample_padding": 1, "flip_sin_to_cos": True,
    "freq_shift": 0, "mid_block_scale_factor": 1, "norm_eps": 1e-5, "norm_num_groups": 32, "time_embedding_type": "positional",
}
VQVAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 3, "num_vq_embeddings": 8192, "layers_per_block": 2, "sample_size": 256,
    "block_out_channels": (128, 256, 512), "act_fn": "silu",
    "down_block_types": ("DownEncoderBlock2D",) * 3, "up_block_types": ("UpDecoderBlock2D",) * 3,
}
SCHEDULER_CONFIG = {"beta_start": 0.0015, "beta_end": 0.0195, "beta_schedule": "scaled_linear", "clip_sample": False, "num_train_timesteps": 1000}


def build_prior(device: str):
    from diffusers import DDIMScheduler, UNet2DModel, VQModel

    from inversa.pretrained.latent import LatentPrior

    torch.manual_seed(0)
    unet = UNet2DModel(**UNET_CONFIG).eval().requires_grad_(False)
    vq = VQModel(**VQVAE_CONFIG).eval().requires_grad_(False)
    return LatentPrior(unet, DDIMScheduler(**SCHEDULER_CONFIG), vq, name="ldm-celebahq-256 (random weights)").to(device)


def median_seconds(fn, reps: int, device: str):
    """(median seconds over `reps` calls, the last call's result); on a GPU after one untimed warm-up call
    (kernel selection, allocator), on a CPU without one (seconds per call: the first call is not slower)."""
    cuda = device.startswith("cuda")
    if cuda:
        fn()
    times = []
    for _ in range(reps):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions per figure (default 2; GPUs: after one warm-up)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.reps < 1:
        ap.error("--threads and --reps must be positive integers")
    torch.set_num_threads(args.threads)
    prior = build_prior(args.device)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(prior.latent_shape((1, 3, 256, 256)), generator=g).to(args.device)
    v = torch.randn(z.shape, generator=g).to(args.device)  # a latent tangent
    w = torch.randn(1, 3, 256, 256, generator=g).to(args.device)  # a pixel cotangent
    n_unet = sum(p.numel() for p in prior.model.parameters())
    n_dec = sum(p.numel() for p in prior.autoencoder.decoder.parameters()) + sum(
        p.numel() for p in prior.autoencoder.post_quant_conv.parameters())

    def unet():
        with torch.no_grad():
            prior.net(z, 500)

    def unet_vjp():  # latent DPS / PSLD: the data gradient runs back through the network
        zz = z.detach().requires_grad_(True)
        (g_,) = torch.autograd.grad(prior.net(zz, 500), zz, v)
        return g_

    def decode():
        with torch.no_grad():
            prior.decode(z)

    def vjp():
        zz = z.detach().requires_grad_(True)
        (g_,) = torch.autograd.grad(prior.decode(zz), zz, w)
        return g_

    def jvp_through_decode():
        return torch.func.jvp(prior.decode, (z,), (v,))[1]

    vq = prior.autoencoder

    def jvp():  # straight-through: the tangent passes the quantiser unchanged, so linearise after it
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with torch.no_grad():
            q = vq.quantize(z / prior.scaling_factor)[0]
        # The fused attention kernels have no forward-mode derivative; the math backend (composite ops) has.
        with sdpa_kernel(SDPBackend.MATH):
            return torch.func.jvp(lambda h: vq.decode(h, force_not_quantize=True).sample, (q,), (v / prior.scaling_factor,))[1]

    def jvp_double_vjp():
        from torch.nn.attention import SDPBackend, sdpa_kernel

        zz = z.detach().requires_grad_(True)
        u = torch.zeros_like(w, requires_grad=True)
        with sdpa_kernel(SDPBackend.MATH):  # the fused attention backward has no derivative of its own
            (gz,) = torch.autograd.grad(prior.decode(zz), zz, u, create_graph=True)
        (jv,) = torch.autograd.grad(gz, u, v)
        return jv

    assert prior.decode(z).shape == (1, 3, 256, 256)
    print(f"CompVis/ldm-celebahq-256 configuration, random weights: UNet2DModel {n_unet / 1e6:.1f} M parameters on "
          f"{tuple(z.shape)} latents, VQModel decoder {n_dec / 1e6:.1f} M parameters -> (1, 3, 256, 256); "
          f"device {args.device}, {args.threads} thread(s), median of {args.reps} rep(s)")
    try:
        jvp_through_decode()
        rows_jvp = [("decoder JVP (torch.func.jvp)", jvp_through_decode)]
    except (NotImplementedError, RuntimeError) as exc:
        print(f"torch.func.jvp through LatentPrior.decode: not available ({str(exc).splitlines()[0][:110]})")
        rows_jvp = [("decoder JVP (func.jvp after quantiser)", jvp)]
    rows = [("UNet forward (1x3x64x64)", unet), ("decoder forward 64² -> 256²", decode), ("decoder VJP", vjp),
            *rows_jvp, ("decoder JVP (double VJP)", jvp_double_vjp), ("UNet forward + VJP", unet_vjp)]
    results, seconds_of = {}, {}
    for label, fn in rows:
        seconds, results[label] = median_seconds(fn, args.reps, args.device)
        seconds_of[label] = seconds
        print(f"{label:40s} {seconds:8.3f} s", flush=True)
    jvps = [results[label] for label, _ in rows[3:5]]
    err = float((jvps[0] - jvps[1]).abs().max() / jvps[1].abs().max())
    print(f"the two JVPs agree to {err:.1e} (max abs difference / max abs value)")
    t = seconds_of
    f, fv, dv, dj = (t["UNet forward (1x3x64x64)"], t["UNet forward + VJP"], t["decoder VJP"], t["decoder JVP (double VJP)"])
    print("per step, from the figures above (decoder VJP includes its forward; the double-VJP JVP includes building "
          "its graph, which LC-DPS does once per step: an upper bound):")
    print(f"  latent DPS: UNet forward+VJP + decoder forward+VJP             {fv + dv:8.2f} s")
    print(f"  PSLD: latent DPS + the encoder's forward and VJP (not timed)   {fv + dv:8.2f} s + encoder")
    print(f"  LC-DPS, one CG iteration: UNet forward + decoder JVP + VJP     {f + dj + dv:8.2f} s")
    for k in (1, 2, 4, 8):
        print(f"  LC-DPS step, k = {k} CG iterations, 4 Lanczos: {2 + 4 + k} forwards + {k + 1} decoder JVP+VJP "
              f"{(2 + 4 + k) * f + (k + 1) * (dj + dv):8.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
