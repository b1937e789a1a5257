"""The artifact container: a directory holding ``manifest.yaml`` and ``tensors.safetensors``.

Why this module exists: training (PyTorch) hands a model to two consumers that must never
import torch -- the NumPy simulator and the FPGA accelerator flow. They meet at this
container. It is deliberately generic: it stores named NumPy tensors plus a caller-supplied
manifest of plain data, and knows nothing about BERT. What it guarantees is that a reader
either gets exactly what the writer stored or an :class:`ArtifactError` naming the file and
the problem:

* ``manifest.yaml`` records the container format and version, the caller's fields, one entry
  per tensor (kind, logical shape, stored dtype, SHA-256 of the stored bytes) and the size and
  SHA-256 of the tensor file, so truncation, corruption and mismatched files are detected.
* Tensors of kind ``"binary"`` (+-1 values) are stored bit-packed with the project-wide
  convention of :mod:`bebert.bitpack`: the logical shape ``(..., K)`` is flattened to
  ``(prod(leading), K)`` and stored as ``uint64`` words ``(prod(leading), ceil(K / 64))``.
  ``"float"`` (float32/float16) and ``"int"`` (integer) tensors are stored as they are.
* Writing is atomic: everything is written and fsynced in a temporary sibling directory that
  then replaces the target, so the target path never holds a half-written artifact.

Torch-free on purpose (numpy, pyyaml, safetensors.numpy, hashlib only).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors.numpy as _stnp
import yaml

from bebert import bitpack
from bebert.errors import BebertError

FORMAT_NAME = "bebert-artifact"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.yaml"
TENSOR_FILE = "tensors.safetensors"

KIND_FLOAT = "float"
KIND_INT = "int"
KIND_BINARY = "binary"
KINDS = (KIND_FLOAT, KIND_INT, KIND_BINARY)

RESERVED_KEYS = frozenset({"format", "format_version", "tensors", "tensor_file"})

_FLOAT_DTYPES = frozenset({"float32", "float16"})
_BINARY_DTYPE = "uint64"


class ArtifactError(BebertError):
    """An artifact directory is missing, malformed, truncated, corrupted or inconsistent."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the manifest describes it.

    ``shape`` is the LOGICAL shape (for ``"binary"`` the unpacked +-1 shape, last axis K);
    ``dtype`` is the STORED numpy dtype name (``"uint64"`` for binary).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """Shape of the array in the tensor file (packed rows x words for binary)."""
        if self.kind == KIND_BINARY:
            return (math.prod(self.shape[:-1]), bitpack.words_for(self.shape[-1]))
        return self.shape


@dataclass
class Artifact:
    """A verified artifact held in memory (every checksum was checked when it was read)."""

    path: Path
    manifest: dict
    entries: dict[str, TensorEntry]
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def names(self) -> list[str]:
        """Tensor names in manifest order."""
        return list(self.entries)

    def _entry(self, name: str) -> TensorEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise ArtifactError(
                f"{self.path / MANIFEST_FILE} has no tensor named {name!r} "
                f"(it has {len(self.entries)}: {', '.join(self.entries) or 'none'})."
            ) from None

    def raw(self, name: str) -> np.ndarray:
        """The stored array (packed ``uint64`` words for binary tensors); read-only."""
        self._entry(name)
        return self._arrays[name]

    def tensor(self, name: str) -> np.ndarray:
        """The logical array: binary tensors unpacked to ``int8`` +-1 in their logical shape.

        Float and int tensors are returned as stored (read-only); binary ones are unpacked
        into a fresh array on every call.
        """
        entry = self._entry(name)
        stored = self._arrays[name]
        if entry.kind != KIND_BINARY:
            return stored
        try:
            signs = bitpack.unpack_signs(stored, entry.shape[-1], dtype=np.int8)
        except ValueError as exc:
            raise ArtifactError(
                f"{self.path / TENSOR_FILE}: binary tensor {name!r} cannot be unpacked ({exc})."
            ) from None
        return signs.reshape(entry.shape)


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's contents, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------
# writing


def _check_plain(value, where: str) -> None:
    """Reject anything YAML would not round-trip as the same plain Python data."""
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return
    if kind is list:
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) not in (str, int):
                raise ValueError(f"manifest key {key!r} at {where} must be a str or int")
            _check_plain(item, f"{where}.{key}")
        return
    raise ValueError(
        f"manifest value at {where} has type {kind.__name__}; only dict, list, str, int, "
        "float, bool and None are allowed (convert tuples and numpy scalars first)"
    )


def _little_endian(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr)


