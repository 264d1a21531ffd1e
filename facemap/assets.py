"""Find or fetch the user's assets: the FaceMap ONNX model and Qualcomm's 3DMM basis.

The basis (meanFace.npy, shapeBasis.npy, blendShape.npy) is read from ``--basis-dir`` if given,
else from qai-hub-models' own cache (``$QAIHM_STORE_ROOT/.qaihm/...``, shared with that package),
else downloaded into that cache. The model is ``--model``, else ``model.onnx`` beside infer.py,
else in the working folder; ``fetch_model`` downloads Qualcomm's released ONNX zip and unpacks it.
HTTP is stdlib ``urllib``; every download goes to a temp file that is renamed only when complete.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from .errors import BasisError, DownloadError, FacemapError, ModelError, OutputError, UsageError
from .threedmm.decode import Basis
from .types import N_EXP, N_ID, N_LANDMARKS

log = logging.getLogger(__name__)

STORE_URL = "https://qaihub-public-assets.s3.us-west-2.amazonaws.com"
STORE_URL_ENV = "FACEMAP_ASSET_BASE_URL"
MODEL_ID = "facemap_3dmm"
BASIS_VERSION = 1
RELEASE_VERSION = "0.65.0"
MODEL_NAME = "model.onnx"
# OpenCV's YuNet face detector (opencv_zoo, MIT): the released file and its checksum.
YUNET_NAME = "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
YUNET_URL = f"https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/{YUNET_NAME}"
YUNET_MODEL_ENV = "FACEMAP_YUNET_MODEL"
# 230 KB: a server that does not answer within this is not waited for longer (seconds a read)
YUNET_TIMEOUT_S = 20.0
CACHE_ENV = "FACEMAP_CACHE_DIR"
# FACEMAP_OFFLINE=1: facemap never touches the network (a missing asset is an error, or the
# offline fallback where there is one).
OFFLINE_ENV = "FACEMAP_OFFLINE"
# the one command that fills the caches (README, docs/models.md)
FETCH_COMMAND = "python -m facemap fetch"
# file name -> (Basis field, expected shape); a same-size reshape is accepted.
BASIS_FILES: dict[str, tuple[str, tuple[int, ...]]] = {
    "meanFace.npy": ("mean_face", (3 * N_LANDMARKS,)),
    "shapeBasis.npy": ("shape_basis", (3 * N_LANDMARKS, N_ID)),
    "blendShape.npy": ("blend_shape", (3 * N_LANDMARKS, N_EXP)),
}
_CHUNK = 1 << 16


def offline() -> bool:
    """True when ``$FACEMAP_OFFLINE`` is set to anything but "", "0", "no" or "false": no
    download is attempted."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "no", "false")


def asset_base_url() -> str:
    """The asset store's base URL: ``$FACEMAP_ASSET_BASE_URL`` if set, else Qualcomm's store."""
    return os.environ.get(STORE_URL_ENV, "").strip().rstrip("/") or STORE_URL


def basis_urls() -> dict[str, str]:
    """File name -> download URL for the three basis files."""
    folder = f"{asset_base_url()}/qai-hub-models/models/{MODEL_ID}/v{BASIS_VERSION}"
    return {name: f"{folder}/{name}" for name in BASIS_FILES}


