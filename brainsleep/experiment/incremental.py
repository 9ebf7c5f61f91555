"""The class-incremental protocol of the original SRC work (``--protocol class-incremental``).

Why one file of this length: the protocol's tasks, variants and records follow the
reference script step by step and read best side by side (most lines compare them).

Tadros, Krishnan, Ramyaa & Bazhenov, "Sleep-like unsupervised replay reduces catastrophic
forgetting in artificial neural networks", *Nature Communications* 13, 7742 (2022), and
the reference code's ``MNIST/run_class_task_summary.m`` and
``FashionMNIST/run_class_task_summary.m`` (github.com/tmtadros/SleepReplayConsolidation):
MNIST or Fashion-MNIST is split into tasks of two classes (0-1, 2-3, 4-5, 6-7, 8-9), learnt
one after the other by one 10-output network, which forgets the earlier tasks; sleep
after each task is meant to reduce that forgetting.

What the reference does, and what is kept here:

- **Tasks and data.** Each task trains on the first 5000 training images of its classes
  in file order (``indices(1:5000)``; ``--task-size``); the test images of a task are
  those of its classes. ``--tasks`` changes the classes and their order.
- **Training.** The reference recipe with the class-incremental script's settings:
  SGD, learning rate 0.1 (not the reduced-data scripts' 0.01), momentum 0.5, batches of
  100, dropout 0.25, 2 epochs per task (``--epochs``). Each task continues from the
  network the previous one left. Differences: a fresh optimiser per task (DeepLearnToolbox
  keeps the momentum buffer in the network); ``--recipe strong`` trains its fixed epochs
  without early stopping.
- **Sleep.** After every task, the network sleeps on the masked mean image of the
  training images of *every task seen so far* (``ismember(tasks, task_order(1:ii))``),
  and the layer scales (alphas) come from the same images. The reference takes all the
  seen classes' training images there; here the images the tasks trained on (the first
  ``--task-size`` of each), so the images beyond them stay unseen for validation. The
  sleep lasts 15000 steps after the first task and a third of that longer after each
  further one (``sleep_period = numiterations + (ii-1)*numiterations/3``; ``--sleep-steps``
  sets the first length). The parameters are the reference's class-incremental set of
  the data set (``mnist_class_incremental``, ``fashion_class_incremental``), or
  ``--sleep-preset``/``--sleep-params``, or a search (below). The next task starts from
  the slept network.
- **Reported.** The reference reports the final accuracy on the whole test set of the
  control (``control_nn``: tasks in sequence, no sleep), the ideal network (``ideal_nn``:
  all training data at once) and the slept network. Here every variant is evaluated
  after every task on each task's test images (unseen tasks too), overall on the test
  images of the tasks seen so far, with the forgetting of each task.

The variants (:data:`~brainsleep.formats.INCREMENTAL_VARIANTS`), each a chain of steps,
one step per task:

``sequential``
    train on the task (the reference's ``control_nn``).
``sleep``
    train on the task, then sleep (the reference's SRC).
``sleep_finetune``
    train, sleep, then fine-tune on the task for ``--finetune-epochs`` epochs (not in
    the reference's class-incremental script, which goes from sleep straight to the next
    task; the limited-data protocol's remedy for what sleep costs; left out with
    ``--finetune-epochs 0``).
``joint``
    the upper bound: a network trained from its initial weights on the training images
    of every task seen so far together (after the last task, the reference's
    ``ideal_nn`` on the same images).

Every network starts from the same initial weights; the training of task ``k`` uses the
same seed in every variant, so ``sequential`` and ``sleep`` train the first task alike.

``--search N`` tunes the sleep parameters before each sleep (each task, each sleeping
variant) with the limited protocol's search (:func:`~brainsleep.experiment.search.run_search`,
:class:`~brainsleep.experiment.search.SearchSpace`): trial 0 is the preset, each trial
sleeps the just-trained network and is scored by its accuracy on the validation images
of the current task (``--search-val task``, the default: all that sequential training
has at that point), or of every task seen so far (``--search-val seen``: an upper bound,
since it uses earlier tasks' labels). Those are ``--val-fraction`` x ``--task-size``
training images per task, drawn from the task's images after the first ``--task-size``
(:func:`~brainsleep.subsets.task_split`); the test set is never used.

Results (the results directory of the limited protocol: ``config.json``, the lock,
resume): per cell (dataset, seed) in ``cells/<cell_id>/`` each step's weights and marker
(``stage_<variant>_t<k>.json``, holding its rows), written atomically after the step, so
a killed run resumes at the first missing step; ``incremental.csv``
(:data:`~brainsleep.formats.INCREMENTAL_COLUMNS`) gathers every step's rows.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainsleep import ann
from brainsleep.atomic import atomic_write_bytes, atomic_write_json, atomic_write_with
from brainsleep.formats import (
    CELLS_DIR,
    DONE_MARKER,
    INCREMENTAL_COLUMNS,
    INCREMENTAL_CSV,
    INCREMENTAL_SNN_COLUMNS,
    INCREMENTAL_VARIANTS,
    OVERALL_TASK,
    CellKey,
    incremental_step,
    load_weights,
    save_weights,
    stage_marker,
    weights_file,
)
from brainsleep.normalize import alphas_for_model
from brainsleep.sleep import (
    save_spikes,
    spike_counts,
)
from brainsleep.sleep.core import weights_changed
from brainsleep.sleep.params import MAX_SEED
from brainsleep.subsets import format_task, parse_tasks, task_split

from .cells import cells
from .config import (
    INCREMENTAL_EPOCHS,
    N_CLASSES,
    ExperimentConfig,
    incremental_sleep_steps,
    preset_name,
    start_params,
)
from .results import (
    IntegrityError,
    read_marker,
    write_marker,
)
from .runner import StepRunner
from .scheduler import run_cells
from .search import TrialResult
from .search import fingerprint as search_fingerprint

log = logging.getLogger("brainsleep.experiment")

#: Learning rate of the reference recipe in the class-incremental script
#: (``nn.learningRate = 0.1`` in run_class_task_summary.m).
REFERENCE_LR = 0.1
#: Streams of the seeds derived per task (:func:`task_seed`).
TRAIN_STREAM, FINETUNE_STREAM, SLEEP_STREAM, VAL_STREAM = 1, 2, 3, 4
#: The variants that sleep (and may search).
SLEEPING = ("sleep", "sleep_finetune")


def task_seed(seed: int, stream: int, task: int) -> int:
    """A seed for one purpose (``stream``) at one task, from the cell's seed.

    Parameters
    ----------
    seed : int
        The cell's seed.
    stream : int
        :data:`TRAIN_STREAM`, :data:`FINETUNE_STREAM`, :data:`SLEEP_STREAM` or
        :data:`VAL_STREAM`.
    task : int
        1-based position of the task.

    Returns
    -------
    int
        In ``0 .. MAX_SEED`` (what the sleep engine takes).
    """
    state = np.random.SeedSequence([int(seed), int(stream), int(task)]).generate_state(1)
    return int(state[0]) % (MAX_SEED + 1)


def incremental_recipe(cfg: ExperimentConfig) -> ann.Recipe:
    """The recipe each task trains with: ``--recipe`` with ``--epochs`` per task (default
    :data:`~brainsleep.experiment.config.INCREMENTAL_EPOCHS`), no early stopping, the
    remedies, and for the reference recipe the class-incremental script's learning rate
    :data:`REFERENCE_LR`."""
    overrides: dict = {
        "epochs": cfg.epochs or INCREMENTAL_EPOCHS,
        "early_stopping_patience": None,
    }
    if cfg.recipe == "reference":
        overrides["lr"] = REFERENCE_LR
    if cfg.remedies:
        overrides["remedies"] = tuple(cfg.remedies)
    return ann.get_recipe(cfg.recipe, **overrides)


@dataclass(frozen=True)
class Task:
    """One task of the sequence: its classes and images.

    Attributes
    ----------
    index : int
        1-based position in the sequence.
    name : str
        Its classes as ``--tasks`` writes them (``"0-1"``).
    train_idx, val_idx : numpy.ndarray
        Indices into the training set (:func:`~brainsleep.subsets.task_split`).
    test_mask : numpy.ndarray
        bool over the test set: the test images of its classes.
    """

    index: int
    name: str
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_mask: np.ndarray


class IncrementalRunner(StepRunner):
    """Runs (or resumes) the class-incremental variants of one cell (dataset, seed).

    Parameters
    ----------
    cfg : ExperimentConfig
        Validated, ``protocol == "class-incremental"``.
    cell : CellKey
        The cell (its fraction is 1, its imbalance ``"none"``).
    data : dict
        ``x_train``, ``y_train``, ``x_test``, ``y_test`` of the cell's data set.
    out : Path
        The results directory.
    """

    def __init__(self, cfg: ExperimentConfig, cell: CellKey, data: dict, out: Path):
        super().__init__(cfg, cell, out)
        self.x_train, self.y_train = data["x_train"], np.asarray(data["y_train"])
        self.x_test, self.y_test = data["x_test"], np.asarray(data["y_test"])
        val_fraction = cfg.val_fraction if cfg.search else 0.0
        self.tasks: list[Task] = []
        for k, classes in enumerate(parse_tasks(cfg.tasks, N_CLASSES), start=1):
            train, val = task_split(
                self.y_train,
                classes,
                cfg.task_size,
                val_fraction,
                seed=task_seed(cell.seed, VAL_STREAM, k),
            )
            mask = np.isin(self.y_test, classes)
            self.tasks.append(Task(k, format_task(classes), train, val, mask))
        self.recipe = incremental_recipe(cfg)
        self.sizes = (self.x_train.shape[1], *cfg.hidden, N_CLASSES)
        self.variants = [
            v for v in INCREMENTAL_VARIANTS if v != "sleep_finetune" or cfg.finetune_epochs
        ]

    # -- the steps and their markers ---------------------------------------------------
    def chain(self, variant: str) -> list[str]:
        """The steps of a variant in order; a search step before each sleep with --search."""
        out = []
        for task in self.tasks:
            step = incremental_step(variant, task.index)
            if self.cfg.search and variant in SLEEPING:
                out.append(f"search_{step}")
            out.append(step)
        return out

    def verify(self) -> bool:
        """Check what earlier runs left; True when the whole cell is done.

        In each variant's chain the first step that is missing or fails verification
        (a warning names the file) and every later step of that variant lose their
        markers, so they are redone; ``done.json`` counts only when everything verifies.
        """
        self.valid = set()
        complete = True
        for variant in self.variants:
            chain = self.chain(variant)
            complete = self._verify_chain(lambda chain=chain: chain) is None and complete
        return self._verify_done(complete)

    # -- running -------------------------------------------------------------------------
    def _run(self) -> None:
        if self.verify():
            return
        for variant in self.variants:
            model: ann.MLP | None = None
            for task in self.tasks:
                step = incremental_step(variant, task.index)
                if step in self.valid:
                    model = None  # loaded when the next step needs it
                    continue
                if model is None and task.index > 1 and variant != "joint":
                    model = self._load(incremental_step(variant, task.index - 1))
                model = self._step(variant, task, model)
        markers = [stage_marker(s) for v in self.variants for s in self.chain(v)]
        write_marker(
            self.dir / DONE_MARKER,
            {
                "tasks": [
                    {"task": t.name, "n_train": int(t.train_idx.size), "n_val": int(t.val_idx.size)}
                    for t in self.tasks
                ],
                "fingerprint": self.fingerprint,
            },
            artifacts=markers,
        )

    def _fresh(self) -> ann.MLP:
        return ann.build_model(self.recipe, self.sizes, self.cell.seed)

    def _load(self, step: str) -> ann.MLP:
        model = self._fresh()
        ann.set_weights(model, list(load_weights(self.dir / weights_file(step)).values()))
        return model

    def _images(self, upto: int, which: str = "train_idx") -> np.ndarray:
        """Training-set indices (``train_idx`` or ``val_idx``) of tasks 1 .. ``upto``."""
        return np.concatenate([getattr(t, which) for t in self.tasks[:upto]])

    def _train(self, model: ann.MLP, idx: np.ndarray, seed: int, epochs: int | None = None):
        model = copy.deepcopy(model)
        hist = ann.train(
            model,
            self.x_train[idx],
            self.y_train[idx],
            self.recipe,
            seed=seed,
            epochs=epochs,
            progress=self.cfg.progress,
            device=self.cfg.train_device,
        )
        return model, hist

    def _step(self, variant: str, task: Task, prev: ann.MLP | None) -> ann.MLP:
        """Run one step of a variant and record it; the network it goes on with."""
        k = task.index
        step = incremental_step(variant, k)
        seed = task_seed(self.cell.seed, TRAIN_STREAM, k)
        if variant == "joint":
            idx = self._images(k)
            model, hist = self._train(self._fresh(), idx, seed)
        else:
            idx = task.train_idx
            model, hist = self._train(prev if prev is not None else self._fresh(), idx, seed)
        trained = model
        extra = {"train_steps": hist.n_steps}
        artifacts: list[str] = []
        slept = None
        if variant in SLEEPING:
            p = self._search(variant, task, trained)
            slept, res, params, norm = self._sleep(
                trained, task, p, self.cfg.record_spikes, self.cfg.progress
            )
            artifacts.append(f"sleep_params_{step}.json")
            atomic_write_json(
                self.dir / artifacts[-1],
                {
                    "params": params.to_dict(),
                    "normalization": norm.to_dict(),
                    "info": res.info,
                    "preset": preset_name(self.cfg, self.cell.dataset),
                    "n_steps": incremental_sleep_steps(self.cfg.sleep_steps, k),
                    "n_images": int(self._images(k).size),
                },
            )
            if self.cfg.record_spikes != "none":
                artifacts.append(f"spikes_{step}.nc")
                save_spikes(res.spikes, self.dir / artifacts[-1])
                extra["sleep_spikes"] = {str(a): b for a, b in spike_counts(res.spikes).items()}
            extra["sleep_weights_changed"] = weights_changed(
                ann.get_weights(trained), ann.get_weights(slept)
            )  # 0.0: a no-op, not sleep
            if self.cfg.snn_eval:
                artifacts.append(f"snn_curve_{step}.csv")
                extra["snn"] = self._snn(trained, slept, task, params, artifacts[-1])
            model = slept
            if variant == "sleep_finetune":
                model, ft = self._train(
                    slept,
                    task.train_idx,
                    task_seed(self.cell.seed, FINETUNE_STREAM, k),
                    epochs=self.cfg.finetune_epochs,
                )
                extra["finetune_steps"] = ft.n_steps
        rows = self._rows(variant, k, model, trained, slept, int(idx.size))
        for row in rows if "snn" in extra else ():
            for network in ("trained", "slept"):
                got = extra["snn"][network]
                row[f"snn_accuracy_{network}"] = (
                    got["accuracy"] if row["task"] == OVERALL_TASK
                    else got["per_task"].get(row["task"], math.nan)
                )  # fmt: skip
        save_weights(self.dir / weights_file(step), ann.get_weights(model))
        write_marker(
            self._marker(step),
            {"rows": rows, "fingerprint": self.fingerprint, **extra},
            artifacts=[weights_file(step), *artifacts],
        )
        self.valid.add(step)
        overall = rows[-1]["accuracy"]
        log.info(
            "%s %-15s after task %d (%s): accuracy on the tasks seen %.4f",
            self.cell.cell_id,
            variant,
            k,
            task.name,
            overall,
        )
        return model

    def _snn(self, trained: ann.MLP, slept: ann.MLP, task: Task, params, curve_file: str) -> dict:
        """The spiking networks of ``trained`` and ``slept`` on the first ``--snn-eval``
        test images of the tasks seen so far (normalised on those tasks' training
        images): accuracy per task and overall, before (``trained``) and after sleep
        (``slept``); the accuracy after every step into ``curve_file``."""
        from .snn import curve_rows, evaluate_network

        k = task.index
        seen = np.flatnonzero(np.logical_or.reduce([t.test_mask for t in self.tasks[:k]]))
        shown = seen[: self.cfg.snn_eval]
        x, y = self.x_test[shown], self.y_test[shown]
        x_norm = self.x_train[self._images(k)]
        out, curves = {}, []
        for network, net in (("trained", trained), ("slept", slept)):
            ev, alphas = evaluate_network(
                self.cfg, self.engine, net, x_norm, x, y, params, self.cell.seed
            )
            correct = ev.predictions == y
            per_task = {
                t.name: float(correct[t.test_mask[shown]].mean())
                for t in self.tasks[:k]
                if t.test_mask[shown].any()
            }
            out[network] = {
                **ev.metrics(""),
                "alphas": list(alphas),
                "per_task": per_task,
            }
            curves += curve_rows(ev, network=network)
        atomic_write_with(
            self.dir / curve_file, lambda tmp: pd.DataFrame(curves).to_csv(tmp, index=False)
        )
        return out

    def _scores(self, model: ann.MLP, upto: int) -> list[float]:
        """Test accuracy on each task, then on the test images of tasks 1 .. ``upto``."""
        pred = ann.evaluate(model, self.x_test, self.y_test).predictions
        correct = pred == self.y_test
        masks = [t.test_mask for t in self.tasks]
        masks.append(np.logical_or.reduce(masks[:upto]))
        return [float(correct[m].mean()) if m.any() else math.nan for m in masks]

    def _rows(
        self,
        variant: str,
        k: int,
        model: ann.MLP,
        trained: ann.MLP,
        slept: ann.MLP | None,
        n_train: int,
    ) -> list[dict]:
        """The step's rows: one per task, then the overall one (forgetting comes later,
        from the whole chain: :func:`add_forgetting`)."""
        acc = self._scores(model, k)
        acc_trained = acc if trained is model else self._scores(trained, k)
        acc_slept = None
        if slept is not None:
            acc_slept = acc if slept is model else self._scores(slept, k)
        names = [(t.name, t.index, int(t.test_mask.sum())) for t in self.tasks]
        seen = np.logical_or.reduce([t.test_mask for t in self.tasks[:k]])
        names.append((OVERALL_TASK, 0, int(seen.sum())))
        rows = []
        for i, (name, index, n_test) in enumerate(names):
            rows.append(
                {
                    "cell": self.cell.cell_id,
                    "dataset": self.cell.dataset,
                    "seed": self.cell.seed,
                    "variant": variant,
                    "after_task": k,
                    "task": name,
                    "task_index": index,
                    "accuracy": acc[i],
                    "accuracy_trained": acc_trained[i],
                    "accuracy_slept": None if acc_slept is None else acc_slept[i],
                    "n_test": n_test,
                    "n_train": n_train,
                }
            )
        return rows

    # -- sleep and search --------------------------------------------------------------
    def _sleep(self, model: ann.MLP, task: Task, p: dict, record: str, progress: bool = False):
        """Sleep ``model`` after ``task`` on the ``--sleep-input`` (the reference's masked
        mean image by default) of the training images of every task seen so far (alphas
        from the same images), with parameter set ``p``; ``(slept, result, params,
        normalization)``."""
        seen = self._images(task.index)
        x = self.x_train[seen]
        return self._sleep_on(
            model,
            alphas_for_model(model, x),
            x,
            self.y_train[seen],
            incremental_sleep_steps(self.cfg.sleep_steps, task.index),
            p,
            task_seed(self.cell.seed, SLEEP_STREAM, task.index),
            record,
            progress,
        )

    def _search(self, variant: str, task: Task, trained: ann.MLP) -> dict:
        """The sleep parameters of this step: the start set, or with ``--search`` the
        best on the validation images of :meth:`_search_val` (search.py's Optuna study,
        one journal per step); writes ``search_<step>.csv`` and its marker."""
        start = start_params(self.cfg, self.cell.dataset)
        if not self.cfg.search:
            return start
        name = f"search_{incremental_step(variant, task.index)}"
        if name in self.valid:
            return read_marker(self._marker(name))["best"]
        val = self._search_val(task)
        key = search_fingerprint(
            ann.get_weights(trained),
            val_idx=val.tolist(),
            cell=self.cell.cell_id,
            step=name,
        )
        return self._search_step(
            name,
            start,
            lambda p: self.trial(trained, task, p),
            key,
            "val_accuracy",
            (f"{name}.csv", f"{name}.journal"),
            extra={"search_val": self.cfg.search_val, "n_val": int(val.size)},
        )

    def _search_val(self, task: Task) -> np.ndarray:
        """The validation images a search after ``task`` scores on (``--search-val``):
        the task's own (``task``), or those of every task seen so far (``seen``)."""
        if self.cfg.search_val == "seen":
            return self._images(task.index, "val_idx")
        return np.asarray(task.val_idx)

    def trial(self, trained: ann.MLP, task: Task, p: dict) -> TrialResult:
        """One search trial: sleep the just-trained network with ``p``; its accuracy on
        the validation images of :meth:`_search_val` (training images, never test)."""
        val = self._search_val(task)
        return self._trial_of(
            trained,
            lambda: self._sleep(trained, task, p, record="hidden"),
            self.x_train[val],
            self.y_train[val],
        )


