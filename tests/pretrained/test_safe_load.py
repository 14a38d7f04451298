"""Safe checkpoint loading: safetensors and weights-only .pt load; pickles, truncated, empty, HTML and
wrong-hash files are refused with one line."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from inversa.errors import UserError
from inversa.pretrained import safe_load

SD = {"a.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.ones(2)}


def same(sd):
    return sd.keys() == SD.keys() and all(torch.equal(sd[k], SD[k]) for k in SD)


def refused(path, match, **kw):
    with pytest.raises(UserError, match=match) as err:
        safe_load.load_state_dict(path, **kw)
    assert "\n" not in str(err.value)


def test_safetensors_and_weights_only_pt(tmp_path):
    save_file(SD, tmp_path / "m.safetensors")
    torch.save(SD, tmp_path / "m.pt")
    torch.save(SD, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save({"state_dict": SD, "step": 10}, tmp_path / "wrapped.ckpt")
    torch.save({f"module.{k}": v for k, v in SD.items()}, tmp_path / "ddp.pt")
    for name in ("m.safetensors", "m.pt", "legacy.pth", "wrapped.ckpt", "ddp.pt"):
        assert same(safe_load.load_state_dict(tmp_path / name)), name


def test_sha256(tmp_path):
    p = tmp_path / "m.pt"
    torch.save(SD, p)
    digest = safe_load.sha256_file(p)
    assert same(safe_load.load_state_dict(p, sha256=digest.upper()))
    refused(p, "sha256 .* expected 0{64}: a wrong or corrupted download", sha256="0" * 64)


class Payload:
    def __reduce__(self):  # what a malicious pickle would do; must never run
        return (print, ("pickle code ran",))


def test_pickles_are_refused(tmp_path, capsys):
    torch.save({"w": torch.ones(1), "obj": Payload()}, tmp_path / "obj.pt")
    with open(tmp_path / "raw.pth", "wb") as f:
        pickle.dump({"w": Payload()}, f)
    refused(tmp_path / "obj.pt", "refusing to unpickle .*references .*print")
    refused(tmp_path / "raw.pth", "refusing to unpickle")
    assert "pickle code ran" not in capsys.readouterr().out


def test_truncated_empty_and_wrong_files(tmp_path):
    torch.save({"w": torch.zeros(10_000)}, tmp_path / "full.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "full.pt").read_bytes()[:20_000])
    save_file({"w": torch.zeros(10_000)}, tmp_path / "full.safetensors")
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "full.safetensors").read_bytes()[:-100])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "page.pt").write_text("<!DOCTYPE html><html>Google Drive - virus scan warning</html>")
    (tmp_path / "notes.txt").write_text("hello")
    refused(tmp_path / "cut.pt", "not a readable PyTorch checkpoint \\(truncated or corrupted")
    refused(tmp_path / "cut.safetensors", "not a readable safetensors file \\(truncated or corrupted")
    refused(tmp_path / "empty.pt", "is empty")
    refused(tmp_path / "page.pt", "HTML page")
    refused(tmp_path / "notes.txt", "not a checkpoint")
    refused(tmp_path / "missing.pt", "does not exist")
    refused(tmp_path, "does not exist \\(it is a folder\\)")


def test_non_state_dicts_are_refused(tmp_path):
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    torch.save({"w": torch.ones(1), "lr": 0.1}, tmp_path / "mixed.pt")
    refused(tmp_path / "list.pt", "does not hold a state dict")
    refused(tmp_path / "mixed.pt", "'lr' is a float, not a tensor")
