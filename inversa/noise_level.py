"""How noisy is a photo? A wavelet (MAD) estimate of the Gaussian noise level, in [0, 1] units.

    from inversa.noise_level import estimate_sigma
    sigma = estimate_sigma(x)   # x: (1, C, H, W) or (C, H, W) tensor in [0, 1], or an (H, W[, C]) array

Donoho's estimator as scikit-image implements it (`skimage.restoration.estimate_sigma`): the median
absolute deviation of the finest diagonal wavelet coefficients / 0.6745, averaged over channels.
It reads noise, not detail, on natural photos: about 0.002-0.01 on clean ones. Estimate on the
image the solver will see — downscaling averages noise away (a 4x downscale roughly quarters it).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def estimate_sigma(image) -> float:
    """The Gaussian noise std of `image` (values in [0, 1]), in the same [0, 1] units."""
    from skimage.restoration import estimate_sigma as _estimate

    if isinstance(image, torch.Tensor):
        a = image.detach().float().cpu()
        if a.ndim == 4:
            if a.shape[0] != 1:
                raise ValueError(f"estimate_sigma takes one image, got a batch of {a.shape[0]}")
            a = a[0]
        a = a.permute(1, 2, 0).numpy() if a.ndim == 3 else a.numpy()
    else:
        a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if min(a.shape[:2]) < 4:
        return 0.0  # too small for one level of wavelet detail
    with warnings.catch_warnings():  # PyWavelets' boundary-mode notes on tiny images
        warnings.simplefilter("ignore")
        sigma = _estimate(a.astype(np.float64), channel_axis=-1 if a.ndim == 3 else None, average_sigmas=True)
    return float(max(0.0, sigma))
