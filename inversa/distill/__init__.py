"""Dataset distillation: generate a small labelled training set with a class-conditional prior
(`generate`: IGDS or unguided sampling), and judge it by the students it trains (`students`).
Beside them: the datasets (`data`: Fashion-MNIST, ImageFolder), the guidance classifier
(`classifier`) and the student networks (`nets`)."""

from inversa.distill.generate import distill

__all__ = ["distill"]
