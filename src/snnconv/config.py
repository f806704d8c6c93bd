"""One typed configuration for conversion and simulation: every option defined once.

Each field of :class:`Config` carries its :class:`Option`: the command-line
flag, help text, group, the stage it acts at, and its check. The command line
(:mod:`snnconv.cli.options`), a ``--config`` TOML file and the saved format
derive everything from here; :class:`Config` validates once, when it is built,
and everything past it trusts the typed values. No PyTorch here, so the help
is quick.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from snnconv.errors import ConfigError
from snnconv.modes import InputEncoding, MaxPoolMode, Precision, RateEstimator, Readout, ResetMode

__all__ = ["Config", "MaxPoolMode", "Option", "Precision", "Stage"]


class Stage(enum.Enum):
    """When an option acts, which says what a saved network can still change."""

    CONVERSION = "conversion"
    """Normalization and structure: only a new conversion applies it."""
    DYNAMICS = "dynamics"
    """The neurons' and gates' dynamics: a saved network is rewritten with it."""
    SIMULATION = "simulation"
    """How a network is simulated and reported: applies to any network."""


Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Option:
    """What the command line, a TOML file and the docs know of one :class:`Config` field.

    Attributes:
        kind: The value's type (``float``, ``int``, ``bool``, ``str`` or an enum).
        help: One line of help (the default is appended where it is shown).
        flag: The command-line flag (default: ``--`` + the field name with dashes).
        metavar: The placeholder in the help.
        group: The group of the help the flag appears in.
        stage: When the option acts.
        check: Returns what is wrong with a value (None: nothing), after type coercion.
        optional: None is a valid value (then the default is chosen elsewhere).
    """

    kind: type
    help: str
    flag: str = ""
    metavar: str | None = None
    group: str = "conversion"
    stage: Stage = Stage.CONVERSION
    check: Check | None = None
    optional: bool = False


def _execution(kind: type, help: str, **more: Any) -> Option:
    """An option of how a network runs (help group "execution", simulation stage)."""
    return Option(kind, help, group="execution", stage=Stage.SIMULATION, **more)


def _dynamics(kind: type, help: str, **more: Any) -> Option:
    """An option of the neurons' dynamics (a saved network is rewritten with it)."""
    return Option(kind, help, stage=Stage.DYNAMICS, **more)


def _energy_option(what: str, flag: str) -> Option:
    """An energy of the estimate (pJ): what it is, and its flag."""
    return Option(
        float,
        f"energy of {what} in pJ, for the energy estimate",
        flag=flag,
        metavar="PJ",
        group="operations and report",
        stage=Stage.SIMULATION,
        check=_energy,
    )


def _field(default: Any, option: Option) -> Any:
    """A :class:`Config` field: its default, and its :class:`Option` in the metadata."""
    return dataclasses.field(default=default, metadata={"option": option})


def _positive(value: Any) -> str | None:
    return None if value >= 1 else "must be a positive integer"


def _in_open_unit(value: Any) -> str | None:
    return None if 0 < value < 1 else "must be in (0, 1)"


