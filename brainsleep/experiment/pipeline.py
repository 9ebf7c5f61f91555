"""The stages of one cell (dataset, fraction, imbalance, seed) and the whole experiment.

Why one file of this length: it is the driver (a cell's named, checkpointed stages);
storage formats, search, scheduling and the engine live in their own modules.

Stages, each checkpointed in ``cells/<cell>/`` so a killed run resumes where it stopped:

1. ``baseline``       train the ANN on the subset with the recipe; evaluate.
2. ``sleep``          alphas from the training subset, masked-mean-image input, sleep on
                      the Brian2 device, weights back into the ANN; evaluate.
3. ``sleep_finetune`` fine-tune the slept network on the same subset; evaluate.
4. ``finetune_only``  control: fine-tune the baseline for exactly as many optimiser steps
                      without sleep; evaluate. Without it a fine-tuning gain cannot be
                      credited to sleep.
5. ``strong``         optional: the strong recipe on the same subset, the bar to beat.

With ``--search`` a ``search`` step (``search.json``, ``search.csv``) comes between
``baseline`` and ``sleep``. Each step's marker (``stage_<stage>.json`` or
``search.json``) is written after its artifacts and records their sizes and sha256;
``done.json`` records the cell's confusion matrices and every marker. A rerun verifies
them: a step whose files do not match is redone (with a warning naming the file), and so
is every step after it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import os
from pathlib import Path

import numpy as np

from brainsleep import ann
from brainsleep.formats import (
    CONFUSION_FILE,
    DONE_MARKER,
    SEARCH_CSV,
    SEARCH_JOURNAL,
    SLEEP_ACTING_PARAMS_FILE,
    SLEEP_PARAMS_FILE,
    SNN_CURVE_FILE,
    SPIKES_FILE,
    STAGES,
    load_weights,
    save_confusion,
    save_weights,
    weights_file,
)
from brainsleep.normalize import AlphasCache
from brainsleep.sleep import (
    save_spikes,
    spike_counts,
)
from brainsleep.sleep.core import weights_changed
from brainsleep.sparseness import small_weight_fraction, weight_hoyer
from brainsleep.subsets import make_subset

from .baselines import BaselineCache, baseline_key
from .cells import CellKey, cells, load_data, versions  # noqa: F401  (the runner's names)
from .config import ExperimentConfig, start_params
from .interpret import explain, plateau_note
from .results import (
    IntegrityError,
    atomic_write_json,
    atomic_write_with,
    collect_metrics,
    read_marker,
    summary_table,
    write_marker,
    write_metrics,
)
from .runner import StepRunner
from .scheduler import (
    _check_one_thread,
    in_worker,
    map_on_cluster,
    report_trial,
    run_cells,
    uses_dask,
    worker_setup,
)
from .search import TrialResult
from .search import fingerprint as search_fingerprint

log = logging.getLogger("brainsleep.experiment")
FINETUNE_SEED_OFFSET = 1000  # fine-tuning draws its own batches and masks


class CellRunner(StepRunner):
    """Runs (or resumes) the stages of one cell of the limited-data protocol."""

    def __init__(self, cfg: ExperimentConfig, cell: CellKey, data, out: Path):
        super().__init__(cfg, cell, out)
        x_train_all = data["x_train"]
        y_train_all = data["y_train"]
        self.subset = make_subset(
            y_train_all,
            cell.fraction,
            mode=cfg.subset,
            imbalance=None if cell.imbalance == "none" else cell.imbalance,
            val_fraction=cfg.val_fraction,
            seed=cell.seed,
        )
        self.x = x_train_all[self.subset.train_idx]
        self.y = y_train_all[self.subset.train_idx]
        self.xv = x_train_all[self.subset.val_idx] if self.subset.n_val else None
        self.yv = y_train_all[self.subset.val_idx] if self.subset.n_val else None
        self.x_test, self.y_test = data["x_test"], data["y_test"]
        # The remedies go into the recipe of the baseline, the fine-tuning and the
        # step-matched control alike (not the strong recipe: the fixed bar to beat).
        overrides = {"epochs": cfg.epochs} if cfg.epochs else {}
        if cfg.remedies:
            overrides["remedies"] = tuple(cfg.remedies)
        self.recipe = ann.get_recipe(cfg.recipe, **overrides)
        self.sizes = (self.x.shape[1], *cfg.hidden, 10)
        self._alphas = AlphasCache(self.x)  # every trial and the final sleep of a baseline

    # -- checkpoint helpers ------------------------------------------------------------
    def steps(self) -> list[str]:
        """This cell's steps in order: the stages, with ``search`` before sleep.

        ``sleep_acting`` (and its fine-tune) follow once a verified search says that its
        best trial was a no-op and another trial acted (:func:`acting_choice`).
        """
        out = ["baseline"]
        if self.cfg.search:
            out.append("search")
        out.append("sleep")
        if self.cfg.finetune_epochs:
            out.append("sleep_finetune")
        if self._acting_params() is not None:
            out.append("sleep_acting")
            if self.cfg.finetune_epochs:
                out.append("sleep_acting_finetune")
        if self.cfg.finetune_epochs:
            out.append("finetune_only")
        if self.cfg.strong:
            out.append("strong")
        return out

    def _acting_params(self) -> dict | None:
        """The best acting trial's parameters when the search chose a no-op, else None
        (also before the search is verified: the steps after it are decided then)."""
        if not self.cfg.search or "search" not in self.valid:
            return None
        body = read_marker(self._marker("search"))
        acting = body.get("best_acting")
        return acting["params"] if body.get("best_is_noop") and acting else None

    def _done(self, stage: str) -> bool:
        return stage in self.valid

    def verify(self) -> bool:
        """Check what earlier runs left in this cell; True when the whole cell is done.

        Every step's marker and the artifacts it records are verified in order. The
        first step that is missing or fails (a warning names the file and the problem)
        and every step after it lose their markers, so they are redone: their inputs
        change. ``done.json`` counts only when all of that and its own records verify.
        """
        self.valid = set()
        redo_from = self._verify_chain(self.steps)
        # A stage this cell no longer has (sleep_acting after a search redone with an
        # acting best) must not stay behind: collect_metrics reads every stage marker.
        for stage in set(STAGES) - set(self.steps()):
            if (stale := self._marker(stage)).exists():
                log.warning(
                    "%s: removing %s (not a step of this cell)", self.cell.cell_id, stale.name
                )
                stale.unlink()
        return self._verify_done(redo_from is None)

    def _model_from(self, stage: str, recipe=None) -> ann.MLP:
        weights = list(load_weights(self.dir / weights_file(stage)).values())
        return self._model_with(weights, recipe)

    def _model_with(self, weights, recipe=None) -> ann.MLP:
        model = ann.build_model(recipe or self.recipe, self.sizes, self.cell.seed)
        ann.set_weights(model, weights)
        return model

    def _record(
        self, stage: str, model: ann.MLP, extra: dict | None = None, artifacts: tuple = ()
    ) -> dict:
        """Evaluate, save the weights, then the stage file recording every artifact."""
        ev = ann.evaluate(model, self.x_test, self.y_test)
        row = {
            "cell": self.cell.cell_id,
            "dataset": self.cell.dataset,
            "fraction": self.cell.fraction,
            "imbalance": self.cell.imbalance,
            "seed": self.cell.seed,
            "stage": stage,
            "accuracy": ev.accuracy,
            "balanced_accuracy": ev.balanced_accuracy,
            "pred_entropy": ev.pred_entropy,
            "n_train": self.subset.n_train,
            "n_val": self.subset.n_val,
        }
        if self.xv is not None:
            # what a "best" (remedy, input, parameter set) is chosen on: never the test set
            row["val_accuracy"] = ann.score(model, self.xv, self.yv)
            row["val_balanced_accuracy"] = ann.score(model, self.xv, self.yv, balanced=True)
        for k, r in enumerate(ev.per_class):
            row[f"acc_class_{k}"] = None if np.isnan(r) else float(r)
        for i, a in enumerate(ev.active_frac, start=1):
            row[f"active_frac_h{i}"] = float(a)
        # measures that a few silenced units or depressed rows do not drive (claim 4)
        for i, silent in enumerate(ev.silent_frac, start=1):
            row[f"silent_frac_h{i}"] = silent
        for i, sparse in enumerate(ev.pop_sparseness, start=1):
            row[f"pop_sparseness_h{i}"] = sparse
        matrices = ann.get_weights(model)
        # recorded so that the compact files (metrics.csv) suffice for the claims report
        row["weight_hoyer"] = weight_hoyer(matrices)
        row["weight_small_frac"] = small_weight_fraction(matrices)
        row.update(extra or {})
        # artifacts first, then the stage file: the stage file marks the stage complete
        weights = weights_file(stage)
        save_weights(self.dir / weights, matrices)
        write_marker(
            self._marker(stage),
            {"row": row, "confusion": ev.confusion.tolist(), "fingerprint": self.fingerprint},
            artifacts=[weights, *artifacts],
        )
        self.valid.add(stage)
        log.info("%s %-15s accuracy %.4f", self.cell.cell_id, stage, ev.accuracy)
        return row

    # -- stages ------------------------------------------------------------------------
    def baseline(self) -> ann.MLP:
        if self._done("baseline"):
            return self._model_from("baseline")
        model, info = self._trained(self.recipe, "baseline")
        self._record("baseline", model, {"train_steps": info["train_steps"]})
        if plateau := plateau_note(info["val_accuracy"], self.recipe):
            log.info("%s baseline: %s", self.cell.cell_id, plateau)
        return model

    def _trained(self, recipe: ann.Recipe, stage: str) -> tuple[ann.MLP, dict]:
        """A network of this cell trained by ``recipe`` from its initialisation, with the
        record of its training; from the baseline cache when trained before.

        The cache (:mod:`brainsleep.experiment.baselines`) is keyed by everything the
        training depends on, so a sweep's runs share their cells' baselines, and the strong
        recipe's network is one entry whether it is a run's ``strong`` control or the
        baseline of a run with ``--recipe strong`` (the same training: results identical).
        """
        cache = BaselineCache.default()
        if cache is None:
            return self._train(recipe)
        key = baseline_key(
            recipe, self.sizes, self.cell.seed, self.x, self.y, self.xv, self.yv,
            device=self.cfg.train_device,
        )  # fmt: skip
        with cache.claim(key):
            hit = cache.load_or_discard(key)
            if hit is None:
                model, info = self._train(recipe)
                cache.store(key, ann.get_weights(model), info)
                return model, info
        log.info("%s %s: trained before, from %s", self.cell.cell_id, stage, cache.path(key))
        model = self._model_with(hit[0], recipe)
        return model, {k: hit[1][k] for k in ("train_steps", "val_accuracy")}

    def _train(self, recipe: ann.Recipe) -> tuple[ann.MLP, dict]:
        model, hist = ann.train_baseline(
            recipe,
            self.sizes,
            self.cell.seed,
            self.x,
            self.y,
            val=(self.xv, self.yv) if self.xv is not None else None,
            progress=self.cfg.progress,
            device=self.cfg.train_device,
        )
        return model, {"train_steps": hist.n_steps, "val_accuracy": list(hist.val_accuracy)}

    def _sleep(self, model: ann.MLP, p: dict, record: str, progress: bool = False):
        """Sleep ``model`` on the subset's ``--sleep-input`` with parameter set ``p``."""
        cfg = self.cfg
        return self._sleep_on(
            model,
            self._alphas(model),
            self.x,
            self.y,
            cfg.sleep_steps,
            p,
            self.cell.seed,
            record,
            progress,
        )

    def search(self, model: ann.MLP) -> dict:
        """Tune the sleep parameters on the validation split; the chosen set.

        An Optuna study in the cell's journal file (``search.journal``) holds the
        trials, so a killed search resumes without rerunning finished ones. The score is
        validation accuracy, balanced validation accuracy when the subset is imbalanced;
        the test set is never seen. Writes ``search.csv`` (every trial) and then the
        marker ``search.json`` (best parameters and history).
        """
        start = start_params(self.cfg)
        if not self.cfg.search:
            return start
        path = self._marker("search")
        if self._done("search"):
            return read_marker(path)["best"]
        balanced = self.cell.imbalance != "none"
        score_name = "val_balanced_accuracy" if balanced else "val_accuracy"
        # On a Dask worker the trials of a batch go to the cluster's other workers (each
        # loads the baseline this cell saved); the search tells them in trial order, so
        # the result does not depend on where or when they finished.
        trial, map_batch = functools.partial(self.trial, model), None
        if uses_dask(self.cfg) and in_worker():
            trial = functools.partial(
                search_trial_task, self.cfg.to_dict(), self.cell, str(self.out)
            )
            map_batch = map_on_cluster

        key = search_fingerprint(
            ann.get_weights(model),
            val_idx=np.asarray(self.subset.val_idx).tolist(),
            cell=self.cell.cell_id,
        )
        return self._search_step(
            "search",
            start,
            trial,
            key,
            score_name,
            (SEARCH_CSV, SEARCH_JOURNAL),
            map_batch,
        )

    def trial(self, model: ann.MLP, p: dict) -> TrialResult:
        """One search trial: sleep ``model`` with parameter set ``p``; the validation score
        (balanced accuracy when the subset is imbalanced) and the spike counts."""
        # hidden-layer spikes cost the standalone binary nothing: it records them anyway
        # (self.xv is float32 already, as_float, so torch uses it as it is)
        return self._trial_of(
            model,
            lambda: self._sleep(model, p, record="hidden"),
            self.xv,
            self.yv,
            balanced=self.cell.imbalance != "none",
        )

    def baseline_model(self) -> ann.MLP:
        """The baseline this cell trained and recorded (for search trials on workers)."""
        return self._model_from("baseline")

    def sleep(self, baseline: ann.MLP, p: dict, stage: str = "sleep") -> ann.MLP:
        """Sleep the baseline with parameter set ``p`` and record ``stage`` (``sleep``, or
        ``sleep_acting``: the best trial that acted, when the search chose a no-op)."""
        if self._done(stage):
            return self._model_from(stage)
        slept, res, params, norm = self._sleep(
            baseline, p, self.cfg.record_spikes, progress=self.cfg.progress
        )
        counts = spike_counts(res.spikes) if self.cfg.record_spikes != "none" else {}
        params_file = SLEEP_PARAMS_FILE if stage == "sleep" else SLEEP_ACTING_PARAMS_FILE
        artifacts = [params_file]
        if self.cfg.record_spikes != "none":
            spikes_file = SPIKES_FILE if stage == "sleep" else f"spikes_{stage}.nc"
            save_spikes(res.spikes, self.dir / spikes_file)
            artifacts.append(spikes_file)
        extra = {f"sleep_spikes_layer{k}": v for k, v in counts.items()}
        # 0.0: a no-op, not sleep (the weights came back bit-identical)
        extra["sleep_weights_changed"] = weights_changed(
            ann.get_weights(baseline), ann.get_weights(slept)
        )
        if self.cfg.snn_eval and stage == "sleep":
            extra.update(self._snn_metrics(baseline, slept, params))
            artifacts.append(SNN_CURVE_FILE)
        atomic_write_json(
            self.dir / params_file,
            {"params": params.to_dict(), "normalization": norm.to_dict(), "info": res.info},
        )
        self._record(stage, slept, extra, artifacts=tuple(artifacts))
        return slept

    def _snn_metrics(self, baseline: ann.MLP, slept: ann.MLP, params) -> dict:
        """The converted spiking network on the first N test images, before and after
        sleep, plasticity off (``snn_baseline_*``, ``snn_*``), converted by the
        ``--snn-protocol`` (``sleep``: the sleep's parameters for both networks;
        ``diehl2015``: each network normalised on the training subset by itself), and
        its accuracy after every step of the window (:data:`SNN_CURVE_FILE`)."""
        import pandas as pd

        from .snn import curve_rows, evaluate_network

        n = min(self.cfg.snn_eval, len(self.y_test))
        x, y = np.asarray(self.x_test[:n]), np.asarray(self.y_test[:n])
        out, curves = {}, []
        for prefix, network, net in (
            ("snn_baseline_", "baseline", baseline),
            ("snn_", "sleep", slept),
        ):
            ev, alphas = evaluate_network(
                self.cfg, self.engine, net, self.x, x, y, params, self.cell.seed
            )
            out.update(ev.metrics(prefix))
            out.update({f"{prefix}alpha{k}": a for k, a in enumerate(alphas, start=1)})
            curves += curve_rows(ev, network=network)
        atomic_write_with(
            self.dir / SNN_CURVE_FILE, lambda tmp: pd.DataFrame(curves).to_csv(tmp, index=False)
        )
        return out

    def _finetuned(self, start: ann.MLP, max_steps: int | None = None):
        """A copy of ``start`` fine-tuned on the subset; both arms use the same seed."""
        model = copy.deepcopy(start)
        # A fixed number of epochs, no validation split: the recipe's early stopping does
        # not apply (train would warn of it in every strong-recipe cell, and do the same).
        recipe = dataclasses.replace(self.recipe, early_stopping_patience=None)
        hist = ann.train(
            model,
            self.x,
            self.y,
            recipe,
            seed=self.cell.seed + FINETUNE_SEED_OFFSET,
            epochs=self.cfg.finetune_epochs,
            max_steps=max_steps,
            progress=self.cfg.progress,
            device=self.cfg.train_device,
        )
        return model, hist

    def finetune(self, slept: ann.MLP, baseline: ann.MLP, stage: str = "sleep_finetune") -> int:
        """Fine-tune the slept network and record ``stage``; its number of steps."""
        if self._done(stage):
            return read_marker(self._marker(stage))["row"]["train_steps"]
        model, hist = self._finetuned(slept)
        self._record(stage, model, {"train_steps": hist.n_steps})
        return hist.n_steps

    def finetune_only(self, baseline: ann.MLP, steps: int) -> None:
        """The control: the baseline fine-tuned for as many steps as the sleep arm."""
        if not self._done("finetune_only"):
            model, hist = self._finetuned(baseline, max_steps=steps)
            if hist.n_steps != steps:
                raise RuntimeError(f"control took {hist.n_steps} steps, sleep arm {steps}")
            self._record("finetune_only", model, {"train_steps": hist.n_steps})

    def strong(self) -> None:
        """The strong recipe trained on the same subset (``--strong``): the bar to beat."""
        if not self.cfg.strong or self._done("strong"):
            return
        model, info = self._trained(ann.get_recipe("strong"), "strong")
        self._record("strong", model, {"train_steps": info["train_steps"]})

    def _run(self) -> None:
        if self.verify():
            return
        # with each stage's line, this lets a log say where a cell's time went
        # (benchmarks/study_breakdown.py)
        log.info("%s started", self.cell.cell_id)
        baseline = self.baseline()
        p = self.search(baseline)
        slept = self.sleep(baseline, p)
        steps = self.finetune(slept, baseline) if self.cfg.finetune_epochs else 0
        if (acting := self._acting_params()) is not None:
            acted = self.sleep(baseline, acting, stage="sleep_acting")
            if self.cfg.finetune_epochs:
                self.finetune(acted, baseline, stage="sleep_acting_finetune")
        if self.cfg.finetune_epochs:
            self.finetune_only(baseline, steps)
        self.strong()
        self._write_confusion()
        markers = [self._marker(s).name for s in self.steps()]
        write_marker(
            self.dir / DONE_MARKER,
            {"subset": self.subset.to_dict(), "fingerprint": self.fingerprint},
            artifacts=[CONFUSION_FILE, *markers],
        )

    def _write_confusion(self) -> None:
        stages, mats = [], []
        for stage in STAGES:
            if stage not in self.steps():
                continue
            try:
                confusion = read_marker(self._marker(stage))["confusion"]
            except IntegrityError:
                continue
            stages.append(stage)
            mats.append(np.asarray(confusion, dtype=np.int64))
        save_confusion(self.dir / CONFUSION_FILE, stages, np.stack(mats))


