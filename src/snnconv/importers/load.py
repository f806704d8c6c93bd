"""Load a model named on the command line: ``.pt2``, ``.onnx``, ``MODULE:FACTORY``, or a saved
network.

Nothing here unpickles untrusted data: ``.pt2`` archives are checked so that
every pickled member loads with ``torch.load(weights_only=True)`` before
``torch.export.load`` reads them, checkpoints load with ``weights_only=True`` or
from safetensors, and ONNX files are protocol buffers (no code).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import json
import os
import re
import stat
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from snnconv.errors import ModelLoadError
from snnconv.ir import Graph
from snnconv.network import SpikingNetwork
from snnconv.saved import is_saved_network
from snnconv.saved import load as load_saved

MODEL_FORMS = (
    "a .pt2 file saved with torch.export.save",
    "a .onnx file (opset 11 or newer; Keras models through tf2onnx)",
    "MODULE:FACTORY (an importable callable returning the nn.Module) with --weights FILE",
    "a directory written by `snnconv convert` or `snnconv run`",
)


def _forms() -> str:
    return "; ".join(MODEL_FORMS)


def check_pt2_safe(path: Path) -> None:
    """Refuse a ``.pt2`` archive whose pickled parts need more than ``weights_only`` loading."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelLoadError(
            f"{path} is not a readable .pt2 archive ({error}). Re-export the model with "
            "torch.export.save(torch.export.export(model, (example,)), path)."
        ) from error
    with archive:
        for info in archive.infolist():
            name = info.filename
            parts = name.split("/")
            if "custom_objs" in parts or any(
                p.startswith(("custom_obj", "opaque_obj")) for p in parts
            ):
                raise ModelLoadError(
                    f"{path} contains pickled custom objects ({name}); snnconv does not unpickle "
                    "untrusted code. Export a model without TorchScript/opaque objects."
                )
            if name.endswith(".pt"):
                _check_weights_only(path, name, archive.read(name))
            if name.endswith("_config.json") and ("/weights/" in name or "/constants/" in name):
                config = json.loads(archive.read(name) or b"{}")
                entries = config.get("config", {})
                folder = name.rsplit("/", 1)[0]
                for entry in entries.values():
                    if entry.get("use_pickle"):
                        member = f"{folder}/{entry['path_name']}"
                        _check_weights_only(path, member, archive.read(member))


def _check_weights_only(path: Path, member: str, data: bytes) -> None:
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as error:
        raise ModelLoadError(
            f"{path}: member {member} cannot be loaded with weights_only=True ({error}); "
            "snnconv does not unpickle arbitrary objects. Re-export the model with "
            "torch.export.save from plain tensors."
        ) from error


def require_file(path: Path, what: str) -> None:
    """Raise a :class:`ModelLoadError` that says why ``path`` is not a readable file."""
    try:
        status = path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ModelLoadError(
                f"{what} {path} is a loop of symbolic links; point it at the real file"
            ) from None
        if path.is_symlink():
            raise ModelLoadError(
                f"{what} {path} is a symbolic link to {os.readlink(path)}, which does not exist"
            ) from None
        if error.errno == errno.EACCES:
            raise ModelLoadError(f"{what} {path} cannot be read: permission denied") from None
        raise ModelLoadError(f"{what} {path} does not exist") from None
    if not stat.S_ISREG(status.st_mode):
        raise ModelLoadError(f"{what} {path} is not a regular file")


