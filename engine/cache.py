"""Cached teacher logits: every (image, view) of an enumerable augmentation, computed once.

For a train split whose augmentation is a deterministic function of (image, view id)
(`split.num_views` not None: CIFAR crop pad 4 x flip has 162 views, an unaugmented split 1),
the teacher's logits for every pair are computed once with `split.view(index, views)` (the
exact input the student sees for that pair), stored beside the teacher run as

    <teacher run>/teacher_logits_<key>.pt     {"logits": (N, V, C), "meta": {...}}
    <teacher run>/teacher_logits_<key>.json   sha256 of the .pt, dtype, shape, validation error

and looked up by (index, view) during training (`TeacherBank.lookup`, the engine's
`teacher_bank` hook). The key hashes everything the logits depend on: the teacher's weight
checksum, the data set and its options, the split's size, augmentation and view count, and
the storage dtype; a changed teacher or data set gets a new file, a corrupt file fails its
checksum and is rebuilt.

Storage dtype: float32 when the table takes at most `FP32_LIMIT_BYTES` (then a cached
student run reproduces the online run up to the teacher's batch-composition rounding,
~1e-6), else float16 (CIFAR-100: 50000 x 162 x 100 x 2 B = 1.62 GB instead of 3.24 GB;
relative rounding <= 2^-11, logits of magnitude <= 65504). float16 rather than bfloat16:
logits are small numbers, where float16's 10-bit mantissa is 8x finer than bfloat16's 7.
Lookups are upcast to float32, so the losses compute in float32 either way.

Every load is validated against the online teacher on `VALIDATE_PAIRS` random pairs; the
maximum absolute error and the tolerance are recorded in the .json and in the student's
summary. Ensembles cache each teacher separately and combine (mean / sum) at lookup, exactly
as the online path combines them.
"""
from __future__ import annotations

import hashlib
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock

from common import UserError
from engine.rundir import atomic_torch_save, atomic_write_bytes, sha256_file

FP32_LIMIT_BYTES = 2 << 30      # float32 storage up to 2 GiB per teacher, float16 beyond
BUILD_BATCH = 1024              # (image, view) pairs per teacher forward while building
VALIDATE_PAIRS = 256            # random pairs re-computed online at every load


class TeacherCacheWarning(UserWarning):
    """The augmentation cannot be enumerated: the online teacher is used instead."""


def cache_dtype(n: int, views: int, classes: int) -> torch.dtype:
    return torch.float32 if n * views * classes * 4 <= FP32_LIMIT_BYTES else torch.float16


def tolerance(dtype: torch.dtype, scale: float) -> float:
    """Allowed |cache - online| for logits of magnitude up to `scale`."""
    if dtype == torch.float32:
        return 1e-4 * (1.0 + scale)
    return 2.0 ** -10 * (1.0 + scale) + 1e-3


