"""A child process (standalone binary, make) never outlives the process that started it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from brainsleep.sleep.children import spawn_tied, ties_children

pytestmark = pytest.mark.skipif(not ties_children(), reason="PR_SET_PDEATHSIG is Linux-only")

# A parent that starts a long child through the function under test, prints its pid and
# waits; the test kills the parent with SIGKILL, so no Python clean-up can run there.
PARENT = """
import sys, time
{spawn}
child = spawn([sys.executable, "-c", "import time; time.sleep(120)"])
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


def _orphan_survives(spawn: str, wait: float) -> bool:
    """Whether the child is still running ``wait`` seconds after its parent was killed."""
    src = PARENT.format(spawn=spawn)
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


def _start_in_short_thread(**kwargs) -> subprocess.Popen:
    """Start a long child from a thread that ends right after."""
    import threading

    box = []
    t = threading.Thread(
        target=lambda: box.append(
            spawn_tied([sys.executable, "-c", "import time; time.sleep(60)"], **kwargs)
        )
    )
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
