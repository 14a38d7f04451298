"""Tiny synthetic ImageFolders for the distillation tests."""

import numpy as np
from PIL import Image

CLASS_NAMES = ["ant", "bee", "cat"]


def write_image_folder(root, per_class: int, size: int = 16, seed: int = 0, names=CLASS_NAMES):
    """Class c: a bright square at a class-dependent place plus noise (learnable by a student)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            a = rng.uniform(0, 40, (size, size))
            o = 2 + 4 * c
            a[o:o + 4, o:o + 4] = 230
            Image.fromarray(a.astype(np.uint8), "L").save(root / name / f"{k:04d}.png")
    return root
