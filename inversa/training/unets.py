"""The networks and noise schedule of the priors `inversa train` builds."""

from __future__ import annotations

import math


def make_unet(size: int = 64, channels: tuple[int, ...] = (16, 32, 64, 128), layers_per_block: int = 1,
              in_channels: int = 3, num_classes: int | None = None):
    """A diffusers `UNet2DModel` without attention (runs at any size divisible by 2^(blocks-1)).

    `num_classes`: adds a class embedding with `num_classes + 1` entries, the last being the null
    class of classifier-free guidance."""
    from diffusers import UNet2DModel

    n = len(channels)
    return UNet2DModel(
        sample_size=size, in_channels=in_channels, out_channels=in_channels, block_out_channels=tuple(channels),
        layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n, add_attention=False, norm_num_groups=math.gcd(32, *channels),
        num_class_embeds=None if num_classes is None else num_classes + 1,
    )


def make_conditional_unet(channels=(32, 64, 64), layers_per_block: int = 1, num_classes: int = 10, size: int = 32,
                          in_channels: int = 1):
    """The class-conditional Fashion-MNIST prior's UNet (defaults: the bundled inversa-fashion-32)."""
    return make_unet(size, channels, layers_per_block, in_channels, num_classes)


def make_scheduler():
    """DDPM as in DPS: 1000 linear betas 1e-4..0.02, epsilon prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                         beta_end=0.02, prediction_type="epsilon", clip_sample=True)
