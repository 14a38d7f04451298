"""Image-quality metrics: PSNR, SSIM, LPIPS per image; FID and KID over a set.

All inputs are float NCHW tensors in [0, 1]; they are clamped to [0, 1] first, as the literature's
protocol says. Per-image metrics return a tensor of shape (B,).

LPIPS needs an ImageNet backbone that torchvision downloads on first use. Where there is no network,
point `weights=` or the environment variable `INVERSA_LPIPS_WEIGHTS` at a directory or file holding
local weights (a state dict with `features.{i}` per conv layer and `lin{k}.weight` heads, or
torchvision's own checkpoint).
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from inversa.imageio import to_uint8

LPIPS_NETS = ("alex", "vgg")
LPIPS_ENV = "INVERSA_LPIPS_WEIGHTS"
# torchvision's checkpoints, used when no local weights are given (they land in torch.hub's cache).
_TV_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
_LOCAL_NAMES = {"alex": ("alexnet", "alex"), "vgg": ("vgg16", "vgg")}


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here; the message is one line, e.g. 'LPIPS unavailable: ...'."""


def _prep(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != ref.shape:
        raise ValueError(f"shape mismatch: {tuple(x.shape)} vs reference {tuple(ref.shape)}")
    return x.detach().float().clamp(0, 1), ref.detach().float().to(x.device).clamp(0, 1)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image, data range 1."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    x, ref = _prep(x, ref)
    return peak_signal_noise_ratio(x, ref, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """SSIM per image (Gaussian window 11, sigma 1.5), data range 1."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    x, ref = _prep(x, ref)
    return structural_similarity_index_measure(x, ref, data_range=1.0, reduction="none")


# --- LPIPS ---------------------------------------------------------------------------------------


def resolve_lpips_weights(net: str = "alex", weights: str | os.PathLike | None = None) -> Path | None:
    """The local weight file for `net`, from `weights` or $INVERSA_LPIPS_WEIGHTS; None if neither is set.

    A directory is searched for a `.pt`/`.pth` file whose name names the network (alexnet / vgg16).
    """
    if net not in LPIPS_NETS:
        raise ValueError(f"unknown LPIPS network {net!r}; choose one of {', '.join(LPIPS_NETS)}")
    src = weights if weights is not None else os.environ.get(LPIPS_ENV) or None
    if src is None:
        return None
    path = Path(src).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".pt", ".pth"))
        for name in _LOCAL_NAMES[net]:
            hits = [p for p in files if name in p.name.lower()]
            if hits:
                return hits[0]
        raise MetricUnavailable(f"LPIPS unavailable: no {net} weights (*.pt/*.pth naming {_LOCAL_NAMES[net][0]}) in {path}")
    raise MetricUnavailable(f"LPIPS unavailable: weights path {path} does not exist")


def _load_backbone_state(net: str, path: Path | None) -> tuple[dict, str]:
    """(state dict, description of its source); local file first, else torchvision's cache/download."""
    if path is not None:
        try:
            return torch.load(path, map_location="cpu", weights_only=True), str(path)
        except Exception as exc:  # a corrupt or foreign file: say which one
            raise MetricUnavailable(f"LPIPS unavailable: cannot read {path}: {exc}") from exc
    url = _TV_URLS[net]
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except Exception as exc:
        raise MetricUnavailable(
            f"LPIPS unavailable: the {net} backbone is not in torchvision's cache and cannot be downloaded "
            f"({type(exc).__name__}); set {LPIPS_ENV} to a directory of local LPIPS weights"
        ) from exc
    return state, f"torchvision:{url.rsplit('/', 1)[-1]}"


def _conv_params(state: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Backbone conv (weight, bias) in layer order.

    Both layouts sort correctly by index: ours numbers conv layers 0..n-1, torchvision numbers
    Sequential positions, which increase with the conv order.
    """
    idx = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.") and k.endswith(".weight")})
    return [(state[f"features.{i}.weight"], state[f"features.{i}.bias"]) for i in idx]


@lru_cache(maxsize=8)
def _lpips_model(net: str, path: str | None, device: str):
    try:
        import lpips as lpips_pkg
    except ImportError:
        raise MetricUnavailable("LPIPS unavailable: the lpips package is not installed: pip install 'inversa[eval]'") from None

    state, source = _load_backbone_state(net, Path(path) if path else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecated `pretrained=` argument inside lpips
        # pnet_rand=True: lpips must not download the backbone itself; we fill it in below.
        model = lpips_pkg.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    convs = [m for m in model.net.modules() if isinstance(m, nn.Conv2d)]
    params = _conv_params(state)
    if len(params) != len(convs):
        raise MetricUnavailable(
            f"LPIPS unavailable: {source} has {len(params)} conv layers, the {net} backbone needs {len(convs)}"
        )
    with torch.no_grad():
        for conv, (w, b) in zip(convs, params):
            if w.shape != conv.weight.shape:
                raise MetricUnavailable(f"LPIPS unavailable: {source} does not hold {net} weights (shape {tuple(w.shape)})")
            conv.weight.copy_(w)
            conv.bias.copy_(b)
        for k, lin in enumerate(model.lins):
            if f"lin{k}.weight" in state:  # torchvision checkpoints have no heads: keep lpips' own
                lin.model[-1].weight.copy_(state[f"lin{k}.weight"])
    model.source = source
    return model.eval().requires_grad_(False).to(device)


def load_lpips(net: str = "alex", weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """The cached `lpips.LPIPS` network; raises `MetricUnavailable` when no backbone can be had.

    `model.source` says where the backbone came from.
    """
    path = resolve_lpips_weights(net, weights)
    return _lpips_model(net, str(path.resolve()) if path else None, str(torch.device(device)))


def lpips(
    x: torch.Tensor,
    ref: torch.Tensor,
    net: str = "alex",
    weights: str | os.PathLike | None = None,
) -> torch.Tensor:
    """LPIPS v0.1 per image (lower is better), inputs scaled from [0, 1] to [-1, 1]."""
    x, ref = _prep(x, ref)
    model = load_lpips(net, weights, x.device)
    with torch.no_grad():
        return model(x * 2 - 1, ref * 2 - 1).flatten()


# --- FID / KID over a set ------------------------------------------------------------------------


INCEPTION_ENV = "INVERSA_INCEPTION_WEIGHTS"
INCEPTION_NAME = "torchmetrics InceptionV3 pool3 (2048, torch-fidelity FID weights, antialiased resize to 299)"


class Inception(nn.Module):
    """The standard FID feature network on float [0, 1] images: (B, 3, H, W) -> (B, 2048).

    Needs torch-fidelity; its weights are downloaded once into torch.hub's cache unless `weights`
    (or $INVERSA_INCEPTION_WEIGHTS) names a local copy of `pt_inception-2015-12-05-6726825d.pth`.
    """

    num_features = 2048

    def __init__(self, weights: str | os.PathLike | None = None):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        weights = weights or os.environ.get(INCEPTION_ENV) or None
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=weights and str(weights)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(to_uint8(x)).reshape(len(x), -1)  # round, not truncate: images loaded as k/255 map back to k


def _unavailable(exc: Exception) -> MetricUnavailable:
    if isinstance(exc, MetricUnavailable):
        return exc
    if isinstance(exc, ModuleNotFoundError) and "fidelity" in str(exc).lower():
        reason = "torch-fidelity is not installed (it provides the Inception network): pip install 'inversa[eval]'"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return MetricUnavailable(f"FID unavailable: {reason}".splitlines()[0])


def _batches(images):
    return [images] if isinstance(images, torch.Tensor) else images


class SetMetrics:
    """FID and KID of several image sets against one real set, whose features are computed once.

    `feature=None` uses `Inception` (see there); any `nn.Module` mapping float [0, 1] images to
    (B, D) features can be given instead. Raises `MetricUnavailable("FID unavailable: ...")`.
    """

    def __init__(self, real, feature: nn.Module | None = None, device: str | torch.device = "cpu",
                 kid_subsets: int = 100, seed: int = 0):
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        self.n_real, self.seed, self.device = 0, seed, device
        try:
            self.feature_name = INCEPTION_NAME if feature is None else f"custom {type(feature).__name__}"
            feature = Inception() if feature is None else feature
            # as "custom" models, both metrics pass our float images straight to `feature`
            self.fid = FrechetInceptionDistance(feature=feature, normalize=True, reset_real_features=False).to(device)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # KID's "saves all features" notice: our sets are small
                self.kid = KernelInceptionDistance(
                    feature=feature, subsets=kid_subsets, normalize=True, reset_real_features=False
                ).to(device)
            self.n_real = self._update(real, True)
        except Exception as exc:
            raise _unavailable(exc) from exc
        if self.n_real < 2:
            raise MetricUnavailable(f"FID unavailable: needs at least 2 real images, got {self.n_real}")

    def _update(self, images, real: bool) -> int:
        n = 0
        with torch.no_grad():
            for batch in _batches(images):
                batch = batch.float().to(self.device).clamp(0, 1)
                self.fid.update(batch, real=real)
                self.kid.update(batch, real=real)
                n += len(batch)
        return n

    def __call__(self, fake) -> dict:
        """{"fid", "kid_mean", "kid_std", "n_real", "n_fake", "feature"} of `fake` against the real set."""
        self.fid.reset()
        self.kid.reset()
        try:
            n_fake = self._update(fake, False)
            if n_fake < 2:
                raise MetricUnavailable(f"FID unavailable: needs at least 2 images per set, got {n_fake}")
            with torch.no_grad():
                self.kid.subset_size = min(self.n_real, n_fake, 1000)
                with torch.random.fork_rng(devices=[]):  # KID draws random subsets: make them reproducible
                    torch.manual_seed(self.seed)
                    kid_mean, kid_std = self.kid.compute()
                fid = self.fid.compute()
        except Exception as exc:
            raise _unavailable(exc) from exc
        return {"fid": float(fid), "kid_mean": float(kid_mean), "kid_std": float(kid_std),
                "n_real": self.n_real, "n_fake": n_fake, "feature": self.feature_name}


def set_metrics(real, fake, feature: nn.Module | None = None, device: str | torch.device = "cpu", **kw) -> dict:
    """FID and KID between two sets (iterables of NCHW [0, 1] tensors, or one tensor each); see `SetMetrics`."""
    return SetMetrics(real, feature, device, **kw)(fake)
