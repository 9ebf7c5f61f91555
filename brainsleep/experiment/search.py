"""Sleep-parameter search on the validation split (never the test set), with Optuna.

Why one file of this length: the search space, the seeded batch proposals and the
resumable journal are one algorithm, and its determinism argument holds only all together.

Trial 0 is the starting point itself (the preset, or the ``--sleep-params`` file),
enqueued into the study, so the search can only match or beat it. A TPE sampler proposes
the others, log-uniformly around the start within each parameter's declared ``search``
range (:class:`SearchSpace`: each Optuna parameter is the factor applied to its start
value). Every trial reuses one compiled standalone binary through run_args (same
structure, new parameters).

The study is kept in an Optuna journal file (:data:`JOURNAL`) in the cell's directory,
so a killed search resumes: finished trials are never rerun, trials a killed process
left running are marked failed and run again.

Determinism: a TPE sampler carries a random state that a resumed process cannot
restore, so a fresh sampler with the same seed proposes other trials after a resume. Here
each proposal is made by its own ``TPESampler(seed=trial_seed(seed, index))`` in a
scratch in-memory study holding only the finished trials of the earlier batches (trials
are asked in fixed batches of :data:`BATCH`, evaluated, and told in trial order). A
proposal is thus a function of the seed, the trial index and the earlier batches'
results alone: a search interrupted and resumed anywhere gives the same trials and the
same choice as one that ran through, and evaluating a batch in parallel would not change
the result either.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from brainsleep.formats import SEARCH_JOURNAL

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("brainsleep.experiment")

SEARCH_STREAM = 7
BATCH = 4  # trials asked together; part of what a seed reproduces
STUDY_NAME = "sleep_search"
JOURNAL = SEARCH_JOURNAL
SCORES = ("val_accuracy", "val_balanced_accuracy")


@dataclass(frozen=True)
class SearchSpace:
    """What the search explores: every declared parameter with a ``search`` range.

    Built from the declarations (:func:`brainsleep.sleep.params.search_space`: the
    model's ``PARAMETERS`` and the engine's ``alpha_scale``), so a parameter added to a
    model file with a ``search`` range is searched with no other change. Each Optuna
    parameter is the factor applied to its starting value; a per-layer parameter gives
    one Optuna parameter per layer (``v_thresh_1 .. v_thresh_L``).

    Parameters
    ----------
    parameters : dict of str to Parameter
        The searchable declarations, in declaration order.
    n_layers : int
        Number of weight layers.
    """

    parameters: dict
    n_layers: int

    @classmethod
    def for_model(cls, model, n_layers: int, ranges: dict | None = None) -> SearchSpace:
        """The space of ``model`` (a name, path or SleepModel) for ``n_layers`` layers;
        ``ranges`` (``--search-range``: name -> [low, high] factors) replace declared
        ranges by name."""
        from dataclasses import replace

        from brainsleep.sleep.params import search_space

        params = search_space(model)
        for name, (lo, hi) in (ranges or {}).items():
            if name not in params:
                raise ValueError(f"search range for {name}: not a searched parameter")
            params[name] = replace(params[name], search=(float(lo), float(hi)))
        return cls(params, n_layers)

    def _flat(self) -> list[tuple[str, str, int | None]]:
        """(Optuna name, parameter name, layer index or None) for every dimension."""
        out = []
        for name, p in self.parameters.items():
            if p.per_layer:
                out += [(f"{name}_{k + 1}", name, k) for k in range(self.n_layers)]
            else:
                out.append((name, name, None))
        return out

    @property
    def names(self) -> list[str]:
        """Optuna parameter names in a fixed order."""
        return [flat for flat, _, _ in self._flat()]

    def describe(self) -> dict:
        """JSON-able ranges and floors (part of what a seed reproduces)."""
        return {n: [list(p.search), p.search_floor] for n, p in self.parameters.items()}

    def distributions(self) -> dict[str, optuna.distributions.FloatDistribution]:
        """Each dimension's factor, log-uniform within its declared ``search`` range."""
        from optuna.distributions import FloatDistribution

        return {
            flat: FloatDistribution(*self.parameters[name].search, log=True)
            for flat, name, _ in self._flat()
        }

    def start_factors(self) -> dict[str, float]:
        """Trial 0: every factor 1.0, i.e. the starting parameters."""
        return dict.fromkeys(self.names, 1.0)

    def candidate(self, start: dict, factors: dict[str, float]) -> dict:
        """Sleep parameters (a set as in ``models/presets.py``) from a trial's factors.

        All factors 1.0 give the start exactly (even for a start value 0, which the
        other trials replace by the parameter's ``search_floor``). A searched parameter
        the start lacks starts from its declared default.
        """
        base = self.start_values(start)
        if all(v == 1.0 for v in factors.values()):
            return base
        out = dict(base)
        for flat, name, layer in self._flat():
            floor = self.parameters[name].search_floor
            if layer is None:
                out[name] = float(max(base[name], floor) * factors[flat])
            else:
                values = list(out[name])
                values[layer] = float(max(base[name][layer], floor) * factors[flat])
                out[name] = values
        return out

    def start_values(self, start: dict) -> dict:
        """``start`` with every searched parameter present (per-layer ones as lists)."""
        out = dict(start)
        for name, p in self.parameters.items():
            value = out.get(name, p.default)
            if p.per_layer:
                value = list(value) if isinstance(value, list | tuple) else [value] * self.n_layers
                if len(value) != self.n_layers:
                    raise ValueError(
                        f"sleep search: {name} has {len(value)} values for {self.n_layers} layers"
                    )
            out[name] = value if p.per_layer else float(value)
        return out

    def from_columns(self, start: dict, row: dict) -> dict:
        """The parameter set of a table row (the inverse of :meth:`columns`): ``start``
        with every searched value taken from the row's flat fields."""
        out = self.start_values(start)
        for flat, name, layer in self._flat():
            value = float(row[flat])
            if layer is None:
                out[name] = value
            else:
                values = list(out[name])
                values[layer] = value
                out[name] = values
        return out

    def columns(self, candidate: dict | None) -> dict[str, float | None]:
        """Flat fields for a table (per-layer ones as ``name_1 .. name_L``)."""
        out: dict[str, float | None] = {}
        for flat, name, layer in self._flat():
            if candidate is None:
                out[flat] = None
            else:
                out[flat] = candidate[name] if layer is None else candidate[name][layer]
        return out


