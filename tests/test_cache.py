"""The build cache (brainsleep/cache.py): listing, leftovers, pruning and the command line.

Everything runs on fake layouts in tmp_path: fake manifests, mtimes set with os.utime,
locks held in this process or, as a real engine would, by another process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

from brainsleep import cache
from brainsleep.cache import MANIFEST, clean_leftovers, list_builds, prune

REPO = Path(__file__).resolve().parents[1]
KEYS = ["0123456789abcdef0123", "aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb", "c" * 20]
DAY = 86400.0


# ----------------------------------------------------------------------------- helpers


def make_build(
    root: Path,
    key: str,
    device: str = "cpp_standalone",
    *,
    days_ago: float = 0.0,
    size: int = 1000,
    model: str = "src.py",
    manifest: bool = True,
) -> Path:
    """A published build directory with a fake project, manifest and .last_used."""
    directory = root / f"{device}-{key}"
    (directory / "code_objects").mkdir(parents=True)
    (directory / "main").write_bytes(b"\0" * size)
    if manifest:
        (directory / MANIFEST).write_text(
            json.dumps(
                {
                    "key": key,
                    "device": device,
                    "created": "2024-05-01T12:30:00+0000",  # as the engine writes it
                    "model": model,
                    "spec": {"sizes": [784, 10], "n_steps": 100},
                    "compiler": "g++ 12",
                    "arch": "x86_64",
                    "brian2": "2.8.0",
                    "engine": 4,
                }
            )
        )
    last_used = directory / cache.LAST_USED
    last_used.touch()
    stamp = time.time() - days_ago * DAY
    os.utime(last_used, (stamp, stamp))
    return directory


def make_building(root: Path, key: str, device: str = "cpp_standalone") -> Path:
    directory = root / f".building-{device}-{key}-1234abcd"
    directory.mkdir(parents=True)
    (directory / "main.cpp").write_text("int main() {}\n")
    return directory


def make_run(root: Path, name: str = "4242-0123456789ab") -> Path:
    directory = root / "runs" / name
    directory.mkdir(parents=True)
    (directory / "results.bin").write_bytes(b"\1" * 100)
    return directory


def names(root: Path) -> set[str]:
    """Every path under root, relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@contextmanager
def held_in_process(lock_path: Path):
    lock = FileLock(str(lock_path))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextmanager
