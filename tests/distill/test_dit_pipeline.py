"""IGDS from a folder saved by `DiTPipeline.save_pretrained` (transformer/ + vae/ + scheduler/ +
model_index.json): class names from the pipeline's `id2label`, `inversa distill --model DIR` end to end,
same seed -> same bytes."""

import json

import pytest
from pretrained.tiny_pipelines import save_dit

from inversa.cli import main
from inversa.errors import UserError
from inversa.pretrained.conditional import (
    LatentClassConditionalPrior,
    class_names_from_id2label,
    load_conditional_prior,
)

# As the hub's DiT folders (facebook/DiT-XL-2-256) carry it in model_index.json: ImageNet-style synonym lists.
ID2LABEL = {"0": "ant, emmet, pismire", "1": "bee", "2": "cat, true cat"}


def _with_id2label(d):
    index = json.loads((d / "model_index.json").read_text())
    index["id2label"] = ID2LABEL
    (d / "model_index.json").write_text(json.dumps(index))
    return d


@pytest.fixture(scope="module")
def dit_folder(tmp_path_factory):
    return _with_id2label(save_dit(tmp_path_factory.mktemp("dit") / "dit"))


def test_save_pretrained_drops_id2label_and_the_loader_reads_it_where_the_hub_keeps_it(tmp_path, dit_folder):
    from diffusers import DiTPipeline

    plain = save_dit(tmp_path / "plain", id2label={0: "ant", 1: "bee", 2: "cat"})
    # diffusers 0.42 registers only modules in model_index.json: the labels given to DiTPipeline are not saved.
    assert "id2label" not in json.loads((plain / "model_index.json").read_text())
    assert load_conditional_prior(str(plain)).class_names == ["0", "1", "2"]
    # DiTPipeline.from_pretrained reads id2label from model_index.json; so does our loader.
    assert DiTPipeline.from_pretrained(dit_folder).labels["emmet"] == 0
    prior = load_conditional_prior(str(dit_folder))
    assert isinstance(prior, LatentClassConditionalPrior) and prior.class_names == ["ant", "bee", "cat"]
    assert (prior.num_classes, prior.null_class, prior.learned_variance, prior.scaling_factor) == (3, 3, True, 0.5)
    # conditioning.json, the project's own file, wins over id2label
    (plain / "conditioning.json").write_text(json.dumps({"class_names": ["x", "y", "z"]}))
    assert load_conditional_prior(str(plain)).class_names == ["x", "y", "z"]


def test_class_names_from_id2label_are_unique_folder_names():
    names = class_names_from_id2label({"0": "crane", "1": "tench, Tinca tinca", "2": "crane", "4": "a/b"}, 5)
    assert names == ["crane_0", "tench", "crane_2", "3", "a-b"]
    with pytest.raises(UserError, match="id2label key 'x' is not a class index"):
        class_names_from_id2label({"x": "cat"}, 1)


def test_pickled_dit_weights_are_not_loaded(tmp_path):
    d = save_dit(tmp_path / "bin")
    w = d / "transformer" / "diffusion_pytorch_model.safetensors"
    w.rename(w.with_suffix(".bin"))
    with pytest.raises(UserError, match=r"transformer' has no weights \(\*\.safetensors\); pickled weights"):
        load_conditional_prior(str(d))


def test_distill_runs_igds_end_to_end_on_a_dit_pipeline_folder(dit_folder, classifier_dir, real_dir, tmp_path, capsys):
    def run(out, seed="3"):
        return main(["distill", "--model", str(dit_folder), "--classifier", str(classifier_dir), "--real-data",
                     str(real_dir / "train"), "--ipc", "2", "--steps", "3", "--batch-size", "2", "--seed", seed,
                     "--param", "scale=20", "-o", str(out)])

    assert run(tmp_path / "a") == 0 and run(tmp_path / "b") == 0 and run(tmp_path / "c", seed="4") == 0
    files = {p.relative_to(tmp_path / "a").as_posix(): p.read_bytes() for p in sorted((tmp_path / "a").rglob("*.png"))}
    assert sorted(files) == [f"{c}/{k:04d}.png" for c in ("ant", "bee", "cat") for k in range(2)]
    assert files == {p.relative_to(tmp_path / "b").as_posix(): p.read_bytes() for p in sorted((tmp_path / "b").rglob("*.png"))}
    assert files != {p.relative_to(tmp_path / "c").as_posix(): p.read_bytes() for p in sorted((tmp_path / "c").rglob("*.png"))}
    from PIL import Image

    img = Image.open(tmp_path / "a" / "bee" / "0001.png")
    assert img.size == (8, 8) and img.mode == "RGB"  # decoded by the pipeline's VAE: 4x4 latents, downscale 2
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert meta["complete"] and meta["model_source"] == str(dit_folder) and meta["settings"]["classes"] == ["ant", "bee", "cat"]
    assert "wrote 6 images" in capsys.readouterr().out


def test_igds_guidance_changes_the_dit_samples(dit_folder, classifier_dir, real_dir, tmp_path):
    """The classifier's gradient reaches the DiT latents through the VAE decoder: guided != unguided."""
    from inversa.distill.generate import distill

    kw = {"ipc": 1, "classes": "bee", "seed": 0, "steps": 3, "progress": False}
    distill(str(dit_folder), tmp_path / "u", method="unguided", **kw)
    distill(str(dit_folder), tmp_path / "g", classifier=str(classifier_dir), real_data=str(real_dir / "train"),
            params={"scale": 200}, **kw)
    assert (tmp_path / "u" / "bee" / "0000.png").read_bytes() != (tmp_path / "g" / "bee" / "0000.png").read_bytes()


def test_igds_on_a_dit_folder_is_batch_independent(dit_folder, classifier_dir):
    """Through the folder-loaded DiT + VAE, image i of a batch is the image generated alone with its seed."""
    import torch

    from inversa.distill.classifier import load_classifier
    from inversa.solvers.igds import IGDS

    prior = load_conditional_prior(str(dit_folder))
    clf = load_classifier(str(classifier_dir))
    Q = torch.full((3, 3), 1.0 / 3)  # class centroids of the three-class fixture classifier (uniform)
    solver = IGDS(prior, clf, Q, ipc=1, scale=50.0)
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    batch = solver.generate([0, 1, 2], generator=gens([4, 5, 6]), num_steps=3, progress=False).x
    alone = solver.generate([1], generator=gens([5]), num_steps=3, progress=False).x
    torch.testing.assert_close(alone[0], batch[1], rtol=0, atol=1e-5)
    assert torch.equal(batch, solver.generate([0, 1, 2], generator=gens([4, 5, 6]), num_steps=3, progress=False).x)