# -- the table ------------------------------------------------------------------------------


def add_forgetting(df: pd.DataFrame) -> pd.DataFrame:
    """Fill the ``forgetting`` column of an ``incremental.csv`` table.

    The forgetting of task ``j`` after task ``k > j`` is its best accuracy after any
    earlier step since it was learnt (``after_task`` in ``j .. k-1``) minus its accuracy
    after ``k`` (Chaudhry et al. 2018): positive when the task was forgotten. It is
    empty (NaN) for the task just learnt and the tasks not yet seen. An overall row gets
    the mean forgetting of the tasks learnt before it (NaN after the first task).

    Parameters
    ----------
    df : pandas.DataFrame
        Rows with ``cell`` (or ``dataset`` and ``seed``), ``variant``, ``after_task``,
        ``task``, ``task_index`` and ``accuracy``.

    Returns
    -------
    pandas.DataFrame
        A copy with ``forgetting`` set.
    """
    df = df.copy()
    df["forgetting"] = math.nan
    if df.empty:
        return df
    keys = ["cell"] if "cell" in df.columns else ["dataset", "seed"]
    tasks = df["task_index"] > 0
    for _, g in df[tasks].groupby([*keys, "variant", "task_index"], sort=False):
        j = int(g["task_index"].iloc[0])
        g = g.sort_values("after_task")
        steps = g["after_task"].to_numpy()
        acc = g["accuracy"].to_numpy(dtype=float)
        for pos, k in enumerate(steps):
            earlier = acc[(steps >= j) & (steps < k)]
            if k > j and earlier.size:
                df.loc[g.index[pos], "forgetting"] = float(np.nanmax(earlier) - acc[pos])
    means = df[tasks].groupby([*keys, "variant", "after_task"])["forgetting"].mean()
    for idx, row in df[~tasks].iterrows():
        key = (*(row[c] for c in keys), row["variant"], row["after_task"])
        if key in means.index and int(row["after_task"]) > 1:
            df.loc[idx, "forgetting"] = means.loc[key]
    return df


