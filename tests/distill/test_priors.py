"""Class-conditional priors: pixel UNet with CFG, and the latent DiT + VAE path with gradients
flowing through the decoder and the classifier."""

import pytest
import torch

from inversa.errors import UserError
from inversa.distill.classifier import Classifier
from inversa.pretrained.conditional import LatentClassConditionalPrior, load_conditional_prior
from inversa.solvers.igds import IGDS


def test_pixel_prior_loads_with_classes_and_cfg_is_the_guided_combination(cond_model_dir):
    prior = load_conditional_prior(str(cond_model_dir), cfg_scale=3.0)
    assert prior.num_classes == 3 and prior.null_class == 3 and prior.class_names == ["ant", "bee", "cat"]
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 2])
    t = torch.full((2,), 500)
    with torch.no_grad():
        cond = prior.model(x, t, class_labels=y).sample
        uncond = prior.model(x, t, class_labels=torch.tensor([3, 3])).sample
        got = prior.net(x, 500, class_labels=y)
    torch.testing.assert_close(got, uncond + 3.0 * (cond - uncond), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(cond, uncond)  # the labels matter
    prior.set_cfg_scale(1.0)
    with torch.no_grad():
        torch.testing.assert_close(prior.net(x, 500, class_labels=y), cond)


def test_pixel_prior_errors_are_one_line(cond_model_dir, tiny_model_dir):
    prior = load_conditional_prior(str(cond_model_dir))
    with pytest.raises(UserError, match=r"class labels must be in \[0, 2\]"):
        prior.check_labels([0, 3])
    with pytest.raises(UserError, match="cfg_scale must be a non-negative"):
        prior.set_cfg_scale(-1)
    with pytest.raises(UserError, match="not class-conditional"):
        load_conditional_prior(str(tiny_model_dir))
    with pytest.raises(UserError, match="unknown class-conditional model 'nope'"):
        load_conditional_prior("nope")


def tiny_latent_prior(cfg_scale=2.0, learned_sigma=True):
    from diffusers import AutoencoderKL, DDPMScheduler, DiTTransformer2DModel

    torch.manual_seed(0)
    dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                out_channels=8 if learned_sigma else None, num_layers=1, sample_size=4, patch_size=2,
                                num_embeds_ada_norm=3, norm_num_groups=4)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                        norm_num_groups=4, sample_size=8)
    for m in (dit, vae):
        m.eval().requires_grad_(False)
    return LatentClassConditionalPrior(dit, DDPMScheduler(beta_schedule="linear"), vae, num_classes=3, null_class=3,
                                       cfg_scale=cfg_scale, name="tiny-dit")


def tiny_rgb_classifier():
    from inversa.distill.nets import make_net

    torch.manual_seed(2)
    net = make_net("convnet", in_channels=3, num_classes=3, size=8, width=8, depth=2).eval().requires_grad_(False)
    return Classifier(net, input_size=8, mean=[0.5] * 3, std=[0.25] * 3, class_names=["a", "b", "c"])


def test_latent_path_gradients_flow_through_decoder_and_classifier():
    prior = tiny_latent_prior()
    assert prior.learned_variance and prior.sample_shape(2) == (2, 4, 4, 4)
    clf = tiny_rgb_classifier()
    Q = torch.full((3, 3), 0.1) + 0.7 * torch.eye(3)
    solver = IGDS(prior, clf, Q, ipc=10, scale=1.0)
    ctx = solver.prepare(None, solver.timesteps(10))
    ctx.labels = torch.tensor([0, 2])
    x_t = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    pred = solver.predict(x_t, 500, ctx)
    pixels = prior.decode(pred.x0hat)
    assert pixels.shape == (2, 3, 8, 8)
    # Watch one decoder weight and one classifier weight: the objective's gradient must reach them too.
    dec_w = prior.vae.decoder.conv_out.weight.requires_grad_(True)
    clf_w = clf.net.classifier.weight.requires_grad_(True)
    try:
        L, log_qy, kl = solver.objective(pred.x0hat, ctx.labels)
        assert torch.isfinite(L).all() and (log_qy <= 0).all() and (kl >= -1e-6).all()
        g_x, g_dec, g_clf = torch.autograd.grad(L.sum(), [x_t, dec_w, clf_w])
    finally:
        dec_w.requires_grad_(False)
        clf_w.requires_grad_(False)
    for g in (g_x, g_dec, g_clf):
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    # Per-image objective: image 0's loss does not move image 1's latent.
    (g0,) = torch.autograd.grad(solver.objective(solver.predict(x_t, 500, ctx).x0hat, ctx.labels)[0][0], x_t)
    assert g0[0].abs().sum() > 0 and g0[1].abs().sum() == 0


def test_latent_igds_generates_decoded_images_with_guidance_steps():
    prior = tiny_latent_prior(cfg_scale=2.0)
    solver = IGDS(prior, tiny_rgb_classifier(), torch.full((3, 3), 1 / 3), ipc=5, scale=1.0, window=(0.0, 1.0))
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    out = solver.generate([1, 2], generator=gens, num_steps=4, progress=False)
    assert out.x.shape == (2, 3, 8, 8) and torch.isfinite(out.x).all()
    assert 0 <= out.x.min() and out.x.max() <= 1
    assert out.vjp == 4 and out.nfe == 4  # CFG's two passes are one batched call
    assert out.metadata["cfg_scale"] == 2.0 and out.metadata["class_labels"] == [1, 2]


def test_dit_without_out_channels_gets_in_channels():
    prior = tiny_latent_prior(learned_sigma=False)
    assert not prior.learned_variance and prior.in_channels == 4
    with torch.no_grad():
        pred = prior.predict(torch.randn(1, 4, 4, 4) * 5, 900, class_labels=torch.tensor([0]))
    assert pred.x0hat.abs().max() > 1  # latents are never clipped to [-1, 1]
