"""``snnconv finetune``: QCFS fine-tuning on the command line, and the original ANN's figures
of a fine-tuned model in ``run``'s results.

``finetune`` writes ``DIR/model.pt2`` (the fine-tuned network, which ``snnconv run``
converts), ``DIR/original.pt2`` (the network before fine-tuning) and
``DIR/finetune.json`` (:attr:`snnconv.finetuning.FinetuneResult.info` plus the model,
the data and its source), all appearing together (:class:`~snnconv.outputs.OutputDirectory`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from snnconv.errors import ConfigError

__all__ = ["FINETUNE_FILE", "ORIGINAL_FILE", "add_finetune_command", "ann_original", "cmd_finetune"]

FINETUNE_FILE = "finetune.json"
ORIGINAL_FILE = "original.pt2"
MODEL_FILE = "model.pt2"


def add_finetune_command(sub: Any, positive_int: Any) -> None:
    """The ``finetune`` subcommand's parser."""
    from snnconv.cli.options import add_model_options, add_out_option

    p = sub.add_parser(
        "finetune",
        help="fine-tune MODEL with QCFS activations for a spiking net of few steps",
        description="Replace MODEL's ReLUs by QCFS activations (L levels, trainable clip λ) "
        "and train it on the training split of --dataset minus a held-back validation part, "
        "which alone picks the epoch kept. Writes DIR/model.pt2 (convert it with `snnconv "
        "run DIR/model.pt2 --timesteps L ...`), DIR/original.pt2 and DIR/finetune.json. "
        "MODEL: a .pt2 file or MODULE:FACTORY with --weights (ONNX graphs are not trainable "
        "here).",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("model", metavar="MODEL")
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--dataset", metavar="DATASET", help="its training split is used (required)")
    g.add_argument("--levels", "-L", type=positive_int, help="QCFS levels L (default: 4)")
    g.add_argument("--epochs", type=int, metavar="E", help="epochs (default: 3)")
    g.add_argument("--lr", type=float, help="Adam's learning rate, cosine decay (default: 1e-3)")
    g.add_argument("--batch-size", type=positive_int, help="mini-batch size (default: 128)")
    g.add_argument(
        "--validation", type=float, metavar="FRACTION",
        help="fraction of the training split held back for validation (default: 0.1)",
    )  # fmt: skip
    g.add_argument(
        "--sparsity", type=float, metavar="ALPHA",
        help="weight of the penalty on synaptic operations per step ÷ ANN MACs (default: 0)",
    )  # fmt: skip
    g.add_argument("--seed", type=int, help="seed of the split, λ, shuffling, dropout (default 0)")
    g.add_argument("--limit", type=int, metavar="N", help="use only the first N training samples")
    g.add_argument("--data-dir", metavar="DIR", help="where dataset files are (also: SNNCONV_DATA)")
    add_model_options(p)
    add_out_option(p)
    p.set_defaults(func=cmd_finetune, parser=p)


def _defaults() -> dict[str, Any]:
    """The options' defaults: those of :func:`snnconv.finetune` (and no --limit or --data-dir)."""
    import inspect

    from snnconv.finetuning import finetune

    signature = inspect.signature(finetune).parameters
    names = ("levels", "epochs", "lr", "batch_size", "validation", "sparsity", "seed")
    return {name: signature[name].default for name in names} | {"limit": None, "data_dir": None}


def _example(data: Any) -> Any:
    return data[0][0].unsqueeze(0).float()


def export_program(model: Any, example: Any) -> Any:
    """``model`` as a ``torch.export`` program with a dynamic batch dimension where it allows
    one (else with the example's batch)."""
    import torch

    model.eval()
    batch = torch.cat([example, example])
    try:
        return torch.export.export(
            model, (batch,), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
    except Exception:  # a graph with the batch size baked in
        return torch.export.export(model, (batch,))


def cmd_finetune(args: argparse.Namespace) -> int:
    """``finetune``: fine-tune MODEL with QCFS activations and write DIR."""
    import torch

    from snnconv.cli.commands import _load_data, _load_model, _output, _progress
    from snnconv.data import dataset_name
    from snnconv.finetuning import finetune
    from snnconv.network import SpikingNetwork

    for name, value in _defaults().items():
        if not hasattr(args, name):
            setattr(args, name, value)
    with _output(args) as out:
        model = _load_model(args)
        if isinstance(model, SpikingNetwork):
            raise ConfigError(
                f"{args.model} is a converted network: fine-tune the ANN it came from"
            )
        if not isinstance(model, (torch.nn.Module, torch.export.ExportedProgram)):
            raise ConfigError(
                f"{args.model} is an ONNX graph, which cannot be trained here (snnconv reads ONNX "
                "as a fixed graph, not as PyTorch modules with parameters). Fine-tune the PyTorch "
                "model it came from: a .pt2 file (torch.export.save) or MODULE:FACTORY --weights."
            )
        warnings: list[str] = []
        train = _load_data(args.dataset, "train", args, warnings, limit=args.limit)
        result = finetune(
            model,
            train,
            levels=args.levels,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            validation=args.validation,
            sparsity=args.sparsity,
            seed=args.seed,
            progress=_progress(args),
        )
        example = _example(train)
        staging = out.staging
        torch.export.save(export_program(result.model, example), str(staging / MODEL_FILE))
        torch.export.save(export_program(result.original, example), str(staging / ORIGINAL_FILE))
        info = {
            "model": str(args.model),
            "model_weights": str(args.weights) if args.weights else None,
            "dataset": dataset_name(args.dataset),
            "data_source": train.source,
            "warnings": warnings,
            **result.info,
        }
        (staging / FINETUNE_FILE).write_text(json.dumps(info, indent=1, allow_nan=False))
        out.commit()
    v = result.info["validation"]
    print(
        f"validation top-1 ({v['samples']:,} samples): original {100 * v['top1_original']:.2f} %, "
        f"QCFS L={args.levels} before fine-tuning {100 * v['top1_replaced']:.2f} %, after "
        f"{100 * v['top1_finetuned']:.2f} % (epoch {result.info['best_epoch']} kept; "
        f"{result.info['seconds']:.0f} s)"
    )
    print(f"wrote {out.path / MODEL_FILE} (convert it with: snnconv run {out.path / MODEL_FILE} "
          f"--timesteps {args.levels} --dataset {args.dataset} --out DIR)")  # fmt: skip
    return 0


def ann_original(model_spec: str, data: Any, batch_size: int) -> dict[str, Any] | None:
    """For a model written by ``finetune`` (``finetune.json`` and ``original.pt2`` beside
    it): the original network's top-1 and top-5 on ``data`` and the fine-tuning's record;
    None for any other model."""
    path = Path(model_spec)
    record_file, original_file = path.parent / FINETUNE_FILE, path.parent / ORIGINAL_FILE
    if path.suffix != ".pt2" or not record_file.is_file() or not original_file.is_file():
        return None
    import torch

    from snnconv.importers.load import load_pt2
    from snnconv.nn import to_graph_module

    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError) as error:
        print(f"warning: {record_file} is unreadable ({error}): no original ANN", file=sys.stderr)
        return None
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    module = to_graph_module(load_pt2(original_file), next(iter(loader))[0].float()).eval()
    correct1 = correct5 = total = 0
    with torch.no_grad():
        for images, labels in loader:
            scores = module(images.float())
            top5 = scores.topk(min(5, scores.shape[1]), dim=1).indices
            correct1 += int((top5[:, 0] == labels).sum())
            correct5 += int((top5 == labels[:, None]).any(1).sum())
            total += len(labels)
    validation = record.get("validation", {})
    return {
        "model": str(original_file),
        "top1": correct1 / max(total, 1),
        "top5": correct5 / max(total, 1),
        "levels": record.get("levels"),
        "epochs": record.get("epochs"),
        "sparsity": record.get("sparsity"),
        "validation_top1_original": validation.get("top1_original"),
        "validation_top1_finetuned": validation.get("top1_finetuned"),
    }
