"""The ONNX session: load, check I/O and external weights, choose a provider, run a batch."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError, UsageError
from .types import N_PARAMS

log = logging.getLogger(__name__)

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "cuda": "CUDAExecutionProvider",
}
# Best first, for --provider auto.
AUTO_ORDER = ("cuda", "coreml", "cpu")
DEFAULT_INPUT_SIZE = 128
DEFAULT_PROVIDER = "auto"


@dataclass(frozen=True)
class ExternalData:
    """An external-weights file the .onnx refers to, and how many bytes it must hold."""

    path: Path
    required_bytes: int

    @property
    def size_bytes(self) -> int:
        """Actual size on disk (0 when missing)."""
        return self.path.stat().st_size if self.path.exists() else 0


@dataclass(frozen=True)
class ModelIO:
    """What the model expects: names, layout (NCHW or NHWC), input (H, W), output length."""

    input_name: str
    output_name: str
    layout: str
    input_hw: tuple[int, int]
    input_shape: tuple
    output_shape: tuple
    batch_fixed: bool


def external_data_files(model_path: Path) -> list[ExternalData]:
    """The external-data files a .onnx references (read without loading the weights)."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    try:
        proto = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError / various on corrupt files
        raise ModelError(
            f"{model_path}: not a readable ONNX model ({type(exc).__name__}); "
            "re-download it with {fetch_model}"
        ) from None
    needed: dict[str, int] = {}
    for tensor in proto.graph.initializer:
        if not uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        offset = int(info.get("offset", 0) or 0)
        length = int(info.get("length", 0) or 0)
        loc = info["location"]
        needed[loc] = max(needed.get(loc, 0), offset + length)
    return [ExternalData(model_path.parent / loc, n) for loc, n in sorted(needed.items())]


def check_external_data(model_path: Path) -> list[ExternalData]:
    """Raise ModelError when an external-weights file is missing or shorter than the model needs."""
    files = external_data_files(model_path)
    for ext in files:
        if not ext.path.exists():
            raise ModelError(
                f"{model_path}: its weights file {ext.path} is missing; keep {ext.path.name} "
                f"beside {model_path.name} (they are one model)"
            )
        if ext.size_bytes < ext.required_bytes:
            raise ModelError(
                f"{ext.path}: truncated ({ext.size_bytes} bytes, the model needs at least "
                f"{ext.required_bytes}); copy or download it again"
            )
    return files


