"""Stand-ins for the user's files: an ONNX model with FaceMap's I/O and a synthetic 3DMM basis.

The stand-in model has the real one's names and shapes (input ``image`` float32 [1,3,128,128]
RGB in [0,1], output ``parameters_3dmm`` [1,265]) and keeps its weights in an external
``model.data`` beside ``model.onnx``. Its output is ``bias + tanh(mean_rgb @ weight)``, so a zero
weight makes a constant-output model with a known answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GOLDEN = SHARED / "golden" / "facemap_decode_golden.npz"
DATA = SHARED / "data"


def make_standin_model(
    folder: Path,
    bias: np.ndarray | None = None,
    weight_scale: float = 0.0,
    seed: int = 0,
    input_name: str = "image",
    output_name: str = "parameters_3dmm",
    input_shape: tuple = (1, 3, 128, 128),
    n_out: int = 265,
    external: bool = True,
) -> Path:
    """Write ``folder/model.onnx`` (+ ``model.data``) and return the .onnx path."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    if bias is None:
        bias = np.zeros(n_out, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32).reshape(n_out)
    weight = (rng.standard_normal((3, n_out)) * weight_scale).astype(np.float32)
    nhwc = input_shape[-1] == 3 and len(input_shape) == 4
    axes = [1, 2] if nhwc else [2, 3]
    inits = [
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "scale255"),
        numpy_helper.from_array(np.array(1 / 255.0, dtype=np.float32), "inv255"),
        numpy_helper.from_array(weight, "weight"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array(axes, dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([-1, 3], dtype=np.int64), "shape_n3"),
    ]
    nodes = [
        helper.make_node("Mul", [input_name, "scale255"], ["x255"]),
        helper.make_node("Mul", ["x255", "inv255"], ["x01"]),
        helper.make_node("ReduceMean", ["x01", "axes"], ["pooled"], keepdims=0),
        helper.make_node("Reshape", ["pooled", "shape_n3"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weight"], ["mm"]),
        helper.make_node("Tanh", ["mm"], ["act"]),
        helper.make_node("Add", ["act", "bias"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "facemap_standin",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [input_shape[0], n_out])],
        inits,
    )
    model = helper.make_model(
        graph, producer_name="facemap-tests", opset_imports=[helper.make_opsetid("", 18)]
    )
    model.ir_version = 9
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="model.data",
            size_threshold=256,
        )
    else:
        onnx.save_model(model, str(path))
    return path


def golden() -> dict[str, np.ndarray]:
    """The golden decode vectors (../shared/golden)."""
    with np.load(GOLDEN) as d:
        return {k: d[k] for k in d.files}


def synthetic_basis_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean_face (204,), shape_basis (204,219), blend_shape (204,39)).

    The golden file's basis when ../shared is present, else a random one of the right shapes.
    """
    if GOLDEN.exists():
        g = golden()
        return g["mean_face"], g["shape_basis"], g["blend_shape"]
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 40, 204).astype(np.float32)
    return (
        mean,
        rng.normal(0, 0.1, (204, 219)).astype(np.float32),
        rng.normal(0, 1.0, (204, 39)).astype(np.float32),
    )


def write_basis(folder: Path, arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Path:
    """Write meanFace.npy, shapeBasis.npy, blendShape.npy into ``folder``; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mean, shape, blend = arrays if arrays is not None else synthetic_basis_arrays()
    np.save(folder / "meanFace.npy", mean)
    np.save(folder / "shapeBasis.npy", shape)
    np.save(folder / "blendShape.npy", blend)
    return folder