# -- the Dask tasks of this protocol (brainsleep.experiment.scheduler runs them) ----------

_LAST_RUNNER: dict = {}  # this worker process's last CellRunner and its key


def _worker_runner(cfg_dict: dict, cell: CellKey, out: str) -> CellRunner:
    """The CellRunner of ``cell`` in this worker process (:func:`worker_setup`).

    The last runner is kept (:data:`_LAST_RUNNER`), so the search trials of one cell
    that land on this worker share its engine and its alphas of the baseline."""
    key = (json.dumps(cfg_dict, sort_keys=True, default=str), cell, out)
    if _LAST_RUNNER.get("key") != key:
        _LAST_RUNNER.clear()
        cfg, path, data = worker_setup(cfg_dict, out)
        _LAST_RUNNER.update(key=key, runner=CellRunner(cfg, cell, data[cell.dataset], path))
    return _LAST_RUNNER["runner"]


def cell_task(cfg_dict: dict, cell: CellKey, out: str) -> str:
    """Run (or resume) one cell in a worker process; the Dask task.

    Parameters
    ----------
    cfg_dict : dict
        :meth:`ExperimentConfig.to_dict` of the validated configuration.
    cell : CellKey
        The cell to run.
    out : str
        The results directory, on a filesystem this worker shares with the driver.

    Returns
    -------
    str
        The cell id.
    """
    _worker_runner(cfg_dict, cell, out).run()
    return cell.cell_id