def collect_incremental(out: Path) -> pd.DataFrame:
    """Every finished step's rows of every cell, with forgetting, in a stable order."""
    rows: list[dict] = []
    for marker in sorted(Path(out).glob(f"{CELLS_DIR}/*/{stage_marker('*')}")):
        try:
            rows += read_marker(marker).get("rows", [])
        except IntegrityError:
            continue  # a broken step: its cell redoes it (and the table is rewritten)
    columns = INCREMENTAL_COLUMNS + [
        c for c in INCREMENTAL_SNN_COLUMNS if any(c in r for r in rows)
    ]  # the SNN's only when measured: tables of runs without it read as before
    df = pd.DataFrame(rows, columns=columns)
    df = add_forgetting(df)
    order = {v: i for i, v in enumerate(INCREMENTAL_VARIANTS)}
    df["_v"] = df["variant"].map(order)
    df["_t"] = df["task_index"].where(df["task_index"] > 0, np.iinfo(np.int32).max)
    df = df.sort_values(["dataset", "seed", "_v", "after_task", "_t"], kind="stable")
    return df.drop(columns=["_v", "_t"]).reset_index(drop=True)[columns]


def write_incremental(out: Path, df: pd.DataFrame) -> None:
    """``incremental.csv``, atomically."""
    atomic_write_bytes(Path(out) / INCREMENTAL_CSV, df.to_csv(index=False).encode())