@dataclass(frozen=True)
class TrialResult:
    """What a trial function returns: the score, and optionally spike counts.

    Attributes
    ----------
    score : float
        Higher is better (validation accuracy or balanced accuracy).
    spikes : dict of int to int
        Total spikes per recorded layer during the trial's sleep; empty if none.
    weights_changed : float or None
        Fraction of synapses the trial's sleep changed
        (:func:`brainsleep.sleep.core.weights_changed`); 0.0 is a no-op. None when
        not measured (a trial that failed its numerics).
    """

    score: float
    spikes: dict[int, int] = field(default_factory=dict)
    weights_changed: float | None = None


def trial_seed(seed: int, index: int) -> int:
    """The sampler seed of trial ``index``: a function of the cell seed and the index."""
    return int(np.random.SeedSequence([seed, SEARCH_STREAM, index]).generate_state(1)[0])


def batches(n_trials: int, size: int = BATCH) -> list[range]:
    """Trial indices in the fixed batches they are asked in."""
    return [range(k, min(k + size, n_trials)) for k in range(0, n_trials, size)]


def fingerprint(arrays: Iterable[np.ndarray] = (), **extra) -> str:
    """sha256 of arrays (shape, dtype, bytes) and JSON-able ``extra``: what scores depend on.

    Parameters
    ----------
    arrays : iterable of ndarray
        E.g. the weights of the network the trials start from.
    **extra
        Any other JSON-able inputs.

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def propose(
    history: Sequence[optuna.trial.FrozenTrial], seed: int, index: int, space: SearchSpace
) -> dict[str, float]:
    """Factors of trial ``index``, by TPE, from the finished trials in ``history``.

    A fresh ``TPESampler(seed=trial_seed(seed, index))`` in a scratch in-memory study
    that holds only ``history``: the result depends on nothing else.
    """
    import optuna

    scratch = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=trial_seed(seed, index))
    )
    scratch.add_trials(history)
    return dict(scratch.ask(space.distributions()).params)


def _repair_journal(path: Path) -> None:
    """Drop a last line cut short by a kill: Optuna would glue the next write onto it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        log.warning("%s: dropping a partly written last record", path)
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