def held_by_process(lock_path: Path):
    """Hold ``FileLock(lock_path)`` from another process, as a running engine does."""
    code = (
        "import sys, filelock\n"
        "lock = filelock.FileLock(sys.argv[1])\n"
        "lock.acquire()\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


HOLDERS = {"in_process": held_in_process, "other_process": held_by_process}


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brainsleep.cache", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


# ----------------------------------------------------------------------------- listing


def test_list_builds_reads_manifest_sorted_by_last_use(tmp_path):
    recent = make_build(tmp_path, KEYS[0], days_ago=1, size=2000, model="src.py")
    old = make_build(tmp_path, KEYS[1], "cuda_standalone", days_ago=40, model="additive")

    infos = list_builds(tmp_path)

    assert [i.path for i in infos] == [old, recent]
    first = infos[0]
    assert (first.device, first.key, first.model) == ("cuda_standalone", KEYS[1], "additive")
    assert first.complete and first.status == "ok" and first.kind == "build"
    assert first.created == dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    age = dt.datetime.now().astimezone() - first.last_used
    assert dt.timedelta(days=39.9) < age < dt.timedelta(days=40.1)
    assert infos[1].size_bytes >= 2000
    assert first.manifest["compiler"] == "g++ 12"


def test_list_builds_without_readable_manifest_is_unknown(tmp_path):
    make_build(tmp_path, KEYS[0], manifest=False)
    broken = make_build(tmp_path, KEYS[1])
    (broken / MANIFEST).write_text("{not json")

    infos = list_builds(tmp_path)

    assert len(infos) == 2
    assert all(not i.complete and i.status == "unknown" for i in infos)


def test_list_builds_include_other_describes_every_entry(tmp_path):
    make_build(tmp_path, KEYS[0])
    make_building(tmp_path, KEYS[1])
    make_run(tmp_path, "r1")
    (tmp_path / "stray.txt").write_text("?")
    (tmp_path / f"cpp_standalone-{KEYS[0]}.lock").touch()  # a lock file is not an entry

    assert [i.kind for i in list_builds(tmp_path)] == ["build"]
    by_name = {i.name: i for i in list_builds(tmp_path, include_other=True)}

    assert set(by_name) == {
        f"cpp_standalone-{KEYS[0]}",
        f".building-cpp_standalone-{KEYS[1]}-1234abcd",
        "runs/r1",
        "stray.txt",
    }
    assert by_name[f".building-cpp_standalone-{KEYS[1]}-1234abcd"].status == "leftover"
    assert by_name["runs/r1"].status == "leftover"
    assert by_name["stray.txt"].kind == "unknown"
    with held_in_process(tmp_path / "runs" / "r1.lock"):
        statuses = {i.name: i.status for i in list_builds(tmp_path, include_other=True)}
    assert statuses["runs/r1"] == "running"


def test_list_builds_default_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSLEEP_BUILD_DIR", str(tmp_path))
    make_build(tmp_path, KEYS[0])
    assert [i.key for i in list_builds()] == [KEYS[0]]


def test_list_builds_missing_root_is_empty_and_not_created(tmp_path):
    assert list_builds(tmp_path / "nope") == []
    assert not (tmp_path / "nope").exists()


def test_root_that_is_a_file_is_refused(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("")
    for call in (list_builds, clean_leftovers, prune):
        with pytest.raises(NotADirectoryError):
            call(afile)


# ----------------------------------------------------------------------------- leftovers


def test_clean_leftovers_removes_killed_build_and_run(tmp_path):
    build = make_build(tmp_path, KEYS[0])
    build_lock = tmp_path / f"cpp_standalone-{KEYS[0]}.lock"
    build_lock.touch()
    killed_same_key = make_building(tmp_path, KEYS[0])  # killed rebuild of a published key
    killed = make_building(tmp_path, KEYS[1])
    (tmp_path / f"cpp_standalone-{KEYS[1]}.lock").touch()
    run = make_run(tmp_path, "r1")
    (tmp_path / "runs" / "r1.lock").touch()
    orphan_lock = tmp_path / f"cuda_standalone-{KEYS[2]}.lock"
    orphan_lock.touch()

    removed = clean_leftovers(tmp_path)

    assert set(removed) == {killed_same_key, killed, run, orphan_lock}
    assert names(tmp_path) == {
        build.name,
        *(f"{build.name}/{n}" for n in ("code_objects", "main", MANIFEST, cache.LAST_USED)),
        build_lock.name,  # it guards the published build: kept
        "runs",
    }


@pytest.mark.parametrize("holder", HOLDERS)
def test_clean_leftovers_spares_a_build_in_progress(tmp_path, holder):
    building = make_building(tmp_path, KEYS[0])
    lock = tmp_path / f"cpp_standalone-{KEYS[0]}.lock"
    with HOLDERS[holder](lock):
        assert clean_leftovers(tmp_path) == []
        assert building.is_dir() and lock.exists()
        assert {i.status for i in list_builds(tmp_path, include_other=True)} == {"building"}
    assert clean_leftovers(tmp_path) == [building]
    assert not building.exists() and not lock.exists()


@pytest.mark.parametrize("holder", HOLDERS)
def test_clean_leftovers_spares_a_running_run(tmp_path, holder):
    run = make_run(tmp_path, "live")
    lock = tmp_path / "runs" / "live.lock"
    with HOLDERS[holder](lock):
        assert clean_leftovers(tmp_path) == []
        assert (run / "results.bin").exists() and lock.exists()
    assert clean_leftovers(tmp_path) == [run]
    assert not run.exists() and not lock.exists()


def test_clean_leftovers_racing_a_run_that_finishes_leaves_no_lock(tmp_path, monkeypatch):
    """The cleaner lists a live run; the run finishes (its directory and its lock file
    removed) before the cleaner locks it: nothing may be left behind, not even a lock
    file the look itself created (CI failure of 2026-12-07)."""
    run = make_run(tmp_path, "racing")
    (tmp_path / "runs" / "racing.lock").touch()
    real = cache.try_lock

    def run_finishes_then_lock(path):
        shutil.rmtree(run, ignore_errors=True)
        (tmp_path / "runs" / "racing.lock").unlink(missing_ok=True)
        return real(path)

    monkeypatch.setattr(cache, "try_lock", run_finishes_then_lock)
    assert clean_leftovers(tmp_path) == []
    assert names(tmp_path) == {"runs"}


def test_is_locked_on_a_missing_lock_creates_nothing(tmp_path, monkeypatch):
    """A look at a lock whose file vanishes between the check and the lock leaves no file."""
    from brainsleep import locks

    lock = tmp_path / "gone.lock"
    lock.touch()
    real_exists = Path.exists

    def exists_then_vanish(self):
        answer = real_exists(self)
        if self == lock:
            self.unlink(missing_ok=True)  # its owner removes it just after the check
        return answer

    monkeypatch.setattr(Path, "exists", exists_then_vanish)
    assert locks.is_locked(lock) is False
    monkeypatch.undo()
    assert not lock.exists()


def test_clean_leftovers_nothing_to_do_is_cheap(tmp_path, monkeypatch):
    calls = []
    real = cache.try_lock

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(cache, "try_lock", counting)
    assert clean_leftovers(tmp_path / "missing") == []
    assert not (tmp_path / "missing").exists()
    make_build(tmp_path, KEYS[0])
    make_build(tmp_path, KEYS[1], "cuda_standalone")
    (tmp_path / f"cpp_standalone-{KEYS[0]}.lock").touch()
    (tmp_path / "runs").mkdir()
    before = names(tmp_path)

    start = time.perf_counter()
    assert clean_leftovers(tmp_path) == []
    elapsed = time.perf_counter() - start

    assert calls == []  # no lock taken: complete builds are not looked into
    assert names(tmp_path) == before
    assert elapsed < 0.5


@pytest.mark.parametrize("suffix", ["01234567", "0123456789ab"])
def test_clean_leftovers_finishes_an_interrupted_removal(tmp_path, suffix):
    trash = tmp_path / f".trash-cpp_standalone-{KEYS[0]}-{suffix}"
    (trash / "sub").mkdir(parents=True)
    (trash / "sub" / "main").write_bytes(b"x")
    with held_by_process(tmp_path / f"cpp_standalone-{KEYS[0]}.lock"):
        assert clean_leftovers(tmp_path) == []  # a prune is still removing it
    assert clean_leftovers(tmp_path) == [trash]
    assert names(tmp_path) == set()


def test_clean_leftovers_keeps_unknown_entries(tmp_path):
    old_style = make_build(tmp_path, KEYS[0], manifest=False)
    (tmp_path / "notes").mkdir()
    assert clean_leftovers(tmp_path) == []
    assert old_style.is_dir() and (tmp_path / "notes").is_dir()


# ----------------------------------------------------------------------------- prune


def test_prune_older_than_keeps_recent_builds(tmp_path):
    recent = make_build(tmp_path, KEYS[0], days_ago=2)
    old = make_build(tmp_path, KEYS[1], days_ago=31)
    older = make_build(tmp_path, KEYS[2], "cuda_standalone", days_ago=400)
    unknown = make_build(tmp_path, KEYS[3], days_ago=400, manifest=False)

    removed = prune(tmp_path, older_than=dt.timedelta(days=30))

    assert set(removed) == {old, older}
    assert recent.is_dir() and unknown.is_dir()
    assert not old.exists() and not older.exists()
    assert not any(n.startswith(".trash-") for n in os.listdir(tmp_path))
    assert not (tmp_path / f"{old.name}.lock").exists()


def test_prune_dry_run_removes_nothing(tmp_path):
    make_build(tmp_path, KEYS[0], days_ago=100)
    make_build(tmp_path, KEYS[1], manifest=False)
    building = make_building(tmp_path, KEYS[2])
    run = make_run(tmp_path)
    before = names(tmp_path)

    would = prune(tmp_path, older_than=dt.timedelta(days=1), dry_run=True, everything=True)

    assert names(tmp_path) == before
    assert set(would) == {
        tmp_path / f"cpp_standalone-{KEYS[0]}",
        tmp_path / f"cpp_standalone-{KEYS[1]}",
        building,
        run,
    }
    assert set(prune(tmp_path, older_than=dt.timedelta(days=1), everything=True)) == set(would)


def test_prune_without_options_only_cleans_leftovers(tmp_path):
    build = make_build(tmp_path, KEYS[0], days_ago=1000)
    building = make_building(tmp_path, KEYS[1])
    assert prune(tmp_path) == [building]
    assert build.is_dir()


def test_prune_all_removes_every_build_and_unknown_entries(tmp_path):
    make_build(tmp_path, KEYS[0])
    make_build(tmp_path, KEYS[1], "cuda_standalone")
    old_style = make_build(tmp_path, KEYS[2], manifest=False)
    (tmp_path / "stray.txt").write_text("?")

    assert old_style in prune(tmp_path, everything=True)
    assert names(tmp_path) == set()


def test_prune_older_than_leaves_unknown_entries_without_all(tmp_path):
    old_style = make_build(tmp_path, KEYS[0], days_ago=100, manifest=False)
    (tmp_path / "stray").mkdir()
    assert prune(tmp_path, older_than=dt.timedelta(0)) == []
    assert old_style.is_dir() and (tmp_path / "stray").is_dir()


@pytest.mark.parametrize("holder", HOLDERS)
def test_prune_skips_a_build_whose_lock_is_held(tmp_path, holder):
    build = make_build(tmp_path, KEYS[0], days_ago=100)
    old_style = make_build(tmp_path, KEYS[1], manifest=False)  # an older engine building
    messages: list[str] = []
    with HOLDERS[holder](tmp_path / f"{build.name}.lock"):
        with held_by_process(tmp_path / f"{old_style.name}.lock"):
            removed = prune(tmp_path, everything=True, log=messages.append)
    assert removed == []
    assert build.is_dir() and old_style.is_dir()
    assert len(messages) == 2 and all("being built" in m for m in messages)


def test_prune_renames_to_trash_before_deleting(tmp_path, monkeypatch):
    build = make_build(tmp_path, KEYS[0])
    seen = []
    real = cache._remove_tree

    def spy(path):
        seen.append((path, build.exists(), (path / MANIFEST).exists()))
        real(path)

    monkeypatch.setattr(cache, "_remove_tree", spy)
    assert prune(tmp_path, everything=True) == [build]
    [(path, original_still_there, manifest_in_trash)] = seen
    assert path.parent == tmp_path and path.name.startswith(f".trash-{build.name}-")
    assert not original_still_there and manifest_in_trash


def test_prune_skips_a_build_used_meanwhile(tmp_path, monkeypatch):
    build = make_build(tmp_path, KEYS[0], days_ago=10)
    real = cache.try_lock

    def touch_then_lock(path):  # a run uses the build between listing and locking
        os.utime(build / cache.LAST_USED)
        return real(path)

    monkeypatch.setattr(cache, "try_lock", touch_then_lock)
    messages: list[str] = []
    assert prune(tmp_path, older_than=dt.timedelta(days=1), log=messages.append) == []
    assert build.is_dir() and "used just now" in messages[0]


def test_prune_negative_older_than_is_refused(tmp_path):
    with pytest.raises(ValueError, match="negative"):
        prune(tmp_path, older_than=dt.timedelta(days=-1))


# ----------------------------------------------------------------------------- command line


def test_cli_list_prints_table_and_total(tmp_path):
    make_build(tmp_path, KEYS[0], size=3 * 1024 * 1024, model="src.py")
    make_build(tmp_path, KEYS[1], "cuda_standalone", model="additive", days_ago=3)
    make_building(tmp_path, KEYS[2])
    make_run(tmp_path, "r9")

    proc = run_cli("list", "--root", str(tmp_path))

    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    header = next(line for line in out.splitlines() if line.startswith("device"))
    assert header.split() == ["device", "key", "model", "MB", "created", "last", "used", "status"]
    row = next(line for line in out.splitlines() if KEYS[0] in line)
    assert "cpp_standalone" in row and "src.py" in row and "3.0" in row and row.endswith("ok")
    assert "2024-05-01" in row
    assert "additive" in out and "leftover" in out and "runs/r9" in out
    assert "total: 2 complete build(s), 3.0 MB" in out


def test_cli_list_without_cache(tmp_path):
    proc = run_cli("list", "--root", str(tmp_path / "none"))
    assert proc.returncode == 0
    assert "no build cache" in proc.stdout


def test_cli_prune_older_than_and_dry_run(tmp_path):
    old = make_build(tmp_path, KEYS[0], days_ago=10, size=2 * 1024 * 1024)
    recent = make_build(tmp_path, KEYS[1], days_ago=1)

    dry = run_cli("prune", "--older-than", "5", "--dry-run", "--root", str(tmp_path))
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {old.name}" in dry.stdout
    assert "would free 2.0 MB" in dry.stdout
    assert old.is_dir()

    real = run_cli("prune", "--older-than", "5", "--root", str(tmp_path))
    assert real.returncode == 0, real.stderr
    assert f"removed {old.name}" in real.stdout and "freed 2.0 MB (1 entries)" in real.stdout
    assert not old.exists() and recent.is_dir()


def test_cli_prune_reports_a_skipped_build(tmp_path):
    build = make_build(tmp_path, KEYS[0])
    with held_by_process(tmp_path / f"{build.name}.lock"):
        proc = run_cli("prune", "--all", "--root", str(tmp_path))
    assert proc.returncode == 0
    assert "being built" in proc.stderr
    assert build.is_dir()


def test_cli_path_prints_root(tmp_path):
    proc = run_cli("path", env={"BRAINSLEEP_BUILD_DIR": str(tmp_path / "b")})
    assert proc.returncode == 0
    assert proc.stdout.strip() == str(tmp_path / "b")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["prune", "--older-than", "-3"], "days must be a finite number >= 0"),
        (["prune", "--older-than", "soon"], "not a number of days"),
        (["prune", "--older-than", "nan"], "days must be a finite number >= 0"),
        (["list", "--root", "FILE"], "is not a directory"),
        (["prune", "--all", "--root", "FILE"], "is not a directory"),
        (["explode"], "invalid choice"),
        ([], "required"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, args, needle):
    afile = tmp_path / "afile"
    afile.write_text("")
    proc = run_cli(*[str(afile) if a == "FILE" else a for a in args])
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert afile.read_text() == ""


def test_import_is_light():
    code = (
        "import sys, brainsleep.cache\n"
        "print(sorted(m for m in ('brian2', 'torch', 'numpy', 'xarray') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
