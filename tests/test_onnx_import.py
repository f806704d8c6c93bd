"""ONNX importer: one tiny model per op family against onnxruntime, PyTorch-exported
models against the PyTorch importer, Keras-style NHWC graphs, and bad input.

Parity tolerance: outputs of the imported graph (run by the reference executor)
match onnxruntime's within 1e-5 absolute + 1e-5 relative (float32).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from snnconv.errors import ModelLoadError, ShapeError, UnsupportedOpError  # noqa: E402
from snnconv.importers.load import load_model  # noqa: E402
from snnconv.importers.onnx import (  # noqa: E402
    ONNX_CONVERTERS,
    OnnxOp,
    find_converter,
    import_onnx,
    max_opset,
)
from snnconv.ir import Graph, Linear  # noqa: E402
from snnconv.passes.pipeline import prepare_ann  # noqa: E402
from snnconv.sim.reference import run_graph  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning"
)

ATOL = RTOL = 1e-5


def init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def make_model(
    nodes: list[onnx.NodeProto],
    in_shape: Sequence[int | str],
    out_rank: int,
    initializers: Sequence[onnx.TensorProto] = (),
    opset: int = 17,
    out_name: str = "y",
) -> onnx.ModelProto:
    """A model with one float input ``x`` (batch axis dynamic) and one output."""
    graph = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [None] * out_rank)],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def check(model: onnx.ModelProto, x: np.ndarray, **kwargs: object) -> Graph:
    """Import ``model``, run it on ``x`` and compare with onnxruntime."""
    graph = import_onnx(model, **kwargs)  # type: ignore[arg-type]
    out, _ = run_graph(graph, torch.from_numpy(x))
    expected = run_ort(model, x)
    np.testing.assert_allclose(out.numpy(), expected, atol=ATOL, rtol=RTOL)
    return graph


def kinds(graph: Graph) -> list[str]:
    return [n.op.kind for n in graph.nodes]


rng = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


X4 = rand(3, 2, 8, 8)


# -- per-op parity -------------------------------------------------------------------
def test_conv_with_padding_stride_dilation_groups() -> None:
    node = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], pads=[1, 2, 1, 2], strides=[2, 1], dilations=[1, 2], group=2
    )
    model = make_model([node], [2, 8, 8], 4, [init("w", rand(4, 1, 3, 3)), init("b", rand(4))])
    assert kinds(check(model, X4)) == ["Input", "Conv2d"]


def test_conv_auto_pad_same_and_no_bias() -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", kernel_shape=[3, 3])
    check(make_model([node], [2, 8, 8], 4, [init("w", rand(3, 2, 3, 3))]), X4)


def test_conv_asymmetric_padding_is_refused() -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[0, 0, 1, 1], name="conv_asym")
    model = make_model([node], [2, 8, 8], 4, [init("w", rand(3, 2, 2, 2))])
    with pytest.raises(UnsupportedOpError, match="asymmetric padding") as info:
        import_onnx(model)
    assert "conv_asym" in str(info.value)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm(trans_b: int) -> None:
    w = rand(5, 4) if trans_b else rand(4, 5)
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0, transB=trans_b)
    model = make_model([node], [4], 2, [init("w", w), init("c", rand(5))])
    check(model, rand(3, 4))


def test_matmul_add_folds_into_one_linear() -> None:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["y"]),
    ]
    model = make_model(nodes, [4], 2, [init("w", rand(4, 6)), init("b", rand(6))])
    graph = check(model, rand(3, 4))
    assert kinds(graph) == ["Input", "Linear"]
    assert isinstance(graph.output_node.op, Linear) and graph.output_node.op.bias is not None


def test_conv_add_bias_folds() -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["h"]),
        helper.make_node("Add", ["b", "h"], ["y"]),
    ]
    model = make_model(nodes, [2, 8, 8], 4, [init("w", rand(3, 2, 3, 3)), init("b", rand(3, 1, 1))])
    assert kinds(check(model, X4)) == ["Input", "Conv2d"]


def test_adding_a_non_bias_constant_is_refused() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Add", ["h", "c"], ["y"])]
    model = make_model(nodes, [4], 2, [init("c", rand(4))])
    with pytest.raises(UnsupportedOpError, match="fold it into a bias"):
        import_onnx(model)


def test_relu_and_clip_as_bounded_relu() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["h"]),
        helper.make_node("Clip", ["h", "lo", "hi"], ["y"]),
    ]
    model = make_model(nodes, [2, 8, 8], 4, [init("lo", np.array(0.0)), init("hi", np.array(0.7))])
    graph = check(model, X4)
    assert graph.output_node.op.max_value == pytest.approx(0.7)  # type: ignore[attr-defined]


def _clip_floor(lam: float, levels: int, div_first: bool = False, scale_out: float | None = None):
    """Conv → a clip-floor (QCFS) activation written out in ONNX nodes → Flatten → Gemm."""
    scale_in = np.array(lam / levels if div_first else levels / lam)
    out = np.array(lam / levels if scale_out is None else scale_out)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Div" if div_first else "Mul", ["c", "s_in"], ["q1"], name="scale_in"),
        helper.make_node("Add", ["half", "q1"], ["q2"], name="shift"),
        helper.make_node("Floor", ["q2"], ["q3"], name="floor"),
        helper.make_node("Clip", ["q3", "zero", "levels"], ["q4"], name="clip"),
        helper.make_node("Mul", ["s_out", "q4"], ["h"], name="scale_out"),
        helper.make_node("Flatten", ["h"], ["f"]),
        helper.make_node("Gemm", ["f", "g", "gb"], ["y"], transB=1),
    ]
    weights = [
        init("w", rand(3, 2, 3, 3)), init("b", rand(3)), init("s_in", scale_in),
        init("half", np.array(0.5)), init("zero", np.array(0.0)),
        init("levels", np.array(float(levels))), init("s_out", out),
        init("g", rand(4, 3 * 8 * 8)), init("gb", rand(4)),
    ]  # fmt: skip
    return make_model(nodes, [2, 8, 8], 2, weights)


@pytest.mark.parametrize("div_first", [False, True])
def test_a_clip_floor_activation_imports_as_one_quantized_relu(div_first: bool) -> None:
    graph = check(_clip_floor(1.7, 4, div_first), X4)
    relus = [n.op for n in graph.nodes if n.op.kind == "ReLU"]
    assert len(relus) == 1 and relus[0].levels == 4  # type: ignore[attr-defined]
    assert relus[0].max_value == pytest.approx(1.7)  # type: ignore[attr-defined]
    assert kinds(graph).count("ReLU") == 1 and "Mul" not in kinds(graph)


def test_a_clip_floor_activation_converts_like_qcfs() -> None:
    """The same net as a PyTorch QCFS module and as ONNX arithmetic: the same SNN."""
    import snnconv
    from snnconv.passes.to_spiking import QCFS_V_INIT

    graph = import_onnx(_clip_floor(1.7, 4))
    network = snnconv.convert(graph, torch.from_numpy(X4))
    neurons = [n for n in network.graph.nodes if n.name in network.spiking_layers]
    assert neurons[0].meta["scale"] == pytest.approx(1.7)  # λ, not a percentile
    assert neurons[0].op.v_init == QCFS_V_INIT  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scale_out": 0.5}, r"Flatten.*clip-floor activation begun at .*scale_in.* \(clipped\)"),
        ({"levels": 2.5}, r"clips to \[0, L\] with L a whole number"),
        ({"half": 0.25}, "shifts by 0.5 \\(QCFS\\), this one by 0.25"),
    ],
)
def test_a_clip_floor_chain_that_is_not_exact_is_refused(change: dict, message: str) -> None:
    model = _clip_floor(1.7, 4, scale_out=change.get("scale_out"))
    for tensor in model.graph.initializer:
        if tensor.name in change and tensor.name != "scale_out":
            tensor.CopyFrom(init(tensor.name, np.array(change[tensor.name])))
    with pytest.raises(UnsupportedOpError, match=message):
        import_onnx(model)


def test_a_product_by_a_constant_alone_is_refused() -> None:
    nodes = [helper.make_node("Mul", ["x", "c"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    model = make_model(nodes, [4], 2, [init("c", np.array(2.0))])
    with pytest.raises(UnsupportedOpError, match=r"Relu.*clip-floor activation.*unfinished"):
        import_onnx(model)
    per_channel = make_model(nodes, [4], 2, [init("c", rand(4))])
    with pytest.raises(UnsupportedOpError, match=r"constant of shape \[4\]"):
        import_onnx(per_channel)


def test_clip_with_negative_minimum_is_refused() -> None:
    node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip1")
    model = make_model([node], [4], 2, [init("lo", np.array(-1.0)), init("hi", np.array(1.0))])
    with pytest.raises(UnsupportedOpError, match=r"Clip\(min=-1.0\)"):
        import_onnx(model)


def test_batch_normalization() -> None:
    c = 2
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)
    inits = [
        init("s", rand(c)),
        init("b", rand(c)),
        init("m", rand(c)),
        init("v", np.abs(rand(c)) + 0.5),
    ]
    check(make_model([node], [c, 8, 8], 4, inits), X4)


@pytest.mark.parametrize(
    ("op", "attrs"),
    [
        ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ("MaxPool", {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}),
        ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
        ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 0}),
        ("GlobalAveragePool", {}),
        ("GlobalMaxPool", {}),
    ],
)
def test_pooling(op: str, attrs: dict[str, object]) -> None:
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    check(make_model([node], [2, 8, 8], 4), X4)


@pytest.mark.parametrize(
    ("op", "opset", "keepdims"),
    [("ReduceMean", 13, 0), ("ReduceMean", 13, 1), ("ReduceMean", 18, 0), ("ReduceMax", 18, 1)],
)
def test_reduce_over_spatial_axes_is_global_pooling(op: str, opset: int, keepdims: int) -> None:
    if opset >= 18:
        node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)
        inits = [numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")]
    else:
        node = helper.make_node(op, ["x"], ["y"], axes=[2, 3], keepdims=keepdims)
        inits = []
    check(make_model([node], [2, 8, 8], 4 if keepdims else 2, inits, opset=opset), X4)


def test_reduce_over_channels_is_refused() -> None:
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=1, name="chan_mean")
    with pytest.raises(UnsupportedOpError, match="chan_mean"):
        import_onnx(make_model([node], [2, 8, 8], 4, opset=13))


def test_flatten_reshape_transpose_into_gemm() -> None:
    """A transpose before a flatten is folded into the dense layer's weight columns."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "w"], ["y"], transB=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "shape"),
        init("w", rand(5, 2 * 8 * 8)),
    ]
    graph = check(make_model(nodes, [2, 8, 8], 2, inits), X4)
    assert kinds(graph) == ["Input", "Reshape", "Linear"]


