"""The results directory: atomic writes, the config guard, resume, tidy metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from brainsleep.atomic import atomic_write_bytes, atomic_write_json, atomic_write_with

METRIC_COLUMNS = [
    "cell",
    "dataset",
    "fraction",
    "imbalance",
    "seed",
    "stage",
    "accuracy",
    "balanced_accuracy",
    *[f"acc_class_{k}" for k in range(10)],
    "pred_entropy",
    "active_frac_h1",
    "active_frac_h2",
    "n_train",
    "n_val",
]


class ResultsDirError(RuntimeError):
    """The results directory belongs to another configuration."""


def save_weights(path: Path, weights) -> None:
    """``weights_<stage>.npz`` with keys layer1..layerL (float64, (n_out, n_in))."""

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **{f"layer{k + 1}": np.asarray(w) for k, w in enumerate(weights)})

    atomic_write_with(path, write)


def load_weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as z:
        return [z[f"layer{k + 1}"] for k in range(len(z.files))]


def check_directory(out: Path, fingerprint: str) -> bool:
    """True when ``out`` holds this configuration's results (resume), False when new.

    Raises ResultsDirError when ``out`` holds results of a different configuration.
    Reads only: safe to call before anything is computed.
    """
    cfg_path = Path(out) / "config.json"
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            raise ResultsDirError(
                f"{cfg_path} is corrupt; remove {out} or pick another --out"
            ) from exc
        if old.get("fingerprint") != fingerprint:
            raise ResultsDirError(
                f"{out} holds results of a different configuration (fingerprint "
                f"{old.get('fingerprint')} != {fingerprint}); pick another --out or remove it"
            )
        return True
    return False


def claim_directory(out: Path, config: dict, fingerprint: str) -> bool:
    """Create or reuse ``out`` for this configuration; True when resuming."""
    if check_directory(out, fingerprint):
        return True
    atomic_write_json(Path(out) / "config.json", {**config, "fingerprint": fingerprint})
    return False


def lock_directory(out: Path):
    """An exclusive lock on ``out`` for the whole run (released when the process ends).

    Raises ResultsDirError when another run holds it.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(Path(out) / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise ResultsDirError(
            f"another run is using {out}; wait for it or pick another --out"
        ) from exc
    return lock


def remove_stale_temp_files(out: Path) -> int:
    """Delete temporary files a killed run left behind (call while holding the lock).

    Every write goes to ``*.tmp`` first and is renamed when complete, so a ``*.tmp``
    file found when no run holds the directory is an interrupted write, never a result.
    """
    stale = list(Path(out).rglob("*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def collect_metrics(out: Path) -> pd.DataFrame:
    """All finished stage rows of all cells, in a stable order."""
    rows = []
    for stage_file in sorted(Path(out).glob("cells/*/stage_*.json")):
        rows.append(json.loads(stage_file.read_text())["row"])
    if not rows:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    df = pd.DataFrame(rows)
    extra = sorted(c for c in df.columns if c not in METRIC_COLUMNS)
    df = df.reindex(columns=METRIC_COLUMNS + extra)
    from .config import STAGES

    df["stage_order"] = df["stage"].map({s: i for i, s in enumerate(STAGES)})
    df = df.sort_values(["dataset", "imbalance", "fraction", "seed", "stage_order"])
    return df.drop(columns="stage_order").reset_index(drop=True)


def write_metrics(out: Path, df: pd.DataFrame) -> None:
    """metrics.csv and metrics.nc (dimension "row"), both atomically."""
    out = Path(out)
    atomic_write_bytes(out / "metrics.csv", df.to_csv(index=False).encode())
    ds = xr.Dataset.from_dataframe(df.rename_axis("row"))
    for name in ds.data_vars:
        if ds[name].dtype == object:
            ds[name] = ds[name].astype(str)
    atomic_write_with(out / "metrics.nc", lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def summary_table(df: pd.DataFrame) -> str:
    """Mean +- sd over seeds per (dataset, imbalance, fraction, stage), as text."""
    if df.empty:
        return "(no finished cells)"
    from .config import STAGES

    g = df.groupby(["dataset", "imbalance", "fraction", "stage"], sort=False)
    agg = g.agg(
        n=("seed", "nunique"),
        acc=("accuracy", "mean"),
        acc_sd=("accuracy", "std"),
        bal=("balanced_accuracy", "mean"),
        bal_sd=("balanced_accuracy", "std"),
    ).reset_index()
    agg["o"] = agg["stage"].map({s: i for i, s in enumerate(STAGES)})
    agg = agg.sort_values(["dataset", "imbalance", "fraction", "o"])
    lines = [
        f"{'dataset':<14}{'imbalance':<12}{'fraction':>9}  {'stage':<15}{'n':>3}  "
        f"{'accuracy %':>16}  {'balanced acc %':>16}"
    ]
    for r in agg.itertuples():
        sd = 0.0 if np.isnan(r.acc_sd) else r.acc_sd
        bsd = 0.0 if np.isnan(r.bal_sd) else r.bal_sd
        lines.append(
            f"{r.dataset:<14}{r.imbalance:<12}{r.fraction:>9.4g}  {r.stage:<15}{r.n:>3}  "
            f"{100 * r.acc:>8.2f} ± {100 * sd:<5.2f}  {100 * r.bal:>8.2f} ± {100 * bsd:<5.2f}"
        )
    return "\n".join(lines)
