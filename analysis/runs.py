"""Read run directories of the store (results/runs/<run-id>/) into one pandas DataFrame.

    from analysis.runs import load_runs
    df = load_runs(run_ids)                     # these runs (absent ones are left out)
    df = load_runs(tag="kl_vs_mse")             # every run whose config carries that experiment tag

Only `config.json` and `summary.json` of each run directory are read (the outputs.pt of a
run is opened by the figures that need logits or features, through `run_path`). One row
per run directory, indexed by run id:

- config, flattened: experiment (the tag), dataset, dataset_options (JSON text), model, loss, tau,
  alpha (NaN where the loss has none; the loss's defaults filled in), every other loss
  hyperparameter as `hp_<name>`, seed, noise_kind, noise_rate, noise_seed, teachers (tuple of
  run ids), teacher (the first one, or ''), ensemble, recipe (JSON text), epochs, recipe_source;
- `finished` (summary.json present) and `path`;
- summary metrics of finished runs: `final_<metric>` (last epoch: every per-epoch metric),
  `last10_<metric>` (mean of the last 10 epochs), `best_test_top1`, `best_epoch`,
  `train_time_s`, `params`. Unfinished runs have NaN there, never 0.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from engine.rundir import read_json, store_root
from losses import LOSSES, defaults as loss_defaults


def _flatten(config: dict) -> dict:
    loss = config.get("loss", "")
    hp = {**(loss_defaults(loss) if loss in LOSSES else {}), **config.get("loss_hparams", {})}
    noise = config.get("label_noise", {}) or {}
    recipe = config.get("recipe", {}) or {}
    teachers = tuple(config.get("teachers", ()))
    row = {
        "experiment": config.get("experiment", ""),
        "dataset": config.get("dataset", ""),
        "dataset_options": json.dumps(config.get("dataset_options", {}), sort_keys=True),
        "model": config.get("model", ""),
        "loss": config.get("loss", ""),
        "tau": float(hp.pop("tau", math.nan)),
        "alpha": float(hp.pop("alpha", math.nan)),
        "seed": int(config.get("seed", 0)),
        "noise_kind": noise.get("kind", "none"),
        "noise_rate": float(noise.get("rate", 0.0)),
        "noise_seed": int(noise.get("seed", 0)),
        "teachers": teachers,
        "teacher": teachers[0] if teachers else "",
        "ensemble": config.get("ensemble", "mean"),
        "recipe": json.dumps(recipe, sort_keys=True, default=str),
        "epochs": recipe.get("epochs"),
        "recipe_source": recipe.get("source", ""),
    }
    for key, value in hp.items():
        row[f"hp_{key}"] = value
    return row


def _or_nan(value):
    return math.nan if value is None else value


def _summary_columns(summary: dict) -> dict:
    row = {}
    for key, value in (summary.get("final") or {}).items():
        if isinstance(value, (int, float)) and key != "epoch":
            row[f"final_{key}"] = float(value)
    for key, value in (summary.get("last10_mean") or {}).items():
        if isinstance(value, (int, float)) and key != "epochs":
            row[f"last10_{key}"] = float(value)
    best = summary.get("best") or {}
    row["best_test_top1"] = _or_nan(best.get("test_top1"))
    row["best_epoch"] = _or_nan(best.get("epoch"))
    row["train_time_s"] = summary.get("train_time_s", math.nan)
    row["params"] = summary.get("params", math.nan)
    row["epochs_done"] = summary.get("epochs", math.nan)
    return row


def read_run(path: Path) -> dict | None:
    """One run directory as a flat dict, or None when it has no config.json."""
    path = Path(path)
    if not (path / "config.json").exists():
        return None
    row = {"run_id": path.name, **_flatten(read_json(path / "config.json")), "path": str(path)}
    summary_file = path / "summary.json"
    row["finished"] = summary_file.exists()
    if row["finished"]:
        row.update(_summary_columns(read_json(summary_file)))
    return row


def load_runs(run_ids=None, *, root: Path | None = None, tag: str | None = None) -> pd.DataFrame:
    """Runs of the store as a DataFrame indexed by run id: the given ids (absent ones left out),
    or every run (optionally only those tagged `tag`)."""
    store = store_root(Path(root) if root is not None else None)
    paths = (store / rid for rid in dict.fromkeys(run_ids)) if run_ids is not None else sorted(store.glob("*"))
    rows = [row for row in (read_run(p) for p in paths) if row is not None]
    if tag is not None:
        rows = [r for r in rows if r["experiment"] == tag]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["run_id", "experiment", "model", "loss", "tau", "alpha", "seed",
                                     "noise_kind", "noise_rate", "teachers", "finished"]).set_index("run_id")
    return df.set_index("run_id", drop=False)


def run_path(df: pd.DataFrame, run_id: str) -> Path | None:
    """The directory of a finished run in `df`, or None."""
    if run_id not in df.index or not bool(df.loc[run_id, "finished"]):
        return None
    return Path(df.loc[run_id, "path"])