def test_flatten_and_reshape_to_4d() -> None:
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Reshape", ["f", "shape"], ["y"]),
    ]
    shape = numpy_helper.from_array(np.array([-1, 8, 2, 8], dtype=np.int64), "shape")
    check(make_model(nodes, [2, 8, 8], 4, [shape]), X4)


def test_reshape_that_mixes_the_batch_is_refused() -> None:
    shape = numpy_helper.from_array(np.array([-1], dtype=np.int64), "shape")
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="merge")
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        import_onnx(make_model([node], [4], 1, [shape]))


def test_concat_and_add_branches() -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w2"], ["b"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ra"]),
        helper.make_node("Add", ["ra", "b"], ["s"]),
        helper.make_node("Concat", ["s", "ra"], ["y"], axis=1),
    ]
    inits = [init("w1", rand(3, 2, 3, 3)), init("w2", rand(3, 2, 3, 3))]
    graph = check(make_model(nodes, [2, 8, 8], 4, inits), X4)
    assert kinds(graph)[-2:] == ["Add", "Concat"]


@pytest.mark.parametrize(("op", "opset"), [("Softmax", 11), ("Softmax", 13), ("LogSoftmax", 17)])
def test_softmax(op: str, opset: int) -> None:
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"]), helper.make_node(op, ["h"], ["y"])]
    check(make_model(nodes, [4], 2, [init("w", rand(4, 5))], opset=opset), rand(3, 4))


