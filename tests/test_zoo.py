"""Tests of snnconv.zoo: architectures, training, weight files, the shipped checkpoint."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from snnconv import zoo
from snnconv.data import load_dataset
from snnconv.errors import ConfigError, ModelLoadError


@pytest.mark.parametrize("image_size", [28, 8])
@pytest.mark.parametrize(
    "build",
    [lambda **kw: zoo.lenet("avg", **kw), lambda **kw: zoo.lenet("max", **kw), zoo.vgg_small],
    ids=["lenet_avg", "lenet_max", "vgg_small"],
)
def test_output_shapes(build: Callable[..., nn.Module], image_size: int) -> None:
    model = build(image_size=image_size).eval()
    out = model(torch.zeros(3, 1, image_size, image_size))
    assert out.shape == (3, 10)
    wide = build(in_channels=3, num_classes=5, image_size=image_size).eval()
    assert wide(torch.zeros(2, 3, image_size, image_size)).shape == (2, 5)


def test_lenet_layers() -> None:
    model = zoo.lenet("max")
    assert isinstance(model, nn.Sequential)
    kinds = [type(m).__name__ for m in model]
    assert kinds == [
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "Linear",
        "ReLU",
        "Linear",
    ]
    assert all(m.bias is not None for m in model if isinstance(m, nn.Conv2d | nn.Linear))
    assert model[7].in_features == 32 * 7 * 7
    assert isinstance(zoo.lenet()[2], nn.AvgPool2d)


def test_vgg_small_layers() -> None:
    model = zoo.vgg_small(image_size=8)
    kinds = [type(m).__name__ for m in model]
    assert kinds.count("BatchNorm2d") == 4 and kinds.count("Dropout") == 2
    assert kinds.count("AvgPool2d") == 2
    linear = [m for m in model if isinstance(m, nn.Linear)]
    assert linear[0].in_features == 32 * 2 * 2 and linear[1].out_features == 10


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="pool"):
        zoo.lenet("sum")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="image_size"):
        zoo.vgg_small(image_size=2)
    with pytest.raises(ConfigError, match="epochs"):
        zoo.train(zoo.lenet(image_size=8), load_dataset("digits", limit=4), epochs=-1)


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = zoo.vgg_small(image_size=8)
    model.state_dict()["1.running_mean"].uniform_()  # buffers travel too
    path = zoo.save_weights(model, tmp_path / "sub" / "vgg.safetensors", metadata={"k": "v"})
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["vgg.safetensors"]  # no temp files left
    torch.manual_seed(1)
    other = zoo.load_weights(zoo.vgg_small(image_size=8), path)
    for (key, a), (key_b, b) in zip(
        model.state_dict().items(), other.state_dict().items(), strict=True
    ):
        assert key == key_b and torch.equal(a, b)


def test_load_weights_errors(tmp_path: Path) -> None:
    path = zoo.save_weights(zoo.lenet(image_size=8), tmp_path / "small.safetensors")
    with pytest.raises(ModelLoadError, match="do not fit"):
        zoo.load_weights(zoo.lenet(image_size=28), path)
    with pytest.raises(ModelLoadError, match="not found"):
        zoo.load_weights(zoo.lenet(), tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 5)
    with pytest.raises(ModelLoadError, match=r"junk\.safetensors"):
        zoo.load_weights(zoo.lenet(), junk)


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    zoo.save_weights(zoo.lenet(image_size=8), path)
    model = zoo.lenet(image_size=8)
    zoo.save_weights(model, path)
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]
    loaded = zoo.load_weights(zoo.lenet(image_size=8), path)
    assert torch.equal(loaded.state_dict()["0.weight"], model.state_dict()["0.weight"])


def test_train_on_digits_is_accurate_and_deterministic() -> None:
    pytest.importorskip("sklearn")
    train_set = load_dataset("digits", "train")
    test_set = load_dataset("digits", "test")
    torch.manual_seed(0)
    model = zoo.train(zoo.lenet("avg", image_size=8), train_set, epochs=2, batch_size=8, lr=5e-3)
    assert not model.training
    assert zoo.accuracy(model, test_set) > 0.8
    torch.manual_seed(0)
    again = zoo.train(zoo.lenet("avg", image_size=8), train_set, epochs=2, batch_size=8, lr=5e-3)
    assert torch.equal(model.state_dict()["0.weight"], again.state_dict()["0.weight"])


def test_train_generic_dataset_and_accuracy_restores_mode() -> None:
    pytest.importorskip("sklearn")
    digits = load_dataset("digits", "train", limit=64)
    subset = torch.utils.data.Subset(digits, range(64))
    torch.manual_seed(0)
    model = zoo.train(zoo.vgg_small(image_size=8), subset, epochs=1, batch_size=16)
    model.train()
    acc = zoo.accuracy(model, subset, batch_size=10)
    assert model.training  # restored
    with torch.no_grad():
        predicted = model.eval()(torch.stack([subset[i][0] for i in range(64)])).argmax(1)
    labels = torch.stack([subset[i][1] for i in range(64)])
    assert acc == pytest.approx(float((predicted == labels).double().mean()), abs=1e-12)


def test_pretrained_lenet_accuracy() -> None:
    model = zoo.load_pretrained_lenet()
    assert not model.training
    test_set = load_dataset("fashion-mnist", "test", limit=1000)
    assert zoo.accuracy(model, test_set) > 0.85


# --- paper reference networks -------------------------------------------------------------


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_cifar_convnet_layers(pool: str) -> None:
    model = zoo.cifar_convnet(pool=pool).eval()  # type: ignore[arg-type]
    kinds = [type(m).__name__ for m in model]
    pool_kind = "MaxPool2d" if pool == "max" else "AvgPool2d"
    assert kinds == [
        "Conv2d",
        "ReLU",
        "Conv2d",
        "ReLU",
        pool_kind,
        "Dropout",
        "Conv2d",
        "ReLU",
        "Conv2d",
        "ReLU",
        pool_kind,
        "Dropout",
        "Flatten",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.padding) for c in convs] == [
        (3, 32, (1, 1)),
        (32, 32, (0, 0)),
        (32, 64, (1, 1)),
        (64, 64, (0, 0)),
    ]
    assert model[13].in_features == 64 * 6 * 6 and model[13].out_features == 512
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    small = zoo.cifar_convnet(num_classes=4, in_channels=1, image_size=16).eval()
    assert small(torch.zeros(1, 1, 16, 16)).shape == (1, 4)
    with pytest.raises(ConfigError, match="image_size"):
        zoo.cifar_convnet(image_size=8)
    with pytest.raises(ConfigError, match="pool"):
        zoo.cifar_convnet(pool="min")  # type: ignore[arg-type]


def test_sign_and_heaviside_ste() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    sign = zoo.SignSTE().train()
    y = sign(x)
    assert y.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad is not None and x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    step = zoo.HeavisideSTE().train()
    x.grad = None
    z = step(x)
    assert z.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    z.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert zoo.SignSTE().eval()(x).tolist() == y.tolist()
    assert zoo.HeavisideSTE().eval()(x).tolist() == z.tolist()


def test_binary_layers_use_sign_of_weights() -> None:
    conv = zoo.BinaryConv2d(2, 3, kernel_size=3, padding=1)
    x = torch.randn(1, 2, 5, 5)
    expected = torch.nn.functional.conv2d(x, conv.weight.sign(), conv.bias, padding=1)
    torch.testing.assert_close(conv.eval()(x), expected)
    torch.testing.assert_close(conv.train()(x), expected)
    conv(x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    linear = zoo.BinaryLinear(4, 2)
    v = torch.randn(3, 4)
    torch.testing.assert_close(linear(v), v @ linear.weight.sign().T + linear.bias)


@pytest.mark.parametrize("activation", ["sign", "heaviside"])
def test_binarynet_shapes_and_binarize(activation: str) -> None:
    model = zoo.binarynet(in_channels=1, image_size=28, activation=activation)  # type: ignore[arg-type]
    model.eval()
    x = torch.rand(4, 1, 28, 28)
    kinds = [type(m).__name__ for m in model]
    act = "SignSTE" if activation == "sign" else "HeavisideSTE"
    assert kinds.count(act) == 3 and kinds.count("MaxPool2d") == 2
    assert kinds.count("BinaryConv2d") == 2 and kinds.count("BinaryLinear") == 2
    # Realistic batch-norm statistics, so the binary activations are mixed.
    with torch.no_grad():
        model.train()(torch.rand(32, 1, 28, 28))
    model.eval()
    with torch.no_grad():
        before = model(x)
        hidden = model[:3](x)
    assert before.shape == (4, 10)
    allowed = {-1.0, 0.0, 1.0} if activation == "sign" else {0.0, 1.0}
    assert set(hidden.unique().tolist()) <= allowed
    same = zoo.binarize_weights(model)
    assert same is model
    kinds = [type(m).__name__ for m in model]
    assert "BinaryConv2d" not in kinds and "BinaryLinear" not in kinds
    for layer in model:
        if isinstance(layer, nn.Conv2d | nn.Linear):
            assert set(layer.weight.unique().tolist()) == {-1.0, 1.0}
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)


def test_binarynet_arguments() -> None:
    assert zoo.binarynet(pool="avg")[3].__class__ is nn.AvgPool2d
    assert zoo.binarynet()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match="activation"):
        zoo.binarynet(activation="relu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pool"):
        zoo.binarynet(pool="sum")  # type: ignore[arg-type]


def test_train_binarynet_on_digits() -> None:
    pytest.importorskip("sklearn")
    train_set = load_dataset("digits", "train")
    test_set = load_dataset("digits", "test")
    torch.manual_seed(0)
    model = zoo.binarynet(in_channels=1, image_size=8, activation="heaviside")
    zoo.train(model, train_set, epochs=6, batch_size=32, lr=2e-3)
    accuracy = zoo.accuracy(model, test_set)
    assert accuracy > 0.6
    assert zoo.accuracy(zoo.binarize_weights(model), test_set) == accuracy


@pytest.mark.parametrize(
    ("build", "adds", "concats", "maxpools"),
    [(zoo.resnet_small, 3, 0, 0), (zoo.inception_small, 0, 2, 4)],
    ids=["resnet_small", "inception_small"],
)
def test_deep_zoo_nets_convert_exactly(
    build: Callable[..., nn.Module], adds: int, concats: int, maxpools: int
) -> None:
    import snnconv
    from snnconv.sim.reference import run_graph

    torch.manual_seed(0)
    model = build().eval()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert build(in_channels=3, num_classes=5).eval()(torch.zeros(1, 3, 20, 20)).shape == (1, 5)
    x = torch.rand(16, 1, 28, 28)
    snn = snnconv.convert(model, x, snnconv.Config(device="cpu"))
    kinds = [n.op.kind for n in snn.graph.nodes]
    assert (kinds.count("Add"), kinds.count("Concat"), kinds.count("MaxPool2d")) == (
        adds,
        concats,
        maxpools,
    )
    assert "BatchNorm" not in kinds
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(run_graph(snn.graph, x)[0], expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError):
        build(num_classes=1)