def summary_table(df: pd.DataFrame) -> str:
    """Accuracy on all tasks after the last one and mean forgetting, mean ± sd over
    seeds, per data set and variant, as text."""
    final = df[df["task"] == OVERALL_TASK]
    final = final[final["after_task"] == final.groupby("dataset")["after_task"].transform("max")]
    if final.empty:
        return "(no finished steps)"
    order = {v: i for i, v in enumerate(INCREMENTAL_VARIANTS)}
    lines = [
        f"{'dataset':<14}{'variant':<16}{'n':>3}  {'accuracy after the last task %':>30}  "
        f"{'mean forgetting %':>18}"
    ]
    groups = final.groupby(["dataset", "variant"])
    for (dataset, variant), g in sorted(groups, key=lambda kv: (kv[0][0], order[kv[0][1]])):
        acc = _mean_sd(g["accuracy"])
        forgetting = _mean_sd(g["forgetting"])
        lines.append(
            f"{dataset:<14}{variant:<16}{g['seed'].nunique():>3}  {acc:>30}  {forgetting:>18}"
        )
    lines.append(
        "(after the last task; forgetting: a task's best earlier accuracy minus its last, "
        "mean over the earlier tasks; per task and step: incremental.csv)"
    )
    return "\n".join(lines)


def _mean_sd(values: pd.Series) -> str:
    x = values.dropna().to_numpy(dtype=float)
    if x.size == 0:
        return "-"
    sd = f"{100 * x.std(ddof=1):.2f}" if x.size > 1 else "-"
    return f"{100 * x.mean():.2f} ± {sd}"


