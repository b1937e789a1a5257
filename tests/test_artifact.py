"""The artifact container: exact round trips, every corruption caught, atomic writes."""

import os

import numpy as np
import pytest
import safetensors.numpy
import yaml

from bebert import artifact as art
from bebert.artifact import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    TENSOR_FILE,
    Artifact,
    ArtifactError,
    TensorEntry,
    read_artifact,
    write_artifact,
)
from bebert.errors import BebertError

MANIFEST = {
    "model": "tiny",
    "layers": 2,
    "eps": 1e-12,
    "scale": 0.1,
    "flags": {"binary_act": True, "note": None, "labels": {0: "neg", 1: "pos"}},
    "dims": [64, 128, 200],
    "tricky": "yes",
}


def _tensors(rng):
    return {
        "emb": rng.standard_normal((10, 16)).astype(np.float32),
        "half": rng.standard_normal((3,)).astype(np.float16),
        "ids": np.arange(12, dtype=np.int32).reshape(3, 4),
        "w_bin": rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(2, 3, 200)),
        "v_bin": rng.choice(np.array([-1, 1], dtype=np.int8), size=(65,)),
    }


@pytest.fixture
def written(tmp_path):
    rng = np.random.default_rng(0)
    tensors = _tensors(rng)
    path = write_artifact(tmp_path / "model", MANIFEST, tensors, binary={"w_bin", "v_bin"})
    return path, tensors


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_round_trip(written):
    path, tensors = written
    assert path.is_dir()
    assert sorted(os.listdir(path)) == sorted([MANIFEST_FILE, TENSOR_FILE])
    a = read_artifact(path)
    assert isinstance(a, Artifact) and a.path == path
    assert a.names() == list(tensors)
    for key, value in MANIFEST.items():
        assert a.manifest[key] == value
    assert a.manifest["format"] == FORMAT_NAME
    assert a.manifest["format_version"] == FORMAT_VERSION
    assert list(a.manifest)[:2] == ["format", "format_version"]

    for name in ("emb", "half", "ids"):
        got = a.tensor(name)
        assert got.dtype == tensors[name].dtype and got.shape == tensors[name].shape
        np.testing.assert_array_equal(got, tensors[name])
        assert got is a.raw(name)
        assert not got.flags.writeable
    for name in ("w_bin", "v_bin"):
        got = a.tensor(name)
        assert got.dtype == np.int8 and got.shape == tensors[name].shape
        np.testing.assert_array_equal(got, tensors[name])

    assert a.entries["emb"] == TensorEntry("emb", "float", (10, 16), "float32")
    assert a.entries["ids"] == TensorEntry("ids", "int", (3, 4), "int32")
    assert a.entries["w_bin"] == TensorEntry("w_bin", "binary", (2, 3, 200), "uint64")
    assert a.raw("w_bin").shape == (6, 4) and a.raw("w_bin").dtype == np.uint64
    assert a.raw("v_bin").shape == (1, 2)
    assert a.entries["w_bin"].stored_shape == (6, 4)

    with pytest.raises(ArtifactError, match=MANIFEST_FILE):
        a.tensor("nope")


def test_manifest_records_checksums(written):
    path, _ = written
    doc = yaml.safe_load((path / MANIFEST_FILE).read_text())
    assert doc["tensor_file"]["name"] == TENSOR_FILE
    assert doc["tensor_file"]["bytes"] == (path / TENSOR_FILE).stat().st_size
    assert doc["tensor_file"]["sha256"] == art.file_sha256(path / TENSOR_FILE)
    assert set(doc["tensors"]["emb"]) == {"kind", "shape", "dtype", "sha256"}


def test_binary_storage_is_about_32x_smaller(tmp_path):
    rng = np.random.default_rng(1)
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(256, 1024))
    f = write_artifact(tmp_path / "f", {}, {"w": signs})
    b = write_artifact(tmp_path / "b", {}, {"w": signs}, binary={"w"})
    ratio = (f / TENSOR_FILE).stat().st_size / (b / TENSOR_FILE).stat().st_size
    assert 30 < ratio <= 32
    np.testing.assert_array_equal(read_artifact(b).tensor("w"), signs)


def test_overwrite_replaces_previous(written):
    path, _ = written
    write_artifact(path, {"model": "second"}, {"x": np.zeros(3, np.float32)})
    a = read_artifact(path)
    assert a.manifest["model"] == "second" and a.names() == ["x"]
    assert _leftovers(path.parent) == []


# ---- every failure is an ArtifactError naming the file ----------------------------------


def _expect(path, fragment):
    with pytest.raises(ArtifactError) as info:
        read_artifact(path)
    assert isinstance(info.value, BebertError)
    assert fragment in str(info.value)
    return str(info.value)


def test_missing_directory(tmp_path):
    _expect(tmp_path / "absent", "absent")


def test_path_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    _expect(tmp_path / "file", "file")