def _energy(value: Any) -> str | None:
    return None if value >= 0 and math.isfinite(value) else "must be a finite energy >= 0 (pJ)"


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class Config:
    """Options of conversion and simulation, with the paper's defaults.

    Every field's meaning, flag and range is in its :class:`Option`
    (``Config.option(name)``); the user guide lists them. In short:
    ``percentile`` and ``pool_aware_percentile`` choose each layer's λ;
    ``reset``, ``v_init``, ``negative_spikes``, ``clamp_steps``,
    ``binary_threshold`` and the max-pool gate's ``rate_*`` set the neurons'
    dynamics; ``input_encoding``, ``readout``, ``batch_size``, ``device``,
    ``threads``, ``seed``, ``chunk``, ``precision`` and the energies set how
    a network is simulated and reported.
    """

    percentile: float = _field(
        99.9,
        Option(
            float,
            "robust maximum per layer: the P-th percentile of its non-zero activations, in "
            "(0, 100]; 100 = max-norm",
            metavar="P",
            check=lambda v: None if 0 < v <= 100 else "must be in (0, 100]; 100 gives max-norm",
        ),
    )
    pool_aware_percentile: bool = _field(
        True,
        Option(
            bool,
            "a layer feeding max pooling takes λ no smaller than the percentile of its "
            "max-pooled values",
        ),
    )
    reset: ResetMode = _field(
        ResetMode.SUBTRACT,
        _dynamics(ResetMode, "IF reset: by subtraction (V -= θ) or to zero"),
    )
    input_encoding: InputEncoding = _field(
        InputEncoding.ANALOG,
        Option(
            InputEncoding,
            "input encoding: a constant current, or seeded Poisson spikes",
            flag="--input",
            stage=Stage.SIMULATION,
        ),
    )
    v_init: float = _field(
        0.0,
        _dynamics(
            float,
            "initial membrane potential as a fraction of θ, in [0, 1) (0.5 centres the "
            "quantization error)",
            metavar="F",
            check=lambda v: None if 0 <= v < 1 else "must be in [0, 1) (a fraction of θ)",
        ),
    )
    calibration_samples: int = _field(
        1000,
        Option(int, "calibration samples drawn with --seed", metavar="N", check=_positive),
    )
    batch_size: int = _field(
        256,
        _execution(
            int,
            "samples simulated at once",
            metavar="N",
            check=_positive,
        ),
    )
    device: str = _field(
        "auto",
        _execution(
            str,
            "cpu, cuda, cuda:N or auto (CUDA where available)",
            check=lambda v: None if _DEVICE.fullmatch(v) else "must be cpu, cuda, cuda:N or auto",
        ),
    )
    threads: int | None = _field(
        None,
        _execution(
            int,
            "CPU threads for PyTorch (default: PyTorch's)",
            metavar="N",
            check=_positive,
            optional=True,
        ),
    )
    seed: int = _field(
        0,
        _execution(
            int,
            "seed of calibration sampling and Poisson input",
            metavar="N",
        ),
    )
    chunk: int | None = _field(
        None,
        _execution(
            int,
            "time steps per layer call (default: measured per device)",
            metavar="K",
            check=_positive,
            optional=True,
        ),
    )
    readout: Readout = _field(
        Readout.POTENTIAL,
        Option(
            Readout,
            "output readout: accumulated membrane potential, spike counts, or the spiking softmax",
            stage=Stage.SIMULATION,
        ),
    )
    maxpool: MaxPoolMode = _field(
        MaxPoolMode.GATE,
        Option(
            MaxPoolMode,
            "max-pooling: the spiking rate gate, or replace by average pooling (changes the ANN)",
        ),
    )
    rate_estimator: RateEstimator = _field(
        RateEstimator.COUNT,
        _dynamics(RateEstimator, "the max-pool gate's online rate estimate"),
    )
    rate_window: int = _field(
        16,
        _dynamics(
            int,
            "window of the moving-average estimator (steps)",
            metavar="N",
            check=_positive,
        ),
    )
    rate_decay: float = _field(
        0.9,
        _dynamics(
            float,
            "decay of the exponential estimator, in (0, 1)",
            metavar="D",
            check=_in_open_unit,
        ),
    )
    clamp_steps: int = _field(
        0,
        _dynamics(
            int,
            "membrane clamp: a layer at depth d holds its membrane for K·d steps (0 = off)",
            metavar="K",
            check=lambda v: None if v >= 0 else "must be >= 0",
        ),
    )
    negative_spikes: bool = _field(
        False,
        _dynamics(
            bool,
            "IF neurons take back spikes fired by a transient: a -1 spike at V <= -θ while "
            "their net count is positive (needs --reset subtract)",
        ),
    )
    binary_threshold: float | None = _field(
        None,
        _dynamics(
            float,
            "threshold of the units replacing binary activations (default: 0.05)",
            metavar="θ",
            check=lambda v: None if v > 0 else "must be positive",
            optional=True,
        ),
    )
    negative_threshold: float | None = _field(
        None,
        _dynamics(
            float,
            "with --negative-spikes, a -1 spike fires at V <= -h·θ, h in [0, 1] (default: 1; "
            "0 makes every count the exact T-step quantized ReLU, at the cost of more events)",
            metavar="H",
            check=lambda v: None if 0 <= v <= 1 else "must be in [0, 1]",
            optional=True,
        ),
    )
    target_timesteps: int | None = _field(
        None,
        Option(
            int,
            "tune the conversion for accuracy at T steps on the calibration data: chooses the "
            "low-latency techniques (threshold search, bias or potential calibration, V(0), "
            "negative spikes) that are not given",
            metavar="T",
            check=_positive,
            optional=True,
        ),
    )
    threshold_search: bool | None = _field(
        None,
        Option(
            bool,
            "each layer's λ minimizes its T-step quantization error on the calibration data "
            "(instead of the percentile; needs --target-timesteps)",
            optional=True,
        ),
    )
    bias_calibration: bool | None = _field(
        None,
        Option(
            bool,
            "layer by layer, add to each channel's input current the mean error between the "
            "ANN's activation and the SNN's rate at T steps on the calibration data (the "
            "fraction 1, 1/2 or 1/4 of it that corrects best; needs --target-timesteps)",
            optional=True,
        ),
    )
    potential_calibration: bool | None = _field(
        None,
        Option(
            bool,
            "the same correction as an initial membrane potential per channel (needs "
            "--target-timesteps)",
            optional=True,
        ),
    )
    keep: tuple[str, ...] = _field(
        (),
        Option(
            tuple,
            "options --target-timesteps must not change (the command line fills it with the "
            "options given)",
            flag="-",
        ),
    )
    early_exit: bool = _field(
        False,
        _execution(
            bool,
            "also simulate with per-sample early exit: a sample stops once its top-1 class has "
            "held for --exit-patience steps with a readout margin of at least --exit-margin "
            "(both tuned on the calibration data unless given)",
        ),
    )
    exit_patience: int | None = _field(
        None,
        _execution(
            int,
            "early exit: steps the top-1 class must hold",
            metavar="K",
            check=_positive,
            optional=True,
        ),
    )
    exit_margin: float | None = _field(
        None,
        _execution(
            float,
            "early exit: least top-1 − top-2 score of the accumulated readout",
            metavar="M",
            check=lambda v: None if v >= 0 else "must be >= 0",
            optional=True,
        ),
    )
    precision: Precision = _field(
        Precision.FLOAT32,
        _execution(
            Precision,
            "number format of the conv/linear layers between spiking layers: float32 "
            "(exact), bfloat16 (faster convolutions on CPUs with AVX512-BF16 or AMX, and on "
            "GPUs) or float16 (GPUs); measure the accuracy effect",
        ),
    )
    energy_ac_pj: float = _field(
        0.9, _energy_option("one synaptic accumulate (32-bit float add, 45 nm)", "--energy-ac")
    )
    energy_mac_pj: float = _field(
        4.6, _energy_option("one multiply-accumulate (32-bit float, 45 nm)", "--energy-mac")
    )

    #: Options that affect only simulation and reporting: a saved network is re-simulated
    #: with new values.
    SIMULATION_OPTIONS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name)))
        tuned = [
            name
            for name in ("threshold_search", "bias_calibration", "potential_calibration")
            if getattr(self, name)
        ]
        if tuned and self.target_timesteps is None:
            verb = "tunes" if len(tuned) == 1 else "tune"
            raise ConfigError(
                f"{', '.join(tuned)} {verb} the conversion for a number of steps: give "
                "target_timesteps (--target-timesteps T)"
            )
        if self.bias_calibration and self.potential_calibration:
            raise ConfigError(
                "bias_calibration and potential_calibration correct the same error; choose one"
            )
        unknown = set(self.keep) - set(_OPTIONS)
        if unknown:
            raise ConfigError(f"keep names unknown options {sorted(unknown)}")
        if self.negative_spikes and self.reset is not ResetMode.SUBTRACT:
            raise ConfigError(
                "negative_spikes needs reset='subtract' (with reset to zero the membrane "
                "forgets how far the spike count is ahead of the input); drop one of the two"
            )

    @staticmethod
    def option(name: str) -> Option:
        """The :class:`Option` of field ``name``."""
        return _OPTIONS[name]

    @classmethod
    def names(cls, stage: Stage | None = None) -> tuple[str, ...]:
        """The field names (of one stage)."""
        return tuple(n for n, o in _OPTIONS.items() if stage is None or o.stage is stage)

    @property
    def resolved_negative_threshold(self) -> float:
        """h of the negative spikes (1 unless set)."""
        return 1.0 if self.negative_threshold is None else self.negative_threshold

    def resolved_device(self) -> Any:
        """The ``torch.device`` to run on (``auto`` becomes CUDA when available)."""
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was requested but CUDA is not available; use 'cpu'")
        return device

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every option."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        unknown = set(data) - set(_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}")
        return cls(**data)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value.value if isinstance(value, enum.Enum) else value


