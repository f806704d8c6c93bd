"""Reading ONNX files: the ``onnx`` package, checks, opsets, tensors and attributes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnconv.errors import ModelLoadError, UnsupportedOpError, require_extra
from snnconv.importers.onnx.registry import SUPPORTED_ONNX_OPS

#: The oldest default-domain opset the importer reads.
MIN_OPSET = 11


def require_onnx() -> Any:
    """The ``onnx`` module, or a clear error naming the extra to install."""
    return require_extra("onnx", "onnx", "ONNX import")


def max_opset() -> int:
    """The newest default-domain opset: the one the installed ``onnx`` package defines."""
    import onnx.defs

    return int(onnx.defs.onnx_opset_version())


def load_onnx(path: str | os.PathLike[str]) -> Any:
    """Read an ONNX file (and its external-data files) and check it.

    Raises:
        ModelLoadError: missing, truncated or corrupt file, missing external data.
    """
    onnx = require_onnx()
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"ONNX model file {p} does not exist")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as error:
        raise ModelLoadError(
            f"{p} is not a readable ONNX model ({type(error).__name__}: {error}); the file is "
            "truncated or corrupt. Export it again (torch.onnx.export, or tf2onnx for Keras)."
        ) from error
    from onnx.external_data_helper import uses_external_data

    missing = []
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            if not (p.parent / location).is_file():
                missing.append(f"{tensor.name} -> {location}")
    if missing:
        raise ModelLoadError(
            f"{p} keeps weights in external data files that are missing next to it: "
            f"{', '.join(sorted(set(missing))[:5])}. Copy the .data file(s) into {p.parent} "
            "or re-save the model with all tensors inside (onnx.save(model, path, "
            "save_as_external_data=False))."
        )
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(p.parent))
    except Exception as error:
        raise ModelLoadError(
            f"cannot read the external data of {p} ({type(error).__name__}: {error}); the "
            ".data file is truncated or does not belong to this model"
        ) from error
    try:
        onnx.checker.check_model(model)
    except Exception as error:
        raise ModelLoadError(
            f"{p} is not a valid ONNX model: {str(error).strip().splitlines()[0]}. "
            "Export it again with a current exporter."
        ) from error
    return model


def model_opset(model: Any) -> int:
    """The default-domain opset ``model`` imports; refuses one the importer cannot read.

    Raises:
        ModelLoadError: the model imports no default-domain opset.
        UnsupportedOpError: an opset outside ``MIN_OPSET`` to :func:`max_opset`.
    """
    versions = {(o.domain or ""): int(o.version) for o in model.opset_import}
    opset = versions.get("", versions.get("ai.onnx"))
    if opset is None:
        raise ModelLoadError("the ONNX model imports no default-domain opset (ai.onnx)")
    newest = max_opset()
    if not MIN_OPSET <= opset <= newest:
        raise UnsupportedOpError(
            f"opset {opset}",
            "model",
            SUPPORTED_ONNX_OPS,
            f"snnconv reads ONNX opsets {MIN_OPSET} to {newest}; convert the model with "
            f"onnx.version_converter.convert_version(model, {min(max(opset, MIN_OPSET), newest)})",
        )
    return opset


def tensor_from_proto(proto: Any) -> torch.Tensor:
    """An ONNX ``TensorProto`` as a tensor; float64 and float16 become float32."""
    from onnx import numpy_helper

    array = np.array(numpy_helper.to_array(proto))
    if array.dtype == np.float64 or array.dtype == np.float16:
        array = array.astype(np.float32)
    return torch.from_numpy(array.copy())


def attribute_value(attribute: Any) -> Any:
    """An ONNX node attribute as a Python value: strings decoded, tensors as tensors."""
    import onnx

    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value)
    if isinstance(value, onnx.TensorProto):
        return tensor_from_proto(value)
    return value
