"""`--teachers released DIR` on the paper scripts: the papers' released teachers instead of
training them.

Paper 2 (and so the comparison and paper 3's CIFAR-100 pairs) distils mdistiller's released
CIFAR-100 teachers and torchvision's ImageNet weights. With `--teachers released DIR` a plan's
teachers that such a file stands for (same data set and normalisation, model, seed 0, clean
labels, the mdistiller / ImageNet teacher recipe) are replaced by imported runs
(engine/imported.py), and every run that learns from them, directly or down a chain, points to
the imported run instead (so its run id changes with the teacher's file); tables call those
teachers "released (mdistiller)" / "released (torchvision)". Other teachers (other seeds of an
ensemble, noisy labels, paper 1's WRN-28-4) are trained as before. `--teachers train` trains
every teacher; without `--teachers`, the paper profile takes the released ones when DIR (default
`download_ckpts/`, where mdistiller's README untars them) holds every file the plan needs.

DIR holds mdistiller's `cifar_teachers/<name>_vanilla/ckpt_epoch_240.pth` (or the
`<name>_vanilla/` folders themselves) and torchvision's files under `torchvision/`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from common import UserError
from engine import RunConfig, RunDir, get_recipe
from engine.imported import SETTINGS, imported_config, import_teacher, label, sha256_bytes
from reproduce.plan import Cell, Table

DEFAULT_DIR = Path("download_ckpts")
MODES = ("train", "released")
MDISTILLER = ("cifar_teachers.tar of mdistiller's GitHub release 'checkpoints' "
              "(github.com/megvii-research/mdistiller/releases/tag/checkpoints), untarred into {dir}")


@dataclass(frozen=True)
class Release:
    format: str
    files: tuple          # where in DIR, the first one found is used (and named when none is there)
    source: str           # where the file comes from


def _torchvision(name: str, file: str, mdistiller_file: str) -> Release:
    return Release("torchvision", (f"torchvision/{file}", f"torchvision/{mdistiller_file}"),
                   f"torchvision's {name} ImageNet weights (IMAGENET1K_V1: the file {file} torchvision downloads, "
                   f"or {mdistiller_file} as mdistiller loads it), copied into {{dir}}/torchvision")


RELEASES = {
    **{("cifar100", m): Release("mdistiller", (f"cifar_teachers/{m}_vanilla/ckpt_epoch_240.pth",
                                               f"{m}_vanilla/ckpt_epoch_240.pth"), MDISTILLER)
       for m in ("resnet56", "resnet110", "resnet32x4", "ResNet50", "wrn_40_2", "vgg13")},
    ("imagenet", "resnet34"): _torchvision("ResNet34", "resnet34-b627a593.pth", "resnet34-333f7ec4.pth"),
    ("imagenet", "resnet50"): _torchvision("ResNet50", "resnet50-0676ba61.pth", "resnet50-19c8e357.pth"),
}


def parse(values) -> tuple[str, Path]:
    """`--teachers` as given (None, [train], [released], [released, DIR]) -> (mode, DIR); mode
    "auto" when not given."""
    if not values:
        return "auto", DEFAULT_DIR
    mode, *rest = values
    if mode not in MODES or len(rest) > (1 if mode == "released" else 0):
        raise UserError(f"--teachers takes 'train' or 'released [DIR]', got {' '.join(values)}")
    return mode, Path(rest[0]) if rest else DEFAULT_DIR


def release_for(c: RunConfig) -> Release | None:
    """The release that stands for the planned teacher `c`, or None (then it is trained)."""
    r = RELEASES.get((c.dataset, c.model))
    if r is None or c.imported or c.teachers or c.loss != "ce" or c.seed != 0 or c.model_options:
        return None
    s = SETTINGS[(r.format, c.dataset)]
    if c.label_noise.kind != "none" or c.dataset_options != s.dataset_options or c.recipe != get_recipe(s.recipe).to_dict():
        return None
    return r


def find(r: Release, folder: Path) -> Path | None:
    return next((folder / f for f in r.files if (folder / f).is_file()), None)


def resolve(plan, mode: str, folder: Path, needed=None):
    """The plan with the released teachers of the runs `needed` (run ids; None: every run) in place
    of trained ones (mode "released", or "auto" at the paper profile when `folder` holds every
    file they need), else the plan as declared."""
    if mode == "train":
        return plan
    every = {c.run_id: c for c in _configs(plan)}
    teaching = {t for c in every.values() for t in c.teachers if needed is None or c.run_id in needed}
    wanted = {rid: (c, release_for(c)) for rid, c in every.items() if rid in teaching and release_for(c)}
    found = {rid: find(r, folder) for rid, (c, r) in wanted.items()}
    if mode == "auto" and (plan.profile.name != "paper" or not wanted or None in found.values()):
        return plan
    if not wanted:
        known = ", ".join(f"{m} ({d})" for d, m in RELEASES)
        raise UserError(f"{plan.paper} at profile {plan.profile.name}: none of its teachers has a released checkpoint "
                        f"(released: {known}); use --teachers train")
    missing = [rid for rid, path in found.items() if path is None]
    if missing:
        c, r = wanted[missing[0]]
        more = f" ({len(missing) - 1} more released teacher(s) missing)" if len(missing) > 1 else ""
        raise UserError(f"missing {folder / r.files[0]}: the released {c.model} teacher ({c.dataset}); it comes from "
                        f"{r.source.format(dir=folder)}{more}")
    mapping = {rid: imported_config(c.model, c.dataset, r.format, sha256_bytes(found[rid].read_bytes()), str(found[rid]))
               for rid, (c, r) in wanted.items()}
    return substitute(plan, mapping, every)


def import_missing(configs, log=print) -> None:
    """Import the files of the planned imported runs that are not in the store yet."""
    for c in configs:
        if c.imported and not RunDir(c).finished:
            rd = import_teacher(c.imported["file"], c.imported["format"], c.model, c.dataset, log=log)
            if rd.path.name != c.run_id:
                raise UserError(f"{c.imported['file']} changed since it was planned (run {rd.path.name}, "
                                f"not {c.run_id}); rerun the command")


# --- the plan, rewritten -------------------------------------------------------------------------
def _configs(plan) -> list[RunConfig]:
    out = []
    _walk(plan, lambda c: out.append(c) or c)
    return out


def substitute(plan, mapping: dict, every: dict):
    """`plan` with each run id of `mapping` replaced by its config, and every run that learns from
    a replaced one (transitively) pointing to the replacement; cells tables relabelled."""
    done = {}

    def new(c: RunConfig) -> RunConfig:
        if c.run_id not in done:
            if c.run_id in mapping:
                done[c.run_id] = mapping[c.run_id]
            elif c.teachers:
                ids = tuple(new(every[t]).run_id if t in every else t for t in c.teachers)
                done[c.run_id] = c if ids == c.teachers else dataclasses.replace(c, teachers=ids)
            else:
                done[c.run_id] = c
        return done[c.run_id]

    return _walk(plan, new)


def _walk(x, fn):
    """x with fn applied to every RunConfig inside dataclasses, dicts, lists and tuples; unchanged
    parts are kept as they are."""
    if isinstance(x, RunConfig):
        return fn(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        changed = {f.name: _walk(getattr(x, f.name), fn) for f in dataclasses.fields(x) if f.init}
        if all(v is getattr(x, k) for k, v in changed.items()):
            return x
        out = dataclasses.replace(x, **changed)
        return _relabel(out) if isinstance(out, Table) and out.kind == "cells" else out
    if isinstance(x, dict):
        out = {k: _walk(v, fn) for k, v in x.items()}
        return x if all(out[k] is x[k] for k in x) else out
    if isinstance(x, (list, tuple)):
        out = [_walk(v, fn) for v in x]
        if all(a is b for a, b in zip(out, x)):
            return x
        return type(x)(*out) if hasattr(x, "_fields") else type(x)(out)
    return x


def _released(v) -> str:
    """The label of a cell whose runs are all imported teachers, else ''."""
    if isinstance(v, Cell) and v.runs and all(r.imported for r in v.runs):
        return label(v.runs[0])
    return ""


def _relabel(t: Table) -> Table:
    """A teacher row (every cell a released teacher) gets ', released (...)' after its 'teacher ...'
    text; else a column of released teachers only gets it in its name; and the note says so."""
    if not any(_released(v) for row in t.rows for v in row.values()):
        return t
    rows, relabelled = [], False
    for row in t.rows:
        cells = [v for v in row.values() if isinstance(v, Cell)]
        row = dict(row)
        if cells and all(_released(v) for v in cells):
            text = [k for k, v in row.items() if isinstance(v, str) and v.lower().startswith("teacher")]
            for k in text or [k for k, v in row.items() if isinstance(v, str) and v][:1]:
                row[k], relabelled = f"{row[k]}, {_released(cells[0])}", True
        rows.append(row)
    columns = list(t.columns)
    if not relabelled:
        for i, col in enumerate(columns):
            values = [r[col] for r in rows if isinstance(r.get(col), Cell)]
            if values and all(_released(v) for v in values):
                name = f"{col}, {_released(values[0])}"
                columns[i] = name
                rows = [{(name if k == col else k): v for k, v in r.items()} for r in rows]
    note = (t.note + " " if t.note else "") + ("Teachers marked released: published checkpoints imported into the "
                                               "run store (engine/imported.py), not trained here.")
    return dataclasses.replace(t, columns=tuple(columns), rows=tuple(rows), note=note)
