"""Our saved format: ``network.json`` (graph, config, provenance) + ``network.safetensors``.

No pickle anywhere: tensors are safetensors, everything else JSON. The JSON
records the SHA-256 of the tensor file, so a directory whose two files come
from different saves is detected. Both files are written to temporary names
and renamed into place, the JSON last.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from snnconv.config import Config
from snnconv.errors import ModelLoadError
from snnconv.ir import ENUM_TYPES, OP_TYPES, Graph, Node
from snnconv.network import SpikingNetwork
from snnconv.outputs import atomic_write, atomic_write_bytes, missing_run_hint
from snnconv.version import __version__

FORMAT = "snnconv-network"
FORMAT_VERSION = 1
GRAPH_FILE = "network.json"
TENSOR_FILE = "network.safetensors"


def _encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return {"enum": type(value).__name__, "value": value.value}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"enum", "value"}:
            return ENUM_TYPES[value["enum"]](value["value"])
        if set(value) == {"tuple"}:
            return tuple(_decode(v) for v in value["tuple"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save(network: SpikingNetwork, directory: str | os.PathLike[str]) -> Path:
    """Save ``network`` into ``directory`` (created if needed).

    Returns:
        The directory.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    nodes = []
    for node in network.graph.nodes:
        attrs: dict[str, Any] = {}
        refs: dict[str, str | None] = {}
        for f in dataclasses.fields(node.op):
            value = getattr(node.op, f.name)
            if hasattr(value, "detach"):
                key = f"{node.name}.{f.name}"
                tensors[key] = value.detach().to("cpu").contiguous()
                refs[f.name] = key
            elif value is None and f.name in ("bias", "weight"):
                refs[f.name] = None
            else:
                attrs[f.name] = _encode(value)
        nodes.append(
            {
                "name": node.name,
                "op": node.op.kind,
                "inputs": list(node.inputs),
                "attrs": attrs,
                "tensors": refs,
                "meta": _encode(node.meta),
            }
        )
    digests: list[str] = []

    def write_tensors(tmp: Path) -> None:
        save_file(tensors, tmp, metadata={"format": FORMAT})
        digests.append(hashlib.sha256(tmp.read_bytes()).hexdigest())

    atomic_write(out / TENSOR_FILE, write_tensors)
    digest = digests[0]
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "snnconv_version": __version__,
        "tensors_sha256": digest,
        "config": network.config.to_dict(),
        "info": _encode(network.info),
        "graph": {"output": network.graph.output, "nodes": nodes},
    }
    atomic_write_bytes(out / GRAPH_FILE, json.dumps(document, indent=1).encode())
    return out


def is_saved_network(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a saved network."""
    return (Path(path) / GRAPH_FILE).is_file()


def load(directory: str | os.PathLike[str]) -> SpikingNetwork:
    """Load a network saved by :func:`save` (bit-exact).

    Raises:
        ModelLoadError: missing/corrupt files, an unknown format version, or
            a tensor file that does not belong to the JSON.
    """
    root = Path(directory)
    graph_path, tensor_path = root / GRAPH_FILE, root / TENSOR_FILE
    for path in (graph_path, tensor_path):
        if not path.is_file():
            raise ModelLoadError(
                f"{path} is missing: {root} is not a saved snnconv network (expected "
                f"{GRAPH_FILE} and {TENSOR_FILE}, written by `snnconv convert` or snnconv.save)."
                + missing_run_hint(root)
            )
    try:
        document = json.loads(graph_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(
            f"{graph_path} is not valid JSON ({error}); re-save the network"
        ) from error
    if document.get("format") != FORMAT:
        raise ModelLoadError(f"{graph_path} is not an snnconv network file")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelLoadError(
            f"{graph_path} has format version {version}; this snnconv ({__version__}) reads "
            f"version {FORMAT_VERSION}. Convert the model again with this version."
        )
    raw = tensor_path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != document.get("tensors_sha256"):
        raise ModelLoadError(
            f"{tensor_path} does not match {graph_path} (checksum differs): the directory holds "
            "parts of different saves or a corrupt file. Save the network again."
        )
    try:
        tensors = load_file(tensor_path)
    except Exception as error:
        raise ModelLoadError(f"cannot read {tensor_path}: {error}") from error
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelLoadError(
                f"{tensor_path} holds NaN or Inf in {key}: the saved network is damaged. "
                "Convert the model again."
            )
    try:
        nodes = []
        for entry in document["graph"]["nodes"]:
            op_type = OP_TYPES[entry["op"]]
            kwargs = {k: _decode(v) for k, v in entry["attrs"].items()}
            for field_name, key in entry["tensors"].items():
                kwargs[field_name] = None if key is None else tensors[key]
            nodes.append(
                Node(
                    entry["name"], op_type(**kwargs), tuple(entry["inputs"]), _decode(entry["meta"])
                )
            )
        graph = Graph(nodes, output=document["graph"]["output"])
        config = Config.from_dict(document["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(
            f"{graph_path} is malformed ({type(error).__name__}: {error})"
        ) from error
    return SpikingNetwork(graph=graph, config=config, info=_decode(document.get("info", {})))
