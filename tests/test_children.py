"""A child process (standalone binary, make) never outlives the process that started it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brainsleep.sleep import children
from brainsleep.sleep.children import TIE_PARENT_ENV, self_tie_code, spawn_tied, ties_children

pytestmark = pytest.mark.skipif(not ties_children(), reason="PR_SET_PDEATHSIG is Linux-only")

# A parent that starts a long child through the function under test, prints its pid and
# waits; the test kills the parent with SIGKILL, so no Python clean-up can run there.
PARENT = """
import sys, time
{spawn}
child = spawn({child!r} or [sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _orphan_survives(spawn: str, wait: float, child: list[str] | None = None) -> bool:
    """Whether the child (by default a Python sleeping 120 s) is still running ``wait``
    seconds after its parent was killed."""
    src = PARENT.format(spawn=spawn, child=child)
    parent = subprocess.Popen([sys.executable, "-c", src], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    try:
        assert _alive(pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + wait
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return _alive(pid)
    finally:
        if _alive(pid):
            subprocess.run(["kill", "-9", str(pid)], check=False)


def test_child_dies_when_its_parent_is_killed():
    assert not _orphan_survives("from brainsleep.sleep.children import spawn_tied as spawn", 10)


def test_child_dies_even_when_its_parent_ignores_sigterm():
    """The child inherits an ignored SIGTERM through exec; the tie restores the default."""
    spawn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    spawn += "from brainsleep.sleep.children import spawn_tied as spawn"
    assert not _orphan_survives(spawn, 10)


def test_an_untied_child_would_survive():
    """The control: the test above can fail (a plain Popen child outlives its parent)."""
    assert _orphan_survives("from subprocess import Popen as spawn", 2)


def test_spawn_tied_refuses_preexec_fn():
    with pytest.raises(TypeError, match="preexec_fn"):
        spawn_tied(["true"], preexec_fn=lambda: None)


def test_lasting_child_dies_with_its_parent_process():
    spawn = "import functools\nfrom brainsleep.sleep.children import spawn_tied\n"
    spawn += "spawn = functools.partial(spawn_tied, lasting=True)"
    assert not _orphan_survives(spawn, 10)


def _start_in_short_thread(cmd: list[str] | None = None, **kwargs) -> subprocess.Popen:
    """Start a long child from a thread that ends right after."""
    import threading

    cmd = cmd or [sys.executable, "-c", "import time; time.sleep(60)"]
    box = []
    t = threading.Thread(target=lambda: box.append(spawn_tied(cmd, **kwargs)))
    t.start()
    t.join()
    return box[0]


def test_lasting_child_outlives_the_thread_that_asked_for_it():
    """A binary kept running between jobs is asked for by a worker's pool thread, which
    may end before the binary's work does: the kernel ties a child to the starting
    thread, so a plain tied child dies with it (the control) and a lasting one lives."""
    plain = _start_in_short_thread()
    lasting = _start_in_short_thread(lasting=True)
    try:
        assert plain.wait(timeout=10) == -15  # SIGTERM when its thread ended
        time.sleep(0.5)
        assert lasting.poll() is None
    finally:
        for p in (plain, lasting):
            p.kill()
            p.wait()


# ------------------------------------------------------------ programs that tie themselves


@pytest.fixture(scope="module")
def self_tying_program(tmp_path_factory) -> str:
    """A C++ program that runs :func:`self_tie_code` first (as the sleep binary does),
    then sleeps 120 s."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    headers, code = self_tie_code()
    src = "\n".join(f"#include {h}" for h in headers)
    src += f"\nint main() {{\n{code}\n    sleep(120);\n    return 0;\n}}\n"
    d = tmp_path_factory.mktemp("selftie")
    (d / "tie.cpp").write_text(src)
    subprocess.run([cxx, "-o", str(d / "tie"), str(d / "tie.cpp")], check=True)
    return str(d / "tie")


SELF_TYING = "import functools\nfrom brainsleep.sleep.children import spawn_tied\n"
SELF_TYING += "spawn = functools.partial(spawn_tied, ties_itself=True)"


def test_self_tying_program_dies_when_its_parent_is_killed(self_tying_program):
    assert not _orphan_survives(SELF_TYING, 10, [self_tying_program])


def test_self_tying_program_dies_even_when_its_parent_ignores_sigterm(self_tying_program):
    spawn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SELF_TYING
    assert not _orphan_survives(spawn, 10, [self_tying_program])


def test_self_tying_program_is_untied_without_being_told_its_parent(self_tying_program):
    """The control: the program ties itself only when spawn_tied names the parent, so
    the two tests above can fail."""
    assert _orphan_survives("from subprocess import Popen as spawn", 2, [self_tying_program])


def test_self_tying_program_is_started_without_forking_python(monkeypatch):
    """No preexec_fn (which makes subprocess fork this whole process); the parent's pid
    travels in the environment, next to the caller's own variables."""
    seen = {}

    class Recorder:
        def __init__(self, cmd, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(children.subprocess, "Popen", Recorder)
    spawn_tied(["prog"], ties_itself=True, env={"KEEP": "1"})
    assert "preexec_fn" not in seen
    assert seen["env"] == {"KEEP": "1", TIE_PARENT_ENV: str(__import__("os").getpid())}


def test_self_tying_program_lives_as_long_as_its_process_not_its_thread(self_tying_program):
    """The program ties itself milliseconds after it starts, to the thread that started
    it: a caller's thread may have ended by then (a short thread here), so spawn_tied
    starts it from the process-long thread; it outlives the caller's thread and dies
    with the process."""
    child = _start_in_short_thread([self_tying_program], ties_itself=True)
    try:
        time.sleep(0.5)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
    spawn = SELF_TYING.replace("ties_itself=True", "ties_itself=True, lasting=False")
    assert not _orphan_survives(spawn, 10, [self_tying_program])
