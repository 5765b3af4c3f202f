"""Losses from a researcher's own file: `--plugin FILE` of reproduce.compare (reproduce/plugins.py).

A plugin is one Python file that registers `DistillLoss` subclasses with `@LOSSES.register("name")`.
`load_file` imports it by path and returns the names it registered; every mistake (no such file,
not a .py file, an exception on import, nothing registered, a name taken) is one UserError, and
whatever the file registered before failing is taken back out of the registry.

Training runs in spawned worker processes and Slurm jobs, which import the loss by name only:
`export` appends the file to $LOGIT_KD_PLUGINS (os.pathsep-separated absolute paths, inherited by
child processes), and the loss registry calls `load_env` when it meets a name it does not know.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

from common import UserError
from losses.base import LOSSES, DistillLoss

PLUGINS_ENV = "LOGIT_KD_PLUGINS"
_LOADED: dict[str, tuple[str, tuple]] = {}      # absolute path -> (sha256, names registered)
_BUSY: set = set()                               # files being imported (a lookup there must not re-import them)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_file(path) -> tuple:
    """Import one plugin file (once per process); returns the loss names it registers."""
    path = Path(path).expanduser().resolve()
    key = str(path)
    if key in _LOADED:
        return _LOADED[key][1]
    if not path.is_file():
        raise UserError(f"plugin {path}: no such file")
    if path.suffix != ".py":
        raise UserError(f"plugin {path}: not a Python file (.py)")
    digest = sha256(path)
    module = f"logit_kd_plugin_{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    before = set(LOSSES._factories)
    _BUSY.add(key)
    try:
        spec = importlib.util.spec_from_file_location(module, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
        names = tuple(sorted(set(LOSSES._factories) - before))
        if not names:
            raise UserError("registers no loss; decorate a DistillLoss subclass with @LOSSES.register('name')")
        bad = [n for n in names if not (isinstance(LOSSES._factories[n], type)
                                        and issubclass(LOSSES._factories[n], DistillLoss))]
        if bad:
            raise UserError(f"registers {', '.join(bad)}, which is not a DistillLoss subclass")
    except BaseException as e:                   # noqa: BLE001  one line whatever the file raised
        for n in set(LOSSES._factories) - before:    # leave the registry as it was
            del LOSSES._factories[n]
        sys.modules.pop(module, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        text = e.args[0] if isinstance(e, KeyError) and e.args else e    # "loss 'kl' registered twice"
        what = str(e) if isinstance(e, UserError) else f"{type(e).__name__} on import: {text}"
        raise UserError(f"plugin {path}: {' '.join(what.split())}") from None
    finally:
        _BUSY.discard(key)
    _LOADED[key] = (digest, names)
    return names


def source_sha256(name: str) -> str:
    """sha256 of the plugin file that registered loss `name` ('' for a built-in loss)."""
    return next((sha for sha, names in _LOADED.values() if name in names), "")


def export(path) -> None:
    """Make spawned workers and Slurm jobs (which inherit the environment) find the file's losses."""
    key = str(Path(path).expanduser().resolve())
    paths = [p for p in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if p]
    if key not in paths:
        os.environ[PLUGINS_ENV] = os.pathsep.join([*paths, key])


def load_env() -> None:
    """Import every file of $LOGIT_KD_PLUGINS not imported yet (the registry's fallback)."""
    for p in os.environ.get(PLUGINS_ENV, "").split(os.pathsep):
        key = str(Path(p).resolve()) if p else ""
        if key and key not in _LOADED and key not in _BUSY:
            load_file(key)
