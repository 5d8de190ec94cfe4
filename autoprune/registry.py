"""One idiom for every extension point (importance methods, samplers, selection rules,
baselines, model families): a named `Registry` that an entry joins with one decorator, or one
call, and that names what it knows when asked for anything else.
"""

from __future__ import annotations

from typing import TypeVar

from autoprune.errors import UnknownNameError

T = TypeVar("T")


class Registry(dict[str, T]):
    """Entries by name, in the order they were registered (the order listings show)."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what  # "sampler", "selection rule", ...: how errors name an entry

    def register(self, name: str, entry: T | None = None):
        """`@REGISTRY.register("name")` on a function or class, or `register("name", entry)`."""
        if name in self:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        if entry is not None:
            self[name] = entry
            return entry

        def decorator(value: T) -> T:
            self[name] = value
            return value

        return decorator

    def check(self, name: str) -> str:
        """`name` if registered; else a user error listing what is."""
        if name not in self:
            raise UnknownNameError(f"unknown {self.what} {name!r}; known: {', '.join(self)}")
        return name
