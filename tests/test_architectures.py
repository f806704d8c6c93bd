"""Tests of snnconv.architectures: torchvision-equivalent structure, shapes, BN recalibration."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader, TensorDataset

from snnconv import architectures as arch
from snnconv.errors import ConfigError, DataError

#: name -> (builder, smallest tested input side, torchvision's parameter count at 1000 classes)
IMAGENET_NETS: dict[str, tuple[Callable[..., nn.Module], int, int]] = {
    "vgg16_bn": (arch.vgg16_bn, 32, 138_365_992),
    "vgg11_bn": (arch.vgg11_bn, 32, 132_868_840),
    "resnet18": (arch.resnet18, 32, 11_689_512),
    "googlenet": (arch.googlenet, 32, 6_624_904),
    "inception_v3": (arch.inception_v3, 75, 23_834_568),
}

#: A few state_dict keys torchvision's models have (and their shapes at 1000 classes).
EXPECTED_KEYS: dict[str, dict[str, tuple[int, ...]]] = {
    "vgg16_bn": {
        "features.0.weight": (64, 3, 3, 3),
        "features.1.running_mean": (64,),
        "features.41.num_batches_tracked": (),
        "classifier.0.weight": (4096, 25088),
        "classifier.6.bias": (1000,),
    },
    "vgg11_bn": {
        "features.0.bias": (64,),
        "features.26.running_var": (512,),
        "classifier.3.weight": (4096, 4096),
    },
    "resnet18": {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_mean": (64,),
        "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer4.1.bn2.running_var": (512,),
        "fc.weight": (1000, 512),
    },
    "googlenet": {
        "conv1.conv.weight": (64, 3, 7, 7),
        "conv1.bn.running_var": (64,),
        "inception3a.branch1.conv.weight": (64, 192, 1, 1),
        "inception3a.branch2.1.conv.weight": (128, 96, 3, 3),
        "inception3a.branch4.1.bn.weight": (32,),
        "inception5b.branch3.1.conv.weight": (128, 48, 3, 3),
        "fc.weight": (1000, 1024),
    },
    "inception_v3": {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Mixed_5b.branch5x5_2.bn.running_var": (64,),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "fc.weight": (1000, 2048),
    },
}

#: Number of state_dict entries of torchvision's models (weights=None, no aux heads).
EXPECTED_KEY_COUNTS: dict[str, int] = {
    "vgg16_bn": 97,
    "vgg11_bn": 62,
    "resnet18": 122,
    "googlenet": 344,
    "inception_v3": 566,
}


def on_meta(build: Callable[..., nn.Module], **kwargs: object) -> nn.Module:
    """Build a network on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        return build(**kwargs)


@functools.cache
def ten_class(name: str) -> nn.Module:
    """A 10-class network in eval mode, built once per test session (tests only read it)."""
    return IMAGENET_NETS[name][0](num_classes=10).eval()


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """state_dict key -> shape, in order."""
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


@pytest.mark.parametrize("name", sorted(IMAGENET_NETS))
def test_parameter_counts_and_keys(name: str) -> None:
    build, _, count = IMAGENET_NETS[name]
    model = on_meta(build)
    assert sum(p.numel() for p in model.parameters()) == count
    keys = shapes(model)
    assert len(keys) == EXPECTED_KEY_COUNTS[name]
    for key, shape in EXPECTED_KEYS[name].items():
        assert keys[key] == shape, key


def test_aux_heads_match_torchvision_counts() -> None:
    googlenet = on_meta(arch.googlenet, aux_logits=True)
    assert sum(p.numel() for p in googlenet.parameters()) == 13_004_888
    assert "aux1.fc2.weight" in googlenet.state_dict()
    inception = on_meta(arch.inception_v3, aux_logits=True)
    assert sum(p.numel() for p in inception.parameters()) == 27_161_264
    assert shapes(inception)["AuxLogits.conv1.conv.weight"] == (768, 128, 5, 5)


def test_resnet20_cifar_structure() -> None:
    model = arch.resnet20_cifar()
    assert sum(p.numel() for p in model.parameters()) == 272_474
    blocks = [m for m in model.modules() if isinstance(m, arch.BasicBlock)]
    assert len(blocks) == 9
    keys = shapes(model)
    assert keys["conv1.weight"] == (16, 3, 3, 3)
    assert keys["layer2.0.downsample.0.weight"] == (32, 16, 1, 1)
    assert keys["layer3.0.downsample.1.running_mean"] == (64,)
    assert "layer1.0.downsample.0.weight" not in keys
    assert keys["fc.weight"] == (10, 64)