def _coerce(name: str, value: Any) -> Any:
    """``value`` as field ``name``'s type, checked; ConfigError names the field otherwise."""
    option = _OPTIONS[name]
    if value is None and option.optional:
        return None
    kind = option.kind
    try:
        if issubclass(kind, enum.Enum):
            value = kind(value)
        elif kind is bool:
            if not isinstance(value, bool):
                raise TypeError
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
            value = float(value)  # NaN fails every float option's check
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
        elif kind is tuple:
            if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
                raise TypeError
            value = tuple(value)
        elif not isinstance(value, kind):
            raise TypeError
    except (TypeError, ValueError):
        if issubclass(kind, enum.Enum):
            expected = f"one of {[m.value for m in kind]}"
        else:
            expected = {
                bool: "true or false",
                float: "a number",
                int: "an integer",
                tuple: "a list of option names",
            }.get(kind, kind.__name__)
        raise ConfigError(f"{name} must be {expected}, got {value!r}") from None
    problem = option.check(value) if option.check is not None else None
    if problem:
        raise ConfigError(f"{name} {problem}, got {value!r}")
    return value


_OPTIONS: dict[str, Option] = {f.name: f.metadata["option"] for f in dataclasses.fields(Config)}
Config.SIMULATION_OPTIONS = Config.names(Stage.SIMULATION)
