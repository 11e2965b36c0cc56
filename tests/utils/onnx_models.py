"""Small ONNX generators built node by node: a valid one, and ones that break one rule each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = ["with_mask", "without_mask"]
LATENT = 4


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def generator(path: Path, *, size: int = 64, out_shape=("batch", 1, 64, 64), classes=CLASSES, extra=(),
              pre=None, metadata: dict | None = None, opset: int = 17, image_shape=None) -> Path:
    """images = tanh(reshape(z @ W + E[label])) with optional extra nodes feeding `pre` (added times zero)."""
    rng = np.random.default_rng(0)
    shape = np.array(image_shape or (-1, 1, size, size), dtype=np.int64)
    nodes = [
        _const("W", rng.standard_normal((LATENT, size * size)).astype(np.float32)),
        _const("E", rng.standard_normal((len(classes), size * size)).astype(np.float32)),
        _const("shape", shape),
        helper.make_node("MatMul", ["z", "W"], ["zw"]),
        helper.make_node("Gather", ["E", "label"], ["emb"]),
        helper.make_node("Add", ["zw", "emb"], ["h"]),
        helper.make_node("Reshape", ["h", "shape"], ["grid"]),
        *extra,
    ]
    if pre is not None:  # fold the extra branch's scalar into the image so it cannot be pruned
        nodes += [_const("zero", np.array(0.0, np.float32)), helper.make_node("Mul", [pre, "zero"], ["nothing"]),
                  helper.make_node("Add", ["grid", "nothing"], ["grid2"]), helper.make_node("Tanh", ["grid2"],
                                                                                            ["images"])]
    else:
        nodes.append(helper.make_node("Tanh", ["grid"], ["images"]))
    graph = helper.make_graph(
        nodes, "generator",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", LATENT]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(out_shape))],
    )
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(n.domain, 1) for n in extra if n.domain]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    meta = {"latent_size": str(LATENT), "classes": json.dumps(classes)} if metadata is None else metadata
    helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


def custom_op(path: Path) -> Path:
    node = helper.make_node("Magic", ["z"], ["magic"], domain="com.example")
    return generator(path, extra=[node, helper.make_node("ReduceSum", ["magic"], ["m"], keepdims=0)], pre="m")


def looping(path: Path) -> Path:
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])])
    nodes = [_const("forever", np.array(True)),
             helper.make_node("Loop", ["", "forever"], [], body=body)]
    return generator(path, extra=nodes)


def unbounded_allocation(path: Path, elements: int = 2**34) -> Path:
    """A tensor of float ones (64 GiB by default) whose size depends on the input, so nothing can fold it away
    before the dry run."""
    nodes = [
        _const("big", np.array([elements], np.int64)),
        helper.make_node("ReduceSum", ["label"], ["labels_sum"], keepdims=1),  # 0 or more: the shape stays huge
        helper.make_node("Add", ["big", "labels_sum"], ["n"]),
        helper.make_node("ConstantOfShape", ["n"], ["huge"], value=numpy_helper.from_array(np.ones(1, np.float32))),
        helper.make_node("ReduceSum", ["huge"], ["s"], keepdims=0),
    ]
    return generator(path, extra=nodes, pre="s")


def slow(path: Path, rounds: int = 200, side: int = 2048) -> Path:
    """Hundreds of large matrix products on an input-dependent matrix: runs for minutes, stands for a hang."""
    nodes = [_const("mshape", np.array([side, side], np.int64)),
             helper.make_node("ConstantOfShape", ["mshape"], ["M"],
                              value=numpy_helper.from_array(np.full(1, 1e-3, np.float32))),
             helper.make_node("ReduceSum", ["z"], ["zs"], keepdims=0),
             helper.make_node("Add", ["M", "zs"], ["x0"])]
    for i in range(rounds):
        nodes.append(helper.make_node("MatMul", [f"x{i}", "M"], [f"x{i + 1}"]))
    nodes.append(helper.make_node("ReduceSum", [f"x{rounds}"], ["s"], keepdims=0))
    return generator(path, extra=nodes, pre="s")


def nan_images(path: Path) -> Path:
    nodes = [_const("nan", np.array(np.nan, np.float32))]
    return generator(path, extra=nodes, pre="nan")


def _external(tensor: onnx.TensorProto, location: str) -> onnx.TensorProto:
    """The tensor with its bytes said to live in the file `location` (what an attacker writes: any path)."""
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    return tensor


def external_constant(path: Path, location: str, *, sparse: bool = False) -> Path:
    """A Constant node whose `value` (or `sparse_value`) points at a file outside the model."""
    values = _external(numpy_helper.from_array(np.ones(64 * 64, np.float32), "secret"), location)
    if sparse:
        indices = numpy_helper.from_array(np.arange(64 * 64, dtype=np.int64), "secret_indices")
        node = helper.make_node("Constant", [], ["leak"],
                                sparse_value=helper.make_sparse_tensor(values, indices, [64 * 64]))
    else:
        node = helper.make_node("Constant", [], ["leak"], value=values)
    return generator(path, extra=[node, helper.make_node("ReduceSum", ["leak"], ["s"], keepdims=0)], pre="s")


def external_initializer(path: Path, location: str) -> Path:
    generator(path)
    model = onnx.load(str(path))
    model.graph.initializer.append(_external(numpy_helper.from_array(np.ones(4, np.float32), "unused"), location))
    onnx.save(model, str(path))
    return path


def external_in_subgraph(path: Path, location: str) -> Path:
    """An If whose then-branch holds a Constant pointing outside the file (subgraphs are walked too)."""
    constant = helper.make_node("Constant", [], ["leak"],
                                value=_external(numpy_helper.from_array(np.ones(1, np.float32), "s"), location))
    branch = helper.make_graph([constant], "then", [], [helper.make_tensor_value_info("leak", TensorProto.FLOAT,
                                                                                       [1])])
    other = helper.make_graph([_const("zero1", np.zeros(1, np.float32))], "else", [],
                              [helper.make_tensor_value_info("zero1", TensorProto.FLOAT, [1])])
    nodes = [_const("yes", np.array(True)),
             helper.make_node("If", ["yes"], ["picked"], then_branch=branch, else_branch=other),
             helper.make_node("ReduceSum", ["picked"], ["s"], keepdims=0)]
    return generator(path, extra=nodes, pre="s")