@pytest.mark.parametrize(
    ("name", "side"),
    [
        ("vgg16_bn", 32),
        ("vgg11_bn", 40),
        ("resnet18", 32),
        ("resnet18", 64),
        ("googlenet", 32),
        ("inception_v3", 75),
        ("inception_v3", 96),
    ],
)
def test_output_shape_at_reduced_resolution(name: str, side: int) -> None:
    model = ten_class(name)
    with torch.no_grad():
        out = model(torch.rand(2, 3, side, side))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_resnet20_output_shape() -> None:
    model = arch.resnet20_cifar(num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.rand(3, 3, 32, 32)).shape == (3, 7)


def test_inception_v3_too_small_input_fails() -> None:
    model = ten_class("inception_v3")
    with pytest.raises(RuntimeError), torch.no_grad():
        model(torch.rand(1, 3, 74, 74))


def test_googlenet_training_outputs_with_aux() -> None:
    model = arch.googlenet(num_classes=5, aux_logits=True).train()
    out = model(torch.rand(2, 3, 32, 32))
    assert isinstance(out, arch.GoogLeNetOutputs)
    assert out.logits.shape == out.aux_logits1.shape == out.aux_logits2.shape == (2, 5)  # type: ignore[union-attr]
    assert model.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 5)  # type: ignore[union-attr]


def test_transform_input() -> None:
    model = arch.googlenet(num_classes=3, transform_input=True).eval()
    plain = arch.googlenet(num_classes=3).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 32, 32)
    scale = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) / 0.5
    shift = (torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) - 0.5) / 0.5
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x * scale + shift))


