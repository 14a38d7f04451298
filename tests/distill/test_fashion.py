"""Fashion-MNIST idx reader and the bundled demo models."""

import gzip
import struct

import numpy as np
import pytest
import torch

from inversa.errors import UserError
from inversa.distill import data as fashion
from inversa.pretrained import registry


def test_read_idx_roundtrip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"\0\0\x08\x03" + struct.pack(">III", 2, 3, 4) + a.tobytes())
    assert np.array_equal(fashion.read_idx(p), a)
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\0\0\x0d\x01" + struct.pack(">I", 1) + b"\0\0\0\0")
    with pytest.raises(UserError, match="not an unsigned-byte idx file"):
        fashion.read_idx(bad)


def test_missing_data_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSA_FASHION_MNIST", str(tmp_path))
    with pytest.raises(UserError, match="install the Debian package dataset-fashion-mnist"):
        fashion.load_fashion_mnist("test")
    with pytest.raises(UserError, match="split 'val' is not known; accepted: train, test"):
        fashion.load_fashion_mnist("val")


@pytest.mark.skipif(not (fashion.DEFAULT_ROOT / "t10k-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed")
def test_debian_test_split_is_padded_to_32():
    x, y = fashion.load_fashion_mnist("test")
    assert x.shape == (10000, 1, 32, 32) and y.shape == (10000,)
    assert x[:, :, :2].abs().max() == 0 and 0 <= x.min() and x.max() <= 1
    assert torch.bincount(y).tolist() == [1000] * 10


def test_bundled_distillation_models_are_registered_and_load():
    from inversa.distill.classifier import load_classifier
    from inversa.pretrained.conditional import load_conditional_prior

    assert "inversa-fashion-32" in [m.name for m in registry.bundled_conditional_models()]
    assert "inversa-fashion-classifier" in [m.name for m in registry.bundled_classifiers()]
    names = [m.name for m in registry.all_models()]
    assert "inversa-fashion-32" in names and "inversa-fashion-classifier" in names
    assert "inversa-fashion-32" not in [m.name for m in registry.restoration_models()]
    prior = load_conditional_prior("inversa-fashion-32")
    clf = load_classifier("inversa-fashion-classifier")
    assert prior.num_classes == 10 and prior.null_class == 10 and prior.class_names == list(fashion.CLASSES)
    assert prior.sample_shape(1) == (1, 1, 32, 32) and clf.class_names == list(fashion.CLASSES)
    with torch.no_grad():
        assert clf(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(UserError, match="inversa-fashion-32 is a class-conditional prior for `inversa distill`, not a restoration prior"):
        from inversa.pretrained import load_prior

        load_prior("inversa-fashion-32")
