"""A name -> factory registry (timm-style): register with a decorator, build by name.

`build` checks keyword arguments against the factory's signature so a typo in a
hyperparameter fails loudly, listing the allowed names.
"""
import inspect
from typing import Callable

from common.errors import UserError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind  # "loss", "model", "dataset": used in error messages
        self._factories: dict[str, Callable] = {}
        # called once per unknown name before giving up: the loss registry imports researchers'
        # plugin files there (losses/plugins.py), so spawned workers and Slurm jobs find them too
        self.fallback: Callable[[], None] | None = None

    def register(self, name: str | None = None):
        def decorator(factory: Callable) -> Callable:
            key = name or factory.__name__
            if key in self._factories:
                raise KeyError(f"{self.kind} '{key}' registered twice")
            self._factories[key] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        return sorted(self._factories)

    def _known(self, name: str) -> bool:
        if name not in self._factories and self.fallback is not None:
            self.fallback()
        return name in self._factories

    def __contains__(self, name: str) -> bool:
        return self._known(name)

    def get(self, name: str) -> Callable:
        if not self._known(name):
            raise UserError(f"unknown {self.kind} '{name}'; known: {', '.join(self.names())}")
        return self._factories[name]

    def build(self, name: str, **kwargs):
        factory = self.get(name)
        check_kwargs(factory, kwargs, f"{self.kind} '{name}'")
        return factory(**kwargs)


def check_kwargs(factory: Callable, kwargs: dict, what: str) -> None:
    """Raise UserError for keywords the factory does not accept (unless it takes **kwargs)."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise UserError(f"{what} has no hyperparameter {', '.join(unknown)}; allowed: {', '.join(allowed)}")