class JournalLock:
    """The journal's writer lock: an OS file lock (``filelock``), released when its process
    dies, so a killed search never leaves a lock that the next run waits on.

    Optuna's own file locks (symlink or exclusive-open) are files whose existence is the
    lock: a process killed while holding one leaves it behind. With a relative journal
    path the symlink lock's stale-lock check cannot even stat its target (the link is
    resolved from its own directory), and the next run retried it forever. Duck-types
    Optuna's ``BaseJournalFileLock`` (``acquire`` / ``release``), which Optuna does not
    export.
    """

    def __init__(self, journal: Path):
        from filelock import FileLock

        self._lock = FileLock(str(journal) + ".flock")

    def acquire(self) -> bool:
        self._lock.acquire()
        return True

    def release(self) -> None:
        self._lock.release()


def _storage(path: Path) -> optuna.storages.JournalStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(path).resolve()
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalLock(path)))


def open_study(path: Path, key: str) -> optuna.Study:
    """Create, or load, the study in the journal ``path``; start over if ``key`` differs.

    Parameters
    ----------
    path : Path
        The journal file.
    key : str
        Fingerprint of everything the trials' scores depend on, stored as the study's
        user attribute ``fingerprint``. A journal written for other inputs (say, a
        retrained baseline) or one Optuna cannot read is removed, with a warning.

    Returns
    -------
    optuna.Study
        Direction maximize, name :data:`STUDY_NAME`.
    """
    import optuna

    def create() -> optuna.Study:
        return optuna.create_study(
            storage=_storage(path),
            study_name=STUDY_NAME,
            direction="maximize",
            # never samples: every trial is enqueued with the factors propose() chose
            sampler=optuna.samplers.RandomSampler(seed=0),
            load_if_exists=True,
        )

    _repair_journal(path)
    try:
        study = create()
        found = study.user_attrs.get("fingerprint")
        trials = study.get_trials(deepcopy=False)
    except Exception as exc:  # any journal Optuna cannot read is started over
        log.warning("%s: unreadable (%s); starting the search over", path, exc)
        found, trials = "unreadable", []
    if found != key and (trials or found is not None):
        if found != "unreadable":
            log.warning("%s: written for other inputs; starting the search over", path)
        path.unlink(missing_ok=True)
        study = create()
    if study.user_attrs.get("fingerprint") != key:
        study.set_user_attr("fingerprint", key)
    return study


