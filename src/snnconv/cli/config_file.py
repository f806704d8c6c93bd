"""``--config FILE.toml``: the options of a run in a file, and ``DIR/config.toml``.

The file has two tables, as the SNN Toolbox's INI file has sections::

    [config]            # snnconv.Config fields, by name
    percentile = 99.99
    v_init = 0.5

    [run]               # the command's own options, by their long names with underscores
    model = "model.pt2"
    dataset = "fashion-mnist"
    timesteps = 64
    out = "runs/x"

The command line overrides the file. An unknown table or key, or a value of
the wrong type, is a user error naming the file, the table and the key. Every
run writes the options it used to ``DIR/config.toml``, so that
``snnconv run --config DIR/config.toml --out NEW`` repeats it.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from snnconv.config import Config
from snnconv.errors import ConfigError
from snnconv.outputs import atomic_write_bytes

__all__ = ["CONFIG_FILE", "merge_config_file", "run_options", "write_config_file"]

#: The file each run writes beside its results.
CONFIG_FILE = "config.toml"

#: Namespace entries that are not options of a run.
_NOT_OPTIONS = {"command", "func", "debug", "config", "parser"}


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in ("help", *_NOT_OPTIONS)}


def _read(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"--config {path}: cannot read it ({error.strerror or error})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"--config {path} is not valid TOML: {error}") from None
    unknown = set(document) - {"config", "run"}
    if unknown:
        raise ConfigError(
            f"--config {path}: unknown table(s) {sorted(unknown)}; use [config] (snnconv.Config "
            "fields) and [run] (the command's options)"
        )
    return document


def _run_value(path: Path, key: str, value: Any, action: argparse.Action) -> Any:
    """A [run] value checked as the command line would check it."""
    where = f"--config {path}: [run] {key} = {value!r}"
    if isinstance(action, argparse._StoreTrueAction | argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false")
        return value
    values = value if isinstance(value, list) else [value]
    if (action.nargs in ("+", "*")) != isinstance(value, list):
        expected = "a list" if action.nargs in ("+", "*") else "a single value"
        raise ConfigError(f"{where}: must be {expected}")
    converted = []
    for item in values:
        if isinstance(item, bool | dict | list):
            raise ConfigError(f"{where}: must be a number or a string")
        try:
            item = action.type(str(item)) if callable(action.type) else item
        except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
            raise ConfigError(f"{where}: {error}") from None
        if action.choices is not None and item not in action.choices:
            raise ConfigError(f"{where}: must be one of {list(action.choices)}")
        converted.append(item)
    return converted if isinstance(value, list) else converted[0]


def merge_config_file(
    args: argparse.Namespace, parser: argparse.ArgumentParser, path: Path
) -> None:
    """Fill ``args`` with the options of the file that the command line did not give.

    Raises:
        ConfigError: The file is unreadable, or holds an unknown key or a bad value.
    """
    document = _read(path)
    actions = _actions(parser)
    fields = set(Config.names())
    for key, value in document.get("config", {}).items():
        if key not in fields or key not in actions:
            known = sorted(fields & set(actions))
            raise ConfigError(
                f"--config {path}: [config] {key} is not an option of `snnconv {args.command}`; "
                f"known: {', '.join(known)}"
            )
        if not hasattr(args, key):
            setattr(args, key, value)
    for key, value in document.get("run", {}).items():
        if key not in actions or key in fields:
            known = sorted(set(actions) - fields)
            raise ConfigError(
                f"--config {path}: [run] {key} is not an option of `snnconv {args.command}`; "
                f"known: {', '.join(known)}"
            )
        if not hasattr(args, key) or getattr(args, key) is None:
            setattr(args, key, _run_value(path, key, value, actions[key]))
    try:
        Config(**{k: getattr(args, k) for k in fields if hasattr(args, k)})
    except ConfigError as error:
        raise ConfigError(f"--config {path} (or the command line): {error}") from None


def run_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The command's own options as used (not the Config fields), for ``config.toml``."""
    fields = set(Config.names())
    options: dict[str, Any] = {}
    for dest in _actions(parser):
        value = getattr(args, dest, None)
        if dest in fields or value is None or dest in ("out", "overwrite"):
            continue
        options[dest] = list(value) if isinstance(value, tuple) else value
    return options


def write_config_file(
    directory: Path, config: Config, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> Path:
    """Write ``directory/config.toml``: the effective Config and the run's own options."""
    import tomli_w

    document = {
        "config": {  # not `keep`: the command line fills it with the options given
            k: v for k, v in config.to_dict().items() if v is not None and k != "keep"
        },
        "run": run_options(args, parser),
    }
    path = directory / CONFIG_FILE
    atomic_write_bytes(path, tomli_w.dumps(document).encode("utf-8"))
    return path
