"""The class-incremental protocol (``--protocol class-incremental``, issue 14): every
variant recorded after every task, forgetting, the joint bound, the search's data, bad
input refused, resume, and its analysis."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainsleep.cli import ANALYSIS_COMMAND
from brainsleep.experiment.__main__ import build_parser, config_from_args, main
from brainsleep.experiment.config import ExperimentConfig, incremental_sleep_steps
from brainsleep.formats import INCREMENTAL_COLUMNS, INCREMENTAL_VARIANTS
from brainsleep.subsets import format_task, parse_tasks, task_split

SLEEP_STEPS = 30


def argv(data_dir, out, *extra):
    return [
        "--protocol", "class-incremental",
        "--data-dir", str(data_dir),
        "--tasks", "0-1", "2-3",
        "--task-size", "30",
        "--hidden", "24", "16",
        "--epochs", "10",
        "--finetune-epochs", "2",
        "--sleep-steps", str(SLEEP_STEPS),
        "--device", "reference",
        "--out", str(out),
        "--no-progress",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """One finished two-task run (seed 0), shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("incremental") / "run"
    assert main(argv(data_dir, out)) == 0
    return out


def cell_files(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("cells/*/*")}


# ------------------------------------------------------------------------- the run


def test_every_variant_is_recorded_after_every_task(run):
    df = pd.read_csv(run / "incremental.csv", dtype={"task": str})
    assert list(df.columns) == INCREMENTAL_COLUMNS
    want = {
        (v, k, t) for v in INCREMENTAL_VARIANTS for k in (1, 2) for t in ("0-1", "2-3", "overall")
    }
    assert set(zip(df["variant"], df["after_task"], df["task"], strict=True)) == want
    assert len(df) == len(want)
    assert df["accuracy"].between(0, 1).all() and df["accuracy_trained"].between(0, 1).all()
    tasks = df[df["task"] != "overall"]
    assert (tasks["n_test"] == 20).all()  # the tiny set: 10 test images per class
    # overall = the seen tasks' test images pooled
    for (_, k), g in df.groupby(["variant", "after_task"]):
        seen = g[(g["task_index"] >= 1) & (g["task_index"] <= k)]
        overall = g[g["task"] == "overall"].iloc[0]
        assert overall["n_test"] == seen["n_test"].sum()
        pooled = (seen["accuracy"] * seen["n_test"]).sum() / seen["n_test"].sum()
        assert overall["accuracy"] == pytest.approx(pooled)
    # sleep only where the variant sleeps; what goes on is what sleep left (sleep variant)
    sleeping = df["variant"].isin(["sleep", "sleep_finetune"])
    assert df.loc[sleeping, "accuracy_slept"].notna().all()
    assert df.loc[~sleeping, "accuracy_slept"].isna().all()
    s = df[df["variant"] == "sleep"]
    np.testing.assert_allclose(s["accuracy"], s["accuracy_slept"])
    # task 1 trains alike in every variant (same initial weights, same seed)
    t1 = df[(df["after_task"] == 1)].set_index(["variant", "task"])["accuracy_trained"]
    for v in INCREMENTAL_VARIANTS:
        assert t1[(v, "0-1")] == t1[("sequential", "0-1")]
    # no forgetting yet after the first task, nor of the task just learnt
    assert df.loc[df["after_task"] == 1, "forgetting"].isna().all()
    assert df.loc[(df["after_task"] == 2) & (df["task"] == "2-3"), "forgetting"].isna().all()
    assert df.loc[(df["after_task"] == 2) & (df["task"] == "0-1"), "forgetting"].notna().all()