def test_truncated_tensor_file(written):
    path, _ = written
    data = (path / TENSOR_FILE).read_bytes()
    (path / TENSOR_FILE).write_bytes(data[: len(data) // 2])
    assert "truncated" in _expect(path, TENSOR_FILE)


def test_flipped_byte(written):
    path, _ = written
    data = bytearray((path / TENSOR_FILE).read_bytes())
    data[-5] ^= 0x40
    (path / TENSOR_FILE).write_bytes(bytes(data))
    assert "corrupted" in _expect(path, TENSOR_FILE)


def test_missing_tensor_file(written):
    path, _ = written
    (path / TENSOR_FILE).unlink()
    _expect(path, TENSOR_FILE)


def _edit_manifest(path, change):
    doc = yaml.safe_load((path / MANIFEST_FILE).read_text())
    change(doc)
    (path / MANIFEST_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))


def test_future_format_version(written):
    path, _ = written
    _edit_manifest(path, lambda d: d.update(format_version=2))
    msg = _expect(path, MANIFEST_FILE)
    assert "2" in msg and str(FORMAT_VERSION) in msg


def test_wrong_format_name(written):
    path, _ = written
    _edit_manifest(path, lambda d: d.update(format="something-else"))
    _expect(path, MANIFEST_FILE)


def test_missing_manifest(written):
    path, _ = written
    (path / MANIFEST_FILE).unlink()
    _expect(path, MANIFEST_FILE)


@pytest.mark.parametrize("text", ["format: [unclosed\n  - : :\n", "just a string\n", "- a\n- b\n", ""])
def test_garbage_manifest(written, text):
    path, _ = written
    (path / MANIFEST_FILE).write_text(text)
    _expect(path, MANIFEST_FILE)


def test_tensor_missing_from_manifest(written):
    path, _ = written
    _edit_manifest(path, lambda d: d["tensors"].pop("ids"))
    msg = _expect(path, MANIFEST_FILE)
    assert "ids" in msg and TENSOR_FILE in msg


def test_tensor_missing_from_file(written):
    path, _ = written

    def add(d):
        d["tensors"]["ghost"] = dict(d["tensors"]["emb"])

    _edit_manifest(path, add)
    assert "ghost" in _expect(path, TENSOR_FILE)


def test_shape_inconsistent_with_entry(written):
    path, _ = written
    _edit_manifest(path, lambda d: d["tensors"]["w_bin"].update(shape=[2, 3, 300]))
    assert "w_bin" in _expect(path, TENSOR_FILE)


def test_dtype_inconsistent_with_entry(written):
    path, _ = written
    _edit_manifest(path, lambda d: d["tensors"]["ids"].update(dtype="int64"))
    assert "ids" in _expect(path, TENSOR_FILE)


def test_per_tensor_checksum(written):
    path, _ = written
    _edit_manifest(path, lambda d: d["tensors"]["emb"].update(sha256="0" * 64))
    assert "emb" in _expect(path, TENSOR_FILE)


def test_unparsable_tensor_file_with_matching_checksum(written):
    path, _ = written
    junk = b"\xff" * 64
    (path / TENSOR_FILE).write_bytes(junk)
    _edit_manifest(
        path,
        lambda d: d["tensor_file"].update(bytes=len(junk), sha256=art._sha256(junk)),
    )
    _expect(path, TENSOR_FILE)


# ---- writer validation and atomicity -----------------------------------------------------


@pytest.mark.parametrize("key", sorted(art.RESERVED_KEYS))
def test_reserved_keys_rejected(tmp_path, key):
    with pytest.raises(ValueError, match=key):
        write_artifact(tmp_path / "a", {key: 1}, {})
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("value", [(1, 2), np.float32(1.0), np.int64(3), {"a": object()}])
def test_non_plain_manifest_rejected(tmp_path, value):
    with pytest.raises(ValueError):
        write_artifact(tmp_path / "a", {"x": value}, {})


def test_unsupported_dtypes_rejected(tmp_path):
    with pytest.raises(ValueError, match="float64"):
        write_artifact(tmp_path / "a", {}, {"x": np.zeros(3)})
    with pytest.raises(ValueError):
        write_artifact(tmp_path / "a", {}, {"x": np.zeros(3, bool)})
    with pytest.raises(ValueError):
        write_artifact(tmp_path / "a", {}, {"x": np.zeros(3, np.float32)}, binary={"y"})


def test_refuses_to_replace_a_foreign_directory(tmp_path):
    other = tmp_path / "home"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    with pytest.raises(ArtifactError, match="home"):
        write_artifact(other, {}, {"x": np.zeros(3, np.float32)})
    assert (other / "precious.txt").read_text() == "keep"


def _snapshot(path):
    return {p.name: p.read_bytes() for p in path.iterdir()}


def test_bad_binary_value_leaves_previous_artifact(written):
    path, tensors = written
    before = _snapshot(path)
    bad = np.ones((4, 70), dtype=np.float32)
    bad[2, 5] = 0.0
    with pytest.raises(ValueError, match="w"):
        write_artifact(path, {"model": "new"}, {"w": bad}, binary={"w"})
    assert _snapshot(path) == before
    assert _leftovers(path.parent) == []
    assert read_artifact(path).manifest["model"] == "tiny"


def test_failing_save_leaves_previous_artifact(written, monkeypatch):
    path, _ = written
    before = _snapshot(path)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_artifact(path, {"model": "new"}, {"x": np.zeros(3, np.float32)})
    assert _snapshot(path) == before
    assert _leftovers(path.parent) == []


def test_failing_manifest_write_leaves_no_target(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("no space left")

    monkeypatch.setattr(art.yaml, "safe_dump", boom)
    with pytest.raises(OSError):
        write_artifact(tmp_path / "fresh", {}, {"x": np.zeros(3, np.float32)})
    assert not (tmp_path / "fresh").exists()
    assert list(tmp_path.iterdir()) == []


def test_failing_final_rename_restores_previous(written, monkeypatch):
    path, _ = written
    before = _snapshot(path)
    real_rename = os.rename

    def flaky(src, dst):
        if ".tmp-" in str(src):
            raise OSError("rename failed")
        return real_rename(src, dst)

    monkeypatch.setattr(art.os, "rename", flaky)
    with pytest.raises(OSError, match="rename failed"):
        write_artifact(path, {"model": "new"}, {"x": np.zeros(3, np.float32)})
    monkeypatch.undo()
    assert _snapshot(path) == before
    assert _leftovers(path.parent) == []
