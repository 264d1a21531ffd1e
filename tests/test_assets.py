"""facemap.assets against a local HTTP server on 127.0.0.1 (no test touches the internet)."""

from __future__ import annotations

import io
import json
import pickle
import re
import socket
import sys
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from facemap import assets
from facemap.__main__ import main as facemap_main
from facemap.cli.commands import infer_main
from facemap.cli.config import cli_message
from facemap.errors import BasisError, DownloadError, ModelError, OutputError
from tests.conftest import need_shared
from tests.standins import DATA, make_standin_model, synthetic_basis_arrays, write_basis

BASIS_NAMES = ("meanFace.npy", "shapeBasis.npy", "blendShape.npy")


class AssetServer:
    """Serves ``files`` (URL path -> bytes); ``faults`` (URL path -> 404 | 500 | "short")."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, int | str] = {}
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = urlsplit(self.path).path
                server.hits.append(path)
                fault = server.faults.get(path)
                body = server.files.get(path)
                if isinstance(fault, int) or body is None:
                    self.send_error(fault if isinstance(fault, int) else 404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "short":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url_path(self, url: str) -> str:
        assert url.startswith(self.base), url
        return url[len(self.base) :]

    def serve(self, url: str, body: bytes) -> None:
        self.files[self.url_path(url)] = body

    def fault(self, url: str, kind: int | str) -> None:
        self.faults[self.url_path(url)] = kind


def npy_bytes(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home folder; QAIHM_STORE_ROOT unset; no proxies; no qai_hub_models_cli."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("QAIHM_STORE_ROOT", raising=False)
    monkeypatch.delenv(assets.STORE_URL_ENV, raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "qai_hub_models_cli", None)  # import fails
    return home


@pytest.fixture
def server(home: Path, monkeypatch: pytest.MonkeyPatch):
    """A running AssetServer serving the synthetic basis and a stand-in model zip."""
    srv = AssetServer()
    monkeypatch.setenv(assets.STORE_URL_ENV, srv.base + "/")
    mean, shape, blend = synthetic_basis_arrays()
    srv.arrays = {"meanFace.npy": mean, "shapeBasis.npy": shape, "blendShape.npy": blend}
    for name, url in assets.basis_urls().items():
        srv.serve(url, npy_bytes(srv.arrays[name]))
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def model_zip(tmp: Path, bias: np.ndarray, prefix: str = "facemap_3dmm-onnx-float/") -> bytes:
    """A zip like Qualcomm's: an .onnx and model.data, maybe in a folder (AI Hub: ``x.onnx/``)."""
    folder = tmp / "zipsrc"
    onnx_path = make_standin_model(folder, bias=bias)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(onnx_path, prefix + ("model.onnx" if prefix.endswith(".onnx/") else "fm.onnx"))
        zf.write(folder / "model.data", prefix + "model.data")
    return buf.getvalue()


def run_model(path: Path) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": np.full((1, 3, 128, 128), 0.5, np.float32)})[0]


# ---- URLs and folders -------------------------------------------------------------------