def _prepare_tensors(tensors: dict, binary) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Validate and convert tensors to their stored form; returns (stored arrays, entries)."""
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors must be a dict of name -> numpy array, got {type(tensors).__name__}")
    binary = frozenset(binary)
    unknown = sorted(binary - set(tensors))
    if unknown:
        raise ValueError(f"binary names {unknown} are not among the tensors being written")
    stored: dict[str, np.ndarray] = {}
    entries: dict[str, dict] = {}
    for name, arr in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor name {name!r} is not allowed")
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"tensor {name!r} must be a numpy array, got {type(arr).__name__}")
        shape = tuple(int(d) for d in arr.shape)
        if name in binary:
            if arr.ndim == 0:
                raise ValueError(f"binary tensor {name!r} needs at least one axis")
            rows = math.prod(shape[:-1])
            try:
                packed = bitpack.pack_signs(arr.reshape(rows, shape[-1]))
            except ValueError as exc:
                raise ValueError(f"binary tensor {name!r}: {exc}") from None
            kind, data = KIND_BINARY, _little_endian(packed)
        elif arr.dtype.name in _FLOAT_DTYPES:
            kind, data = KIND_FLOAT, _little_endian(arr)
        elif np.issubdtype(arr.dtype, np.integer):
            kind, data = KIND_INT, _little_endian(arr)
        else:
            raise ValueError(
                f"tensor {name!r} has dtype {arr.dtype}; store float32/float16, an integer "
                "dtype, or list it in `binary` if it holds +-1"
            )
        stored[name] = data
        entries[name] = {
            "kind": kind,
            "shape": list(shape),
            "dtype": data.dtype.name,
            "sha256": _sha256(data.tobytes()),
        }
    return stored, entries


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_artifact(directory, manifest: dict, tensors: dict[str, np.ndarray],
                   binary: set[str] | frozenset = frozenset()) -> Path:
    """Atomically write an artifact directory and return its path.

    ``manifest`` is the caller's plain data (dict/list/str/int/float/bool/None; reserved keys
    ``format``, ``format_version``, ``tensors``, ``tensor_file`` raise ``ValueError``).
    Tensors named in ``binary`` must hold exactly +-1 and are stored bit-packed; others must be
    float32/float16 or integer and are stored as they are. An existing artifact (or empty
    directory) at ``directory`` is replaced only once the new one is complete; any other
    existing path raises :class:`ArtifactError` rather than being deleted.
    """
    target = Path(directory)
    if not isinstance(manifest, dict):
        raise TypeError(f"manifest must be a dict, got {type(manifest).__name__}")
    reserved = sorted(RESERVED_KEYS & set(manifest))
    if reserved:
        raise ValueError(f"manifest keys {reserved} are reserved for the artifact format")
    _check_plain(manifest, "manifest")
    stored, entries = _prepare_tensors(tensors, binary)

    if target.exists() or target.is_symlink():
        if target.is_symlink() or not target.is_dir():
            raise ArtifactError(f"{target} exists and is not an artifact directory; not replacing it.")
        if any(target.iterdir()) and not (target / MANIFEST_FILE).is_file():
            raise ArtifactError(
                f"{target} is a non-empty directory without {MANIFEST_FILE}; refusing to replace it."
            )
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    try:
        blob = _stnp.save(stored)
        _write_file(tmp / TENSOR_FILE, blob)
        full = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            **manifest,
            "tensors": entries,
            "tensor_file": {"name": TENSOR_FILE, "bytes": len(blob), "sha256": _sha256(blob)},
        }
        text = yaml.safe_dump(full, sort_keys=False, default_flow_style=None, allow_unicode=True)
        _write_file(tmp / MANIFEST_FILE, text.encode("utf-8"))
        _fsync_dir(tmp)
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; a previous ``target`` is moved aside first, then removed."""
    parent = target.parent
    old = None
    if target.exists():
        old = parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
        os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    try:
        _fsync_dir(parent)
    except OSError:  # durability hint only; the new artifact is already in place
        pass
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------
# reading


def _load_manifest(path: Path) -> dict:
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; the directory is not a complete artifact.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ArtifactError(f"{path} is not valid YAML ({where}{problem}).") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} must hold a YAML mapping, found {type(data).__name__}.")
    if data.get("format") != FORMAT_NAME:
        raise ArtifactError(
            f"{path} has format {data.get('format')!r}, expected {FORMAT_NAME!r}."
        )
    version = data.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format_version {version!r}, expected {FORMAT_VERSION} "
            "(the only version this reader supports)."
        )
    return data


