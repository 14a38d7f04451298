"""inversa: imaging inverse problems with pretrained diffusion priors.

Data flows one way: image --operator--> measurement --solver(prior)--> restoration --metrics--> report.
Images are float tensors in [0, 1], NCHW, at the public API.
"""

__version__ = "0.1.0"
