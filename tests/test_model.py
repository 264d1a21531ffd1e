"""The ONNX session: I/O discovery, external weights checks, providers, batches, --inspect."""

from __future__ import annotations

import numpy as np
import pytest

from facemap.errors import ModelError, UsageError
from facemap.model import FaceMapModel, describe, resolve_providers
from tests.standins import make_standin_model


def test_reads_names_layout_and_size(standin_model):
    m = FaceMapModel(standin_model, provider="cpu")
    assert (m.io.input_name, m.io.output_name) == ("image", "parameters_3dmm")
    assert m.io.layout == "NCHW" and m.input_hw == (128, 128)
    assert m.provider == "CPUExecutionProvider"
    assert [e.path.name for e in m.external_data] == ["model.data"]


def test_constant_model_outputs_its_constant(constant_model, constant_params):
    m = FaceMapModel(constant_model)
    out = m.run(np.random.default_rng(0).random((3, 3, 128, 128), dtype=np.float32))
    assert out.shape == (3, 265)
    np.testing.assert_allclose(out, np.repeat(constant_params[None], 3, 0), atol=1e-6)


def test_fixed_batch_model_runs_each_item(standin_model):
    m = FaceMapModel(standin_model)
    x = np.random.default_rng(1).random((4, 3, 128, 128), dtype=np.float32)
    batch = m.run(x)
    one_by_one = np.concatenate([m.run(x[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-6)
    assert np.ptp(batch[:, 0]) > 0  # output follows the input
    assert m.run(np.zeros((0, 3, 128, 128), np.float32)).shape == (0, 265)


@pytest.mark.parametrize(
    ("shape", "layout", "hw"),
    [(("N", 3, "H", "W"), "NCHW", (128, 128)), ((1, 96, 112, 3), "NHWC", (96, 112))],
)
def test_layout_and_symbolic_size(tmp_path, shape, layout, hw):
    m = FaceMapModel(make_standin_model(tmp_path, input_shape=shape))
    assert m.io.layout == layout and m.input_hw == hw


def test_missing_weights_names_expected_path(tmp_path):
    path = make_standin_model(tmp_path)
    (tmp_path / "model.data").unlink()
    with pytest.raises(ModelError, match=r"model\.data is missing") as exc:
        FaceMapModel(path)
    assert str(tmp_path / "model.data") in str(exc.value)


def test_truncated_weights(tmp_path):
    path = make_standin_model(tmp_path)
    data = tmp_path / "model.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(ModelError, match="truncated"):
        FaceMapModel(path)


def test_missing_and_corrupt_model(tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        FaceMapModel(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf" * 10)
    with pytest.raises(ModelError, match="bad.onnx"):
        FaceMapModel(bad)


def test_other_model_is_named_as_such(tmp_path):
    with pytest.raises(ModelError, match="has 10 values per face"):
        FaceMapModel(make_standin_model(tmp_path / "a", n_out=10))


def test_wrong_rank_input(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["parameters_3dmm"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 265])],
        [helper.make_tensor_value_info("parameters_3dmm", TensorProto.FLOAT, [1, 265])],
    )
    path = tmp_path / "flat.onnx"
    onnx.save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(ModelError, match="rank 2"):
        FaceMapModel(path)


def test_name_overrides(standin_model):
    with pytest.raises(UsageError, match="no input named 'pixels'.*image"):
        FaceMapModel(standin_model, input_name="pixels")
    m = FaceMapModel(standin_model, input_name="image", output_name="parameters_3dmm")
    assert m.io.input_name == "image"


def test_provider_resolution():
    assert resolve_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == (
        "CUDAExecutionProvider"
    )
    assert resolve_providers("auto", ["CoreMLExecutionProvider", "CPUExecutionProvider"]) == [
        "CoreMLExecutionProvider",
        "CPUExecutionProvider",
    ]
    with pytest.raises(UsageError, match="offers only CPUExecutionProvider"):
        resolve_providers("cuda", ["CPUExecutionProvider"])


def test_describe(standin_model):
    info = describe(standin_model)
    assert info["inputs"][0] == {"name": "image", "shape": [1, 3, 128, 128], "dtype": "tensor(float)"}
    assert info["outputs"][0]["shape"] == [1, 265]
    assert info["opset"] == {"ai.onnx": 18}
    assert info["producer"].startswith("facemap-tests")
    assert info["external_data"][0]["size_bytes"] == (standin_model.parent / "model.data").stat().st_size
    assert "CPUExecutionProvider" in info["providers_available"]


def test_another_model_whose_output_shape_is_not_declared_is_named_at_its_first_run(tmp_path, capsys, basis_dir):
    """A landmark model that declares no output shape (onnxruntime reports []) passed the load
    check and ended the run as "a bug in facemap (ValueError: params must have shape (N, 265),
    got (1, 136) ...)", exit 1; now the same one line as a declared shape, exit 4."""
    import infer
    from tests.test_docs import _points68

    path = _points68(tmp_path)  # its output's shape merges to none onnxruntime can report
    m = FaceMapModel(path, output_name="points")
    assert list(m.io.output_shape) == []
    with pytest.raises(ModelError, match=r"points68.onnx: output 'points' has 136 values per face \(shape \[1, 136\]\)"):
        m.run(np.zeros((1, 3, 128, 128), np.float32))
    pic = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(pic), np.full((200, 200, 3), 128, np.uint8))
    assert infer.main(["--image", str(pic), "--model", str(path), "--basis-dir", str(basis_dir),
                       "--bbox", "50,50,150,150", "-o", str(tmp_path / "o")]) == 4
    assert "has 136 values per face" in capsys.readouterr().err