def model_zip_url(*, use_cli: bool = True) -> str:
    """URL of Qualcomm's released ONNX float model zip.

    With ``use_cli`` and no ``$FACEMAP_ASSET_BASE_URL``, asks the optional ``qai_hub_models_cli``
    package (if installed) for the current release's URL; any failure falls back to the
    built-in v0.65.0 URL.
    """
    builtin = (
        f"{asset_base_url()}/qai-hub-models/models/{MODEL_ID}/releases/v{RELEASE_VERSION}/"
        f"{MODEL_ID}-onnx-float.zip"
    )
    if not use_cli or offline() or os.environ.get(STORE_URL_ENV, "").strip():
        return builtin
    try:
        from qai_hub_models_cli import fetch as qaihm_fetch
    except Exception:  # not installed, or its dependencies are broken
        return builtin
    try:
        url = str(qaihm_fetch.get_asset_url(model=MODEL_ID, runtime="onnx", precision="float"))
    except (Exception, SystemExit) as exc:
        log.warning("qai_hub_models_cli could not give the model URL (%s); using %s", exc, builtin)
        return builtin
    if not url.startswith(("http://", "https://")):
        log.warning("qai_hub_models_cli gave %r, not an http URL; using %s", url, builtin)
        return builtin
    return url


def qaihm_cache_dir() -> Path:
    """qai-hub-models' cache folder for the FaceMap basis (``$QAIHM_STORE_ROOT`` defaults to ~)."""
    root = os.environ.get("QAIHM_STORE_ROOT", "").strip() or os.path.expanduser("~")
    return Path(root) / ".qaihm" / "qai-hub-models" / "models" / MODEL_ID / f"v{BASIS_VERSION}"


def cache_dir() -> Path:
    """facemap's own download cache: ``$FACEMAP_CACHE_DIR``, else ``$XDG_CACHE_HOME/facemap``,
    else ``~/.cache/facemap``."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "facemap"


def yunet_url() -> str:
    """Where the YuNet detector is downloaded from (under ``$FACEMAP_ASSET_BASE_URL`` when set)."""
    base = os.environ.get(STORE_URL_ENV, "").strip().rstrip("/")
    if base:
        return f"{base}/opencv_zoo/models/face_detection_yunet/{YUNET_NAME}"
    return YUNET_URL


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def yunet_cache_path() -> Path:
    """Where the YuNet detector is kept once downloaded."""
    return cache_dir() / YUNET_NAME


def yunet_missing(cached: Path) -> str:
    """How the cache lacks a usable YuNet file, for "the YuNet face detector ...": not there, or
    a copy that does not match (kept until a good one replaces it)."""
    if cached.is_file():
        return f"in {cached} does not match its SHA-256 (damaged, or another file)"
    return f"is not in {cached.parent}"


def find_yunet_model(
    explicit: Path | str | None = None,
    *,
    download_missing: bool = True,
    progress: bool = False,
    use_env: bool = True,
) -> Path:
    """The YuNet ONNX file: ``explicit`` if given, else ``$FACEMAP_YUNET_MODEL`` (``use_env``), else the copy
    in the cache (checksum verified), else downloaded into the cache (checksum verified; never
    with ``$FACEMAP_OFFLINE`` set: DownloadError)."""
    env = os.environ.get(YUNET_MODEL_ENV, "").strip() if use_env else ""
    for given, what in ((explicit, "{detector_model}"), (env or None, YUNET_MODEL_ENV)):
        if given is not None:
            path = Path(given)
            if not path.is_file():
                raise ModelError(f"{path}: no such YuNet model file (given as {what}); check the path")
            return path
    cached = yunet_cache_path()
    where = yunet_missing(cached)
    if cached.is_file():
        if sha256_of(cached) == YUNET_SHA256:
            return cached
        log.warning("%s: checksum mismatch; downloading it again", cached)
    help_ = (
        f"run `{FETCH_COMMAND} --detector` once with internet, or get {YUNET_URL} and pass it as "
        "{yunet_path}, or use another {detector}"
    )
    if not download_missing:
        raise ModelError(f"the YuNet face detector {where}; {help_}")
    if offline():
        raise _failed(
            f"the YuNet face detector {where} and {OFFLINE_ENV}=1 forbids downloading it; {help_}",
            f"{OFFLINE_ENV}=1",
        )
    url = yunet_url()
    tmp = cache_dir() / f".{YUNET_NAME}.{os.getpid()}.download"  # one per process: no clash
    try:
        download(url, tmp, progress=progress, timeout=YUNET_TIMEOUT_S)
    except DownloadError as exc:
        reason = getattr(exc, "reason", "") or str(exc)
        raise _failed(f"cannot download the YuNet face detector: {exc}; {help_}", reason) from None
    got = sha256_of(tmp)
    if got != YUNET_SHA256:
        tmp.unlink()
        raise _failed(
            f"{url}: the file's SHA-256 is {got}, expected {YUNET_SHA256}; it was removed; {help_}",
            "the download's SHA-256 did not match",
        )
    os.replace(tmp, cached)
    return cached


def _cause(exc: BaseException, timeout: float) -> str:
    """A short, one-line description of why a download failed."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed early ({len(exc.partial)} more bytes, {exc.expected} missing)"
    return _one_line(exc)


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())


