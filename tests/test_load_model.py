"""Loading a model named on the command line: .pt2, MODULE:FACTORY + weights, saved networks."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import snnconv
from models import MLP, NestedNet
from snnconv import ModelLoadError
from snnconv.importers.load import load_model, load_state_dict
from snnconv.sim.reference import run_graph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

CPU = snnconv.Config(device="cpu")


class Payload:
    """An arbitrary picklable object: loading it needs ``weights_only=False``."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.getenv, ("HOME",))  # harmless, but code that runs when unpickled


@pytest.fixture(scope="module")
def pt2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = NestedNet().eval()
    ep = torch.export.export(model, (torch.randn(2, *model.in_shape),))
    path = tmp_path_factory.mktemp("pt2") / "nested.pt2"
    torch.export.save(ep, path)
    return path, model


def rewrite_archive(source: Path, target: Path, replace: dict[str, bytes]) -> None:
    """Copy a zip archive, replacing (or adding) the members in ``replace``."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
        names = [i.filename for i in src.infolist()]
        for name in names:
            dst.writestr(name, replace.get(name, src.read(name)))
        for name, data in replace.items():
            if name not in names:
                dst.writestr(name, data)


def pickled(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def member(path: Path, suffix: str) -> str:
    with zipfile.ZipFile(path) as archive:
        return next(n for n in archive.namelist() if n.endswith(suffix))


# -- .pt2 -------------------------------------------------------------------------
def test_pt2_loads_and_converts(pt2: tuple[Path, torch.nn.Module]) -> None:
    path, model = pt2
    ep = load_model(str(path))
    assert isinstance(ep, torch.export.ExportedProgram)
    x = torch.rand(8, *model.in_shape)
    snn = snnconv.convert(ep, x, CPU)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(run_graph(snn.graph, x)[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("where", ["sample inputs", "pickled weight", "custom object"])
def test_pt2_needing_unpickling_is_refused(
    pt2: tuple[Path, torch.nn.Module],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    path, _ = pt2
    bad = tmp_path / "bad.pt2"
    if where == "sample inputs":
        replace = {member(path, "sample_inputs/model.pt"): pickled((Payload(),))}
    elif where == "pickled weight":
        config_name = member(path, "weights/model_weights_config.json")
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read(config_name))
        entry = next(iter(config["config"].values()))
        entry["use_pickle"] = True
        folder = config_name.rsplit("/", 1)[0]
        replace = {
            config_name: json.dumps(config).encode(),
            f"{folder}/{entry['path_name']}": pickled(Payload()),
        }
    else:
        folder = member(path, "archive_format").rsplit("/", 1)[0]
        replace = {f"{folder}/data/custom_objs/obj_0": pickled(Payload())}
    rewrite_archive(path, bad, replace)

    def must_not_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.export.load must not see an unsafe archive")

    monkeypatch.setattr(torch.export, "load", must_not_load)
    with pytest.raises(ModelLoadError, match=r"bad\.pt2") as info:
        load_model(str(bad))
    assert "unpickle" in str(info.value)


def test_rewritten_safe_archive_still_loads(
    pt2: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    # The copy used above is itself a valid archive: refusals are due to the payload only.
    path, _ = pt2
    copy = tmp_path / "copy.pt2"
    rewrite_archive(path, copy, {})
    assert isinstance(load_model(str(copy)), torch.export.ExportedProgram)


def test_corrupt_pt2_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "random.pt2"
    bad.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(ModelLoadError, match=r"random\.pt2"):
        load_model(str(bad))


def test_truncated_pt2_is_refused(pt2: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    path, _ = pt2
    bad = tmp_path / "truncated.pt2"
    bad.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(ModelLoadError, match=r"truncated\.pt2"):
        load_model(str(bad))


def test_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "absent.pt2"))
    with pytest.raises(ModelLoadError, match=r"absent\.safetensors"):
        load_model("models:MLP", weights=tmp_path / "absent.safetensors")


# -- MODULE:FACTORY + weights ---------------------------------------------------------
def trained_mlp(seed: int = 1) -> MLP:
    torch.manual_seed(seed)
    return MLP()


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("fmt", ["safetensors", "state dict", "wrapped state dict"])
def test_factory_with_weights(tmp_path: Path, fmt: str) -> None:
    source = trained_mlp()
    state = source.state_dict()
    if fmt == "safetensors":
        weights = tmp_path / "w.safetensors"
        save_file(state, weights)
    elif fmt == "state dict":
        weights = tmp_path / "w.pt"
        torch.save(state, weights)
    else:
        weights = tmp_path / "w.ckpt"
        torch.save({"epoch": 3, "state_dict": state}, weights)
    model = load_model("models:MLP", weights=weights)
    assert isinstance(model, MLP)
    assert_same_parameters(model, source)
    x = torch.rand(4, *model.in_shape)
    snn = snnconv.convert(model, x, CPU)
    torch.testing.assert_close(run_graph(snn.graph, x)[0], source(x), rtol=1e-4, atol=1e-5)


def test_factory_without_weights_needs_random_weights_on_purpose(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no trained weights.*--weights.*--random-weights"):
        load_model("models:NestedNet")
    model = load_model("models:NestedNet", random_weights=True)
    assert isinstance(model, NestedNet) and model.snnconv_random_weights
    with pytest.raises(ModelLoadError, match="exclude each other"):
        load_model("models:NestedNet", weights=tmp_path / "w.safetensors", random_weights=True)
    with pytest.raises(ModelLoadError, match="applies to MODULE:FACTORY"):
        load_model(str(tmp_path / "model.pt2"), random_weights=True)


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_wrong_weights_name_the_file(tmp_path: Path, fmt: str) -> None:
    state = MLP(hidden=5).state_dict()
    weights = tmp_path / f"other.{fmt}"
    if fmt == "safetensors":
        save_file(state, weights)
    else:
        torch.save(state, weights)
    with pytest.raises(ModelLoadError, match=rf"other\.{fmt}"):
        load_model("models:MLP", weights=weights)


def test_weights_needing_unpickling_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "evil.pt"
    torch.save({"fc1.weight": Payload()}, weights)
    with pytest.raises(ModelLoadError, match=r"evil\.pt"):
        load_state_dict(weights)
    not_a_state = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], not_a_state)
    with pytest.raises(ModelLoadError, match="state dict"):
        load_state_dict(not_a_state)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match=r"corrupt\.safetensors"):
        load_state_dict(corrupt)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("no_such_module_xyz:make", "cannot import module"),
        ("models:NoSuchFactory", "no attribute"),
        ("models:IN_SHAPE", "not a torch.nn.Module"),
        ("models:", "cannot interpret|MODULE:FACTORY"),
        ("model.onnx", "ONNX"),
        ("weights.pth", "--weights"),
        ("just-a-name", "cannot interpret"),
    ],
)
def test_bad_specs_are_refused(spec: str, match: str) -> None:
    with pytest.raises(ModelLoadError, match=match):
        load_model(spec)
    if ":" in spec:
        with pytest.raises(ModelLoadError, match=match):
            load_model(spec, random_weights=True)


# -- saved networks ------------------------------------------------------------------
def test_saved_network_directory(tmp_path: Path) -> None:
    model = MLP()
    snn = snnconv.convert(model, torch.rand(4, *model.in_shape), CPU)
    snnconv.save(snn, tmp_path / "net")
    loaded = load_model(str(tmp_path / "net"))
    assert isinstance(loaded, snnconv.SpikingNetwork)
    assert loaded.spiking_layers == snn.spiking_layers
    with pytest.raises(ModelLoadError, match="--weights"):
        load_model(str(tmp_path / "net"), weights=tmp_path / "w.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no saved network"):
        load_model(str(tmp_path / "empty"))
