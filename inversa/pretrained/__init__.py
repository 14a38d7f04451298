"""What knows images: the prior wrapper, loading, the analytic oracle, training, the bundled models."""

from inversa.pretrained.loading import load_prior
from inversa.pretrained.prior import DiffusionPrior, Prediction

__all__ = ["DiffusionPrior", "Prediction", "load_prior"]
