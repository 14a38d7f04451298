"""inversa: imaging inverse problems with pretrained diffusion priors.

Data flows one way: image --operator--> measurement --solver(prior)--> restoration --metrics--> report.
Images are float tensors in [0, 1], NCHW, at the public API (`restore` and `InversaPipeline` also
take paths, PIL images and NumPy arrays).

    import inversa
    result = inversa.restore("photo.png", task="sr", factor=4, steps=50)     # one call
    pipe = inversa.InversaPipeline.from_pretrained()                         # diffusers style
    prior = inversa.load_prior(); op = inversa.make_preset("sr4", 64)        # the pieces
    solver = inversa.make_solver("dps", prior); out = solver(op.measure(x), op)

The names below are imported on first use: `import inversa` loads neither torch nor gradio.
"""

from __future__ import annotations

import importlib

from inversa.errors import UserError

__version__ = "0.1.0"

_EXPORTS = {
    # priors
    "load_prior": "inversa.pretrained.loading",
    "DiffusionPrior": "inversa.pretrained.prior",
    # operators and benchmark presets
    "make_preset": "inversa.operators",
    "PRESETS": "inversa.operators",
    "DEFAULT_SIGMA": "inversa.operators",
    "LinearOperator": "inversa.operators",
    "Blur": "inversa.operators",
    "Inpainting": "inversa.operators",
    "SuperResolution": "inversa.operators",
    "Identity": "inversa.operators",
    "GaussianNoise": "inversa.operators",
    "PoissonNoise": "inversa.operators",
    "gaussian_kernel": "inversa.operators",
    "motion_kernel": "inversa.operators",
    "load_kernel": "inversa.operators",
    "load_mask": "inversa.operators",
    "box_mask": "inversa.operators",
    "random_mask": "inversa.operators",
    # solvers
    "make_solver": "inversa.solvers.registry",
    "SOLVERS": "inversa.solvers.registry",
    "solver_params": "inversa.params",
    # one call, and the diffusers-style pipeline
    "restore": "inversa.restoration",
    "RestoreResult": "inversa.restoration",
    "write_outputs": "inversa.restoration",
    "InversaPipeline": "inversa.pipeline",
    "InversaPipelineOutput": "inversa.pipeline",
    # image I/O
    "load_image": "inversa.imageio",
    "save_image": "inversa.imageio",
    "as_image": "inversa.imageio",
    "tensor_to_pil": "inversa.imageio",
    "pil_to_tensor": "inversa.imageio",
    "demo_image": "inversa.demo",
    # devices
    "resolve_device": "inversa.device",
}
_SUBMODULES = ("operators", "solvers", "pretrained", "eval", "imageio", "interop", "pipeline")

__all__ = ["UserError", "__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"inversa.{name}")
    raise AttributeError(f"module 'inversa' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
