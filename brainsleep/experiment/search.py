"""Sleep-parameter search on the validation split (never the test set), with Optuna.

Trial 0 is the starting point itself (the preset, or the ``--sleep-params`` file),
enqueued into the study, so the search can only match or beat it. A TPE sampler proposes
the others, log-uniformly within :data:`SPAN` around the start (each Optuna parameter is
the factor applied to its start value; :func:`candidate_from` turns factors into sleep
parameters). Every trial reuses one compiled standalone binary through run_args (same
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

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("brainsleep.experiment")

# (low, high) factors of the starting value, sampled log-uniformly; "thresholds" holds
# for every layer's threshold (Optuna parameters threshold_1 .. threshold_L).
SPAN = {
    "max_rate": (0.25, 4.0),
    "inc": (0.01, 10.0),
    "dec": (0.01, 10.0),
    "thresholds": (0.2, 5.0),
    "alpha_scale": (0.2, 5.0),
}
# Smallest centre of the search range: a start of inc = 0 or dec = 0 is still searched.
FLOOR = {"inc": 1e-6, "dec": 1e-6}
SEARCH_STREAM = 7
BATCH = 4  # trials asked together; part of what a seed reproduces
STUDY_NAME = "sleep_search"
JOURNAL = "search.journal"
SCORES = ("val_accuracy", "val_balanced_accuracy")


@dataclass(frozen=True)
class Candidate:
    """One sleep-parameter set of the search (absolute values, not factors)."""

    max_rate: float
    inc: float
    dec: float
    thresholds: tuple[float, ...]
    alpha_scale: float

    @classmethod
    def from_start(cls, start: dict) -> Candidate:
        """The starting parameters themselves, exactly."""
        return cls(
            float(start["max_rate"]),
            float(start["inc"]),
            float(start["dec"]),
            tuple(float(t) for t in start["thresholds"]),
            float(start["alpha_scale"]),
        )

    def to_dict(self) -> dict:
        """The fields as in a parameter set (``thresholds`` a list)."""
        return {
            "max_rate": self.max_rate,
            "inc": self.inc,
            "dec": self.dec,
            "thresholds": list(self.thresholds),
            "alpha_scale": self.alpha_scale,
        }

    def columns(self) -> dict[str, float]:
        """Flat fields for a table: ``thresholds`` as ``threshold_1 .. threshold_L``."""
        out = {"max_rate": self.max_rate, "inc": self.inc, "dec": self.dec}
        out.update({f"threshold_{k}": t for k, t in enumerate(self.thresholds, start=1)})
        out["alpha_scale"] = self.alpha_scale
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
    """

    score: float
    spikes: dict[int, int] = field(default_factory=dict)


def param_names(n_layers: int) -> list[str]:
    """Optuna parameter names: max_rate, inc, dec, threshold_1 .. threshold_L, alpha_scale."""
    return [
        "max_rate",
        "inc",
        "dec",
        *(f"threshold_{k}" for k in range(1, n_layers + 1)),
        "alpha_scale",
    ]


def _span_key(name: str) -> str:
    return "thresholds" if name.startswith("threshold_") else name


def distributions(n_layers: int) -> dict[str, optuna.distributions.FloatDistribution]:
    """The search space: each parameter's factor, log-uniform within :data:`SPAN`."""
    from optuna.distributions import FloatDistribution

    return {
        name: FloatDistribution(*SPAN[_span_key(name)], log=True) for name in param_names(n_layers)
    }


def start_factors(n_layers: int) -> dict[str, float]:
    """Trial 0: every factor 1.0, i.e. the starting parameters."""
    return dict.fromkeys(param_names(n_layers), 1.0)


def candidate_from(start: dict, factors: dict[str, float]) -> Candidate:
    """Sleep parameters from the start and a trial's factors.

    All factors 1.0 give the start exactly (even for a start value 0, which the other
    trials replace by the :data:`FLOOR` of inc and dec, as before).
    """
    first = Candidate.from_start(start)
    if all(v == 1.0 for v in factors.values()):
        return first

    def scaled(name: str, value: float) -> float:
        return float(max(value, FLOOR.get(_span_key(name), 0.0)) * factors[name])

    return Candidate(
        scaled("max_rate", first.max_rate),
        scaled("inc", first.inc),
        scaled("dec", first.dec),
        tuple(scaled(f"threshold_{k}", t) for k, t in enumerate(first.thresholds, start=1)),
        scaled("alpha_scale", first.alpha_scale),
    )


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
    history: Sequence[optuna.trial.FrozenTrial], seed: int, index: int, n_layers: int
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
    return dict(scratch.ask(distributions(n_layers)).params)


