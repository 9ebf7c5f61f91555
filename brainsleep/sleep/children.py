"""Child processes that die with the process that started them.

A compiled sleep network runs as its own process (the standalone binary) and a build runs
``make``. When the Python process waiting for one of them is killed (a study stopped with
``kill``, a Dask worker lost, the out-of-memory killer), its ``except``/``finally`` never
runs and the child would carry on as an orphan: a binary in an active sleep regime then
burns a core for minutes after the study has gone. On Linux, :func:`spawn_tied` asks the
kernel to send the child ``SIGTERM`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
elsewhere it is a plain :class:`subprocess.Popen`.

The request is made in the child before it runs the program: by a little Python code
between fork and exec, or, for a program that asks for it itself (a compiled sleep
network runs :func:`self_tie_code` first), by the program, which finds this process's pid
in :data:`TIE_PARENT_ENV`. The second way lets :mod:`subprocess` start the child without
copying this process (``vfork``): 12-35 ms less per binary start for a process holding
torch and a network's weights, and no Python code run in a forked copy of a threaded
process (a Dask worker).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["TIE_PARENT_ENV", "self_tie_code", "spawn_tied", "ties_children"]

#: Environment variable telling a self-tying program (:func:`self_tie_code`) the pid of
#: the process it must die with.
TIE_PARENT_ENV = "BRAINSLEEP_TIE_TO_PARENT"

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PR_GET_PDEATHSIG = 2


def _linux_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, resolved once in the parent (the child must not load libraries
    between fork and exec), or None where it is missing or refused (a seccomp sandbox):
    the parent asks for its own death signal once to find out."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc, already loaded by Python
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    current = ctypes.c_int(0)
    if prctl(_PR_GET_PDEATHSIG, ctypes.addressof(current), 0, 0, 0) != 0:
        return None
    return prctl


_PRCTL = _linux_prctl()


def ties_children() -> bool:
    """True where :func:`spawn_tied` can tie a child's life to its parent's (Linux)."""
    return _PRCTL is not None


def _tie_to(parent_pid: int) -> Callable[[], None]:
    prctl = _PRCTL

    def tie() -> None:  # runs in the child, between fork and exec
        # The child inherits the parent's disposition and mask of SIGTERM, and a parent
        # that ignores or blocks it would make the tie a no-op: the default, unblocked.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return tie


def self_tie_code() -> tuple[list[str], str]:
    """C++ a program runs at the start of ``main`` to tie itself to its parent.

    What :func:`spawn_tied` does between fork and exec, done by the program: with
    :data:`TIE_PARENT_ENV` set (by ``spawn_tied(..., ties_itself=True)``), it restores
    the default action of SIGTERM (an ignored or blocked SIGTERM is inherited through
    exec), asks the kernel for SIGTERM when the thread that started it ends (as the
    fork-and-exec tie does; :func:`spawn_tied` starts it from a thread that lives as
    long as its process), and ends at once if its parent is no longer the process named there
    (that process died before the request took effect, or a wrapper such as ``strace``
    or ``time`` started the program: a tie to the wrapper would be no tie). Without the
    variable it does nothing; off Linux it is empty.

    Returns
    -------
    headers, code
        ``#include`` names (with their brackets) and one C++ block for ``main``, to run
        before the program does any work (Brian2's ``before_start`` slot).
    """
    if not sys.platform.startswith("linux"):
        return [], ""
    headers = ["<signal.h>", "<stdlib.h>", "<sys/prctl.h>", "<unistd.h>"]
    code = f"""
{{  // brainsleep: die with the process that started this one (children.py)
    const char* _bs_parent = getenv("{TIE_PARENT_ENV}");
    if (_bs_parent != NULL) {{
        signal(SIGTERM, SIG_DFL);
        sigset_t _bs_sigterm;
        sigemptyset(&_bs_sigterm);
        sigaddset(&_bs_sigterm, SIGTERM);
        sigprocmask(SIG_UNBLOCK, &_bs_sigterm, NULL);
        prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
        if ((long)getppid() != atol(_bs_parent)) raise(SIGTERM);
    }}
}}
"""
    return headers, code


def _popen_tied(cmd: list[str], kwargs: dict, ties_itself: bool = False) -> subprocess.Popen:
    if ties_itself:
        env = dict(os.environ if kwargs.get("env") is None else kwargs["env"])
        env[TIE_PARENT_ENV] = str(os.getpid())
        return subprocess.Popen(cmd, **{**kwargs, "env": env})
    return subprocess.Popen(cmd, preexec_fn=_tie_to(os.getpid()), **kwargs)


# One thread per process that lives as long as the process: it starts the children that
# must outlive the thread asking for them (the kernel ties a child to the starting
# *thread*). Made on first use, again after a fork.
_SPAWNER: tuple[int, ThreadPoolExecutor] | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> ThreadPoolExecutor:
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None or _SPAWNER[0] != os.getpid():
            _SPAWNER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="brainsleep-spawn"))
        return _SPAWNER[1]


def spawn_tied(
    cmd: Sequence[str], lasting: bool = False, ties_itself: bool = False, **kwargs: Any
) -> subprocess.Popen:
    """Start ``cmd`` like :class:`subprocess.Popen`, ended by SIGTERM if this process dies.

    Parameters
    ----------
    cmd : sequence of str
        The program and its arguments.
    lasting : bool
        The child outlives the calling thread (a binary kept running between jobs, used
        from a worker's pool threads): it is started from a thread that lives as long as
        this process, so it ends with the process, not with the calling thread.
    ties_itself : bool
        The program runs :func:`self_tie_code` first: it is told this process's pid
        (:data:`TIE_PARENT_ENV`) instead of being tied between fork and exec, so
        :mod:`subprocess` need not fork this process. Implies ``lasting``: the program
        ties itself some milliseconds after it starts, and a calling thread that ended
        meanwhile would leave it untied, so it is started from the process-long thread.
    **kwargs
        Passed to :class:`subprocess.Popen` (not ``preexec_fn``, which this sets).

    Returns
    -------
    subprocess.Popen

    Raises
    ------
    OSError
        The program cannot be started (as :class:`subprocess.Popen`).

    Notes
    -----
    The kernel sends the signal when the *thread* that started the child exits: callers
    wait for the child in that thread, so the two coincide, or ask for ``lasting``.
    Setting ``preexec_fn`` makes
    :mod:`subprocess` fork the whole Python process and run a little Python code in the
    child before ``exec`` (which Python's documentation calls unsafe with other threads
    running, as in a Dask worker); the code run there is two signal calls and one
    ``prctl``, and 300 spawns from two threads beside two busy ones never hung.
    """
    if "preexec_fn" in kwargs:
        raise TypeError("spawn_tied sets preexec_fn itself")
    if _PRCTL is None:
        return subprocess.Popen(list(cmd), **kwargs)
    if lasting or ties_itself:
        return _spawner().submit(_popen_tied, list(cmd), kwargs, ties_itself).result()
    return _popen_tied(list(cmd), kwargs)  # a self-tying program took the branch above
