#!/usr/bin/env bash
# The peer simulators' own environment, kept apart from snnconv's: benchmarks/.peer-venv with
# SpikingJelly and sinabs (never runtime or test dependencies of snnconv), the CPU build of
# PyTorch that snnconv's CI uses, and snnconv itself installed from this checkout (editable)
# so that benchmarks/peers/run_peers.py can reuse its data loaders and model zoo.
#
# Idempotent: an existing venv is reused and pip leaves satisfied pins alone.
# Usage: bash benchmarks/peers/setup.sh        (PYTHON=python3.12 to choose the interpreter)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/benchmarks/.peer-venv"
python="${PYTHON:-python3}"

SPIKINGJELLY_VERSION=2.0.0
SINABS_VERSION=3.1.3

# Every install runs under the project's pins: torch==2.13.0 is the CPU wheel; without the pin
# a peer's bare `torch` requirement could pull a multi-GB CUDA build.
export PIP_CONSTRAINT="$root/.ci/constraints.txt"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip
"${pip[@]}" install --quiet "torch==2.13.0"
"${pip[@]}" install --quiet "spikingjelly==$SPIKINGJELLY_VERSION" "sinabs==$SINABS_VERSION"
"${pip[@]}" install --quiet -e "$root"

"$venv/bin/python" - <<'PY'
from importlib.metadata import version

for name in ("torch", "spikingjelly", "sinabs", "nir", "nirtorch", "numpy", "snnconv"):
    print(f"{name:>13} {version(name)}")
PY
echo "peer environment ready: $venv/bin/python"