def cache_key(teacher_sha256: str, dataset: str, dataset_options: dict, split, dtype: torch.dtype) -> str:
    blob = json.dumps({"teacher": teacher_sha256, "dataset": dataset, "options": dataset_options,
                       "n": len(split), "shape": list(split.input_shape), "augment": repr(split.augment),
                       "views": split.num_views, "dtype": str(dtype)}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


@torch.no_grad()
def compute_logits(model, split, device, dtype=torch.float32, batch=BUILD_BATCH) -> torch.Tensor:
    """(N, V, C) logits of `model` on every (image, view) of `split`, in eval mode."""
    n, views = len(split), split.num_views
    pairs_index = torch.arange(n).repeat_interleave(views)
    pairs_view = torch.arange(views).repeat(n)
    out = None
    for start in range(0, n * views, batch):
        idx, v = pairs_index[start:start + batch], pairs_view[start:start + batch]
        z = model(split.view(idx, v).to(device)).logits.float()
        if out is None:
            out = torch.empty(n * views, z.shape[1], dtype=dtype, device=device)
        out[start:start + len(idx)] = z.to(dtype)
    return out.view(n, views, -1)


@torch.no_grad()
def validate(table: torch.Tensor, model, split, device, seed: int = 0, pairs: int = VALIDATE_PAIRS) -> dict:
    """Compare `table` with the online teacher on random (image, view) pairs."""
    gen = torch.Generator().manual_seed(seed)
    n, views = table.shape[:2]
    k = min(pairs, n * views)
    idx = torch.randint(0, n, (k,), generator=gen)
    v = torch.randint(0, views, (k,), generator=gen)
    online = model(split.view(idx, v).to(device)).logits.float()
    cached = table[idx.to(table.device), v.to(table.device)].float().to(online.device)
    err = (cached - online).abs().max().item()
    tol = tolerance(table.dtype, online.abs().max().item())
    return {"pairs": k, "max_abs_err": err, "tolerance": tol, "ok": err <= tol}


@dataclass
class CacheFile:
    path: Path
    logits: torch.Tensor
    info: dict


def load_or_build(teacher, teacher_dir: Path, dataset: str, dataset_options: dict, split, device,
                  quiet: bool = False) -> CacheFile:
    """The cache of one loaded teacher (engine.teachers.LoadedTeacher) for `split`: loaded and
    checked (sha256, shape, validation against the online teacher) or built and saved. Under
    a lock of its own: two students needing the same cache build it once."""
    n, views = len(split), split.num_views
    dtype = cache_dtype(n, views, teacher.num_classes)
    key = cache_key(teacher.sha256, dataset, dataset_options, split, dtype)
    path = Path(teacher_dir) / f"teacher_logits_{key}.pt"
    with FileLock(path.with_suffix(".lock")):
        return _load_or_build(teacher, path, dataset, dataset_options, split, device, dtype, quiet)


def _load_or_build(teacher, path: Path, dataset, dataset_options, split, device, dtype, quiet) -> CacheFile:
    n, views, num_classes = len(split), split.num_views, teacher.num_classes
    meta_path = path.with_suffix(".json")
    logits = None
    if path.exists() and meta_path.exists():
        try:
            info = json.loads(meta_path.read_text())
        except ValueError:          # a torn .json: rebuild
            info = {}
        if sha256_file(path) == info.get("sha256"):
            logits = torch.load(path, map_location="cpu", weights_only=True)["logits"].to(device)
            if tuple(logits.shape) != (n, views, num_classes) or logits.dtype != dtype:
                logits = None
        if logits is None:
            _say(f"teacher cache {path} fails its checksum or shape: rebuilding it", quiet)
    if logits is None:
        _say(f"building the teacher cache {path.name}: {n} images x {views} views "
             f"({n * views} teacher forwards, {str(dtype).removeprefix('torch.')})", quiet)
        logits = compute_logits(teacher.model, split, device, dtype)
        atomic_torch_save({"logits": logits.cpu(), "meta": {"teacher_run": teacher.run_id,
                                                            "teacher_sha256": teacher.sha256}}, path)
        info = {"sha256": sha256_file(path), "teacher_run": teacher.run_id, "teacher_sha256": teacher.sha256,
                "dataset": dataset, "dataset_options": dataset_options, "augment": repr(split.augment),
                "shape": [n, views, num_classes], "dtype": str(dtype).removeprefix("torch.")}
    check = validate(logits, teacher.model, split, device)
    info["validation"] = check
    atomic_write_bytes(meta_path, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())
    if not check["ok"]:
        raise UserError(f"teacher cache {path} differs from the online teacher by {check['max_abs_err']:.3g} "
                        f"(tolerance {check['tolerance']:.3g}); delete it to rebuild it: rm {path} {meta_path}")
    return CacheFile(path, logits, info)


class TeacherBank:
    """`lookup(index, views)` -> (B, C) float32 teacher logits (ensemble combined)."""

    def __init__(self, files: list[CacheFile], ensemble: str = "mean"):
        self.files = files
        self.ensemble = ensemble

    def lookup(self, index: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack([f.logits[index.to(f.logits.device), views.to(f.logits.device)].float()
                               for f in self.files])
        return stacked.mean(0) if self.ensemble == "mean" else stacked.sum(0)

    def describe(self) -> list[dict]:
        return [{"file": f.path.name, "sha256": f.info["sha256"], "dtype": f.info["dtype"],
                 "validation": f.info["validation"]} for f in self.files]


def bank_for(teachers, teacher_dirs, config, split, device, quiet: bool = False) -> TeacherBank | None:
    """A TeacherBank for `config`'s teachers, or None (with a loud warning) when the split's
    augmentation is not enumerable and the online teacher must be used."""
    if split.num_views is None:
        msg = (f"teacher_cache=True but the augmentation {getattr(split, 'augment', split)!r} of {config.dataset} "
               "cannot be enumerated (random noise or random resized crops): FALLING BACK TO THE ONLINE TEACHER "
               "(one teacher forward per batch)")
        warnings.warn(msg, TeacherCacheWarning, stacklevel=3)
        print(f"WARNING: {msg}", file=sys.stderr, flush=True)
        return None
    files = [load_or_build(t, d, config.dataset, config.dataset_options, split, device, quiet)
             for t, d in zip(teachers, teacher_dirs)]
    return TeacherBank(files, config.ensemble)


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, flush=True)