def search_trial_task(cfg_dict: dict, cell: CellKey, out: str, params: dict) -> TrialResult:
    """One search trial of ``cell`` in a worker process; the Dask task.

    Loads the data (once per process) and the baseline the cell recorded, sleeps it
    with ``params`` and scores it on the validation split (:meth:`CellRunner.trial`).
    """
    _check_one_thread()
    runner = _worker_runner(cfg_dict, cell, out)
    log.info("%s: search trial in worker process %d", cell.cell_id, os.getpid())
    result = runner.trial(runner.baseline_model(), params)
    report_trial(cell)  # the driver's bar counts it
    return result


def run_experiment(
    cfg: ExperimentConfig, out: Path, data: dict | None = None, connection=None
) -> str:
    """Run (or resume) every cell; rewrite the metrics after each; return the summary.

    The cells run in this process, or as Dask tasks with ``cfg.workers`` or
    ``cfg.scheduler`` (see :mod:`brainsleep.experiment.scheduler`; Dask workers load the
    data themselves, ``data`` is then unused) through ``connection``
    (:func:`~brainsleep.experiment.scheduler.connect`; made here when None).
    """
    if cfg.protocol == "class-incremental":  # its own steps and table: incremental.py
        from .incremental import run_incremental

        return run_incremental(cfg, out, data, connection)
    if not uses_dask(cfg):
        data = data or load_data(cfg)

    def run_here(cell: CellKey) -> None:
        CellRunner(cfg, cell, data[cell.dataset], out).run()

    def on_done(cell: CellKey) -> None:
        write_metrics(out, collect_metrics(out))

    run_cells(cfg, out, cells(cfg), run_here, on_done, task=cell_task, connection=connection)
    df = collect_metrics(out)
    write_metrics(out, df)
    return f"{summary_table(df)}\n\n{explain(df, cfg.recipe, str(out))}"