def _fail_unfinished(study: optuna.Study) -> int:
    """Mark trials a killed process left running (or enqueued) as failed; how many."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    if stale:
        log.warning(
            "sleep search: %d unfinished trial(s) from a killed run marked failed", len(stale)
        )
    return len(stale)


def _complete(study: optuna.Study, n_trials: int) -> dict[int, optuna.trial.FrozenTrial]:
    """The finished trials by index (0 .. n_trials - 1), the first of each index."""
    from optuna.trial import TrialState

    out: dict[int, optuna.trial.FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        index = t.user_attrs.get("index")
        if isinstance(index, int) and 0 <= index < n_trials and index not in out:
            out[index] = t
    return out


def _as_result(value: float | TrialResult) -> TrialResult:
    result = value if isinstance(value, TrialResult) else TrialResult(float(value))
    if not math.isfinite(result.score):
        raise ValueError(f"sleep search: a trial scored {result.score}; scores must be finite")
    return result


def timed_trial(evaluate_trial: Callable[[dict], float | TrialResult], cand: dict):
    """(result, seconds) of one trial; a top-level function, so it can go to a worker."""
    t0 = time.perf_counter()
    result = _as_result(evaluate_trial(cand))
    return result, time.perf_counter() - t0


def history_rows(
    study: optuna.Study, start: dict, n_trials: int, score_name: str, space: SearchSpace
) -> list[dict]:
    """One row per trial of the study (failed ones too), by index then Optuna number.

    Columns: trial (index, 0 = the start), study_trial (Optuna's number), state, score,
    score_name, the searched parameters (:meth:`SearchSpace.columns`; empty when a killed
    trial never got them), spikes_layer<k> when counted, weights_changed (the fraction
    of synapses the trial's sleep changed; None when not measured), seconds.
    """
    names = space.names
    rows = []
    for t in study.get_trials(deepcopy=False):
        index = t.user_attrs.get("index")
        if not isinstance(index, int) or not 0 <= index < n_trials:
            continue
        row = {
            "trial": index,
            "study_trial": t.number,
            "state": t.state.name,
            "score": t.value,
            "score_name": score_name,
        }
        if set(names) <= set(t.params):
            row.update(space.columns(space.candidate(start, {n: t.params[n] for n in names})))
        else:
            row.update(space.columns(None))
        for layer, count in sorted(
            t.user_attrs.get("spikes", {}).items(), key=lambda kv: int(kv[0])
        ):
            row[f"spikes_layer{layer}"] = count
        row["weights_changed"] = t.user_attrs.get("weights_changed")
        row["seconds"] = t.user_attrs.get("seconds")
        rows.append(row)
    rows.sort(key=lambda r: (r["trial"], r["study_trial"]))
    return rows


def run_search(
    start: dict,
    n_trials: int,
    seed: int,
    evaluate_trial: Callable[[dict], float | TrialResult],
    journal: str | Path,
    *,
    space: SearchSpace,
    score_name: str = "val_accuracy",
    key: str = "",
    batch_size: int = BATCH,
    progress: bool = True,
    map_batch: Callable[[Callable, list], list] | None = None,
) -> tuple[dict, list[dict]]:
    """Run (or resume) the search; evaluate each trial with ``evaluate_trial``.

    Parameters
    ----------
    start : dict
        Starting parameter set by name (as in ``models/presets.py``): trial 0.
    n_trials : int
        Trials in all, trial 0 included (>= 1).
    seed : int
        The cell seed: the same seed gives the same trials, resumed or not.
    evaluate_trial : callable
        ``evaluate_trial(parameter_set) -> score`` or a :class:`TrialResult`; higher is
        better. The set is ``start`` with the searched parameters replaced.
    journal : str or Path
        Optuna journal file holding the study (created if missing).
    space : SearchSpace
        What is searched (:meth:`SearchSpace.for_model`).
    score_name : {"val_accuracy", "val_balanced_accuracy"}
        What the score is, for the records.
    key : str
        Fingerprint of the inputs the scores depend on (see :func:`fingerprint`); a
        journal written under another key is discarded.
    batch_size : int
        Trials asked together (before any of them is told); part of what ``seed``
        reproduces.
    progress : bool
        tqdm bar over the trials.
    map_batch : callable, optional
        ``map_batch(fn, candidates) -> [fn(c) for c in candidates]``, in order, e.g. as
        tasks on a Dask cluster (:func:`brainsleep.experiment.scheduler.map_on_cluster`):
        the trials of a batch then run in parallel. Default: one after the other here.

    Returns
    -------
    best : dict
        The parameter set with the highest score; the lowest trial index on ties, so
        the start wins ties.
    history : list of dict
        One row per trial, see :func:`history_rows`.

    Raises
    ------
    ValueError
        Bad ``n_trials``, ``batch_size`` or ``score_name``, or a non-finite score. An
        exception from ``evaluate_trial`` marks the trials asked but not told as failed
        and propagates; the finished trials stay in the journal.
    """
    import optuna
    from optuna.trial import TrialState
    from tqdm.auto import tqdm

    if n_trials < 1 or batch_size < 1:
        raise ValueError(f"n_trials and batch_size must be >= 1, got {n_trials}, {batch_size}")
    if score_name not in SCORES:
        raise ValueError(f"score_name must be one of {SCORES}, got {score_name!r}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = space.start_values(start)
    dists = space.distributions()
    key = fingerprint(
        key=key,
        start=start,
        seed=seed,
        score=score_name,
        space=space.describe(),
        batch=batch_size,
    )
    study = open_study(Path(journal), key)
    _fail_unfinished(study)
    done = _complete(study, n_trials)
    with tqdm(total=n_trials, initial=len(done), desc="sleep search", disable=not progress) as bar:
        for batch in batches(n_trials, batch_size):
            todo = [i for i in batch if i not in done]
            if not todo:
                continue
            earlier = [done[i] for i in sorted(done) if i < batch.start]
            asked = []
            for i in todo:
                factors = space.start_factors() if i == 0 else propose(earlier, seed, i, space)
                study.enqueue_trial(factors, user_attrs={"index": i})
                asked.append((i, study.ask(dists)))
            cands = [space.candidate(start, t.params) for _, t in asked]
            told = 0
            try:
                timed = functools.partial(timed_trial, evaluate_trial)
                outcomes = map(timed, cands) if map_batch is None else map_batch(timed, cands)
                for (i, trial), (result, seconds) in zip(asked, outcomes, strict=True):
                    trial.set_user_attr("seconds", seconds)
                    if result.spikes:
                        trial.set_user_attr(
                            "spikes", {str(k): int(v) for k, v in result.spikes.items()}
                        )
                    if result.weights_changed is not None:
                        trial.set_user_attr("weights_changed", float(result.weights_changed))
                    done[i] = study.tell(trial, result.score)
                    told += 1
                    bar.update()
            except BaseException:
                for _, trial in asked[told:]:
                    study.tell(trial, state=TrialState.FAIL)
                raise
    history = history_rows(study, start, n_trials, score_name, space)
    best = max(done.items(), key=lambda kv: (kv[1].value, -kv[0]))[1]
    return space.candidate(start, best.params), history


def _ranked(rows: Iterable[dict]) -> dict | None:
    """The finished row with the highest score; the lowest trial index on ties (as
    :func:`run_search` chooses)."""
    done = [r for r in rows if r.get("state") == "COMPLETE" and r.get("score") is not None]
    return max(done, key=lambda r: (r["score"], -r["trial"])) if done else None


def acting_choice(history: Sequence[dict], start: dict, space: SearchSpace) -> dict:
    """Whether the search chose a no-op sleep, and the best trial whose sleep acted.

    A sleep that changed no weight is not sleep (issue 30): when the best trial is a
    no-op, "the search chose not to sleep", and the cell also evaluates the best trial
    that changed weights (the ``sleep_acting`` stage) so that the cost of a sleep that
    acts is measured, chosen on validation like the best.

    Parameters
    ----------
    history : sequence of dict
        :func:`history_rows` of the search.
    start : dict
        The start parameter set (fills the parameters that were not searched).
    space : SearchSpace
        The searched space (turns a row back into a parameter set).

    Returns
    -------
    dict
        ``best_is_noop`` (True, False, or None when the trials did not measure weight
        changes), ``best_weights_changed``, and ``best_acting``: None when no trial acted
        (or none was measured), else ``{"trial", "score", "weights_changed", "params"}``.
    """
    best = _ranked(history)
    changed = None if best is None else best.get("weights_changed")
    acting = _ranked(r for r in history if (r.get("weights_changed") or 0) > 0)
    return {
        "best_is_noop": None if changed is None else changed == 0,
        "best_weights_changed": changed,
        "best_acting": None
        if acting is None
        else {
            "trial": int(acting["trial"]),
            "score": float(acting["score"]),
            "weights_changed": float(acting["weights_changed"]),
            "params": space.from_columns(start, acting),
        },
    }
