"""What every Dask worker does once, in its main thread, before it runs a cell.

Why: Brian2 2.10 installs a SIGINT handler when it is first imported, and Python lets
only a process's main thread install one. A Dask worker runs tasks in a thread of its own,
so a cell that imported Brian2 first failed with "signal only works in main thread" (on
the Python 3.12+ stack; Brian2 2.8 installs no handler). A worker plugin's ``setup`` runs
in the worker's event loop, the main thread of the worker process: importing Brian2 there
makes every later import in a task a lookup. Imported only where Dask is used.
"""

from __future__ import annotations

from distributed import WorkerPlugin

__all__ = ["ImportBrian2"]


class ImportBrian2(WorkerPlugin):
    """Import Brian2 in the worker's main thread when the worker starts (or joins)."""

    name = "brainsleep-import-brian2"

    def setup(self, worker) -> None:
        import brian2  # noqa: F401  (installs its SIGINT handler here, in the main thread)