def test_urls_default_and_override(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = "https://qaihub-public-assets.s3.us-west-2.amazonaws.com"
    assert assets.asset_base_url() == base
    assert assets.basis_urls()["shapeBasis.npy"] == (
        f"{base}/qai-hub-models/models/facemap_3dmm/v1/shapeBasis.npy"
    )
    assert assets.model_zip_url() == (
        f"{base}/qai-hub-models/models/facemap_3dmm/releases/v0.65.0/facemap_3dmm-onnx-float.zip"
    )
    monkeypatch.setenv(assets.STORE_URL_ENV, "http://127.0.0.1:9/store/")
    assert assets.basis_urls()["meanFace.npy"] == (
        "http://127.0.0.1:9/store/qai-hub-models/models/facemap_3dmm/v1/meanFace.npy"
    )


def fake_cli(monkeypatch: pytest.MonkeyPatch, get_asset_url) -> list[dict]:
    calls: list[dict] = []

    def wrapped(**kwargs: object) -> str:
        calls.append(kwargs)
        return get_asset_url()

    pkg = types.ModuleType("qai_hub_models_cli")
    pkg.fetch = types.SimpleNamespace(get_asset_url=wrapped)
    monkeypatch.setitem(sys.modules, "qai_hub_models_cli", pkg)
    return calls


def test_model_url_from_qaihm_cli(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    newer = "https://example.invalid/facemap_3dmm-onnx-float.zip"
    calls = fake_cli(monkeypatch, lambda: newer)
    assert assets.model_zip_url() == newer
    assert calls == [{"model": "facemap_3dmm", "runtime": "onnx", "precision": "float"}]
    assert "v0.65.0" in assets.model_zip_url(use_cli=False)
    monkeypatch.setenv(assets.STORE_URL_ENV, "http://127.0.0.1:9")
    assert assets.model_zip_url().startswith("http://127.0.0.1:9/")  # env beats the CLI
    assert len(calls) == 1


@pytest.mark.parametrize("answer", [ConnectionError("offline"), "s3://bucket/x.zip"])
def test_model_url_cli_failure_falls_back(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, answer: object
) -> None:
    def get() -> str:
        if isinstance(answer, Exception):
            raise answer
        return answer

    fake_cli(monkeypatch, get)
    with caplog.at_level("WARNING", logger="facemap.assets"):
        assert assets.model_zip_url() == assets.model_zip_url(use_cli=False)
    assert "qai_hub_models_cli" in caplog.text and "v0.65.0" in caplog.text


def test_cache_dir(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tail = Path(".qaihm/qai-hub-models/models/facemap_3dmm/v1")
    assert assets.qaihm_cache_dir() == home / tail
    monkeypatch.setenv("QAIHM_STORE_ROOT", str(tmp_path / "store"))
    assert assets.qaihm_cache_dir() == tmp_path / "store" / tail


# ---- basis ------------------------------------------------------------------------------


def test_basis_downloaded_into_cache_then_cached(
    server: AssetServer, capsys: pytest.CaptureFixture
) -> None:
    basis = assets.load_basis()  # with the progress bar (on stderr)
    assert "blendShape.npy" in capsys.readouterr().err
    cache = assets.qaihm_cache_dir()
    assert sorted(p.name for p in cache.iterdir()) == sorted(BASIS_NAMES)
    np.testing.assert_array_equal(basis.mean_face, server.arrays["meanFace.npy"])
    np.testing.assert_array_equal(basis.shape_basis, server.arrays["shapeBasis.npy"])
    np.testing.assert_array_equal(basis.blend_shape, server.arrays["blendShape.npy"])
    assert len(server.hits) == 3
    again = assets.load_basis(progress=False)
    assert len(server.hits) == 3  # second call: cache only
    np.testing.assert_array_equal(again.shape_basis, basis.shape_basis)


def test_basis_partial_cache_fetches_only_missing(server: AssetServer) -> None:
    cache = write_basis(assets.qaihm_cache_dir())
    (cache / "blendShape.npy").unlink()
    assets.load_basis(progress=False)
    assert server.hits == [server.url_path(assets.basis_urls()["blendShape.npy"])]


def test_basis_dir_beats_cache(server: AssetServer, tmp_path: Path) -> None:
    write_basis(assets.qaihm_cache_dir())
    other = tuple(a + 1.0 for a in synthetic_basis_arrays())
    own = write_basis(tmp_path / "mine", other)
    basis = assets.load_basis(own, progress=False)
    np.testing.assert_allclose(basis.mean_face, other[0], rtol=1e-6)
    assert server.hits == []


def test_basis_dir_is_the_only_place_looked(server: AssetServer, tmp_path: Path) -> None:
    write_basis(assets.qaihm_cache_dir())
    own = write_basis(tmp_path / "mine")
    (own / "shapeBasis.npy").unlink()
    with pytest.raises(BasisError) as err:
        assets.load_basis(own)
    assert str(own) in str(err.value) and "shapeBasis.npy" in str(err.value)
    assert "meanFace.npy," not in str(err.value).split(";")[0]
    assert server.hits == []


def test_basis_offline_without_download(home: Path) -> None:
    with pytest.raises(BasisError) as err:
        assets.load_basis(download=False)
    msg = cli_message(err.value)  # as infer.py shows it
    assert "\n" not in msg and str(assets.qaihm_cache_dir()) in msg and "--basis-dir" in msg
    assert all(url in msg for url in assets.basis_urls().values())


@pytest.mark.parametrize("fault", [404, 500])
def test_basis_http_error(server: AssetServer, fault: int) -> None:
    url = assets.basis_urls()["meanFace.npy"]
    server.fault(url, fault)
    with pytest.raises(DownloadError) as err:
        assets.load_basis(progress=False)
    msg = cli_message(err.value)  # as infer.py shows it
    assert f"HTTP {fault}" in msg and "\n" not in msg
    assert all(u in msg for u in assets.basis_urls().values())
    assert "--basis-dir" in msg and str(assets.qaihm_cache_dir()) in msg
    assert not assets.qaihm_cache_dir().exists() or not any(assets.qaihm_cache_dir().iterdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(assets.STORE_URL_ENV, f"http://127.0.0.1:{free_port()}")
    url = assets.basis_urls()["meanFace.npy"]
    with pytest.raises(DownloadError) as err:
        assets.download(url, tmp_path / "out" / "x.npy", progress=False, timeout=5)
    assert url in str(err.value) and "refused" in str(err.value).lower()
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(DownloadError, match="cannot download meanFace.npy: download failed"):
        assets.load_basis(progress=False)


def test_download_http_error_names_url(server: AssetServer, tmp_path: Path) -> None:
    url = server.base + "/missing.bin"
    with pytest.raises(DownloadError, match=r"/missing\.bin: download failed \(HTTP 404"):
        assets.download(url, tmp_path / "dl" / "x.bin", progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_short_read_leaves_nothing(server: AssetServer, tmp_path: Path) -> None:
    url = assets.basis_urls()["shapeBasis.npy"]
    server.fault(url, "short")
    with pytest.raises(DownloadError) as err:
        assets.download(url, tmp_path / "dl" / "shapeBasis.npy", progress=False)
    assert url in str(err.value) and "\n" not in str(err.value)
    assert list((tmp_path / "dl").iterdir()) == []
    with pytest.raises(DownloadError):
        assets.load_basis(progress=False)
    cache = assets.qaihm_cache_dir()
    assert sorted(p.name for p in cache.iterdir()) == ["meanFace.npy"]  # only the whole one


def test_download_interrupt_cleans_up(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Interrupting(io.BytesIO):
        headers = {"Content-Length": "100"}

        def read(self, n: int = -1) -> bytes:
            raise KeyboardInterrupt

    monkeypatch.setattr(assets.urllib.request, "urlopen", lambda *a, **k: Interrupting())
    with pytest.raises(KeyboardInterrupt):
        assets.download("http://127.0.0.1:9/x", tmp_path / "dl" / "x", progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def bad_npy(kind: str) -> bytes:
    good = npy_bytes(synthetic_basis_arrays()[1])
    return {
        "pickled": npy_bytes(np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True),
        "wrong shape": npy_bytes(np.zeros((204, 200), np.float32)),
        "truncated": good[: len(good) // 3],
        "not npy": pickle.dumps([1, 2, 3]),
        "nan": npy_bytes(np.full((204, 219), np.nan, np.float32)),
        "transposed": npy_bytes(np.zeros((219, 204), np.float32)),
        "strings": npy_bytes(np.array(["a"] * (204 * 219))),
    }[kind]


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("pickled", "holds pickled objects; refusing to load it"),
        ("wrong shape", "expected shape (204, 219) (or flat, 44676 values), found (204, 200)"),
        ("transposed", "expected shape (204, 219) (or flat, 44676 values), found (219, 204)"),
        ("truncated", "corrupt or truncated"),
        ("not npy", "not a .npy file"),
        ("nan", "NaN or infinite"),
        ("strings", "expected numbers"),
    ],
)
def test_bad_basis_file(tmp_path: Path, kind: str, words: str) -> None:
    folder = write_basis(tmp_path / "basis")
    (folder / "shapeBasis.npy").write_bytes(bad_npy(kind))
    with pytest.raises(BasisError) as err:
        assets.load_basis(folder)
    msg = cli_message(err.value)  # as infer.py shows it
    assert str(folder / "shapeBasis.npy") in msg and words in msg and "\n" not in msg
    assert msg.endswith(f"; replace it with {assets.basis_urls()['shapeBasis.npy']}")


def test_bad_cached_basis_file(server: AssetServer) -> None:
    cache = write_basis(assets.qaihm_cache_dir())
    (cache / "meanFace.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(BasisError) as err:
        assets.load_basis(progress=False)
    assert str(cache / "meanFace.npy") in str(err.value)
    assert str(err.value).endswith("; delete it to download it again")
    assert server.hits == []


def test_same_size_reshape_accepted(tmp_path: Path) -> None:
    mean, shape, blend = synthetic_basis_arrays()
    folder = write_basis(tmp_path / "b", (mean.reshape(68, 3), shape.reshape(-1), blend))
    basis = assets.load_basis(folder)
    assert basis.shape_basis.shape == (204, 219)
    np.testing.assert_allclose(basis.shape_basis, shape, rtol=1e-6)


def test_bad_downloaded_basis_not_kept(server: AssetServer) -> None:
    server.serve(assets.basis_urls()["blendShape.npy"], npy_bytes(np.zeros(5, np.float32)))
    with pytest.raises(BasisError, match=r"blendShape\.npy: expected shape \(204, 39\)") as err:
        assets.load_basis(progress=False)
    assert "was removed: pass --basis-dir DIR" in cli_message(err.value)
    assert not (assets.qaihm_cache_dir() / "blendShape.npy").exists()


# ---- model ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "facemap_3dmm-onnx-float/", "facemap_3dmm.onnx/"])
def test_fetch_model_places_runnable_model(
    server: AssetServer, tmp_path: Path, prefix: str
) -> None:
    bias = np.linspace(-0.9, 0.9, 265).astype(np.float32)
    server.serve(assets.model_zip_url(), model_zip(tmp_path, bias, prefix))
    target = tmp_path / "app"
    path = assets.fetch_model(target, progress=False)
    assert path == target / "model.onnx"
    assert sorted(p.name for p in target.iterdir()) == ["model.data", "model.onnx"]
    np.testing.assert_allclose(run_model(path)[0], bias, atol=1e-6)


def test_fetch_model_keeps_referenced_data_name(
    server: AssetServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnx

    bias = np.full(265, 0.25, np.float32)
    src = make_standin_model(tmp_path / "src", bias=bias)
    model = onnx.load(str(src))
    onnx.save_model(model, str(tmp_path / "x.onnx"), save_as_external_data=True,
                    location="weights.bin", size_threshold=256)  # fmt: skip
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(tmp_path / "x.onnx", "x.onnx")
        zf.write(tmp_path / "weights.bin", "weights.bin")
    server.serve(assets.model_zip_url(), buf.getvalue())
    target = tmp_path / "app"
    with caplog.at_level("INFO", logger="facemap.assets"):
        path = assets.fetch_model(target, progress=False)
    assert sorted(p.name for p in target.iterdir()) == ["model.onnx", "weights.bin"]
    assert "weights.bin" in caplog.text
    np.testing.assert_allclose(run_model(path)[0], bias, atol=1e-6)


def evil_zip(kind: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok/readme.txt", "fine")
        if kind == "symlink":
            info = zipfile.ZipInfo("ok/link.onnx")
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr({"dotdot": "../evil.txt", "absolute": "/tmp/evil_facemap.txt"}[kind], "x")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("kind", "entry"),
    [("dotdot", "../evil.txt"), ("absolute", "/tmp/evil_facemap.txt"), ("symlink", "ok/link.onnx")],
)
def test_fetch_model_refuses_unsafe_zip(
    server: AssetServer, tmp_path: Path, kind: str, entry: str
) -> None:
    server.serve(assets.model_zip_url(), evil_zip(kind))
    target = tmp_path / "app"
    before = set(tmp_path.iterdir())
    with pytest.raises(DownloadError) as err:
        assets.fetch_model(target, progress=False)
    assert repr(entry) in str(err.value)
    assert list(target.iterdir()) == []  # temp folder removed, nothing placed
    assert set(tmp_path.iterdir()) - before == {target}
    assert not (tmp_path / "evil.txt").exists()


def test_fetch_model_refuses_existing(server: AssetServer, tmp_path: Path) -> None:
    server.serve(assets.model_zip_url(), model_zip(tmp_path, np.zeros(265, np.float32)))
    target = tmp_path / "app"
    target.mkdir()
    (target / "model.onnx").write_bytes(b"the user's own")
    with pytest.raises(OutputError) as err:
        assets.fetch_model(target, progress=False)
    assert re.search("already exists.*add --force to replace it", cli_message(err.value))
    assert (target / "model.onnx").read_bytes() == b"the user's own"
    assert server.hits == []
    assets.fetch_model(target, progress=False, force=True)
    assert run_model(target / "model.onnx").shape == (1, 265)


def test_fetch_model_refuses_existing_data(server: AssetServer, tmp_path: Path) -> None:
    server.serve(assets.model_zip_url(), model_zip(tmp_path, np.zeros(265, np.float32)))
    target = tmp_path / "app"
    target.mkdir()
    (target / "model.data").write_bytes(b"keep me")
    with pytest.raises(OutputError, match=r"model\.data: already exists"):
        assets.fetch_model(target, progress=False)
    assert sorted(p.name for p in target.iterdir()) == ["model.data"]
    assert (target / "model.data").read_bytes() == b"keep me"


@pytest.mark.parametrize("fault", [404, 500, "short"])
def test_fetch_model_offline(server: AssetServer, tmp_path: Path, fault: int | str) -> None:
    url = assets.model_zip_url()
    server.serve(url, b"x" * 1000)
    server.fault(url, fault)
    target = tmp_path / "app"
    with pytest.raises(DownloadError) as err:
        assets.fetch_model(target, progress=False)
    msg = cli_message(err.value)  # as infer.py shows it
    assert url in msg and "--model PATH" in msg and "\n" not in msg
    assert list(target.iterdir()) == []


def test_fetch_model_not_a_zip(server: AssetServer, tmp_path: Path) -> None:
    server.serve(assets.model_zip_url(), b"<html>not a zip</html>")
    with pytest.raises(DownloadError, match="not a readable zip"):
        assets.fetch_model(tmp_path / "app", progress=False)
    assert list((tmp_path / "app").iterdir()) == []


def test_find_model_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script_dir, cwd, other = (tmp_path / d for d in ("script", "cwd", "other"))
    for d in (script_dir, cwd, other):
        d.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(ModelError) as err:
        assets.find_model(None, script_dir)
    msg = cli_message(err.value)  # as infer.py shows it
    assert str(script_dir / "model.onnx") in msg and str(cwd / "model.onnx") in msg
    assert "python infer.py --fetch-model" in msg and "--model PATH" in msg
    assert assets.model_zip_url(use_cli=False) in msg
    (cwd / "model.onnx").write_bytes(b"c")
    assert assets.find_model(None, script_dir) == cwd / "model.onnx"
    (script_dir / "model.onnx").write_bytes(b"s")
    assert assets.find_model(None, script_dir) == script_dir / "model.onnx"
    assert assets.default_model_path(script_dir) == script_dir / "model.onnx"
    (other / "mine.onnx").write_bytes(b"o")
    assert assets.find_model(other / "mine.onnx", script_dir) == other / "mine.onnx"
    with pytest.raises(ModelError, match=r"nope\.onnx: no such model file"):
        assets.find_model(other / "nope.onnx", script_dir)


def test_fetch_model_needs_exactly_one_onnx(server: AssetServer, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.onnx", "x")
        zf.writestr("b/c.onnx", "y")
    server.serve(assets.model_zip_url(), buf.getvalue())
    with pytest.raises(
        DownloadError, match=r"expected one \.onnx in the archive, found a\.onnx, b/c"
    ):
        assets.fetch_model(tmp_path / "app", progress=False)
    assert list((tmp_path / "app").iterdir()) == []


def test_fetch_model_missing_data_file(server: AssetServer, tmp_path: Path) -> None:
    onnx_path = make_standin_model(tmp_path / "src")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(onnx_path, "fm.onnx")
    server.serve(assets.model_zip_url(), buf.getvalue())
    with pytest.raises(DownloadError, match="references 'model.data', absent from the archive"):
        assets.fetch_model(tmp_path / "app", progress=False)
    assert list((tmp_path / "app").iterdir()) == []


def test_cli_fetch_model_then_run_downloads_basis(
    server: AssetServer, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A new user's first two commands, served from 127.0.0.1: fetch the model, then run on an
    image; the basis is downloaded into the cache on that first run."""
    import cv2

    import infer
    from tests.standins import synthetic_basis_arrays

    bias = np.zeros(265, np.float32)
    server.serve(assets.model_zip_url(), model_zip(tmp_path, bias))
    for name, arr in zip(assets.BASIS_FILES, synthetic_basis_arrays(), strict=True):
        server.serve(assets.basis_urls()[name], npy_bytes(arr))
    model = tmp_path / "app" / "model.onnx"
    assert infer.main(["--fetch-model", "--model", str(model), "--quiet"]) == 0
    assert f"model ready: {model}" in capsys.readouterr().out
    assert infer.main(["--inspect", "--model", str(model)]) == 0
    assert "parameters_3dmm  shape [1, 265]" in capsys.readouterr().out
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))
    code = infer.main(["--image", str(img), "--no-face-detect", "--model", str(model), "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in assets.qaihm_cache_dir().iterdir()) == sorted(assets.BASIS_FILES)
    assert (tmp_path / "out" / "face.json").exists()
    assert infer.main(["--fetch-model", "--model", str(model), "--quiet"]) == 5  # never overwrites
    assert "already exists" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the YuNet detector

YUNET_COPY = DATA.parent / "models" / "face_detection_yunet.onnx"


@pytest.fixture()
def yunet_cache(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FACEMAP_YUNET_MODEL; an empty cache folder; the shared copy's checksum stands in for
    the released file's (the test has the copy, not opencv_zoo's file)."""
    need_shared(YUNET_COPY)
    monkeypatch.delenv(assets.YUNET_MODEL_ENV, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv(assets.CACHE_ENV, str(cache))
    monkeypatch.setattr(assets, "YUNET_SHA256", assets.sha256_of(YUNET_COPY))
    return cache


def test_yunet_is_downloaded_once_checked_and_cached(server: AssetServer, yunet_cache: Path) -> None:
    server.serve(assets.yunet_url(), YUNET_COPY.read_bytes())
    path = assets.find_yunet_model(progress=False)
    assert path == yunet_cache / assets.YUNET_NAME and path.read_bytes() == YUNET_COPY.read_bytes()
    assert server.hits == ["/opencv_zoo/models/face_detection_yunet/" + assets.YUNET_NAME]
    assert assets.find_yunet_model() == path and len(server.hits) == 1  # from the cache
    assert sorted(p.name for p in yunet_cache.iterdir()) == [assets.YUNET_NAME]


def test_yunet_with_a_wrong_checksum_is_refused_and_removed(server: AssetServer, yunet_cache: Path) -> None:
    server.serve(assets.yunet_url(), b"not the model" * 100)
    with pytest.raises(DownloadError) as err:
        assets.find_yunet_model(progress=False)
    msg = cli_message(err.value)
    assert "SHA-256" in msg and "it was removed" in msg and "--detector-model PATH" in msg and "\n" not in msg
    assert not yunet_cache.exists() or list(yunet_cache.iterdir()) == []


def test_yunet_cached_copy_with_a_bad_checksum_is_fetched_again(server: AssetServer, yunet_cache: Path) -> None:
    yunet_cache.mkdir()
    (yunet_cache / assets.YUNET_NAME).write_bytes(b"truncated")
    server.serve(assets.yunet_url(), YUNET_COPY.read_bytes())
    assert assets.find_yunet_model().read_bytes() == YUNET_COPY.read_bytes() and len(server.hits) == 1


def test_yunet_cached_copy_with_a_bad_checksum_is_named_as_such_when_it_cannot_be_fetched(
        yunet_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, a damaged copy in the cache was "not in <cache>" (it is there, and stays until a
    good one replaces it)."""
    yunet_cache.mkdir()
    (yunet_cache / assets.YUNET_NAME).write_bytes(b"truncated")
    monkeypatch.setenv(assets.OFFLINE_ENV, "1")
    with pytest.raises(DownloadError) as err:
        assets.find_yunet_model(progress=False)
    assert cli_message(err.value).startswith(
        f"the YuNet face detector in {yunet_cache / assets.YUNET_NAME} does not match its SHA-256 (damaged, or "
        f"another file) and {assets.OFFLINE_ENV}=1 forbids downloading it; ")
    assert (yunet_cache / assets.YUNET_NAME).read_bytes() == b"truncated"
    from facemap.choose import choose_detector  # the default detector's notice, the common path

    notice = choose_detector("yunet").notice
    assert notice.startswith(f"the YuNet face detector in {yunet_cache / assets.YUNET_NAME} does not match its SHA-256"), notice


@pytest.mark.parametrize("fault", [404, "short"])
def test_yunet_download_faults_are_one_line(server: AssetServer, yunet_cache: Path, fault) -> None:
    server.fault(assets.yunet_url(), fault)
    with pytest.raises(DownloadError) as err:
        assets.find_yunet_model(progress=False)
    msg = cli_message(err.value)
    assert msg.startswith("cannot download the YuNet face detector: ") and "\n" not in msg
    assert "or use another --detector" in msg
    assert not yunet_cache.exists() or list(yunet_cache.iterdir()) == []


def test_yunet_explicit_path_and_environment(yunet_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert assets.find_yunet_model(YUNET_COPY) == YUNET_COPY
    monkeypatch.setenv(assets.YUNET_MODEL_ENV, str(YUNET_COPY))
    assert assets.find_yunet_model() == YUNET_COPY
    with pytest.raises(ModelError, match="no such YuNet model file"):
        assets.find_yunet_model(tmp_path / "none.onnx")
    monkeypatch.delenv(assets.YUNET_MODEL_ENV)
    with pytest.raises(ModelError, match="not in"):
        assets.find_yunet_model(download_missing=False)


# ----------------------------------------------------------------------------- offline use

PHOTO = DATA / "images" / "fr_obama-720p.jpg"


def test_offline_switch_never_opens_a_url(tmp_path, monkeypatch, home, no_yunet):
    """FACEMAP_OFFLINE=1: no download is attempted (the opener would fail the test); each
    missing asset is its one-line error naming the switch and `python -m facemap fetch`."""
    _forbid_urls(monkeypatch)
    with pytest.raises(DownloadError, match=r"not downloaded \(FACEMAP_OFFLINE=1\)"):
        assets.download("http://127.0.0.1:9/x", tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(BasisError, match=r"FACEMAP_OFFLINE=1: not downloaded.*python -m facemap fetch --basis"):
        assets.load_basis(progress=False)
    with pytest.raises(DownloadError, match=r"FACEMAP_OFFLINE=1 forbids downloading it; run `python -m facemap fetch --detector`"):
        assets.find_yunet_model()
    assert assets.model_zip_url().endswith("v0.65.0/facemap_3dmm-onnx-float.zip")  # no CLI asked
    for off in ("", "0", "no", "false"):
        monkeypatch.setenv(assets.OFFLINE_ENV, off)
        assert not assets.offline()


def _forbid_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(assets.OFFLINE_ENV, "1")

    def never(*a: object, **k: object) -> None:
        raise AssertionError("FACEMAP_OFFLINE=1 opened a URL")

    monkeypatch.setattr(assets.urllib.request, "urlopen", never)


def test_fetch_fills_every_cache_then_a_run_needs_no_network(server, yunet_cache, tmp_path, capsys, monkeypatch):
    """`python -m facemap fetch` (no flag: all) downloads model, basis and YuNet from the local
    server into the caches, one line each; a second fetch downloads nothing; then, offline, a
    run with no --model finds the cached model and YuNet (no notice at all)."""
    need_shared(PHOTO)
    bias = np.linspace(-0.2, 0.2, 265).astype(np.float32)
    server.serve(assets.model_zip_url(use_cli=False), model_zip(tmp_path, bias))
    server.serve(assets.yunet_url(), YUNET_COPY.read_bytes())
    assert facemap_main(["fetch", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = assets.model_cache_dir() / "model.onnx"
    assert lines == [
        f"model: {model} (downloaded)",
        f"basis: {assets.qaihm_cache_dir()} (downloaded)",
        f"detector: {yunet_cache / assets.YUNET_NAME} (downloaded)",
    ]
    np.testing.assert_allclose(run_model(model)[0], bias, atol=1e-6)
    assert (yunet_cache / assets.YUNET_NAME).read_bytes() == YUNET_COPY.read_bytes()
    basis = assets.load_basis(download=False)
    np.testing.assert_array_equal(basis.mean_face.reshape(-1), server.arrays["meanFace.npy"].reshape(-1))
    hits = len(server.hits)
    assert facemap_main(["fetch", "--detector", "--basis", "-q"]) == 0
    assert [ln.rsplit(" (", 1)[1] for ln in capsys.readouterr().out.splitlines()] == ["already there)"] * 2
    assert len(server.hits) == hits
    # a model.onnx whose data file went: no model "already there", one line, and --force mends it
    data = model.with_name("model.data")
    data.rename(data.with_suffix(".bak"))
    assert facemap_main(["fetch", "--model", "-q"]) == 4
    assert capsys.readouterr().err.strip() == (
        f"python -m facemap fetch: error: {model}: its weights file {data} is missing; add --force to download the model again")
    assert facemap_main(["fetch", "--model", "--force", "-q"]) == 0
    assert data.is_file() and run_model(model)[0].shape == (265,)
    data.with_suffix(".bak").unlink()
    good = model.read_bytes()
    model.write_bytes(b"<html>not a model</html>")  # damaged: one line too, not "in the archive"
    assert facemap_main(["fetch", "--model", "-q"]) == 4
    assert capsys.readouterr().err.strip() == (
        f"python -m facemap fetch: error: {model}: not an ONNX model (damaged?); add --force to download the model again")
    model.write_bytes(good)
    capsys.readouterr()
    # offline now: the cached assets are all a run needs
    _forbid_urls(monkeypatch)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert infer_main(["--image", str(PHOTO), "-o", str(out)], script_dir=tmp_path / "app") == 0
    cap = capsys.readouterr()
    assert cap.err == "" and f"model {model} on CPUExecutionProvider" in cap.out
    doc = json.loads((out / "fr_obama-720p.json").read_text())
    assert doc["detector"] == "yunet" and doc["model"] == str(model)


def test_fetch_offline_or_failing_is_one_line_and_leaves_nothing(server, yunet_cache, capsys, monkeypatch):
    """FACEMAP_OFFLINE=1: exit 4, one line, no request reaches the server; a 404 for YuNet:
    exit 4, one line naming the URL, nothing left in the cache; an unknown flag: exit 2."""
    monkeypatch.setenv(assets.OFFLINE_ENV, "1")
    assert facemap_main(["fetch", "--detector"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FACEMAP_OFFLINE=1" in err and server.hits == []
    monkeypatch.delenv(assets.OFFLINE_ENV)
    assert facemap_main(["fetch", "--detector", "-q"]) == 4  # the server has no YuNet: 404
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 404" in err and assets.yunet_url() in err
    assert not yunet_cache.exists() or list(yunet_cache.iterdir()) == []
    assert facemap_main(["fetch", "--everything"]) == 2