def _repair_journal(path: Path) -> None:
    """Drop a last line cut short by a kill: Optuna would glue the next write onto it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        log.warning("%s: dropping a partly written last record", path)
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _storage(path: Path) -> optuna.storages.JournalStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


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


def _evaluate_in_order(
    evaluate_trial: Callable[[Candidate], float | TrialResult], candidates: list[Candidate]
) -> Iterator[tuple[TrialResult, float]]:
    """Results (and seconds taken) in trial order; in-process for now."""
    for cand in candidates:
        t0 = time.perf_counter()
        result = _as_result(evaluate_trial(cand))
        yield result, time.perf_counter() - t0


def history_rows(study: optuna.Study, start: dict, n_trials: int, score_name: str) -> list[dict]:
    """One row per trial of the study (failed ones too), by index then Optuna number.

    Columns: trial (index, 0 = the start), study_trial (Optuna's number), state, score,
    score_name, the parameters (max_rate, inc, dec, threshold_1 .. L, alpha_scale; empty
    when a killed trial never got them), spikes_layer<k> when counted, seconds.
    """
    n_layers = len(start["thresholds"])
    names = param_names(n_layers)
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
            row.update(candidate_from(start, {n: t.params[n] for n in names}).columns())
        else:
            row.update(dict.fromkeys(Candidate.from_start(start).columns(), None))
        for layer, count in sorted(
            t.user_attrs.get("spikes", {}).items(), key=lambda kv: int(kv[0])
        ):
            row[f"spikes_layer{layer}"] = count
        row["seconds"] = t.user_attrs.get("seconds")
        rows.append(row)
    rows.sort(key=lambda r: (r["trial"], r["study_trial"]))
    return rows


def run_search(
    start: dict,
    n_trials: int,
    seed: int,
    evaluate_trial: Callable[[Candidate], float | TrialResult],
    journal: str | Path,
    *,
    score_name: str = "val_accuracy",
    key: str = "",
    batch_size: int = BATCH,
    progress: bool = True,
) -> tuple[Candidate, list[dict]]:
    """Run (or resume) the search; evaluate each trial with ``evaluate_trial``.

    Parameters
    ----------
    start : dict
        Starting parameters (max_rate, inc, dec, thresholds, alpha_scale): trial 0.
    n_trials : int
        Trials in all, trial 0 included (>= 1).
    seed : int
        The cell seed: the same seed gives the same trials, resumed or not.
    evaluate_trial : callable
        ``evaluate_trial(candidate) -> score`` or a :class:`TrialResult`; higher is better.
    journal : str or Path
        Optuna journal file holding the study (created if missing).
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

    Returns
    -------
    best : Candidate
        Highest score; the lowest trial index on ties, so the start wins ties.
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
    n_layers = len(start["thresholds"])
    dists = distributions(n_layers)
    key = fingerprint(
        key=key,
        start=Candidate.from_start(start).to_dict(),
        seed=seed,
        score=score_name,
        span=SPAN,
        floor=FLOOR,
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
                factors = start_factors(n_layers) if i == 0 else propose(earlier, seed, i, n_layers)
                study.enqueue_trial(factors, user_attrs={"index": i})
                asked.append((i, study.ask(dists)))
            cands = [candidate_from(start, t.params) for _, t in asked]
            told = 0
            try:
                for (i, trial), (result, seconds) in zip(
                    asked, _evaluate_in_order(evaluate_trial, cands), strict=True
                ):
                    trial.set_user_attr("seconds", seconds)
                    if result.spikes:
                        trial.set_user_attr(
                            "spikes", {str(k): int(v) for k, v in result.spikes.items()}
                        )
                    done[i] = study.tell(trial, result.score)
                    told += 1
                    bar.update()
            except BaseException:
                for _, trial in asked[told:]:
                    study.tell(trial, state=TrialState.FAIL)
                raise
    history = history_rows(study, start, n_trials, score_name)
    best = max(done.items(), key=lambda kv: (kv[1].value, -kv[0]))[1]
    return candidate_from(start, best.params), history
