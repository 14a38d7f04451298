"""`inversa distill`: ImageFolder + metadata, same seed -> same bytes, interrupted runs resume exactly."""

import json

import pytest

from inversa.cli import main
from inversa.distill.generate import distill, image_seed
from inversa.errors import UserError


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.suffix == ".png"}


def _args(model, clf, real, out, *extra):
    return ["distill", "--model", str(model), "--classifier", str(clf), "--real-data", str(real), "--ipc", "3",
            "--steps", "4", "--batch-size", "2", "--seed", "5", "--param", "scale=20", "-o", str(out), *extra]


def test_interrupted_run_resumes_to_the_uninterrupted_bytes(cond_model_dir, classifier_dir, real_dir, tmp_path, capsys):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert main(_args(cond_model_dir, classifier_dir, real_dir / "train", full)) == 0
    files = _files(full)
    assert sorted(files) == [f"{c}/{k:04d}.png" for c in ("ant", "bee", "cat") for k in range(3)]
    meta = json.loads((full / "metadata.json").read_text())
    assert meta["complete"] and meta["images"] == 9 and meta["settings"]["seed"] == 5
    assert meta["settings"]["params"]["scale"] == 20 and meta["settings"]["method"] == "igds"
    assert meta["runs"][0]["images_written"] == 9 and meta["runs"][0]["seconds"] > 0

    # Interrupted after 4 images: ant 0-2 and bee 0, i.e. in the middle of bee's chunk [0, 1].
    part = distill(str(cond_model_dir), resumed, ipc=3, classifier=str(classifier_dir), method="igds", seed=5, steps=4,
                   batch_size=2, params={"scale": 20}, real_data=str(real_dir / "train"), max_images=4, progress=False)
    assert not part["complete"] and part["images"] == 4
    assert sorted(_files(resumed)) == ["ant/0000.png", "ant/0001.png", "ant/0002.png", "bee/0000.png"]
    assert main(_args(cond_model_dir, classifier_dir, real_dir / "train", resumed)) == 0
    assert "5 new" in capsys.readouterr().out
    assert _files(resumed) == files  # nothing lost, nothing duplicated, same bytes
    assert not [p for p in resumed.rglob("*") if ".tmp" in p.name]
    meta = json.loads((resumed / "metadata.json").read_text())
    assert meta["complete"] and [r["images_written"] for r in meta["runs"]] == [4, 5]
    # A third run finds everything done and writes nothing.
    assert main(_args(cond_model_dir, classifier_dir, real_dir / "train", resumed)) == 0
    assert _files(resumed) == files


def test_seed_changes_images_and_image_seeds_are_per_image(cond_model_dir, tmp_path):
    a = distill(str(cond_model_dir), tmp_path / "a", ipc=2, method="unguided", seed=0, steps=3, classes="bee", progress=False)
    b = distill(str(cond_model_dir), tmp_path / "b", ipc=2, method="unguided", seed=1, steps=3, classes="1", progress=False)
    assert a["settings"]["classes"] == ["bee"] and sorted(_files(tmp_path / "a")) == ["bee/0000.png", "bee/0001.png"]
    assert _files(tmp_path / "a") != _files(tmp_path / "b")
    assert len({image_seed(s, c, k) for s in (0, 1) for c in (0, 1) for k in (0, 1)}) == 8
    # unguided images do not depend on the IPC: IPC 1 is the prefix of IPC 2
    distill(str(cond_model_dir), tmp_path / "c", ipc=1, method="unguided", seed=0, steps=3, classes="bee", batch_size=1,
            progress=False)
    distill(str(cond_model_dir), tmp_path / "d", ipc=2, method="unguided", seed=0, steps=3, classes="bee", batch_size=1,
            progress=False)
    assert _files(tmp_path / "c")["bee/0000.png"] == _files(tmp_path / "d")["bee/0000.png"]


def test_rerun_with_other_settings_is_refused(cond_model_dir, tmp_path):
    distill(str(cond_model_dir), tmp_path / "o", ipc=1, method="unguided", seed=0, steps=2, progress=False)
    with pytest.raises(UserError, match=r"made with other settings \(seed=0\)"):
        distill(str(cond_model_dir), tmp_path / "o", ipc=1, method="unguided", seed=1, steps=2, progress=False)


@pytest.mark.parametrize("extra, message", [
    (["--method", "magic"], "--method 'magic' is not known; accepted: igds, unguided"),
    (["--classes", "dog"], "--classes: 'dog' is not a class of this model; accepted: names ant, bee, cat"),
    (["--param", "scael=1"], "--param scael: not an IGDS parameter; accepted: scale, beta, beta0, beta_schedule, window"),
    (["--param", "beta_schedule=cubic"], "beta_schedule 'cubic' is not known"),
    (["--ipc", "0"], "--ipc 0: must be a positive integer"),
])
def test_user_errors_are_one_line_exit_2(cond_model_dir, classifier_dir, real_dir, tmp_path, capsys, extra, message):
    assert main(_args(cond_model_dir, classifier_dir, real_dir / "train", tmp_path / "x", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_igds_needs_a_classifier(cond_model_dir, tmp_path, capsys):
    assert main(["distill", "--model", str(cond_model_dir), "--ipc", "1", "-o", str(tmp_path / "y")]) == 2
    assert "--method igds needs --classifier" in capsys.readouterr().err
