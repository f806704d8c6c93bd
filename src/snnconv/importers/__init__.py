"""Importers: from a user's model to the internal graph."""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from snnconv.errors import SnnconvError
from snnconv.importers.onnx import InputLayout, import_onnx
from snnconv.importers.torch_common import eval_mode
from snnconv.importers.torch_export import import_exported_program
from snnconv.importers.torch_fx import import_fx
from snnconv.ir import Graph

log = logging.getLogger(__name__)

__all__ = ["InputLayout", "import_exported_program", "import_fx", "import_onnx", "import_torch"]


def import_torch(model: nn.Module | torch.export.ExportedProgram, example: torch.Tensor) -> Graph:
    """Capture a PyTorch model and convert it into the internal graph.

    ``torch.fx`` symbolic tracing captures the module-level graph in
    milliseconds; a model it cannot trace (data-dependent Python control flow,
    an op it cannot follow) is captured with ``torch.export`` (an ATen-level
    graph; its first use in a process loads ``torch._dynamo``, about a second).
    Both give the same graph, with the same node names in the common cases
    (:func:`snnconv.importers.torch_fx.export_names`); the tests run every
    model through both. The model is evaluated in eval mode; every submodule's
    training flag is restored afterwards.

    Args:
        model: An ``nn.Module`` or a ``torch.export.ExportedProgram``.
        example: An input batch of the right shape (values do not matter).

    Raises:
        UnsupportedOpError: the model contains an op snnconv cannot convert.
    """
    if isinstance(model, torch.export.ExportedProgram):
        return import_exported_program(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module or ExportedProgram, got {type(model)!r}")
    example = example.detach().to("cpu", torch.float32)
    with eval_mode(model), torch.no_grad():
        try:
            return import_fx(model, example)
        except Exception as fx_error:
            log.info("torch.fx could not capture the model (%s); using torch.export", fx_error)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ep = torch.export.export(model, (example,), strict=False)
            except SnnconvError:
                raise
            except Exception as export_error:
                if isinstance(fx_error, SnnconvError):
                    raise fx_error from None
                raise SnnconvError(
                    "could not capture the model: torch.fx tracing failed with "
                    f"{type(fx_error).__name__}: {fx_error}; torch.export failed with "
                    f"{type(export_error).__name__}: {export_error}. Make the forward pass "
                    "traceable (no data-dependent Python control flow) or export it yourself "
                    "with torch.export and pass the ExportedProgram."
                ) from export_error
        return import_exported_program(ep)
