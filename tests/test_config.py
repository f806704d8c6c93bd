"""Config: every option defined once, checked once, with the stage it acts at."""

from __future__ import annotations

import subprocess
import sys

import pytest

from snnconv.config import Config, Stage
from snnconv.errors import ConfigError


def test_stages_say_what_a_saved_network_can_still_change() -> None:
    assert Config.names(Stage.CONVERSION) == (
        "percentile",
        "pool_aware_percentile",
        "calibration_samples",
        "maxpool",
        "target_timesteps",
        "threshold_search",
        "bias_calibration",
        "potential_calibration",
        "keep",
    )
    assert Config.names(Stage.DYNAMICS) == (
        "reset",
        "v_init",
        "rate_estimator",
        "rate_window",
        "rate_decay",
        "clamp_steps",
        "negative_spikes",
        "binary_threshold",
        "negative_threshold",
    )
    assert set(Config.SIMULATION_OPTIONS) == set(Config.names(Stage.SIMULATION))
    assert len(Config.names()) == len(Config.names(Stage.CONVERSION)) + len(
        Config.names(Stage.DYNAMICS)
    ) + len(Config.names(Stage.SIMULATION))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("percentile", 0, "percentile must be in (0, 100]"),
        ("percentile", float("nan"), "percentile must be in (0, 100]"),
        ("percentile", "99", "percentile must be a number"),
        ("v_init", 1.0, "v_init must be in [0, 1)"),
        ("batch_size", 0, "batch_size must be a positive integer"),
        ("batch_size", 2.5, "batch_size must be an integer"),
        ("device", "meta", "device must be cpu, cuda, cuda:N or auto"),
        ("reset", "sometimes", "reset must be one of ['subtract', 'zero']"),
        ("negative_spikes", "yes", "negative_spikes must be true or false"),
        ("energy_ac_pj", -1.0, "energy_ac_pj must be a finite energy >= 0"),
        ("threads", 0, "threads must be a positive integer"),
        ("target_timesteps", 0, "target_timesteps must be a positive integer"),
        ("negative_threshold", -0.5, "negative_threshold must be in [0, 1]"),
        ("exit_patience", 0, "exit_patience must be a positive integer"),
        ("keep", ("v_nit",), "keep names unknown options ['v_nit']"),
    ],
)
def test_each_value_is_checked_where_config_is_built(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**{field: value})
    assert message in str(info.value)


def test_round_trip_and_options_without_pytorch() -> None:
    config = Config(percentile=99.0, reset="zero", threads=2)
    assert Config.from_dict(config.to_dict()) == config
    assert config.to_dict()["reset"] == "zero"
    code = (
        "import sys, snnconv.config, snnconv.cli; "
        "snnconv.cli.build_parser(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