# -- the whole run ----------------------------------------------------------------------------


def incremental_cell_task(cfg_dict: dict, cell: CellKey, out: str) -> str:
    """Run (or resume) one class-incremental cell in a Dask worker process (the task
    :func:`~brainsleep.experiment.scheduler.run_cells` submits); the cell id."""
    from .scheduler import worker_setup

    cfg, path, data = worker_setup(cfg_dict, out)
    IncrementalRunner(cfg, cell, data[cell.dataset], path).run()
    return cell.cell_id


def run_incremental(
    cfg: ExperimentConfig, out: Path, data: dict | None = None, connection=None
) -> str:
    """Run (or resume) every cell (dataset, seed) of a class-incremental configuration.

    ``incremental.csv`` is rewritten after each finished cell. The cells run here or on
    Dask like those of the limited protocol (``--workers``, ``--scheduler``).

    Parameters
    ----------
    cfg : ExperimentConfig
        Validated, ``protocol == "class-incremental"``.
    out : Path
        The results directory (the caller holds its lock).
    data : dict, optional
        Per data set, as :func:`~brainsleep.experiment.pipeline.load_data` returns it.
    connection : Connection, optional
        :func:`~brainsleep.experiment.scheduler.connect`'s, for Dask (made when None).

    Returns
    -------
    str
        The summary (:func:`summary_table`).
    """
    from .cells import load_data
    from .scheduler import uses_dask

    if not uses_dask(cfg):
        data = data or load_data(cfg)

    def run_here(cell: CellKey) -> None:
        IncrementalRunner(cfg, cell, data[cell.dataset], out).run()

    def on_done(cell: CellKey) -> None:
        write_incremental(out, collect_incremental(out))

    run_cells(
        cfg, out, cells(cfg), run_here, on_done, task=incremental_cell_task, connection=connection
    )
    df = collect_incremental(out)
    write_incremental(out, df)
    return summary_table(df)
