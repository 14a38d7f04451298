"""Load checkpoint weights without running code: safetensors first, `.pt`/`.pth` only through
`torch.load(..., weights_only=True)`; sha256 checks; every failure is one `UserError` line."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from inversa.errors import UserError

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Wrappers that training scripts put around a state dict; ADM/guided-diffusion saves the bare dict.
CONTAINER_KEYS = ("state_dict", "model", "ema", "model_ema", "net")


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_dict_sha256(state_dict: dict[str, torch.Tensor], h=None):
    """A sha256 over a state dict's names and values (floats as float32 on the CPU), independent of the
    file format it came from; pass `h` to go on hashing more (it is updated and returned)."""
    h = hashlib.sha256() if h is None else h
    for k, v in sorted(state_dict.items()):
        h.update(k.encode())
        h.update(v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous().numpy().tobytes())
    return h


def check_sha256(path: str | Path, expected: str | None) -> str:
    """The file's sha256; a `UserError` when `expected` is given and differs."""
    got = sha256_file(path)
    if expected and got != expected.lower():
        raise UserError(f"{str(path)!r} has sha256 {got}, expected {expected.lower()}: a wrong or corrupted download; fetch it again")
    return got


def load_state_dict(path: str | Path, *, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} dict on the CPU from a `.safetensors` or a weights-only `.pt`/`.pth` file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    if sha256:
        check_sha256(path, sha256)
    kind = _sniff(path)
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path), device="cpu")
        except Exception as exc:
            raise UserError(f"{str(path)!r} is not a readable safetensors file (truncated or corrupted?): {_first_line(exc)}") from None
    else:
        sd = _torch_load(path)
    return _flatten(sd, path)


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise UserError(f"checkpoint {str(path)!r} is empty (a failed download?)")
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        raise UserError(f"{str(path)!r} is an HTML page, not a checkpoint (a failed or confirmation-page download?)")
    if head.startswith(b"PK\x03\x04") or head[:2] == b"\x80\x02" or path.suffix.lower() in TORCH_SUFFIXES:
        return "torch"
    raise UserError(f"{str(path)!r} is not a checkpoint: expected a .safetensors file or a PyTorch .pt/.pth state dict")


def _torch_load(path: Path):
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():  # raw pickles make torch warn before we refuse them
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except pickle.UnpicklingError as exc:
        what = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        detail = f" (it references {what.group(1)})" if what else ""
        raise UserError(
            f"refusing to unpickle {str(path)!r}: it holds Python objects, not only tensors{detail}, and loading it could run "
            "code; re-save its state dict as .safetensors in an environment you trust"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UserError(f"{str(path)!r} is not a readable PyTorch checkpoint (truncated or corrupted?): {_first_line(exc) or type(exc).__name__}") from None


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _flatten(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is not None:
            obj = inner
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{str(path)!r} does not hold a state dict (found {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"{str(path)!r} is not a flat state dict: {bad[0]!r} is a {type(obj[bad[0]]).__name__}, not a tensor")
    # Checkpoints saved from DistributedDataParallel prefix every key with "module.".
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""


def require_safetensors(folder: Path) -> None:
    """One UserError unless `folder` holds *.safetensors weights (pickled *.bin/*.ckpt ones are never loaded)."""
    if not any(folder.glob("*.safetensors")):
        pickled = any(folder.glob("*.bin")) or any(folder.glob("*.ckpt"))
        raise UserError(f"model folder {str(folder)!r} has no weights (*.safetensors)" + (
            "; its *.bin files are pickles, which could run code and are not loaded: re-save them as safetensors "
            "(from_pretrained(DIR).save_pretrained(DIR)) where you trust the file" if pickled else ""))
