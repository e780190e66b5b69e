"""Plugin discovery through entry points.

Listing reads entry-point metadata only (no plugin code runs), so ``hookforge --help``, completion
and "did you mean" stay fast. Loading a selected name imports that one component through
stevedore's ``DriverManager``. ``check()`` imports a component module to tell whether it is broken;
component modules keep heavy imports (torch, transformers...) inside functions, so this stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from hookforge.errors import PluginError, did_you_mean

# user-facing kind -> entry-point group
GROUPS: dict[str, str] = {
    "data": "hookforge.data",
    "model": "hookforge.models",
    "loop": "hookforge.loops",
    "tracker": "hookforge.trackers",
    "searcher": "hookforge.searchers",
    "evaluator": "hookforge.evaluators",
    "plugin": "hookforge.plugins",
}
COMPONENT_KINDS = ("data", "model", "loop", "tracker", "searcher", "evaluator")
_ALIASES = {"models": "model", "loops": "loop", "trackers": "tracker", "searchers": "searcher",
            "evaluators": "evaluator", "plugins": "plugin", "datasource": "data", "source": "data"}
# Plugin families declare kinds of their own for parts inside a component (an autoencoder's
# encoder, a language model's task family): an entry point in this group whose name is the kind
# and whose value is the kind's entry-point group, e.g. ``encoder = "hookforge.encoders"``. It is
# read as metadata and never loaded, so declaring a kind costs no import.
KINDS_GROUP = "hookforge.kinds"

DISABLE_ENV = "HOOKFORGE_DISABLE_PLUGINS"


@lru_cache(maxsize=1)
def _declared_kinds() -> tuple[tuple[str, str], ...]:
    """(kind, group) of every sub-component kind installed distributions declare."""
    from importlib.metadata import entry_points

    found: dict[str, str] = {}
    for ep in entry_points(group=KINDS_GROUP):
        group = ep.value.strip()
        if ep.name in GROUPS or not group.startswith("hookforge."):
            continue  # a built-in kind cannot be redeclared; groups stay in hookforge's namespace
        found.setdefault(ep.name, group)
    return tuple(sorted(found.items()))


def groups() -> dict[str, str]:
    """Every kind -> its entry-point group: the six component kinds, hook-only plugins, then the
    declared sub-component kinds (and kinds registered in-process by :func:`declare_kind`)."""
    return {**GROUPS, **dict(_declared_kinds()), **_temporary_kinds}


def sub_kinds() -> list[str]:
    """The declared sub-component kinds (``encoder``, ``task``...)."""
    return [k for k in groups() if k not in GROUPS]


_temporary_kinds: dict[str, str] = {}


@contextmanager
def declare_kind(kind: str, group: str | None = None) -> Iterator[str]:
    """Make ``kind`` a sub-component kind inside the ``with`` block (tests, notebooks); its
    components come from :func:`temporary` or from entry points in ``group``."""
    _temporary_kinds[kind] = group or f"hookforge.{kind}s"
    _installed.cache_clear()
    try:
        yield kind
    finally:
        _temporary_kinds.pop(kind, None)
        _installed.cache_clear()


@dataclass(frozen=True)
class PluginEntry:
    """One component as its entry point declares it; nothing of it has been imported."""

    kind: str
    name: str
    value: str  # "module:attribute"
    distribution: str
    version: str
    disabled: bool = False

    @property
    def module(self) -> str:
        return self.value.split(":", 1)[0]


# Components registered in-process (hookforge.testing, notebooks) on top of the entry points.
_temporary: dict[tuple[str, str], type] = {}
# Errors met while loading, so `hookforge plugins` and later selections report them.
_load_errors: dict[tuple[str, str], str] = {}


def normalize_kind(kind: str) -> str:
    """Accept ``model``/``models``; raise a PluginError naming the kinds for anything else."""
    known = groups()
    key = _ALIASES.get(kind.lower(), kind.lower())
    if key not in known and key.endswith("s") and key[:-1] in known:  # encoders -> encoder
        key = key[:-1]
    if key not in known:
        raise PluginError(f"unknown plugin kind '{kind}'{did_you_mean(kind, known)}; "
                          f"kinds: {', '.join(known)}")
    return key


def _disabled_names() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


@lru_cache(maxsize=1)
def _installed() -> tuple[PluginEntry, ...]:
    from importlib.metadata import distributions

    found: list[PluginEntry] = []
    group_to_kind = {group: kind for kind, group in groups().items()}
    seen: set[tuple[str, str, str]] = set()
    for dist in distributions():
        dist_eps = [ep for ep in dist.entry_points if ep.group in group_to_kind]
        if not dist_eps:
            continue
        dist_name = dist.metadata["Name"] or "?"
        for ep in dist_eps:
            key = (ep.group, ep.name, ep.value)
            if key in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(key)
            found.append(PluginEntry(group_to_kind[ep.group], ep.name, ep.value, dist_name,
                                     dist.version or "?"))
    return tuple(found)


def refresh() -> None:
    """Forget cached metadata (after installing a plugin in the same process)."""
    _installed.cache_clear()
    _declared_kinds.cache_clear()
    _load_errors.clear()


def entries(kind: str | None = None) -> list[PluginEntry]:
    """Every installed (or temporarily registered) component, by kind then name. Metadata only."""
    disabled = _disabled_names()
    result: list[PluginEntry] = []
    for entry in _installed():
        if kind is not None and entry.kind != kind:
            continue
        off = bool({entry.name, f"{entry.kind}:{entry.name}", entry.distribution} & disabled)
        result.append(PluginEntry(entry.kind, entry.name, entry.value, entry.distribution,
                                  entry.version, off))
    for (k, name), cls in _temporary.items():
        if kind is None or k == kind:
            result = [e for e in result if not (e.kind == k and e.name == name)]
            result.append(PluginEntry(k, name, f"{cls.__module__}:{cls.__qualname__}",
                                      "(registered in-process)", "-"))
    order = {k: i for i, k in enumerate(groups())}
    return sorted(result, key=lambda e: (order.get(e.kind, len(order)), e.kind, e.name))


def names(kind: str) -> list[str]:
    """The names a user may select for ``kind``, disabled ones excluded. Metadata only."""
    return [e.name for e in entries(normalize_kind(kind)) if not e.disabled]


def find(kind: str, name: str) -> PluginEntry:
    """The entry for ``kind``/``name``; an unknown name raises with the names that exist."""
    kind = normalize_kind(kind)
    matches = [e for e in entries(kind) if e.name == name]
    if not matches:
        available = names(kind)
        raise PluginError(
            f"unknown {kind} '{name}'{did_you_mean(name, available)}; "
            f"available {kind} plugins: {', '.join(available) or 'none installed'}"
        )
    if len({m.value for m in matches}) > 1:
        owners = ", ".join(f"{m.distribution} ({m.value})" for m in matches)
        raise PluginError(f"{kind} '{name}' is registered by several distributions: {owners}")
    entry = matches[0]
    if entry.disabled:
        raise PluginError(f"{kind} '{name}' is disabled by {DISABLE_ENV}")
    return entry


def load(kind: str, name: str) -> type:
    """Import and return the component class for ``kind``/``name``, and nothing else."""
    kind = normalize_kind(kind)
    if (kind, name) in _temporary and not _disabled_names() & {name, f"{kind}:{name}"}:
        return _temporary[(kind, name)]
    entry = find(kind, name)
    if (kind, name) in _load_errors:
        raise PluginError(f"{kind} '{name}' is broken: {_load_errors[(kind, name)]}")
    errors: list[str] = []

    def on_failure(_manager: Any, _ep: Any, exc: BaseException) -> None:
        errors.append(f"{type(exc).__name__}: {exc}")

    from stevedore import DriverManager

    try:
        manager = DriverManager(groups()[kind], name, invoke_on_load=False,
                                on_load_failure_callback=on_failure,
                                on_missing_entrypoints_callback=lambda names: None)
        cls = manager.driver
    except Exception as exc:  # stevedore raises NoMatches/RuntimeError when the load failed
        errors.append(f"{type(exc).__name__}: {exc}")
        cls = None
    if cls is None or errors:
        message = errors[0] if errors else "the entry point could not be loaded"
        _load_errors[(kind, name)] = f"{message} (from {entry.distribution} {entry.value})"
        raise PluginError(f"{kind} '{name}' is broken: {_load_errors[(kind, name)]}")
    if isinstance(cls, type) and not cls.__dict__.get("plugin_name"):
        cls.plugin_name = name
    return cls


def check(entry: PluginEntry) -> str | None:
    """Import ``entry`` to find out whether it works: None when it loads, else its error."""
    if entry.disabled:
        return None
    try:
        load(entry.kind, entry.name)
    except PluginError as exc:
        return _load_errors.get((entry.kind, entry.name), str(exc))
    return None


@contextmanager
def temporary(kind: str, name: str, cls: type) -> Iterator[type]:
    """Make ``cls`` selectable as ``kind``/``name`` inside the ``with`` block (tests, notebooks)."""
    key = (normalize_kind(kind), name)
    previous = _temporary.get(key)
    _temporary[key] = cls
    if not cls.__dict__.get("plugin_name"):
        cls.plugin_name = name
    try:
        yield cls
    finally:
        if previous is None:
            _temporary.pop(key, None)
        else:
            _temporary[key] = previous