class _CallRecorder(TorchFunctionMode):
    """Records the name of every torch function called."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: object,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def test_residual_add_is_in_place() -> None:
    model = arch.resnet18(num_classes=10).eval()
    with _CallRecorder() as recorder, torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    assert recorder.names.count("add_") == 8  # one `out += identity` per BasicBlock
    assert "add" not in recorder.names


def test_inception_v3_functional_calls() -> None:
    traced = torch.fx.symbolic_trace(arch.inception_v3(num_classes=10))
    targets = [n.target for n in traced.graph.nodes if n.op == "call_function"]
    assert targets.count(F.avg_pool2d) == 9  # Mixed_5b-5d, 6b-6e, 7b-7c
    assert targets.count(F.max_pool2d) == 2  # Mixed_6a, 7a
    assert targets.count(torch.cat) == 11 + 4  # one per module, two more in each E
    assert torch.flatten in targets and F.relu in targets


def test_googlenet_branch4_pool() -> None:
    pool = arch.googlenet().inception3a.branch4[0]
    assert isinstance(pool, nn.MaxPool2d)
    assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == (3, 1, 1, True)
    bn = arch.googlenet().conv1.bn
    assert bn.eps == 0.001


def test_bad_num_classes() -> None:
    for build in (arch.resnet18, arch.vgg11_bn, arch.googlenet, arch.resnet20_cifar):
        with pytest.raises(ConfigError, match="num_classes"):
            build(num_classes=0)


# --- recalibrate_batchnorm -----------------------------------------------------------------


def test_recalibrate_batchnorm_matches_data_statistics() -> None:
    model = arch.resnet20_cifar().eval()
    model.layer1.train()  # an odd mix of modes must be restored exactly
    before = {name: m.training for name, m in model.named_modules()}
    momentum = model.bn1.momentum
    x = torch.rand(64, 3, 16, 16) * 2 + 1
    out = arch.recalibrate_batchnorm(model, x, batch_size=16)
    assert out is model
    assert {name: m.training for name, m in model.named_modules()} == before
    assert model.bn1.momentum == momentum
    assert int(model.bn1.num_batches_tracked) == 4
    with torch.no_grad():
        features = model.conv1(x)
    torch.testing.assert_close(model.bn1.running_mean, features.mean((0, 2, 3)))
    # The cumulative average of per-batch unbiased variances.
    variances = torch.stack([b.var((0, 2, 3), unbiased=True) for b in features.split(16)])
    torch.testing.assert_close(model.bn1.running_var, variances.mean(0))


def test_recalibrate_batchnorm_inputs_and_limits() -> None:
    model = arch.resnet20_cifar()
    x = torch.rand(12, 3, 8, 8)
    labels = torch.zeros(12, dtype=torch.long)
    arch.recalibrate_batchnorm(model, TensorDataset(x, labels), num_batches=2, batch_size=4)
    assert int(model.bn1.num_batches_tracked) == 2
    arch.recalibrate_batchnorm(model, DataLoader(TensorDataset(x, labels), batch_size=6))
    assert int(model.bn1.num_batches_tracked) == 2
    assert model.training  # was in training mode before, still is
    with pytest.raises(ConfigError, match="num_batches"):
        arch.recalibrate_batchnorm(model, x, num_batches=0)
    with pytest.raises(DataError, match="no batches"):
        arch.recalibrate_batchnorm(model, torch.rand(0, 3, 8, 8))
    with pytest.raises(DataError, match="cannot read batches"):
        arch.recalibrate_batchnorm(model, 3)  # type: ignore[arg-type]
    no_bn = nn.Sequential(nn.Conv2d(3, 2, 1))
    assert arch.recalibrate_batchnorm(no_bn, x) is no_bn


def test_recalibrate_keeps_dropout_off() -> None:
    model = arch.googlenet(num_classes=4, aux_logits=True)
    calls: list[bool] = []
    model.dropout.register_forward_hook(lambda m, i, o: calls.append(m.training))
    arch.recalibrate_batchnorm(model, torch.rand(4, 3, 32, 32))
    assert calls == [False]
    assert model.training


# --- data ----------------------------------------------------------------------------------


def test_fashion_mnist_rgb() -> None:
    from snnconv.data import load_dataset

    ds = arch.fashion_mnist_rgb(40, "test", limit=5, chunk=2)
    x, y = ds.tensors
    assert x.shape == (5, 3, 40, 40) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 2])
    gray = load_dataset("fashion-mnist", "test", limit=5).tensors
    expected = F.interpolate(gray[0], size=(40, 40), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x[:, 1:2], expected)
    assert torch.equal(y, gray[1])
    with pytest.raises(ConfigError, match="size"):
        arch.fashion_mnist_rgb(0)


# --- torchvision, where it imports ---------------------------------------------------------

NO_TORCHVISION = (
    "torchvision is not installed (PyPI's build does not import beside the CPU build of torch "
    "2.13; `pip install torch==2.14.1 torchvision==0.29.1` into .venv runs these)"
)


def test_same_state_dict_as_torchvision() -> None:
    models = pytest.importorskip("torchvision.models", reason=NO_TORCHVISION)
    builders: dict[str, tuple[Callable[..., nn.Module], dict[str, object]]] = {
        "vgg16_bn": (arch.vgg16_bn, {}),
        "vgg11_bn": (arch.vgg11_bn, {}),
        "resnet18": (arch.resnet18, {}),
        "googlenet": (arch.googlenet, {"aux_logits": False, "init_weights": True}),
        "inception_v3": (arch.inception_v3, {"aux_logits": False, "init_weights": True}),
    }
    for name, (build, kwargs) in builders.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = on_meta(getattr(models, name), weights=None, **kwargs)
        assert shapes(on_meta(build)) == shapes(theirs), name


def test_torchvision_weights_load_and_agree() -> None:
    models = pytest.importorskip("torchvision.models", reason=NO_TORCHVISION)
    theirs = models.resnet18(weights=None, num_classes=10).eval()
    ours = arch.resnet18(num_classes=10).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
    theirs_g = models.googlenet(weights=None, num_classes=10, aux_logits=False, init_weights=True)
    ours_g = arch.googlenet(num_classes=10)
    ours_g.load_state_dict(theirs_g.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours_g.eval()(x), theirs_g.eval()(x))


@pytest.mark.slow
def test_inception_v3_aux_head_in_training_at_full_size() -> None:
    model = arch.inception_v3(num_classes=3, aux_logits=True).train()
    out = model(torch.rand(2, 3, 299, 299))
    assert isinstance(out, arch.InceptionOutputs)
    assert out.logits.shape == (2, 3) and out.aux_logits is not None
    assert out.aux_logits.shape == (2, 3)