def test_files_config_and_sleep_lengths(run):
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert (cfg["protocol"], cfg["tasks"], cfg["task_size"]) == (
        "class-incremental",
        ["0-1", "2-3"],
        30,
    )
    assert cfg["fractions"] == [1.0] and cfg["sleep_preset"] is None
    assert not (run / "metrics.csv").exists()
    cell = run / "cells" / "mnist_f1_none_s0"
    assert (cell / "done.json").is_file()
    for v in INCREMENTAL_VARIANTS:
        for k in (1, 2):
            assert (cell / f"weights_{v}_t{k}.npz").is_file()
            assert (cell / f"stage_{v}_t{k}.json").is_file()
    lengths = [
        json.loads((cell / f"sleep_params_sleep_t{k}.json").read_text())["n_steps"] for k in (1, 2)
    ]
    assert lengths == [SLEEP_STEPS, SLEEP_STEPS + SLEEP_STEPS // 3]
    assert incremental_sleep_steps(15_000, 5) == 35_000  # the reference's last sleep
    params = json.loads((cell / "sleep_params_sleep_t1.json").read_text())
    assert params["preset"] == "mnist_class_incremental"
    assert params["n_images"] == 30  # the first task's training images
    assert json.loads((cell / "sleep_params_sleep_t2.json").read_text())["n_images"] == 60


def test_joint_trains_on_the_union_from_the_initial_weights(run, data_dir):
    from brainsleep import ann
    from brainsleep.experiment.incremental import TRAIN_STREAM, IncrementalRunner, task_seed
    from brainsleep.experiment.pipeline import cells, load_data
    from brainsleep.formats import load_weights

    df = pd.read_csv(run / "incremental.csv", dtype={"task": str})
    n_train = df[df["task"] == "overall"].set_index(["variant", "after_task"])["n_train"]
    assert n_train[("sequential", 1)] == n_train[("sequential", 2)] == 30
    assert n_train[("joint", 1)] == 30 and n_train[("joint", 2)] == 60
    # the same training by hand: fresh weights, the union of both tasks' images
    cfg = config_from_args(build_parser().parse_args(argv(data_dir, run)))
    (cell,) = cells(cfg)
    data = load_data(cfg)["mnist"]
    runner = IncrementalRunner(cfg, cell, data, run)
    union = np.concatenate([t.train_idx for t in runner.tasks])
    assert set(data["y_train"][union]) == {0, 1, 2, 3}
    model = ann.build_model(runner.recipe, runner.sizes, cell.seed)
    ann.train(
        model,
        data["x_train"][union],
        data["y_train"][union],
        runner.recipe,
        seed=task_seed(cell.seed, TRAIN_STREAM, 2),
        progress=False,
    )
    saved = load_weights(run / "cells" / cell.cell_id / "weights_joint_t2.npz")
    for got, want in zip(saved.values(), ann.get_weights(model), strict=True):
        np.testing.assert_array_equal(got, want)
    assert runner.recipe.lr == 0.1 and runner.recipe.epochs == 10  # the script's lr


# ----------------------------------------------------------------------- forgetting


def test_forgetting_on_a_hand_made_table():
    from brainsleep.experiment.incremental import add_forgetting

    # accuracy[after_task][task] of one variant, three tasks
    acc = {1: [0.9, 0.0, 0.0], 2: [0.5, 0.8, 0.1], 3: [0.7, 0.2, 0.95]}
    rows = []
    for k, values in acc.items():
        for j, a in enumerate(values, start=1):
            rows.append({"cell": "c", "variant": "v", "after_task": k, "task": f"t{j}",
                         "task_index": j, "accuracy": a})  # fmt: skip
        rows.append({"cell": "c", "variant": "v", "after_task": k, "task": "overall",
                     "task_index": 0, "accuracy": 0.5})  # fmt: skip
    # another variant in the same cell must not mix in
    rows.append({"cell": "c", "variant": "w", "after_task": 1, "task": "t1",
                 "task_index": 1, "accuracy": 1.0})  # fmt: skip
    df = add_forgetting(pd.DataFrame(rows)).set_index(["variant", "after_task", "task"])
    f = df["forgetting"]
    assert math.isnan(f[("v", 1, "t1")]) and math.isnan(f[("v", 1, "overall")])
    assert f[("v", 2, "t1")] == pytest.approx(0.9 - 0.5)
    assert math.isnan(f[("v", 2, "t2")]) and math.isnan(f[("v", 2, "t3")])
    assert f[("v", 2, "overall")] == pytest.approx(0.4)
    assert f[("v", 3, "t1")] == pytest.approx(0.9 - 0.7)  # best earlier, not the last
    assert f[("v", 3, "t2")] == pytest.approx(0.8 - 0.2)  # from when it was learnt on
    assert math.isnan(f[("v", 3, "t3")])
    assert f[("v", 3, "overall")] == pytest.approx((0.2 + 0.6) / 2)
    assert math.isnan(f[("w", 1, "t1")])


def test_final_table_mean_and_ci_per_variant():
    from scipy import stats

    from analysis.incremental import final_markdown, final_table

    rows = []
    for seed, (a, f) in enumerate([(0.5, 0.3), (0.6, 0.2), (0.7, 0.1)]):
        for k in (1, 2):
            rows.append({"dataset": "mnist", "seed": seed, "variant": "sleep", "after_task": k,
                         "task": "overall", "task_index": 0, "accuracy": a - (2 - k) * 0.3,
                         "forgetting": f if k == 2 else np.nan})  # fmt: skip
    table = final_table(pd.DataFrame(rows))
    (r,) = table.itertuples(index=False)
    assert (r.variant, r.n, r.after_task) == ("sleep", 3, 2)
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert r.accuracy == pytest.approx(0.6) and r.accuracy_hi == pytest.approx(0.6 + half)
    assert r.forgetting == pytest.approx(0.2) and r.forgetting_lo == pytest.approx(0.2 - half)
    assert "| mnist | sleep | 3 | 60.0 [" in final_markdown(table)


def test_answer_sentences_pair_variants_with_sequential_by_seed():
    """Sleep beats sequential in every seed (a gain), sleep + fine-tune equals it up to
    seed noise (no measurable change); the numbers are the paired differences."""
    from analysis.incremental import REFERENCE_STATEMENT, answer_sentences

    accuracy = {
        "sequential": [0.20, 0.21, 0.19],
        "sleep": [0.45, 0.50, 0.40],
        "sleep_finetune": [0.21, 0.20, 0.20],
        "joint": [0.90, 0.91, 0.89],
    }
    rows = [
        {"dataset": "mnist", "seed": seed, "variant": v, "after_task": 2, "task": "overall",
         "task_index": 0, "accuracy": acc[seed]}
        for v, acc in accuracy.items() for seed in range(3)
    ]  # fmt: skip
    (text,) = answer_sentences(pd.DataFrame(rows))
    assert "sleep changes it by 25.0 [" in text and "points, a gain (3 seeds)" in text
    assert "sleep + finetune changes it by 0.3 [" in text
    assert "no measurable change" in text and "joint upper bound reaches 90.0 [" in text
    assert "commits no numbers" in REFERENCE_STATEMENT
    # one seed: a difference, but no interval and so no verdict
    (one,) = answer_sentences(pd.DataFrame([r for r in rows if r["seed"] == 0]))
    assert "sleep changes it by 25.0 [-] points, one seed: no interval (1 seed)" in one
    assert "no measurable change" not in one and "a gain" not in one


# ------------------------------------------------------------------ tasks and data


def test_tasks_parse_and_split():
    assert parse_tasks(["0-1", "2-3", "4,7"]) == [(0, 1), (2, 3), (4, 7)]
    assert [format_task(t) for t in ([0, 1], [0, 1, 2, 7], [5])] == ["0-1", "0-2,7", "5"]
    labels = np.arange(1000) % 10
    train, val = task_split(labels, (0, 1), 50, 0.1, seed=0)
    pool = np.flatnonzero(np.isin(labels, (0, 1)))
    np.testing.assert_array_equal(train, pool[:50])  # the first N in file order
    assert val.size and not np.intersect1d(train, val).size and set(labels[val]) == {0, 1}
    assert task_split(labels, (0, 1), 50)[1].size == 0  # no search: no validation images


def test_search_never_sees_the_test_set(data_dir, tmp_path, monkeypatch):
    from brainsleep import ann
    from brainsleep.experiment import incremental
    from brainsleep.experiment.pipeline import cells, load_data

    seen: list[np.ndarray] = []
    in_trial = []
    score, trial = ann.score, incremental.IncrementalRunner.trial

    def spy_score(model, x, y, *a, **kw):
        if in_trial:
            seen.append(np.array(x))
        return score(model, x, y, *a, **kw)

    def spy_trial(self, *a, **kw):
        in_trial.append(1)
        try:
            return trial(self, *a, **kw)
        finally:
            in_trial.pop()

    monkeypatch.setattr(ann, "score", spy_score)
    monkeypatch.setattr(incremental.IncrementalRunner, "trial", spy_trial)
    out = tmp_path / "search"
    args = argv(data_dir, out, "--search", "2", "--finetune-epochs", "0", "--record-spikes", "none")
    assert main(args) == 0
    cfg = config_from_args(build_parser().parse_args(args))
    data = load_data(cfg)["mnist"]
    train_rows = {r.tobytes() for r in data["x_train"]}
    test_rows = {r.tobytes() for r in data["x_test"]}
    assert len(seen) == 2 * 2  # 2 trials before each of the 2 sleeps of the sleep variant
    for x in seen:
        rows = {r.tobytes() for r in x}
        assert rows <= train_rows and not rows & test_rows
    runner = incremental.IncrementalRunner(cfg, cells(cfg)[0], data, out)
    for task in runner.tasks:
        assert task.val_idx.size and not np.intersect1d(task.val_idx, task.train_idx).size
    # the search of task 2 scores on that task's validation images alone: sequential
    # training has no labels of earlier tasks (issue 30)
    marker = json.loads((out / "cells/mnist_f1_none_s0/stage_search_sleep_t2.json").read_text())
    assert marker["search_val"] == "task"
    assert (
        marker["n_val"] == runner.tasks[1].val_idx.size < sum(t.val_idx.size for t in runner.tasks)
    )
    assert np.array_equal(runner._search_val(runner.tasks[1]), runner.tasks[1].val_idx)
    # --search-val seen: the named upper bound, every task seen so far
    seen_cfg = config_from_args(build_parser().parse_args([*args, "--search-val", "seen"]))
    upper = incremental.IncrementalRunner(seen_cfg, cells(seen_cfg)[0], data, out)
    assert np.array_equal(
        upper._search_val(upper.tasks[1]),
        np.concatenate([t.val_idx for t in upper.tasks[:2]]),
    )
    assert (out / "cells/mnist_f1_none_s0/search_sleep_t1.csv").is_file()


# ---------------------------------------------------------------- bad input, resume


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--protocol", "foo"],
            "--protocol: unknown protocol 'foo'; known: limited, class-incremental",
        ),
        (["--fractions", "0.5"], "--fractions 0.5"),
        (["--strong"], "--strong"),
        (["--imbalance", "5-9:0.1"], "--imbalance"),
        (["--subset", "first"], "--subset first"),
        (["--snn-eval", "5", "--snn-protocol", "x"], "--snn-protocol x"),
        (["--tasks", "0-1", "1-2"], "class 1 is named in task '0-1' too"),
        (["--tasks", "0-10"], "outside 0-9"),
        (["--task-size", "0"], "--task-size 0"),
    ],
)
def test_bad_input_is_one_line_and_nothing_written(extra, message, data_dir, tmp_path, capsys):
    out = tmp_path / "never"
    assert main([*argv(data_dir, out), *extra]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not out.exists()


def test_limited_refuses_the_class_incremental_options(data_dir, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["--data-dir", str(data_dir), "--device", "reference", "--tasks", "0-1",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "--tasks needs --protocol class-incremental" in capsys.readouterr().err
    assert not out.exists()


def test_fingerprint_of_the_limited_protocol_is_unchanged(monkeypatch):
    plain = ExperimentConfig(device="reference")
    fp = plain.fingerprint()
    assert ExperimentConfig(device="reference", protocol="class-incremental").fingerprint() != fp
    to_dict = ExperimentConfig.to_dict
    monkeypatch.setattr(
        ExperimentConfig,
        "to_dict",
        lambda self: {
            k: v for k, v in to_dict(self).items() if k not in ("protocol", "tasks", "task_size")
        },
    )
    assert plain.fingerprint() == fp  # results made before the field existed stay valid


def test_rerun_resumes_without_recomputing(run, data_dir, tmp_path, caplog):
    out = tmp_path / "copy"
    shutil.copytree(run, out)
    before = cell_files(out)
    assert main(argv(data_dir, out)) == 0
    assert cell_files(out) == before  # nothing rewritten
    # a step lost (killed before its marker): that step and the later ones of its variant
    # are redone, nothing else
    cell = out / "cells" / "mnist_f1_none_s0"
    (cell / "stage_sleep_t1.json").unlink()
    old = pd.read_csv(out / "incremental.csv")
    assert main(argv(data_dir, out)) == 0
    after = cell_files(out)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {
        f"cells/mnist_f1_none_s0/{name}"
        for name in (
            "stage_sleep_t1.json", "stage_sleep_t2.json", "weights_sleep_t1.npz",
            "weights_sleep_t2.npz", "sleep_params_sleep_t1.json", "sleep_params_sleep_t2.json",
            "spikes_sleep_t1.nc", "spikes_sleep_t2.nc", "done.json",
        )
    }  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_csv(out / "incremental.csv"), old)  # deterministic


# ------------------------------------------------------------------------ analysis


def test_analysis_draws_a_class_incremental_directory(run, tmp_path, capsys):
    from analysis.__main__ import main as analysis_main

    figures = tmp_path / "figures"
    assert analysis_main([str(run), "--out", str(figures)]) == 0
    assert (figures / "incremental_tasks_mnist.png").stat().st_size > 0
    assert (figures / "incremental_overall_mnist.png").stat().st_size > 0
    summary = (figures / "summary.md").read_text()
    assert "| mnist | sleep_finetune | 1 |" in summary and "joint" in summary
    # the command that made it, and the versions the run recorded
    assert f"    {ANALYSIS_COMMAND} {run} --out {figures}\n" in summary
    versions = json.loads((run / "config.json").read_text())["versions"]
    assert versions and all(f"{k} {v}" in summary for k, v in versions.items())


def test_the_compact_copy_of_a_class_incremental_directory_draws_the_same(run, tmp_path):
    from analysis.__main__ import main as analysis_main

    assert analysis_main(["export", str(run), "--out", str(tmp_path / "runs"), "-q"]) == 0
    copy = tmp_path / "runs" / run.name
    assert not list(copy.rglob("*.npz"))
    for source, figures in ((run, tmp_path / "full"), (copy, tmp_path / "copy")):
        assert analysis_main([str(source), "--out", str(figures), "-q"]) == 0

    def text(figures):  # without the date line (the two may straddle midnight)
        lines = (tmp_path / figures / "summary.md").read_text().splitlines()
        return "\n".join(ln for ln in lines if not ln.startswith("Generated on "))

    full = text("full").replace(str(run), str(copy))
    assert full.replace(str(tmp_path / "full"), str(tmp_path / "copy")) == text("copy")


def test_cells_still_running_are_left_out_of_the_report_and_named(run, tmp_path):
    """A study in progress: incremental.csv already holds the first rows of a cell that
    has not finished (no done.json). Its rows would mix seeds that reached different
    steps into the final table; they are left out and the cell is named."""
    import shutil

    import pandas as pd

    from analysis.__main__ import main as analysis_main
    from analysis.incremental import read_incremental
    from analysis.results import ResultsError

    live = tmp_path / "live"
    shutil.copytree(run, live)
    table = pd.read_csv(live / "incremental.csv", dtype={"task": str})
    first = table[(table["variant"] == "sequential") & (table["after_task"] == 1)].copy()
    first["seed"], first["cell"] = 1, "mnist_f1_none_s1"  # its first task only
    pd.concat([table, first]).to_csv(live / "incremental.csv", index=False)
    (live / "cells" / "mnist_f1_none_s1").mkdir()

    df = read_incremental([live])
    assert set(df["seed"]) == {0} and df.attrs["unfinished"] == ["mnist_f1_none_s1"]
    assert analysis_main([str(live), "--out", str(tmp_path / "fig"), "-q"]) == 0
    summary = (tmp_path / "fig" / "summary.md").read_text()
    assert "Not finished, left out: mnist_f1_none_s1." in summary
    assert "| mnist | sequential | 1 |" in summary  # seed 0 only

    for done in (live / "cells").glob("*/done.json"):
        done.unlink()
    with pytest.raises(ResultsError, match="no cell has finished yet"):
        read_incremental([live])


def test_the_configured_sleep_input_is_the_one_slept_on(data_dir, tmp_path):
    """--sleep-input noise sleeps on noise (issue 29, fault 1): the protocol used to
    build the masked mean image whatever config.json and the fingerprint recorded. The
    masked mean lights at most one 11 x 11 patch (121 pixels) per step; uniform noise
    at intensity 1 lights about half of all 784 pixels."""
    from brainsleep.formats import load_spikes

    def most_pixels_in_a_step(*extra) -> int:
        out = tmp_path / "_".join(extra).replace("=", "")
        args = [*argv(data_dir, out, "--record-spikes", "all", *extra)]
        args[args.index("--tasks") + 1 : args.index("--tasks") + 3] = ["0-1"]
        assert main(args) == 0
        spikes = load_spikes(out / "cells/mnist_f1_none_s0/spikes_sleep_t1.nc")
        steps = spikes["step"].values[spikes["layer"].values == 0]
        return int(np.bincount(steps).max())

    assert most_pixels_in_a_step() <= 121
    noise = most_pixels_in_a_step("--sleep-input", "noise", "--sleep-input-option", "level=1")
    assert noise > 200


def test_the_summary_names_a_search_on_earlier_tasks_labels_an_upper_bound(tmp_path):
    import json

    from analysis.incremental import search_sentence

    def run(name, **config):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"config": config}))
        return d

    assert search_sentence([run("preset", search=0)]) == ""
    # before --search-val existed the search scored on every task seen so far
    old = run("old", search=10)
    assert search_sentence([old]).startswith("**Upper bound:**")
    assert search_sentence([run("seen", search=10, search_val="seen")]).startswith("**Upper")
    own = search_sentence([run("own", search=10, search_val="task")])
    assert "task just learnt" in own and "Upper bound" not in own