def _failed(message: str, reason: str) -> DownloadError:
    """A DownloadError whose ``reason`` attribute is the short cause (for a notice line)."""
    err = DownloadError(message)
    err.reason = reason  # type: ignore[attr-defined]
    return err


def download(url: str, dest: Path, *, progress: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` via a temp file in dest's folder; return ``dest``.

    Raises DownloadError naming the URL and the cause; nothing partial is left behind.
    """
    dest = Path(dest)
    if offline():  # the one place facemap opens a URL: nothing is attempted
        raise _failed(f"{url}: not downloaded ({OFFLINE_ENV}=1)", f"{OFFLINE_ENV}=1")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise OutputError(f"{dest.parent}: cannot write there ({exc.strerror or exc})") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            got = 0
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress)
            with bar:
                while chunk := resp.read(_CHUNK):
                    try:
                        out.write(chunk)
                    except OSError as exc:  # our disk, not the network
                        raise OutputError(
                            f"{dest}: cannot write the download ({exc.strerror or exc}); free space there"
                        ) from None
                    got += len(chunk)
                    bar.update(len(chunk))
        if total is not None and got != total:
            raise DownloadError(f"{url}: download incomplete ({got} of {total} bytes)")
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, FacemapError) or not isinstance(exc, Exception):
            raise  # our own error, or KeyboardInterrupt / SystemExit
        cause = _cause(exc, timeout)
        raise _failed(f"{url}: download failed ({cause})", cause) from None
    log.info("downloaded %s -> %s (%d bytes)", url, dest, got)
    return dest


def _load_npy(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Load one basis array (never pickles); BasisError naming the file if it is not usable."""
    try:
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise BasisError(
                    f"{path}: not a .npy file; expected a numpy array of shape {shape}"
                )
            fh.seek(0)
            arr = np.load(fh, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise BasisError(
                f"{path}: holds pickled objects; refusing to load it (facemap never loads pickles)"
            ) from exc
        raise BasisError(f"{path}: corrupt or truncated .npy ({_one_line(exc)})") from exc
    except (OSError, EOFError) as exc:
        raise BasisError(f"{path}: cannot read it ({_one_line(exc)})") from exc
    if arr.dtype.kind not in "fiu":
        raise BasisError(f"{path}: holds {arr.dtype} values; expected numbers")
    squeezed = tuple(d for d in arr.shape if d != 1)
    # flat, as Qualcomm's files are, or already in the expected shape (the mean face also as 68
    # points x 3); not another one of that size (a transposed (39, 204) would be read in the
    # wrong order without a word)
    fits = {tuple(d for d in shape if d != 1)} | ({(68, 3)} if shape == (204,) else set())
    if arr.size != int(np.prod(shape)) or (len(squeezed) > 1 and squeezed not in fits):
        raise BasisError(f"{path}: expected shape {shape} (or flat, {int(np.prod(shape))} values), found {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BasisError(f"{path}: holds NaN or infinite values")
    return arr.reshape(shape)


def _read_basis(folder: Path, cached: bool) -> Basis:
    arrays = {}
    for name, (field, shape) in BASIS_FILES.items():
        try:
            arrays[field] = _load_npy(folder / name, shape)
        except BasisError as exc:
            fix = (
                "delete it to download it again"
                if cached
                else f"replace it with {basis_urls()[name]}"
            )
            raise BasisError(f"{exc}; {fix}") from exc
    return Basis(**arrays)


def _missing(folder: Path) -> list[str]:
    return [name for name in BASIS_FILES if not (folder / name).is_file()]


# Every "no model" message ends with the path that needs no Qualcomm file at all.
WITHOUT_MODEL = (
    "or run without it: {landmarker} dlib ({install_dlib}; "
    'README, "First run, without the Qualcomm model")'
)


def _basis_help(cache: Path, instead: str = WITHOUT_MODEL) -> str:
    urls = ", ".join(basis_urls().values())
    if os.environ.get(STORE_URL_ENV):  # a mirror the user set: it may be the one at fault
        urls += f" (the mirror ${STORE_URL_ENV} names: check it, or unset it for Qualcomm's store)"
    return (
        f"get {urls} into {cache}, or pass {{basis_dir}} DIR (a folder with meanFace.npy, "
        f"shapeBasis.npy and blendShape.npy), or run `{FETCH_COMMAND} --basis` once with internet; {instead}"
    )


def _fetch_basis(cache: Path, names: list[str], progress: bool) -> None:
    urls = basis_urls()
    for name in names:
        try:
            path = download(urls[name], cache / name, progress=progress)
        except DownloadError as exc:
            why = str(exc).removeprefix(f"{urls[name]}: ")
            raise DownloadError(f"cannot download {name}: {why}; {_basis_help(cache)}") from None
        try:
            _load_npy(path, BASIS_FILES[name][1])
        except BasisError as exc:
            path.unlink()  # we just downloaded it: do not keep a bad file in the cache
            raise BasisError(
                f"{exc}; it came from {urls[name]} and was removed: pass {{basis_dir}} DIR instead"
            ) from exc


def load_basis(
    basis_dir: Path | None = None,
    *,
    download: bool = True,
    progress: bool = True,
    instead: str = WITHOUT_MODEL,
) -> Basis:
    """Load the 3DMM basis: from ``basis_dir`` only if given, else the cache, else download it.
    ``instead``: the message's last clause, the way on without the basis (default: the dlib
    landmarker, for a run that needs a model)."""
    if basis_dir is not None:
        folder = Path(basis_dir)
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "no such folder"
            raise BasisError(
                f"{folder}: {what}; {{basis_dir}} takes the folder holding meanFace.npy, shapeBasis.npy and "
                "blendShape.npy"
            )
        if missing := _missing(folder):
            raise BasisError(
                f"{folder}: missing {', '.join(missing)}; {{basis_dir}} needs meanFace.npy, "
                "shapeBasis.npy and blendShape.npy"
            )
        return _read_basis(folder, cached=False)
    cache = qaihm_cache_dir()
    if missing := _missing(cache):
        if not download or offline():
            why = f" ({OFFLINE_ENV}=1: not downloaded)" if download else ""
            raise BasisError(f"3DMM basis not found in {cache}{why}; {_basis_help(cache, instead)}")
        log.info("3DMM basis not cached; downloading %s into %s", ", ".join(missing), cache)
        _fetch_basis(cache, missing, progress)
    return _read_basis(cache, cached=True)


def default_model_path(script_dir: Path) -> Path:
    """Where infer.py looks for the model first and where --fetch-model puts it."""
    return Path(script_dir) / MODEL_NAME


def model_cache_dir() -> Path:
    """Where ``python -m facemap fetch --model`` puts model.onnx (and where it is looked for last)."""
    return cache_dir() / MODEL_ID


def model_places(script_dir: Path | str) -> list[Path]:
    """Where model.onnx is looked for when no path is given, in order (each place once)."""
    places = [default_model_path(Path(script_dir)), Path.cwd() / MODEL_NAME, model_cache_dir() / MODEL_NAME]
    return list(dict.fromkeys(places))


def _model_help(folder: Path, fetching: bool = False) -> str:
    how = "run again with internet" if fetching else f"get it with {{fetch_model}} (or `{FETCH_COMMAND} --model`)"
    return (
        f"{how}, or download {model_zip_url(use_cli=False)} yourself, unzip it and put its .onnx "
        f"(as model.onnx) and its data file in {folder}, or pass {{model}} PATH; {WITHOUT_MODEL}"
    )


def find_model(explicit: Path | None, script_dir: Path) -> Path:
    """The model path: ``explicit`` (--model) if given, else beside infer.py, else in the cwd,
    else in facemap's cache (``model_cache_dir()``, where ``python -m facemap fetch`` puts it)."""
    if explicit is not None:
        path = Path(explicit)
        if path.is_dir() and (path / MODEL_NAME).is_file():
            return path / MODEL_NAME
        if not path.is_file():
            raise ModelError(f"{path}: no such model file; {_model_help(Path(script_dir))}")
        return path
    places = model_places(script_dir)
    for path in places:
        if path.is_file():
            return path
        if path.is_dir() and (path / MODEL_NAME).is_file():  # AI Hub's x.onnx/ folder, named model.onnx
            return path / MODEL_NAME
    looked = ", ".join(str(p) for p in places)
    raise ModelError(f"model.onnx not found (looked at {looked}); {_model_help(Path(script_dir))}")


def _safe_name(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The entry's relative path, or None if it is absolute, escapes the folder or is a symlink."""
    name = info.filename.replace("\\", "/")
    rel = PurePosixPath(name)
    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
    if is_link or not rel.parts or rel.is_absolute() or ":" in rel.parts[0] or ".." in rel.parts:
        return None
    return rel


def _extract(zip_path: Path, out: Path, url: str) -> None:
    """Extract every entry after checking all of them; DownloadError names a refused entry."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
            for info in infos:
                if _safe_name(info) is None:
                    raise DownloadError(
                        f"{url}: refused archive entry {info.filename!r} "
                        "(absolute path, '..' or symlink)"
                    )
            for info in infos:
                target = out.joinpath(*_safe_name(info).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DownloadError(f"{url}: not a readable zip archive ({_one_line(exc)})") from exc


def _external_locations(onnx_path: Path, url: str) -> list[str]:
    """The external-data file names that ``onnx_path`` references (checked to stay beside it)."""
    import onnx

    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise DownloadError(
            f"{url}: {onnx_path.name} in the archive is not ONNX ({_one_line(exc)})"
        ) from exc
    names: list[str] = []
    for init in proto.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = {e.key: e.value for e in init.external_data}.get("location", "")
        rel = PurePosixPath(loc.replace("\\", "/"))
        if not loc or rel.is_absolute() or ".." in rel.parts:
            raise DownloadError(f"{url}: {onnx_path.name} references unsafe data file {loc!r}")
        if loc not in names:
            names.append(loc)
    return names


def fetch_model(target_dir: Path, *, progress: bool = True, force: bool = False) -> Path:
    """Download Qualcomm's ONNX model zip; place ``target_dir/model.onnx`` and its data file(s).

    Refuses (OutputError) to overwrite an existing model.onnx or data file unless ``force``.
    """
    target_dir = Path(target_dir)
    dest = target_dir / MODEL_NAME
    if dest.exists() and not force:
        raise OutputError(
            f"{dest}: already exists; facemap does not overwrite it (move it away, or add {{force}} to replace it)"
        )
    url = model_zip_url()
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".facemap-fetch-", dir=target_dir))
    except OSError as exc:
        raise OutputError(f"{target_dir}: cannot write there ({exc.strerror or exc})") from exc
    try:
        try:
            zip_path = download(url, work / "model.zip", progress=progress)
        except DownloadError as exc:
            why = str(exc).removeprefix(f"{url}: ")
            help_ = _model_help(target_dir, fetching=True)
            raise DownloadError(f"cannot download the model: {why}; {help_}") from None
        unpacked = work / "unpacked"
        _extract(zip_path, unpacked, url)
        found = sorted(p for p in unpacked.rglob("*.onnx") if p.is_file())  # AI Hub: x.onnx/
        if len(found) != 1:
            listed = ", ".join(str(p.relative_to(unpacked)) for p in found) or "none"
            raise DownloadError(f"{url}: expected one .onnx in the archive, found {listed}")
        src = found[0]
        data_names = _external_locations(src, url)
        for loc in data_names:
            if not (src.parent / loc).is_file():
                raise DownloadError(
                    f"{url}: {src.name} references {loc!r}, absent from the archive"
                )
            if (target_dir / loc).exists() and not force:
                raise OutputError(
                    f"{target_dir / loc}: already exists; facemap does not overwrite it "
                    "(move it away, or add {force} to replace it)"
                )
            if loc != "model.data":
                log.info("keeping data file name %r: model.onnx references it by that name", loc)
        for loc in data_names:  # data first, model.onnx last: its presence means complete
            (target_dir / loc).parent.mkdir(parents=True, exist_ok=True)
            os.replace(src.parent / loc, target_dir / loc)
        os.replace(src, dest)
    except OSError as exc:
        raise OutputError(f"{target_dir}: cannot place the model ({_one_line(exc)})") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("model placed at %s (+ %s)", dest, ", ".join(data_names) or "no data file")
    return dest


ASSETS = ("model", "basis", "detector")


def fetch_assets(
    which: tuple[str, ...] = ASSETS, *, progress: bool = True, force: bool = False
) -> Iterator[tuple[str, Path, bool]]:
    """Put every asset ``which`` names into the caches a run reads, for machines that run
    offline: ``model`` (model.onnx + its data file, into ``model_cache_dir()``), ``basis`` (the
    three .npy files, into qai-hub-models' cache) and ``detector`` (YuNet, into ``cache_dir()``,
    checksum verified). Yields (asset, path, fetched) as each is ready; ``fetched`` is False
    for one already there (``force`` downloads the model again). Raises the asset's one-line
    error (DownloadError, BasisError, OutputError) at the first that cannot be had."""
    unknown = sorted(set(which) - set(ASSETS))
    if unknown:
        raise UsageError(f"unknown asset {', '.join(unknown)}; choose from: {', '.join(ASSETS)}")
    if "model" in which:
        target = model_cache_dir()
        have = (target / MODEL_NAME).is_file() and not force
        if have:  # complete only with its data file(s): a model.onnx alone is no model
            try:
                locations = _external_locations(target / MODEL_NAME, str(target / MODEL_NAME))
            except DownloadError:
                raise ModelError(f"{target / MODEL_NAME}: not an ONNX model (damaged?); add {{force}} to download "
                                 "the model again") from None
            gone = [loc for loc in locations if not (target / loc).is_file()]
            if gone:
                raise ModelError(
                    f"{target / MODEL_NAME}: its weights file {target / gone[0]} is missing; add {{force}} to "
                    "download the model again"
                )
        yield "model", (target / MODEL_NAME if have else fetch_model(target, progress=progress, force=force)), not have
    if "basis" in which:
        cache = qaihm_cache_dir()
        missing = _missing(cache)
        load_basis(None, progress=progress)  # downloads what is missing, checks all three
        yield "basis", cache, bool(missing)
    if "detector" in which:
        cached = yunet_cache_path()
        had = cached.is_file() and sha256_of(cached) == YUNET_SHA256
        # the cache is filled whatever $FACEMAP_YUNET_MODEL names
        yield "detector", find_yunet_model(progress=progress, use_env=False), not had