def resolve_providers(choice: str, available: list[str]) -> list[str]:
    """Provider list for a provider choice (auto, cpu, coreml, cuda) given what onnxruntime offers."""
    if choice == "auto":
        return [PROVIDERS[n] for n in AUTO_ORDER if PROVIDERS[n] in available] or [
            "CPUExecutionProvider"
        ]
    if choice not in PROVIDERS:
        raise UsageError(
            f"{{provider}} {choice!r} is unknown; choose one of auto, {', '.join(PROVIDERS)}"
        )
    wanted = PROVIDERS[choice]
    if wanted not in available:
        raise UsageError(
            f"{{provider}} {choice}: onnxruntime here offers only {', '.join(available)}; "
            "use {provider} auto or cpu"
        )
    return [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def read_io(
    session: object, input_name: str | None, output_name: str | None, path: Path, n_out: int | None = N_PARAMS
) -> ModelIO:
    """Work out names, layout and input size from the session; check the output size
    (``n_out`` values per face; None: any, checked by the caller)."""
    inputs = session.get_inputs()  # type: ignore[attr-defined]
    outputs = session.get_outputs()  # type: ignore[attr-defined]
    names_in = [i.name for i in inputs]
    names_out = [o.name for o in outputs]
    if input_name is None:
        input_name = "image" if "image" in names_in else names_in[0]
    if output_name is None:
        output_name = "parameters_3dmm" if "parameters_3dmm" in names_out else names_out[0]
    if input_name not in names_in:
        raise UsageError(
            f"{path}: no input named {input_name!r}; the model's inputs are {', '.join(names_in)}"
        )
    if output_name not in names_out:
        raise UsageError(
            f"{path}: no output named {output_name!r}; the model's outputs are {', '.join(names_out)}"
        )
    inp = inputs[names_in.index(input_name)]
    out = outputs[names_out.index(output_name)]
    shape = tuple(inp.shape)
    if len(shape) != 4:
        raise ModelError(
            f"{path}: input {input_name!r} has rank {len(shape)} (shape {list(shape)}); "
            "expected an image tensor [1,3,H,W] or [1,H,W,3] — is this the FaceMap 3DMM model?"
        )
    if _dim(shape[1]) == 3:
        layout, h, w = "NCHW", _dim(shape[2]), _dim(shape[3])
    elif _dim(shape[3]) == 3:
        layout, h, w = "NHWC", _dim(shape[1]), _dim(shape[2])
    else:
        layout, h, w = "NCHW", _dim(shape[2]), _dim(shape[3])
        log.warning("%s: input shape %s has no channel dim of 3; assuming NCHW", path, list(shape))
    out_shape = tuple(out.shape)
    got = _dim(out_shape[-1]) if out_shape else None
    if n_out is not None and got is not None and got != n_out:
        raise _not_params(path, output_name, got, out_shape)
    return ModelIO(
        input_name=input_name,
        output_name=output_name,
        layout=layout,
        input_hw=(h or DEFAULT_INPUT_SIZE, w or DEFAULT_INPUT_SIZE),
        input_shape=shape,
        output_shape=out_shape,
        batch_fixed=_dim(shape[0]) == 1,
    )


def _not_params(path: Path, output_name: str, got: int, shape: tuple) -> ModelError:
    """The one-line refusal of a model whose output is not FaceMap's 265 parameters a face."""
    return ModelError(
        f"{path}: output {output_name!r} has {got} values per face (shape {list(shape)}); "
        f"expected {N_PARAMS} 3DMM parameters — is this the FaceMap 3DMM model? (another "
        "landmark model: give {assume_points} N)"
    )


class FaceMapModel:
    """An onnxruntime session for the FaceMap 3DMM model. Build once; ``run`` per batch."""

    def __init__(
        self,
        path: Path,
        provider: str = DEFAULT_PROVIDER,
        input_name: str | None = None,
        output_name: str | None = None,
        threads: int = 0,
        spin: bool = True,
        n_out: int | None = N_PARAMS,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.exists():
            raise ModelError(
                f"{self.path}: model not found; pass {{model}} PATH or get it with {{fetch_model}}"
            )
        if self.path.is_dir():
            raise ModelError(f"{self.path}: is a folder; {{model}} expects the model.onnx file")
        self.external_data = check_external_data(self.path)
        self.available_providers = list(ort.get_available_providers())
        providers = resolve_providers(provider, self.available_providers)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        if not spin:  # video: idle threads yield the cores to the decode/encode threads
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"{self.path}: onnxruntime cannot load it ({first[:200]}); "
                "check that model.onnx and its weights file are complete"
            ) from None
        self.provider = self.session.get_providers()[0]
        self.n_out = n_out
        self.io = read_io(self.session, input_name, output_name, self.path, n_out)

    @property
    def input_hw(self) -> tuple[int, int]:
        """Model input (height, width) in pixels."""
        return self.io.input_hw

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run (N, 3, H, W) or (N, H, W, 3) float32 input (already in the model's layout) -> (N, 265)."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.shape[0] == 0:
            return np.zeros((0, self.n_out or 0), dtype=np.float32)
        if self.io.batch_fixed and x.shape[0] > 1:
            out = np.concatenate([self._run1(x[i : i + 1]) for i in range(x.shape[0])], axis=0)
        else:
            out = self._run1(x)
        if self.n_out is not None and out.shape[1] != self.n_out:  # a model that does not declare its output's shape
            raise _not_params(self.path, self.io.output_name, out.shape[1], out.shape)
        return out

    def _run1(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self.io.output_name], {self.io.input_name: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(x.shape[0], -1)


def describe(path: Path, n_out: int | None = N_PARAMS) -> dict:
    """A model's I/O, opset, producer, external data and the available providers (``n_out``:
    the values per face its output must hold; None for another landmark model)."""
    import onnx
    import onnxruntime as ort

    model = FaceMapModel(path, provider="cpu", n_out=n_out)
    proto = onnx.load(str(path), load_external_data=False)
    return {
        "model": str(path),
        "inputs": [
            {"name": i.name, "shape": list(i.shape), "dtype": i.type} for i in model.session.get_inputs()
        ],
        "outputs": [
            {"name": o.name, "shape": list(o.shape), "dtype": o.type}
            for o in model.session.get_outputs()
        ],
        "opset": {(o.domain or "ai.onnx"): o.version for o in proto.opset_import},
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "external_data": [
            {"path": str(e.path), "size_bytes": e.size_bytes} for e in model.external_data
        ],
        "layout": model.io.layout,
        "input_hw": list(model.io.input_hw),
        "providers_available": list(ort.get_available_providers()),
    }
