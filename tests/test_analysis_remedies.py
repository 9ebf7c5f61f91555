"""The remedies report on tiny results directories with known rankings and verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.__main__ import main as analysis_main
from analysis.claims import load_settings
from analysis.remedies import NOT_RANKED as RANKED_NOT
from analysis.remedies import adds_sentence, ranking, sleep_adds
from analysis.sweep import stage_metrics
from brainsleep.cli import ANALYSIS_COMMAND
from tests.test_analysis_sweep import write_run

IMB = "5-9x0.1"


@pytest.fixture
def remedy_dirs(tmp_path):
    """MNIST 1 %: augment is the best remedy and sleep adds ~10 points to it. MNIST 10 %
    imbalanced: oversample is the best remedy (balanced accuracy) and sleep adds nothing
    there, although its plain accuracy rises by 10 points (the wrong metric)."""
    lim, imb = ("mnist", 0.01, "none"), ("mnist", 0.1, IMB)
    plain = write_run(
        tmp_path,
        "reference",
        {},
        [
            (*lim, "baseline", (0.30, 0.31, 0.29), None),
            (*lim, "sleep", (0.40, 0.42, 0.41), None),
            (*lim, "finetune_only", (0.33, 0.34, 0.32), None),
        ],
    )
    augment = write_run(
        tmp_path,
        "reference_augment",
        {"remedies": ["augment"]},
        [
            (*lim, "baseline", (0.50, 0.52, 0.51), None),
            (*lim, "sleep", (0.60, 0.61, 0.63), None),
        ],
    )
    mixup = write_run(
        tmp_path,
        "reference_mixup",
        {"remedies": ["mixup"]},
        [
            (*lim, "baseline", (0.45, 0.44, 0.46), None),
            (*lim, "sleep", (0.45, 0.44, 0.46), None),
        ],
    )
    imb_plain = write_run(
        tmp_path,
        "imbalanced_reference",
        {},
        [
            (*imb, "baseline", (0.70, 0.71, 0.72), (0.50, 0.52, 0.51)),
            (*imb, "sleep", (0.72, 0.73, 0.74), (0.60, 0.61, 0.59)),
        ],
    )
    oversample = write_run(
        tmp_path,
        "imbalanced_reference_oversample",
        {"remedies": ["oversample"]},
        [
            (*imb, "baseline", (0.70, 0.71, 0.72), (0.80, 0.82, 0.81)),
            (*imb, "sleep", (0.80, 0.81, 0.82), (0.80, 0.81, 0.83)),
        ],
    )
    weighted = write_run(
        tmp_path,
        "imbalanced_reference_class-weighted",
        {"remedies": ["class-weighted"]},
        [
            (*imb, "baseline", (0.90, 0.91, 0.92), (0.70, 0.71, 0.72)),
            (*imb, "sleep", (0.90, 0.91, 0.92), (0.75, 0.76, 0.77)),
        ],
    )
    return [plain, augment, mixup, imb_plain, oversample, weighted]


def ci(x):
    x = np.asarray(x)
    return stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))


def test_ranking_matches_hand_computation(remedy_dirs):
    settings = load_settings(remedy_dirs)
    ranked = ranking(settings, stage_metrics(settings))
    lim = ranked[ranked["imbalance"] == "none"]
    assert list(lim["arm"]) == [
        "augment + sleep",
        "augment alone",
        "mixup + sleep",
        "mixup alone",
        "sleep alone",
        "fine-tune only",
        "baseline",
    ]
    assert list(lim["rank"]) == [1, 2, 3, 3, 5, 6, 7]  # mixup's two arms tie
    assert set(lim["metric"]) == {"accuracy"}
    row = lim[lim["arm"] == "augment alone"].iloc[0]
    assert row["mean"] == pytest.approx(0.51)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(ci([0.50, 0.52, 0.51]))
    assert row["kind"] == "remedy" and row["setting"] == "reference_augment"
    # imbalanced: ranked by balanced accuracy, not accuracy
    imb = ranked[ranked["imbalance"] == IMB]
    assert set(imb["metric"]) == {"balanced_accuracy"}
    assert list(imb["arm"])[:2] == ["oversample + sleep", "oversample alone"]
    assert imb.loc[imb["arm"] == "class-weighted + sleep", "mean"].item() == pytest.approx(0.76)


def test_sleep_adds_to_the_best_remedy_or_not(remedy_dirs):
    settings = load_settings(remedy_dirs)
    metrics = stage_metrics(settings)
    ranked = ranking(settings, metrics)
    adds = sleep_adds(metrics, ranked)
    on_top = adds[adds["comparison"] == "remedy + sleep - remedy"].set_index("imbalance")
    # 1 %: augment (best alone, 51 %) + sleep - augment = (0.10, 0.09, 0.12) per seed
    lim = on_top.loc["none"]
    assert lim["best_remedy"] == "augment"
    diffs = [0.10, 0.09, 0.12]
    assert lim["mean"] == pytest.approx(np.mean(diffs))
    assert (lim["ci_low"], lim["ci_high"]) == pytest.approx(ci(diffs))
    assert lim["adds"]
    # imbalanced: oversample (81 % balanced) + sleep - oversample = (0, -0.01, 0.02)
    imb = on_top.loc[IMB]
    assert imb["best_remedy"] == "oversample"
    assert imb["mean"] == pytest.approx(np.mean([0.0, -0.01, 0.02]))
    assert not imb["adds"]
    # remedy + sleep - sleep alone, paired by seed across the two runs
    vs = adds[adds["comparison"] == "remedy + sleep - sleep alone"].set_index("imbalance")
    assert vs.loc["none", "mean"] == pytest.approx(np.mean([0.20, 0.19, 0.22]))
    sentences = {
        imb_: adds_sentence(rows, ranked[ranked["imbalance"] == imb_])
        for imb_, rows in adds.groupby("imbalance")
    }
    assert "sleep adds to the best remedy on validation, augment" in sentences["none"]
    assert "sleep does not add to the best remedy on validation, oversample" in sentences[IMB]
    assert "CI reaches 0" in sentences[IMB]
    assert not any("near chance" in x for x in sentences.values())  # 51 % and 81 %


def test_a_best_remedy_near_chance_is_said_with_the_strong_recipe(tmp_path):
    """The reference recipe at 1 % of MNIST can fail to learn: the sentence says that sleep
    then repairs a failed training, and where the strong recipe stands."""
    lim = ("mnist", 0.01, "none")
    plain = write_run(
        tmp_path,
        "reference",
        {},
        [
            (*lim, "baseline", (0.11, 0.12, 0.13), None),
            (*lim, "sleep", (0.14, 0.15, 0.13), None),
            (*lim, "strong", (0.88, 0.89, 0.87), None),
        ],
    )
    mixup = write_run(
        tmp_path,
        "reference_mixup",
        {"remedies": ["mixup"]},
        [
            (*lim, "baseline", (0.12, 0.11, 0.12), None),
            (*lim, "sleep", (0.15, 0.13, 0.14), None),
        ],
    )
    settings = load_settings([plain, mixup])
    metrics = stage_metrics(settings)
    ranked = ranking(settings, metrics)
    text = adds_sentence(sleep_adds(metrics, ranked), ranked)
    assert "mixup alone is near chance, < 20 %: the recipe had not learnt" in text
    assert text.endswith("; the strong recipe reaches 88.0 %.")


def test_setting_without_remedy_is_not_measured(tmp_path):
    d = write_run(
        tmp_path,
        "reference",
        {},
        [
            ("mnist", 0.01, "none", "baseline", (0.3, 0.31, 0.32), None),
            ("mnist", 0.01, "none", "sleep", (0.4, 0.41, 0.43), None),
        ],
    )
    settings = load_settings([d])
    metrics = stage_metrics(settings)
    ranked = ranking(settings, metrics)
    adds = sleep_adds(metrics, ranked)
    assert set(adds["n_seeds"]) == {0} and not adds["adds"].any()
    assert "not measured" in adds_sentence(adds, ranked)


def test_cli_writes_report_tables_and_figure(remedy_dirs, tmp_path):
    out = tmp_path / "rem"
    assert analysis_main(["remedies", *map(str, remedy_dirs), "--out", str(out), "-q"]) == 0
    assert (out / "remedies.png").stat().st_size > 1000
    csv = pd.read_csv(out / "remedies.csv")
    row = csv.query("arm == 'sleep alone' and imbalance == 'none'")
    assert row["mean"].item() == pytest.approx(0.41)
    assert row["rank"].item() == 5 and row["n_seeds"].item() == 3
    adds = pd.read_csv(out / "sleep_adds.csv")
    assert len(adds) == 4
    # above 0: both differences at 1 %, and oversample + sleep - sleep alone when imbalanced
    assert adds["adds"].sum() == 3
    assert not adds.query("comparison == 'remedy + sleep - remedy' and fraction == 0.1")[
        "adds"
    ].item()
    text = (out / "REMEDIES.md").read_text()
    assert "sleep adds to the best remedy on validation, augment" in text
    assert "sleep does not add to the best remedy on validation, oversample" in text
    assert f"{ANALYSIS_COMMAND} remedies" in text


def test_a_second_report_goes_to_its_own_readme_block(remedy_dirs, tmp_path, capsys):
    """``--readme-block``: a second remedies report (another data set's) rewrites its own
    block and leaves the first one alone."""
    from analysis.readme_block import markers

    first, second = markers("remedies", "remedies"), markers("remedies-fashion", "remedies")
    readme = tmp_path / "README.md"
    original = f"{first[0]}\nMNIST numbers\n{first[1]}\n{second[0]}\nold\n{second[1]}\n"
    readme.write_text(original)
    out = tmp_path / "rem"
    argv = ["remedies", *map(str, remedy_dirs), "--out", str(out), "--readme", str(readme)]
    assert analysis_main([*argv, "--readme-block", "remedies-fashion", "-q"]) == 0
    text = readme.read_text()
    assert text.startswith(f"{first[0]}\nMNIST numbers\n{first[1]}\n{second[0]}\nQuoted from")
    assert "\nold\n" not in text and "sleep adds to the best remedy on validation, augment" in text
    # a block the README does not have is refused before anything is written
    readme.write_text(original)
    out2 = tmp_path / "rem2"
    argv[argv.index(str(out))] = str(out2)
    assert analysis_main([*argv, "--readme-block", "remedies-nowhere"]) == 2
    assert "no results block" in capsys.readouterr().err
    assert not out2.exists() and readme.read_text() == original


def test_a_remedy_on_the_strong_recipe_ranks_against_sleep_on_strong_networks(
    remedy_dirs, tmp_path
):
    """logit-adjust needs the strong recipe: its run and the plain strong run form their own
    setting, and its 'remedy + sleep - sleep alone' pairs with the strong networks' sleep,
    never with the reference recipe's."""
    imb = ("mnist", 0.1, IMB)
    strong = write_run(
        tmp_path,
        "imbalanced_strong",
        {"recipe": "strong"},
        [
            (*imb, "baseline", (0.9, 0.9, 0.9), (0.70, 0.72, 0.71)),
            (*imb, "sleep", (0.9, 0.9, 0.9), (0.69, 0.71, 0.70)),
        ],
    )
    logit = write_run(
        tmp_path,
        "imbalanced_strong_logit-adjust",
        {"recipe": "strong", "remedies": ["logit-adjust"]},
        [
            (*imb, "baseline", (0.9, 0.9, 0.9), (0.85, 0.86, 0.87)),
            (*imb, "sleep", (0.9, 0.9, 0.9), (0.80, 0.81, 0.79)),
        ],
    )
    settings = load_settings([*remedy_dirs, strong, logit])
    metrics = stage_metrics(settings)
    ranked = ranking(settings, metrics)
    strong_rows = ranked[ranked["recipe"] == "strong"]
    assert list(strong_rows["arm"]) == [
        "logit-adjust alone",
        "logit-adjust + sleep",
        "baseline",
        "sleep alone",
    ]
    assert list(strong_rows["rank"]) == [1, 2, 3, 4]
    # the reference recipe's imbalanced ranking is unchanged: oversample still leads it
    ref_rows = ranked[(ranked["recipe"] == "reference") & (ranked["imbalance"] == IMB)]
    assert list(ref_rows["arm"])[:2] == ["oversample + sleep", "oversample alone"]
    adds = sleep_adds(metrics, ranked)
    vs = adds[(adds["recipe"] == "strong") & (adds["comparison"] == "remedy + sleep - sleep alone")]
    assert vs["mean"].item() == pytest.approx(np.mean([0.80, 0.81, 0.79]) - 0.70)
    on_top = adds[(adds["recipe"] == "strong") & (adds["comparison"] == "remedy + sleep - remedy")]
    assert on_top["best_remedy"].item() == "logit-adjust"
    assert on_top["mean"].item() == pytest.approx(-0.06) and on_top["ci_high"].item() < 0
    text = adds_sentence(adds[adds["recipe"] == "strong"], strong_rows)
    assert text.startswith("mnist, imbalance 5-9x0.1 at 10 %, strong recipe: sleep does not")


def test_the_ranking_and_the_best_remedy_follow_validation_not_test(tmp_path):
    """Mixup is best on test, augment on validation: augment ranks first and is the best
    remedy (it used to be mixup: the best chosen on the test set)."""
    lim = ("mnist", 0.01, "none")
    runs = [
        write_run(tmp_path, "reference", {}, [(*lim, "baseline", (0.30, 0.31, 0.29), None)]),
        write_run(
            tmp_path,
            "reference_augment",
            {"remedies": ["augment"]},
            [
                (*lim, "baseline", (0.50, 0.52, 0.51), None, (0.70, 0.71, 0.72)),
                (*lim, "sleep", (0.55, 0.56, 0.57), None, (0.60, 0.61, 0.62)),
            ],
        ),
        write_run(
            tmp_path,
            "reference_mixup",
            {"remedies": ["mixup"]},
            [
                (*lim, "baseline", (0.60, 0.61, 0.62), None, (0.50, 0.51, 0.52)),
                (*lim, "sleep", (0.60, 0.61, 0.62), None, (0.50, 0.51, 0.52)),
            ],
        ),
    ]
    settings = load_settings(runs)
    metrics = stage_metrics(settings)
    ranked = ranking(settings, metrics)
    assert list(ranked["arm"])[:2] == ["augment alone", "augment + sleep"]
    assert set(ranked["ranked_on"]) == {"validation"}
    by_test = ranked.sort_values("mean", ascending=False)
    assert by_test["arm"].iloc[0] in ("mixup alone", "mixup + sleep")  # test disagrees
    adds = sleep_adds(metrics, ranked)
    assert set(adds["best_remedy"]) == {"augment"}


def test_without_validation_scores_no_best_is_named(tmp_path):
    lim = ("mnist", 0.01, "none")
    runs = [
        write_run(
            tmp_path,
            name,
            {"remedies": [remedy]},
            [(*lim, "baseline", acc, None), (*lim, "sleep", acc, None)],
            validation=False,
        )
        for name, remedy, acc in (
            ("reference_augment", "augment", (0.5, 0.5, 0.5)),
            ("reference_mixup", "mixup", (0.6, 0.6, 0.6)),
        )
    ]
    settings = load_settings(runs)
    metrics = stage_metrics(settings)
    ranked = ranking(settings, metrics)
    assert set(ranked["ranked_on"]) == {RANKED_NOT}
    adds = sleep_adds(metrics, ranked)
    assert set(adds["best_remedy"]) == {""}
    # nothing is chosen, so sleep on top of every remedy is said
    assert set(adds["remedy"]) == {"augment", "mixup"}
    text = adds_sentence(adds, ranked)
    assert "no remedy is named best" in text
    assert "sleep does not add to augment" in text and "sleep does not add to mixup" in text
