"""Classifier wrapper and the cached class centroids Q_y."""

import pytest
import torch

from inversa.errors import UserError
from inversa.distill.data import load_image_folder
from inversa.distill import classifier as C


def test_prepare_adapts_channels_size_and_scale(classifier_dir):
    clf = C.load_classifier(str(classifier_dir))
    assert clf.num_classes == 3 and clf.in_channels == 1 and clf.input_size == 16
    rgb = torch.rand(2, 3, 32, 32)
    x = clf.prepare(rgb)
    assert x.shape == (2, 1, 16, 16)
    grey = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    expect = (torch.nn.functional.interpolate(grey, size=(16, 16), mode="bilinear", align_corners=False) - 0.5) / 0.25
    torch.testing.assert_close(x, expect)
    rgb.requires_grad_(True)
    (g,) = torch.autograd.grad(clf(rgb)[:, 1].sum(), rgb)
    assert g.abs().sum() > 0


def test_centroids_are_class_means_of_softmax_and_cached(classifier_dir, real_dir, tmp_path, monkeypatch):
    clf = C.load_classifier(str(classifier_dir))
    x, y, _ = load_image_folder(real_dir / "train", ["ant", "bee", "cat"])
    Q, path = C.cached_centroids(clf, x, y, 3)
    assert path.exists() and path.suffix == ".safetensors" and path.parent == tmp_path / "cache" / "centroids"
    with torch.no_grad():
        p = clf(x).softmax(-1)
    expect = torch.stack([p[y == c].mean(0) for c in range(3)])
    torch.testing.assert_close(Q, expect, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(Q.sum(1), torch.ones(3))
    # second call: read from the cache, not recomputed
    monkeypatch.setattr(C, "class_centroids", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    Q2, path2 = C.cached_centroids(clf, x, y, 3)
    assert path2 == path and torch.equal(Q, Q2)
    # other weights or other data: another key
    k0 = C.centroid_key(clf, x, y)
    assert C.centroid_key(clf, x[:-1], y[:-1]) != k0
    with torch.no_grad():
        clf.net.classifier.bias.add_(1.0)
    assert C.centroid_key(clf, x, y) != k0


def test_centroids_need_every_class(classifier_dir):
    clf = C.load_classifier(str(classifier_dir))
    with pytest.raises(UserError, match=r"no real images of class\(es\) \[2\]"):
        C.class_centroids(clf, torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 0, 1]), 3)


def test_unknown_classifier_is_one_line(tmp_path):
    with pytest.raises(UserError, match="unknown classifier 'nope'"):
        C.load_classifier("nope")