def test_dropout_identity_constant_sign() -> None:
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(rand(4, 6), "wv")),
        helper.make_node("Identity", ["x"], ["i"]),
        helper.make_node("Dropout", ["i", "ratio"], ["d"]),
        helper.make_node("MatMul", ["d", "w"], ["m"]),
        helper.make_node("Sign", ["m"], ["y"]),
    ]
    graph = check(make_model(nodes, [4], 2, [init("ratio", np.array(0.3))]), rand(3, 4))
    assert kinds(graph) == ["Input", "Linear", "BinaryActivation"]


def test_constant_subgraphs_are_folded() -> None:
    """Weights computed from constants (a Transpose and a Mul of initializers) fold away."""
    nodes = [
        helper.make_node("Transpose", ["w0"], ["wt"], perm=[1, 0]),
        helper.make_node("Mul", ["wt", "two"], ["w"]),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    inits = [init("w0", rand(6, 4)), init("two", np.array(2.0))]
    assert kinds(check(make_model(nodes, [4], 2, inits), rand(3, 4))) == ["Input", "Linear"]


def test_shape_gather_concat_reshape_chain() -> None:
    """The Shape → Gather → Unsqueeze → Concat → Reshape chain of ``x.view(x.size(0), -1)``."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus1"),
    ]
    check(make_model(nodes, [2, 8, 8], 2, inits), X4)


def test_pad_folds_into_conv_and_average_pool() -> None:
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"]),
        helper.make_node("Conv", ["p", "w"], ["c"]),
        helper.make_node("Pad", ["c", "pads"], ["q"]),
        helper.make_node("AveragePool", ["q"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads"),
        init("w", rand(3, 2, 3, 3)),
    ]
    graph = check(make_model(nodes, [2, 8, 8], 4, inits), X4)
    assert kinds(graph) == ["Input", "Conv2d", "AvgPool2d"]


def test_pad_before_relu_is_refused_with_its_name() -> None:
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], name="the_pad"),
        helper.make_node("Relu", ["p"], ["y"]),
    ]
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads")
    with pytest.raises(UnsupportedOpError, match="the_pad"):
        import_onnx(make_model(nodes, [2, 8, 8], 4, [pads]))


@pytest.mark.parametrize("opset", [11, 13, 17, max_opset()])
def test_opsets(opset: int) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    inits = [init("w", rand(3, 2, 3, 3)), init("b", rand(3)), init("fc", rand(4, 3 * 64))]
    model = make_model(nodes, [2, 8, 8], 2, inits, opset=opset)
    if opset <= 21:  # onnxruntime may not run the newest opsets yet
        check(model, X4)
    else:
        assert kinds(import_onnx(model)) == ["Input", "Conv2d", "ReLU", "Reshape", "Linear"]


def test_registry_keys_and_version_lookup() -> None:
    assert all(isinstance(k, OnnxOp) for k in list(ONNX_CONVERTERS.keys()))
    assert find_converter("", "Clip", 11) is not find_converter("", "Clip", 6)
    assert find_converter("", "Clip", 13) is find_converter("", "Clip", 11)
    assert find_converter("", "Sigmoid", 13) is None
    assert find_converter("com.microsoft", "Relu", 13) is None


# -- Keras-style (tf2onnx) graphs -------------------------------------------------
def keras_style_model() -> onnx.ModelProto:
    """What tf2onnx writes for a Keras CNN without --inputs-as-nchw: NHWC input, a
    transpose into each conv and back, a channels-last flatten and MatMul + Add."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t0", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["p1"], ["t1"], perm=[0, 2, 3, 1]),
        helper.make_node("Relu", ["t1"], ["r2"]),
        helper.make_node("Reshape", ["r2", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w2"], ["m"]),
        helper.make_node("Add", ["m", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    inits = [
        init("w1", rand(4, 3, 3, 3)),
        init("b1", rand(4)),
        numpy_helper.from_array(np.array([-1, 4 * 4 * 4], dtype=np.int64), "shape"),
        init("w2", rand(64, 5)),
        init("b2", rand(5)),
    ]
    return make_model(nodes, [8, 8, 3], 2, inits, opset=13)


def test_keras_style_nhwc_graph_is_detected_and_fed_nchw() -> None:
    model = keras_style_model()
    graph = import_onnx(model)
    assert graph.input.meta["layout"] == "nhwc"
    assert tuple(graph.input.op.shape) == (3, 8, 8)  # type: ignore[attr-defined]
    assert kinds(graph) == [
        "Input",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "ReLU",
        "Reshape",
        "Linear",
        "Softmax",
    ]
    x = rand(4, 3, 8, 8)  # NCHW, as snnconv's loaders give
    out, _ = run_graph(graph, torch.from_numpy(x))
    expected = run_ort(model, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(out.numpy(), expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_keras_global_average_pooling_on_channels_last(keepdims: int) -> None:
    """GlobalAveragePooling2D as tf2onnx may write it: ReduceMean over H, W of NHWC."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t0", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Transpose", ["r1"], ["t1"], perm=[0, 2, 3, 1]),
        helper.make_node("ReduceMean", ["t1"], ["g"], axes=[1, 2], keepdims=keepdims),
        helper.make_node("Squeeze", ["g", "sq"], ["gs"])
        if keepdims
        else helper.make_node("Identity", ["g"], ["gs"]),
        helper.make_node("Unsqueeze", ["gs", "usq"], ["gu"]),
        helper.make_node("Reshape", ["gu", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w2"], ["y"]),
    ]
    inits = [
        init("w1", rand(4, 3, 3, 3)),
        numpy_helper.from_array(np.array([-1, 4], dtype=np.int64), "shape"),
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "sq"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "usq"),
        init("w2", rand(4, 5)),
    ]
    model = make_model(nodes, [8, 8, 3], 2, inits, opset=13)
    graph = import_onnx(model)
    assert "AdaptiveAvgPool2d" in kinds(graph)
    x = rand(3, 3, 8, 8)
    out, _ = run_graph(graph, torch.from_numpy(x))
    expected = run_ort(model, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(out.numpy(), expected, atol=ATOL, rtol=RTOL)


def test_explicit_nhwc_layout_without_transposes() -> None:
    """A dense-only model on a channels-last image: its flatten order is HWC."""
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"]),
        helper.make_node("Gemm", ["f", "w"], ["y"], transB=1),
    ]
    model = make_model(nodes, [4, 4, 3], 2, [init("w", rand(5, 48))])
    assert tuple(import_onnx(model).input.op.shape) == (4, 4, 3)  # type: ignore[attr-defined]
    graph = import_onnx(model, input_layout="nhwc")
    assert tuple(graph.input.op.shape) == (3, 4, 4)  # type: ignore[attr-defined]
    x = rand(2, 3, 4, 4)
    out, _ = run_graph(graph, torch.from_numpy(x))
    expected = run_ort(model, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(out.numpy(), expected, atol=ATOL, rtol=RTOL)


def test_permuted_layout_reaching_a_conv_is_refused() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Conv", ["t", "w"], ["y"], name="conv_on_nhwc"),
    ]
    model = make_model(nodes, [2, 8, 8], 4, [init("w", rand(3, 8, 1, 1))])
    with pytest.raises(UnsupportedOpError, match="permuted layout") as info:
        import_onnx(model)
    assert "conv_on_nhwc" in str(info.value)


# -- PyTorch → ONNX → snnconv vs PyTorch → snnconv ---------------------------------
class TorchNet(nn.Module):
    in_shape = (1, 16, 16)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(6 * 16, 12), nn.ReLU6(), nn.Linear(12, 5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.head(self.features(x)), dim=1)


def export_onnx(model: nn.Module, path: Path, shape: Sequence[int], dynamic: bool = True) -> None:
    """The TorchScript exporter (dynamo=False): it folds batch-norm in eval mode."""
    kwargs: dict[str, object] = {}
    if dynamic:
        kwargs["dynamic_axes"] = {"x": {0: "N"}}
    torch.onnx.export(
        model.eval(),
        (torch.zeros(1, *shape),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamo=False,
        opset_version=17,
        **kwargs,
    )


def test_torch_exported_onnx_matches_the_torch_import(tmp_path: Path) -> None:
    from snnconv.importers import import_torch

    torch.manual_seed(0)
    model = TorchNet().eval()
    with torch.no_grad():
        model.features[1].running_mean.uniform_(-0.5, 0.5)
        model.features[1].running_var.uniform_(0.5, 2.0)
        model.features[1].weight.uniform_(0.5, 1.5)
    path = tmp_path / "net.onnx"
    export_onnx(model, path, TorchNet.in_shape)
    from_onnx = prepare_ann(load_model(str(path)))  # type: ignore[arg-type]
    from_torch = prepare_ann(import_torch(model, torch.zeros(2, *TorchNet.in_shape)))
    assert kinds(from_onnx) == kinds(from_torch)
    x = torch.rand(7, *TorchNet.in_shape)
    a, _ = run_graph(from_onnx, x)
    b, _ = run_graph(from_torch, x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    with torch.no_grad():  # the output log-softmax was removed: same ranking
        assert torch.equal(a.argmax(1), model(x).argmax(1))


# -- bad input ---------------------------------------------------------------------------
def simple_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)]
    return make_model(nodes, [4], 2, [init("w", rand(3, 4))])


def test_truncated_and_corrupt_files(tmp_path: Path) -> None:
    data = simple_model().SerializeToString()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"truncated\.onnx"):
        load_model(str(truncated))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\xfe not a protobuf \x00" * 10)
    with pytest.raises(ModelLoadError, match=r"not a readable ONNX model|not a valid ONNX"):
        load_model(str(garbage))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing.onnx"))


def test_unsupported_op_names_op_node_and_supported_list() -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["h"], transB=1),
        helper.make_node("Sigmoid", ["h"], ["y"], name="act_sigmoid"),
    ]
    model = make_model(nodes, [4], 2, [init("w", rand(3, 4))])
    with pytest.raises(UnsupportedOpError) as info:
        import_onnx(model)
    message = str(info.value)
    assert info.value.op == "Sigmoid"
    assert "act_sigmoid" in message and "Relu" in message and "Conv" in message


def test_unsupported_opset_and_domain() -> None:
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=1)]
    old = make_model(nodes, [4], 2, [init("w", rand(3, 4)), init("c", rand(3))], opset=10)
    with pytest.raises(UnsupportedOpError, match="opset 10") as info:
        import_onnx(old)
    assert "11" in str(info.value)
    custom = simple_model()
    custom.graph.node[0].domain = "com.example"
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOpError, match=r"com\.example\.Gemm"):
        import_onnx(custom)


def test_dynamic_input_shape_asks_for_input_shape(tmp_path: Path) -> None:
    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    model = make_model([node], [2, "H", "W"], 4)
    with pytest.raises(ShapeError, match="--input-shape"):
        import_onnx(model)
    graph = import_onnx(model, input_shape=(2, 8, 8))
    assert tuple(graph.input.op.shape) == (2, 8, 8)  # type: ignore[attr-defined]
    with pytest.raises(ShapeError, match="does not fit"):
        import_onnx(model, input_shape=(3, 8, 8))
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    loaded = load_model(str(path), input_shape=(2, 5, 5))
    assert tuple(loaded.input.op.shape) == (2, 5, 5)  # type: ignore[union-attr]


def test_missing_external_data(tmp_path: Path) -> None:
    model = simple_model()
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.data", size_threshold=0)
    assert kinds(load_model(str(path))) == ["Input", "Linear"]  # type: ignore[arg-type]
    (tmp_path / "ext.data").unlink()
    with pytest.raises(ModelLoadError, match=r"ext\.data"):
        load_model(str(path))


def test_bad_layout_name_and_weights_option(tmp_path: Path) -> None:
    from snnconv.errors import ConfigError

    path = tmp_path / "m.onnx"
    onnx.save(simple_model(), str(path))
    with pytest.raises(ConfigError, match="nhwc"):
        load_model(str(path), input_layout="hwc")
    with pytest.raises(ModelLoadError, match="--weights"):
        load_model(str(path), "w.safetensors")


# -- the command line --------------------------------------------------------------------
def test_cli_run_on_an_onnx_model_then_export_nir(tmp_path: Path) -> None:
    """``snnconv run model.onnx`` works like ``.pt2``; its run directory exports to NIR."""
    import json

    from snnconv.cli import main

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    )
    path = tmp_path / "net.onnx"
    export_onnx(model, path, (1, 8, 8))
    data = tmp_path / "data.npz"
    g = torch.Generator().manual_seed(0)
    np.savez(data, x=torch.rand(40, 1, 8, 8, generator=g).numpy(), y=np.arange(40) % 3)
    out = tmp_path / "run"
    argv = ["run", str(path), "--dataset", f"npz:{data}", "--calibration", f"npz:{data}"]
    assert main([*argv, "-T", "8", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["snn"]["timesteps"] == 8 and results["num_samples"] == 40
    nir_file = tmp_path / "run.nir"
    assert main(["export-nir", str(out), "--out", str(nir_file)]) == 0
    assert nir_file.is_file()


def test_keras_style_model_converts_and_simulates() -> None:
    """The NHWC model converts; its normalized ANN still computes the ONNX model's ranking."""
    import snnconv
    from snnconv.sim.simulator import Simulator

    model = keras_style_model()
    x = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    network = snnconv.convert(import_onnx(model), x)
    out, _ = run_graph(network.graph, x)
    expected = run_ort(model, np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1)))
    assert torch.equal(out.argmax(1), torch.from_numpy(expected).argmax(1))
    res = Simulator(network.graph).run(x, out.argmax(1), 64)
    assert int(res.correct_top1[-1]) >= 24  # the SNN mostly agrees with its ANN at T = 64


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("resnet20_cifar", (3, 32, 32)),
        pytest.param("googlenet", (3, 64, 64), marks=pytest.mark.slow),
    ],
)
def test_torch_exported_architectures(name: str, shape: tuple[int, ...], tmp_path: Path) -> None:
    """Residual adds, concatenations and global pooling through ONNX: same ops, same outputs."""
    from snnconv import architectures
    from snnconv.importers import import_torch

    torch.manual_seed(0)
    factory = getattr(architectures, name)
    model = factory(num_classes=10).eval()
    path = tmp_path / f"{name}.onnx"
    export_onnx(model, path, shape)
    graph = import_onnx(path)
    x = torch.rand(2, *shape)
    out, _ = run_graph(graph, x)
    expected = run_ort(onnx.load(str(path)), x.numpy())
    np.testing.assert_allclose(out.numpy(), expected, atol=ATOL, rtol=RTOL)
    assert kinds(prepare_ann(graph)) == kinds(prepare_ann(import_torch(model, x)))