def load_pt2(path: str | os.PathLike[str]) -> torch.export.ExportedProgram:
    """Load a ``torch.export`` archive after checking it is safe to read."""
    p = Path(path)
    require_file(p, "model file")
    check_pt2_safe(p)
    import snnconv.nn.qcfs  # noqa: F401  (registers snnconv::qcfs, for fine-tuned programs)

    try:
        return torch.export.load(str(p))
    except Exception as error:
        raise ModelLoadError(
            f"cannot read {p} as a torch.export program ({type(error).__name__}: {error}). "
            "It may come from another PyTorch version: re-export it with this one."
        ) from error


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a checkpoint: safetensors, or a state dict saved with ``torch.save`` (weights_only)."""
    p = Path(path)
    require_file(p, "weights file")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except Exception as error:
            raise ModelLoadError(f"cannot read {p} as safetensors ({error})") from error
    try:
        state: Any = torch.load(str(p), weights_only=True, map_location="cpu")
    except Exception as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        why = (
            f"it holds a pickled {found.group(1)} object, not only tensors"
            if found
            else f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
        )
        raise ModelLoadError(
            f"cannot load {p} as a state dict of tensors ({why}). snnconv never unpickles "
            "arbitrary objects, which can run code: give a safetensors file or a state dict "
            "saved with torch.save(model.state_dict(), path)."
        ) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{p} does not hold a state dict of tensors")
    return state


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """The current directory on ``sys.path`` for the user's module only: removed again
    afterwards, so that a file there (``matplotlib.py``, say) cannot shadow an installed
    package for the rest of the run."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def load_factory(
    spec: str, weights: str | os.PathLike[str] | None, *, random_weights: bool = False
) -> nn.Module:
    """Build the model ``MODULE:FACTORY`` and load ``weights`` into it.

    Args:
        spec: ``MODULE:FACTORY`` (the current directory is importable while the
            module is imported and the factory called).
        weights: The trained weights (safetensors or a ``weights_only`` state dict).
        random_weights: Run with the factory's own (random) weights: the only
            way to go without ``weights``, and then recorded
            (``model.snnconv_random_weights``).

    Raises:
        ModelLoadError: No weights and no ``random_weights``, both, an import
            or factory failure, or weights that do not fit.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelLoadError(f"model {spec!r} is not MODULE:FACTORY. Use one of: {_forms()}")
    with _cwd_importable():
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ModelLoadError(
                f"cannot import module {module_name!r} for model {spec!r} ({error}); run from "
                "the directory that contains it or add it to PYTHONPATH"
            ) from error
        factory = module
        for part in attr.split("."):
            factory = getattr(factory, part, None)  # type: ignore[assignment]
            if factory is None:
                raise ModelLoadError(f"module {module_name!r} has no attribute {attr!r}")
        try:
            model = factory() if callable(factory) else factory
        except Exception as error:
            raise ModelLoadError(
                f"calling {spec}() raised {type(error).__name__}: {error}. The factory must "
                "build the model with no arguments; fix it or wrap it in one that does."
            ) from error
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    if weights is None and not random_weights:
        raise ModelLoadError(
            f"model {spec} has no trained weights: give them with --weights FILE "
            "(.safetensors or a state dict), or pass --random-weights to run the factory's "
            "random initialisation on purpose (it is then recorded in results.json)."
        )
    if weights is not None and random_weights:
        raise ModelLoadError("--weights and --random-weights exclude each other; keep one")
    if random_weights:
        model.snnconv_random_weights = True  # type: ignore[assignment]
    if weights is not None:
        state = load_state_dict(weights)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelLoadError(
                f"weights {weights} do not fit {spec}: {error}. Check that the checkpoint "
                "belongs to this architecture."
            ) from error
    return model


def load_model(
    spec: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    random_weights: bool = False,
    input_layout: str = "auto",
    input_shape: Sequence[int] | None = None,
) -> nn.Module | torch.export.ExportedProgram | SpikingNetwork | Graph:
    """Resolve a command-line MODEL argument.

    Args:
        spec: The MODEL argument (see ``MODEL_FORMS``).
        weights: A checkpoint for ``MODULE:FACTORY`` models.
        random_weights: Run a ``MODULE:FACTORY`` model without ``weights``, on
            purpose (see :func:`load_factory`).
        input_layout: ``.onnx`` only: ``auto``, ``nchw`` or ``nhwc`` (see
            :class:`~snnconv.importers.onnx.InputLayout`).
        input_shape: ``.onnx`` only: one sample's ``C, H, W`` where the model's input
            dimensions are dynamic.

    Returns:
        An ``nn.Module``, an ``ExportedProgram``, an imported graph (``.onnx``) or a
        saved spiking network; ``snnconv.convert`` accepts the first three.

    Raises:
        ModelLoadError: unknown form, missing file, unsafe or unreadable contents.
        UnsupportedOpError: an ONNX op, opset or attribute that cannot be converted.
    """
    path = Path(spec)
    if path.is_symlink() and not path.exists():
        require_file(path, "model")
    if random_weights and not (":" in spec and not path.exists()):
        raise ModelLoadError(
            f"--random-weights applies to MODULE:FACTORY models, not {spec}: drop it"
        )
    if path.is_dir():
        if is_saved_network(path):
            if weights is not None:
                raise ModelLoadError(
                    "--weights applies to MODULE:FACTORY models, not saved networks"
                )
            return load_saved(path)
        raise ModelLoadError(f"{path} is a directory but holds no saved network (network.json)")
    if path.suffix == ".pt2":
        return load_pt2(path)
    if path.suffix == ".onnx":
        if weights is not None:
            raise ModelLoadError("--weights applies to MODULE:FACTORY models, not .onnx files")
        try:
            from snnconv.importers.onnx import import_onnx
        except ImportError as error:  # pragma: no cover - depends on the installation
            raise ModelLoadError(
                f"reading {path} needs the onnx package: pip install 'snnconv[onnx]' ({error})"
            ) from error
        return import_onnx(path, input_layout=input_layout, input_shape=input_shape)
    if path.suffix in (".pt", ".pth", ".safetensors", ".ckpt", ".bin"):
        raise ModelLoadError(
            f"{path} is a checkpoint, not a model: give the architecture as MODULE:FACTORY and "
            f"this file as --weights {path}"
        )
    if ":" in spec and not path.exists():
        return load_factory(spec, weights, random_weights=random_weights)
    raise ModelLoadError(f"cannot interpret model {spec!r}. Use one of: {_forms()}")
