"""Figures and tables from brainsleep results (``python -m brainsleep.analysis RESULTS_DIR``).

The command is also installed as ``brainsleep-analysis``; in a checkout ``python -m
analysis`` runs the same code.

The file formats (results-directory layout, cell ids, the stage list, the spike table, the
weights and confusion files) and their readers are :mod:`brainsleep.formats`, shared with
the experiment; this package re-exports the readers it uses. It imports neither Brian2 nor
torch.

Modules, one job each:

- :mod:`analysis.style`: stage colours (:data:`STAGE_COLORS`), figure creation,
  :func:`save_figure` (atomic write + close). Selects the ``Agg`` backend.
- :mod:`analysis.results`: :func:`load_results`, :func:`load_results_many` (merge several
  directories); :func:`load_spikes`,
  :func:`load_weights`, :func:`load_confusion` (from :mod:`brainsleep.formats`).
- :mod:`analysis.spikes`: rasters of every recorded neuron (sorted by activity, time in
  seconds), population firing rates, rate histograms, active fraction per step, spike
  counts in windows (sparse, never densified), on the spike readers of
  :mod:`brainsleep.formats` (:func:`spike_info`, :func:`layer_spikes`,
  :func:`neuron_spike_counts`, :func:`firing_rates`).
- :mod:`analysis.spike_stats`: inter-spike intervals, CV of ISIs and Fano factors per
  layer with Elephant, the spike table as Neo spike trains.
- :mod:`analysis.sparsity`: Hoyer and Treves-Rolls measures, silent neurons, per-layer
  sparsity table, active fraction and population sparseness over sleep time, ANN
  hidden-unit sparsity.
- :mod:`analysis.weights`: weight change tables, histograms, per-pixel change map.
- :mod:`analysis.balance`: per-class accuracy, confusion matrices, prediction entropy.
- :mod:`analysis.accuracy`: mean ± sd over seeds, paired sleep gains, accuracy vs fraction.
- :mod:`analysis.search`: the sleep-parameter search history (``search.csv``): score vs
  trial, rank correlation of each parameter with the validation score.
- :mod:`analysis.report`: :func:`write_report` (all figures + ``summary.md``, whose text is
  :mod:`analysis.report_summary`).
- :mod:`analysis.claims`: the paper's four claims tested per setting (one results
  directory each): paired effects with 95 % CIs over seeds and a verdict per claim.
- :mod:`analysis.claims_report`: ``python -m brainsleep.analysis report``: ``REPORT.md``,
  its figures, ``claims.csv`` and ``metrics_summary.csv``.
- :mod:`analysis.sweep`: what a one-factor-at-a-time sweep (``studies/input_sweep.toml``)
  varies and the gain of sleep per factor value; :mod:`analysis.sweep_figures`: its
  sensitivity curves, input-kind bars and max_rate x T map; :mod:`analysis.sweep_report`:
  ``python -m brainsleep.analysis sweep``, ``SWEEP.md`` and ``sweep.csv``.
- :mod:`analysis.markdown`: the markdown table, report header and file writing every
  report shares.
- :mod:`analysis.remedies`: ``python -m brainsleep.analysis remedies``: the remedies for
  little or imbalanced data ranked with and without sleep (``studies/remedies.toml``),
  ``REMEDIES.md`` and ``remedies.csv``.
"""

from brainsleep.formats import (
    STAGES,
    LayerNotRecordedError,
    SpikeInfo,
    firing_rates,
    layer_spikes,
    neuron_spike_counts,
    spike_info,
)

from .accuracy import (
    aggregate_over_seeds,
    plot_accuracy_vs_fraction,
    plot_gain_vs_fraction,
    plot_vs_fraction,
    stage_gain,
)
from .balance import (
    class_columns,
    confusion_fractions,
    per_class_accuracy,
    plot_confusion,
    plot_per_class_accuracy,
    plot_pred_entropy,
    plot_predicted_distribution,
    predicted_distribution,
    prediction_entropy,
)
from .results import (
    Cell,
    Results,
    ResultsError,
    load_confusion,
    load_results,
    load_results_many,
    load_spikes,
    load_weights,
    read_metrics,
)
from .sparsity import (
    activity_over_time,
    ann_sparsity_table,
    hoyer,
    plot_ann_sparsity,
    plot_sparseness_over_time,
    sparsity_table,
    treves_rolls,
    treves_rolls_sparseness,
)
from .spike_stats import (
    fano_factors,
    interspike_intervals,
    isi_cv,
    plot_isi_cv_fano,
    population_fano_factor,
    spike_train_table,
)
from .spikes import (
    active_fraction_per_step,
    iter_window_counts,
    plot_population_rate,
    plot_raster,
    plot_rate_distribution,
    population_rate,
    raster_order,
    silent_neurons,
)
from .style import STAGE_COLORS, save_figure
from .weights import (
    pixel_weight_change,
    plot_pixel_weight_change,
    plot_weight_change_by_fraction,
    plot_weight_histograms,
    weight_change_table,
)

__all__ = [
    "STAGES",
    "STAGE_COLORS",
    "Cell",
    "LayerNotRecordedError",
    "Results",
    "ResultsError",
    "SpikeInfo",
    "active_fraction_per_step",
    "activity_over_time",
    "aggregate_over_seeds",
    "ann_sparsity_table",
    "class_columns",
    "confusion_fractions",
    "fano_factors",
    "firing_rates",
    "hoyer",
    "interspike_intervals",
    "isi_cv",
    "iter_window_counts",
    "layer_spikes",
    "load_confusion",
    "load_results",
    "load_results_many",
    "load_spikes",
    "load_weights",
    "neuron_spike_counts",
    "per_class_accuracy",
    "pixel_weight_change",
    "plot_accuracy_vs_fraction",
    "plot_ann_sparsity",
    "plot_confusion",
    "plot_gain_vs_fraction",
    "plot_isi_cv_fano",
    "plot_per_class_accuracy",
    "plot_pixel_weight_change",
    "plot_population_rate",
    "plot_pred_entropy",
    "plot_predicted_distribution",
    "plot_rate_distribution",
    "plot_raster",
    "plot_sparseness_over_time",
    "plot_vs_fraction",
    "plot_weight_change_by_fraction",
    "plot_weight_histograms",
    "population_fano_factor",
    "population_rate",
    "predicted_distribution",
    "prediction_entropy",
    "raster_order",
    "read_metrics",
    "save_figure",
    "silent_neurons",
    "sparsity_table",
    "spike_train_table",
    "spike_info",
    "stage_gain",
    "treves_rolls",
    "treves_rolls_sparseness",
    "weight_change_table",
]
