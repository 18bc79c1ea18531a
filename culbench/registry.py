"""One generic name -> object registry, used for methods, model backends, judges and profiles.

Objects are registered three ways:

* eagerly, with the ``register`` decorator or call;
* lazily, as a ``"package.module:attribute"`` string that is imported on the first
  ``get`` (so ``culbench ls`` never imports torch);
* from installed third-party packages through an entry-point group (``culbench.methods``).

Duplicate names raise, a plugin may not shadow a built-in name, and unknown names raise
with a did-you-mean list.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from culbench.errors import RegistryError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """One registered name.

    Attributes:
        name: the registry key, e.g. ``"dfr"``.
        target: ``"module:attribute"`` for lazy entries, else the qualified name of ``obj``.
        summary: one-line description shown by ``culbench ls``.
        source: ``"builtin"`` or ``"plugin <distribution>==<version>"``.
        obj: the resolved object, ``None`` until first ``get``.
    """

    name: str
    target: str
    summary: str = ""
    source: str = "builtin"
    obj: T | None = field(default=None, repr=False)

    @property
    def is_plugin(self) -> bool:
        return self.source.startswith("plugin")


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"


def _import_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """A named collection of objects of one kind.

    Args:
        kind: human name of what is registered (``"method"``), used in error messages.
        entry_point_group: entry-point group read for third-party plugins, if any.
        check: optional validator ``check(name, obj)`` called on every lazily resolved object;
            raises on misuse. A ``"module:function"`` string is imported on first use, so the
            module defining the registry need not import the one defining the check.
        derive: optional ``derive(name) -> obj | None`` (or ``"module:function"``) for names
            that are not registered but composed of registered ones; what it returns is
            registered under that name (source ``"derived"``).

    Example:
        >>> colours = Registry("colour")
        >>> @colours.register("red")
        ... class Red: ...
        >>> colours.get("red").__name__
        'Red'
        >>> colours.get("rde")
        Traceback (most recent call last):
        ...
        culbench.errors.RegistryError: unknown colour 'rde' (did you mean: red); fix: ...
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        check: Callable[[str, Any], None] | str | None = None,
        list_command: str | None = None,
        derive: Callable[[str], T | None] | str | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._check = check
        self._list_command = list_command or f"culbench ls {kind}s"
        self._entries: dict[str, Entry[T]] = {}
        self._plugins_loaded = entry_point_group is None
        self._discoverers: list[Callable[[Registry[T]], None]] = []
        self._discovered = False
        self._derive = derive

    # -- registration ------------------------------------------------------------------
    def register(
        self, name: str, obj: T | None = None, *, summary: str = "", target: str | None = None
    ) -> Any:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted.

        Re-registering the exact object a lazy entry points to fills that entry in (this is
        what happens when a lazily registered module is imported and its decorator runs).
        """

        def add(value: T) -> T:
            existing = self._entries.get(name)
            if existing is not None:
                if existing.obj is value:
                    return value
                if existing.obj is None and existing.target == (target or _qualified(value)):
                    existing.obj = value
                    return value
                raise RegistryError(
                    f"duplicate {self.kind} name '{name}': already registered by {existing.target}",
                    f"pick another name for {_qualified(value)}",
                )
            doc = (getattr(value, "__doc__", None) or "").strip().splitlines()
            self._entries[name] = Entry(
                name, target or _qualified(value), summary or (doc[0] if doc else ""), "builtin", value
            )
            return value

        return add if obj is None else add(obj)

    def register_lazy(
        self, name: str, target: str, *, summary: str = "", source: str = "builtin"
    ) -> None:
        """Register ``"module:attribute"`` under ``name`` without importing it."""
        if ":" not in target:
            raise RegistryError(
                f"lazy {self.kind} target '{target}' has no ':'", "write it as 'module:attribute'"
            )
        existing = self._entries.get(name)
        if existing is not None and existing.target == target and existing.source == source:
            return  # the module was imported (its decorator ran) before discovery: same entry
        if existing is not None:
            if source.startswith("plugin") and not existing.is_plugin:
                raise RegistryError(
                    f"{source} registers {self.kind} '{name}', which is a built-in name",
                    f"rename the entry point in that package (e.g. '{name}_plugin') "
                    "or uninstall it",
                )
            raise RegistryError(
                f"duplicate {self.kind} name '{name}' ({existing.target} and {target})",
                "give one of them another name",
            )
        self._entries[name] = Entry(name, target, summary, source)

    def add_discoverer(self, discover: Callable[[Registry[T]], None]) -> None:
        """Add a function that registers (lazy) entries the first time names are needed."""
        self._discoverers.append(discover)
        self._discovered = False

    # -- lookup ------------------------------------------------------------------------
    def _ensure(self) -> None:
        if not self._discovered:
            self._discovered = True
            for discover in self._discoverers:
                discover(self)
        if not self._plugins_loaded:
            self._plugins_loaded = True
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        assert self.entry_point_group is not None
        for ep in metadata.entry_points(group=self.entry_point_group):
            dist = getattr(ep, "dist", None)
            source = f"plugin {dist.name}=={dist.version}" if dist else "plugin"
            if ep.name in self._entries and self._entries[ep.name].target == ep.value:
                continue  # the same distribution seen twice on sys.path
            self.register_lazy(ep.name, ep.value, source=source)

    def entries(self) -> Iterator[Entry[T]]:
        """All entries, sorted by name, without importing anything."""
        self._ensure()
        yield from (self._entries[name] for name in sorted(self._entries))

    def names(self) -> list[str]:
        """Sorted registered names."""
        return [entry.name for entry in self.entries()]

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``, without importing it; unknown names raise."""
        self._ensure()
        if name not in self._entries and self._derive is not None:
            self._derived(name)
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.6)
            hint = f" (did you mean: {', '.join(close)})" if close else ""
            raise RegistryError(
                f"unknown {self.kind} '{name}'{hint}",
                f"run `{self._list_command}` to see the {len(self._entries)} available",
            )
        return self._entries[name]

    def _derived(self, name: str) -> None:
        """Register the object ``derive(name)`` builds for a name made of registered ones (a
        composed method, ``esd+l2sp``), if it builds one; it is checked like a loaded entry."""
        if isinstance(self._derive, str):
            self._derive = _import_target(self._derive)
        obj = self._derive(name)  # type: ignore[operator]
        if obj is None:
            return
        self._run_check(name, obj)
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        self._entries[name] = Entry(name, _qualified(obj), doc[0] if doc else "", "derived", obj)

    def get(self, name: str) -> T:
        """Resolve ``name`` to its object, importing lazy entries on first use."""
        entry = self.entry(name)
        if entry.obj is None:
            try:
                entry.obj = _import_target(entry.target)
            except Exception as exc:  # noqa: BLE001 - any failure of third-party code is one line
                raise RegistryError(
                    f"{self.kind} '{name}' ({entry.source}) could not be loaded from "
                    f"{entry.target}: {type(exc).__name__}: {exc}",
                    "fix or reinstall the package that provides it",
                ) from exc
            self._run_check(name, entry.obj)
        return entry.obj

    def _run_check(self, name: str, obj: Any) -> None:
        """The registry's check on a newly resolved object (imported on first use)."""
        if isinstance(self._check, str):
            self._check = _import_target(self._check)
        if self._check is not None:
            self._check(name, obj)

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._entries

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register temporary entries)."""
        self._entries.pop(name, None)