def _parse_entries(path: Path, section) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    if not isinstance(section, dict):
        raise ArtifactError(f"{path} must have a 'tensors' mapping of name -> entry.")
    entries: dict[str, TensorEntry] = {}
    digests: dict[str, str] = {}
    for name, raw in section.items():
        if not isinstance(name, str) or not isinstance(raw, dict):
            raise ArtifactError(f"{path} has a malformed entry for tensor {name!r}.")
        kind, shape, dtype, sha = (raw.get(k) for k in ("kind", "shape", "dtype", "sha256"))
        if kind not in KINDS:
            raise ArtifactError(f"{path}: tensor {name!r} has unknown kind {kind!r}.")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise ArtifactError(f"{path}: tensor {name!r} has malformed shape {shape!r}.")
        if kind == KIND_BINARY and not shape:
            raise ArtifactError(f"{path}: binary tensor {name!r} needs at least one axis.")
        if not isinstance(dtype, str) or not isinstance(sha, str):
            raise ArtifactError(f"{path}: tensor {name!r} lacks a dtype or sha256 string.")
        valid_dtype = (
            dtype == _BINARY_DTYPE if kind == KIND_BINARY
            else dtype in _FLOAT_DTYPES if kind == KIND_FLOAT
            else _is_int_dtype(dtype)
        )
        if not valid_dtype:
            raise ArtifactError(f"{path}: tensor {name!r} of kind {kind!r} cannot have dtype {dtype!r}.")
        entries[name] = TensorEntry(name=name, kind=kind, shape=tuple(shape), dtype=dtype)
        digests[name] = sha
    return entries, digests


def _is_int_dtype(name: str) -> bool:
    try:
        return np.issubdtype(np.dtype(name), np.integer)
    except TypeError:
        return False


def read_artifact(directory) -> Artifact:
    """Read and fully verify an artifact directory; every problem raises :class:`ArtifactError`."""
    root = Path(directory)
    if not root.exists():
        raise ArtifactError(f"artifact directory {root} does not exist.")
    if not root.is_dir():
        raise ArtifactError(f"artifact path {root} is not a directory.")
    manifest_path = root / MANIFEST_FILE
    manifest = _load_manifest(manifest_path)
    entries, digests = _parse_entries(manifest_path, manifest.get("tensors"))

    info = manifest.get("tensor_file")
    if (
        not isinstance(info, dict)
        or info.get("name") != TENSOR_FILE
        or type(info.get("bytes")) is not int
        or not isinstance(info.get("sha256"), str)
    ):
        raise ArtifactError(
            f"{manifest_path} must have a 'tensor_file' entry with name {TENSOR_FILE!r}, bytes and sha256."
        )
    tensor_path = root / TENSOR_FILE
    if not tensor_path.is_file():
        raise ArtifactError(f"{tensor_path} is missing; the artifact is incomplete.")
    blob = tensor_path.read_bytes()
    if len(blob) != info["bytes"]:
        raise ArtifactError(
            f"{tensor_path} is {len(blob)} bytes but {MANIFEST_FILE} records {info['bytes']} "
            "(truncated or replaced)."
        )
    if _sha256(blob) != info["sha256"]:
        raise ArtifactError(
            f"{tensor_path} does not match the sha256 recorded in {MANIFEST_FILE} (corrupted)."
        )
    try:
        arrays = _stnp.load(blob)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # safetensors may raise a pyo3 panic (a BaseException)
        raise ArtifactError(f"{tensor_path} is not a valid safetensors file ({exc}).") from None

    missing = [n for n in entries if n not in arrays]
    if missing:
        raise ArtifactError(
            f"{tensor_path} lacks tensor(s) {missing} that {MANIFEST_FILE} lists."
        )
    extra = sorted(n for n in arrays if n not in entries)
    if extra:
        raise ArtifactError(
            f"{tensor_path} holds tensor(s) {extra} that {MANIFEST_FILE} does not list."
        )
    ordered: dict[str, np.ndarray] = {}
    for name, entry in entries.items():
        arr = arrays[name]
        if arr.dtype.name != entry.dtype or tuple(arr.shape) != entry.stored_shape:
            raise ArtifactError(
                f"{tensor_path}: tensor {name!r} is stored as {arr.dtype.name} {tuple(arr.shape)}, "
                f"but {MANIFEST_FILE} describes {entry.kind} {entry.dtype} {entry.stored_shape}."
            )
        arr = _little_endian(arr)
        if _sha256(arr.tobytes()) != digests[name]:
            raise ArtifactError(
                f"{tensor_path}: tensor {name!r} does not match its sha256 in {MANIFEST_FILE}."
            )
        arr.flags.writeable = False
        ordered[name] = arr
    return Artifact(path=root, manifest=manifest, entries=entries, _arrays=ordered)
