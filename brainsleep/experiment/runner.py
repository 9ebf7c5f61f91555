"""What every protocol's cell runner shares: checkpointed steps, the sleep engine, a sleep
on the configured input, a search trial and the search step with its no-op bookkeeping.

A protocol's runner (:class:`~brainsleep.experiment.pipeline.CellRunner` for the
limited-data protocol, :class:`~brainsleep.experiment.incremental.IncrementalRunner` for
the class-incremental one) subclasses :class:`StepRunner` and keeps only what is its own:
its steps and their order, its data split, its table. Everything that decides whether a
result can be trusted is here, once: a step counts only when its marker and the
artifacts it records verify and were written under this configuration; a step that
does not is redone with every step after it; a sleep is built from ``--sleep-input``;
every search records whether its best trial changed any weight
(:func:`~brainsleep.experiment.search.acting_choice`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from brainsleep import ann
from brainsleep.formats import CELLS_DIR, DONE_MARKER, CellKey, stage_marker
from brainsleep.normalize import Normalization
from brainsleep.sleep import ModelNumericsError, SleepEngine, spike_counts
from brainsleep.sleep.core import weights_changed
from brainsleep.sleep.inputs import make_sleep_input
from brainsleep.sleep.params import params_from_set

from .config import ExperimentConfig
from .results import atomic_write_with, verify_marker, write_marker
from .scheduler import CellError
from .search import SearchSpace, TrialResult, acting_choice, run_search

log = logging.getLogger("brainsleep.experiment")

__all__ = ["StepRunner"]


class StepRunner:
    """The shared part of a cell runner (see the module's docstring).

    Parameters
    ----------
    cfg : ExperimentConfig
        The validated configuration.
    cell : CellKey
        The cell this runner runs.
    out : pathlib.Path
        The results directory; the cell writes only ``cells/<cell_id>/``.

    Attributes
    ----------
    fingerprint : str
        The configuration's fingerprint, recorded in every marker.
    dir : pathlib.Path
        The cell's folder.
    valid : set of str
        Steps whose markers verified (or were just written).
    """

    #: Layer sizes, input first: set by the subclass.
    sizes: tuple[int, ...]

    def __init__(self, cfg: ExperimentConfig, cell: CellKey, out: Path):
        self.cfg, self.cell, self.out = cfg, cell, out
        # Every marker records it: a step written under another configuration is redone.
        self.fingerprint = cfg.fingerprint()
        self.dir = out / CELLS_DIR / cell.cell_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.valid: set[str] = set()
        self._engine: SleepEngine | None = None  # made on the first sleep

    # -- markers -----------------------------------------------------------------------
    def _marker(self, step: str) -> Path:
        """The marker of a step: written last, it records the step's artifacts."""
        return self.dir / stage_marker(step)

    def _foreign(self, marker: Path, body: dict | None) -> list[str]:
        """A problem when ``marker`` was written under another configuration."""
        if body is not None and body.get("fingerprint") == self.fingerprint:
            return []
        return [f"{marker.name} was written by another configuration"]

    def _verify_chain(self, chain: Callable[[], list[str]]) -> str | None:
        """Verify a chain of steps in order; the first step to redo, or None.

        The first step that is missing or fails (a warning names the file and the
        problem) and every step after it lose their markers, so they are redone: their
        inputs change. ``chain`` is called before each step, so a chain may grow once an
        earlier step verified (the limited protocol's ``sleep_acting`` after its search).
        """
        redo_from = None
        k = 0
        while k < len(steps := chain()):
            step = steps[k]
            k += 1
            marker = self._marker(step)
            if redo_from is not None:
                if marker.exists():
                    log.warning(
                        "%s: redoing %s because %s is redone before it",
                        self.cell.cell_id,
                        step,
                        redo_from,
                    )
                    marker.unlink()
                continue
            if not marker.exists():
                redo_from = step
                continue
            body, problems = verify_marker(marker)
            problems = problems or self._foreign(marker, body)
            if problems:
                for problem in problems:
                    log.warning("%s: %s; redoing %s", self.cell.cell_id, problem, step)
                marker.unlink()
                redo_from = step
            else:
                self.valid.add(step)
        return redo_from

    def _verify_done(self, complete: bool) -> bool:
        """Whether ``done.json`` stands: every step verified (``complete``) and its own
        records do; otherwise it is removed, to be written again at the end."""
        done = self.dir / DONE_MARKER
        if not done.exists():
            return False
        if complete:
            body, problems = verify_marker(done)
            problems = problems or self._foreign(done, body)
            if not problems:
                return True
            for problem in problems:
                log.warning("%s: %s; writing done.json again", self.cell.cell_id, problem)
        done.unlink()
        return False

    # -- running -------------------------------------------------------------------------
    def run(self) -> None:
        """Verify what is there, run the steps still to do, then write ``done.json`` last.

        Raises
        ------
        CellError
            A step failed (bad model numerics, a dead layer, a compiled run that failed);
            the message names the cell, finished steps are kept.
        """
        try:
            self._run()
        except (ValueError, RuntimeError) as exc:
            raise CellError(self.cell.cell_id, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.close()

    def _run(self) -> None:  # pragma: no cover - every protocol defines its steps
        raise NotImplementedError

    def close(self) -> None:
        """Stop the binaries the engine keeps running between sleeps, if one was made."""
        if self._engine is not None:
            self._engine.close()

    @property
    def engine(self) -> SleepEngine:
        """The cell's sleep engine: every trial and sleep of a structure share its build."""
        if self._engine is None:
            cfg = self.cfg
            self._engine = SleepEngine(cfg.device, cfg.model, cfg.prefs, cfg.build_root)
        return self._engine

    # -- sleep, trial, search --------------------------------------------------------------
    def _sleep_on(
        self,
        model: ann.MLP,
        norm: Normalization,
        x: np.ndarray,
        y: np.ndarray,
        n_steps: int,
        p: dict,
        seed: int,
        record: str,
        progress: bool = False,
    ):
        """Sleep ``model`` with parameter set ``p`` on the configured ``--sleep-input``
        made of images ``x`` (labels ``y``), scaled by ``norm``'s alphas;
        ``(slept, result, params, norm)``."""
        params = params_from_set(p, norm.alphas, self.engine.model)
        cfg = self.cfg
        inputs = make_sleep_input(cfg.sleep_input, x, y, n_steps, **cfg.sleep_input_options)
        res = self.engine.run(
            ann.get_weights(model),
            inputs,
            params,
            seed=seed,
            record_layers=record,
            progress=progress,
        )
        slept = copy.deepcopy(model)
        ann.set_weights(slept, res.weights)
        return slept, res, params, norm

    def _trial_of(
        self, model: ann.MLP, sleep: Callable[[], tuple], xv, yv, balanced: bool = False
    ) -> TrialResult:
        """One search trial: ``sleep()`` the network, score it on ``xv, yv`` (accuracy,
        or balanced accuracy), count its spikes and the synapses it changed."""
        try:
            slept, res, _, _ = sleep()
        except ModelNumericsError as exc:  # these parameters break the network
            log.warning("%s: search trial scored 0: %s", self.cell.cell_id, exc)
            return TrialResult(0.0)
        score = ann.score(slept, xv, yv, balanced=balanced)
        changed = weights_changed(ann.get_weights(model), res.weights)
        return TrialResult(score, spike_counts(res.spikes), changed)

    def _search_step(
        self,
        step: str,
        start: dict,
        trial: Callable[[dict], TrialResult],
        key: str,
        score_name: str,
        files: tuple[str, str],
        map_batch: Callable | None = None,
        extra: dict | None = None,
    ) -> dict:
        """Run (or resume) the search of ``step`` and record it; the chosen set.

        Writes the history table and then the step's marker (best set, whether it is a
        no-op and the best trial that acted, the score, ``extra``, the history), with
        the history table and the Optuna journal (``files``) as its artifacts.
        """
        import pandas as pd

        table, journal = files
        space = SearchSpace.for_model(
            self.engine.model, len(self.sizes) - 1, self.cfg.search_ranges
        )
        best, history = run_search(
            start,
            self.cfg.search,
            self.cell.seed,
            trial,
            self.dir / journal,
            space=space,
            score_name=score_name,
            key=key,
            progress=self.cfg.progress,
            map_batch=map_batch,
        )
        atomic_write_with(
            self.dir / table, lambda tmp: pd.DataFrame(history).to_csv(tmp, index=False)
        )
        choice = acting_choice(history, start, space)
        if choice["best_is_noop"]:
            log.warning(
                "%s %s: the search chose not to sleep (its best trial changed no weight); %s",
                self.cell.cell_id,
                step,
                "no trial acted"
                if choice["best_acting"] is None
                else "the best trial that acted is recorded",
            )
        write_marker(
            self._marker(step),
            {
                "best": best,
                **choice,
                "score": score_name,
                **(extra or {}),
                "history": history,
                "fingerprint": self.fingerprint,
            },
            artifacts=[table, journal],
        )
        self.valid.add(step)
        log.info("%s %-15s done (%d trials)", self.cell.cell_id, step, len(history))
        return best
