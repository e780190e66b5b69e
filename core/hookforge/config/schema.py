"""Validation of a whole config: the top-level sections, then each component section against the
``Config`` of the plugin it names. Everything is checked before any work starts; an error names
the dotted path, the value, what was expected and a "did you mean"."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from hookforge import registry
from hookforge.components import ComponentConfig
from hookforge.config.loader import (
    LIST_SECTIONS,
    apply_overrides,
    apply_shortcuts,
    normalize,
    resolve_relative_paths,
)
from hookforge.errors import ConfigError, PluginError, did_you_mean


class PlotFamilyConfig(ComponentConfig):
    """One figure family's switch over the ``run.plots`` preset."""

    enabled: bool | None = Field(None, description="draw this family (default: the preset says)")
    every_n_epochs: int | None = Field(None, ge=1, description=(
        "also draw it every N epochs while training (default: full preset 5, otherwise only at "
        "the end)"))


class RunSection(ComponentConfig):
    """The ``run`` section: what every run has whatever its components."""

    name: str = Field("run", min_length=1, description="run name, part of the run directory name")
    seed: int = Field(42, ge=0, le=2**32 - 1,
                      description="seeds python, numpy and every plugin's RNGs (0 to 2**32-1)")
    output_dir: str = Field("outputs", description="runs go to OUTPUT_DIR/runs/, searches to OUTPUT_DIR/hpo/")
    progress: bool = Field(True, description="show a progress bar when stderr is a terminal")
    log_every_n_steps: int = Field(50, ge=1, description="aggregate per-step values over this many steps")
    figures: bool | None = Field(None, description="draw PNG figures (default: yes for runs, no for "
                                                   "search trials, where they cost more than they show)")
    plots: Literal["minimal", "standard", "full"] = Field(
        "standard", description="which figure families are drawn: minimal (loss curves), "
        "standard (every family once, at the end), full (also every few epochs)")
    plot_families: dict[str, PlotFamilyConfig] = Field(default_factory=dict, description=(
        "per-family switches over the preset, e.g. {recon: {enabled: true, every_n_epochs: 2}}; "
        "families: losses, metrics and those of the run's components (hookforge plugins show)"))
    system_metrics: bool = Field(True, description="sample CPU, memory and GPU use off the training "
                                                   "thread into the record and every tracker")
    system_metrics_interval_s: float = Field(10.0, gt=0, description="seconds between two samples")
    tags: dict[str, str] = Field(default_factory=dict, description="free-form tags passed to trackers")
    description: str = Field("", description="free text stored in run.json")


SECTIONS: dict[str, str | None] = {  # section -> plugin kind (None: not a component)
    "run": None,
    "data": "data",
    "model": "model",
    "loop": "loop",
    "trackers": "tracker",
    "evaluators": "evaluator",
    "searcher": "searcher",
}


@dataclass
class ComponentSpec:
    """A component selected by a config section, with its class loaded and options validated."""

    kind: str
    name: str
    cls: type
    options: BaseModel
    path: str  # dotted path of the section, for error messages ("trackers.1")

    def create(self) -> Any:
        return self.cls(self.options)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options.model_dump(mode="json")}


@dataclass
class ResolvedConfig:
    """A validated config: the ``run`` section plus one :class:`ComponentSpec` per component."""

    run: RunSection
    data: ComponentSpec | None = None
    model: ComponentSpec | None = None
    loop: ComponentSpec | None = None
    trackers: list[ComponentSpec] = field(default_factory=list)
    evaluators: list[ComponentSpec] = field(default_factory=list)
    searcher: ComponentSpec | None = None
    source: str = "<config>"

    def to_dict(self) -> dict[str, Any]:
        """The full config with every default filled in (what config.yaml holds)."""
        out: dict[str, Any] = {"run": self.run.model_dump(mode="json")}
        for section in ("data", "model", "loop"):
            spec = getattr(self, section)
            if spec is not None:
                out[section] = spec.to_dict()
        out["trackers"] = [s.to_dict() for s in self.trackers]
        out["evaluators"] = [s.to_dict() for s in self.evaluators]
        if self.searcher is not None:
            out["searcher"] = self.searcher.to_dict()
        return out


def _keys_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The field names of the section at ``loc`` inside ``model`` (``["split"]`` -> the keys of
    the split section), so an unknown nested key is matched against its own section's keys."""
    import typing

    def section_type(annotation: Any) -> tuple[Any, bool]:
        """The BaseModel inside ``annotation`` (Optional, Union, dict or list of it), and whether
        a key or index sits between (dict[str, Model], list[Model])."""
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation, False
        keyed = typing.get_origin(annotation) in (dict, list)
        for arg in typing.get_args(annotation):
            found, inner = section_type(arg)
            if found is not None:
                return found, keyed or inner
        return None, False

    current: Any = model
    parts = list(loc)
    while parts:
        fields = getattr(current, "model_fields", None)
        part = parts.pop(0)
        if fields is None or part not in fields:
            return []
        current, keyed = section_type(fields[part].annotation)
        if current is None:
            return []
        if keyed and parts:
            parts.pop(0)  # the dict key or list index
    return list(getattr(current, "model_fields", {}))


def format_validation_error(exc: ValidationError, prefix: str, source: str,
                            fields: list[str], model: type[BaseModel] | None = None) -> str:
    """One line from a pydantic error: where, what was given, what was expected. With ``model``
    (the section's Config), an unknown key nested in a sub-section is matched against that
    sub-section's own keys."""
    errors = exc.errors()
    first = errors[0]
    loc = [str(p) for p in first["loc"]]
    path = ".".join([prefix, *loc]) if prefix else ".".join(loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        siblings = _keys_at(model, loc[:-1]) if model is not None else (fields if len(loc) == 1 else [])
        hint = did_you_mean(loc[-1], siblings)
        known = f"; known keys: {', '.join(siblings)}" if siblings and not hint else ""
        message = f"unknown key '{path}'{hint}{known}"
    elif kind == "missing":
        message = f"missing required key '{path}'"
    else:
        expected = first["msg"]
        for start in ("Input should be ", "Value error, ", "Assertion failed, "):
            if expected.startswith(start):
                expected = expected[len(start):]
        given = repr(first.get("input"))
        if isinstance(first.get("input"), dict) or len(given) > 80:
            # a check over a whole section (a model validator): its message says what is wrong
            message = f"invalid '{path}': {expected}"
        else:
            message = f"invalid value for '{path}': {given} (expected {expected})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" \
        if len(errors) > 1 else ""
    return f"{source}: {message}{more}"


def _component(kind: str, section: Any, path: str, source: str,
               origins: dict[str, Path] | None = None) -> ComponentSpec:
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: '{path}' must be a mapping with a 'name', got {section!r}")
    options = dict(section)
    name = options.pop("name", None)
    if not name or not isinstance(name, str):
        raise ConfigError(f"{source}: '{path}.name' is missing: it names the {kind} plugin "
                          f"(available: {', '.join(registry.names(kind)) or 'none'})")
    try:
        cls = registry.load(kind, name)
    except PluginError as exc:
        raise PluginError(f"{source}: {path}.name: {exc}") from None
    config_cls = getattr(cls, "Config", None)
    if config_cls is None:
        raise PluginError(f"{source}: {kind} '{name}' has no Config class")
    if origins:
        options = resolve_relative_paths(options, path, config_cls, origins)
    try:
        validated = config_cls.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, source,
                                                  list(config_cls.model_fields),
                                                  config_cls)) from None
    return ComponentSpec(kind, name, cls, validated, path)


def resolve(raw: dict[str, Any], *, source: str = "<config>",
            require: tuple[str, ...] = ("data", "model"),
            origins: dict[str, Path] | None = None) -> ResolvedConfig:
    """Validate a config dict completely; raise ConfigError/PluginError on the first problem.
    ``origins`` (from :func:`compose_raw`) makes relative path options relative to the folder of
    the file that set them."""
    config = normalize(raw)
    for key in config:
        if key not in SECTIONS:
            raise ConfigError(f"{source}: unknown section '{key}'{did_you_mean(key, SECTIONS)}; "
                              f"sections: {', '.join(SECTIONS)}")
    run_section = config.get("run") or {}
    if not isinstance(run_section, dict):
        raise ConfigError(f"{source}: 'run' must be a mapping, got {run_section!r}")
    try:
        run = RunSection.model_validate(run_section)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "run", source,
                                                  list(RunSection.model_fields),
                                                  RunSection)) from None
    for section in require:
        if not config.get(section):
            kind = SECTIONS[section] or section
            raise ConfigError(f"{source}: the '{section}' section is missing (set it in the file, "
                              f"with `{section}.name=NAME` or --{section} NAME; available: "
                              f"{', '.join(registry.names(kind)) or 'none'})")
    resolved = ResolvedConfig(run=run, source=source)
    if isinstance(config.get("model"), dict) and isinstance(config.get("loop"), dict) \
            and "name" not in config["loop"]:
        # `loop.epochs=5` alone configures the model's default loop
        model_cls = _component("model", config["model"], "model", source).cls
        if getattr(model_cls, "default_loop", None):
            config["loop"] = {"name": model_cls.default_loop, **config["loop"]}
    for section in ("data", "model", "loop", "searcher"):
        if config.get(section):
            setattr(resolved, section, _component(SECTIONS[section], config[section], section,
                                                  source, origins))
    for section in LIST_SECTIONS:
        items = config.get(section) or []
        if not isinstance(items, list):
            raise ConfigError(f"{source}: '{section}' must be a list, got {items!r}")
        specs = [_component(SECTIONS[section], item, f"{section}.{i}", source)
                 for i, item in enumerate(items)]
        seen: set[str] = set()
        for spec in specs:
            if spec.name in seen:
                raise ConfigError(f"{source}: {section} lists '{spec.name}' twice")
            seen.add(spec.name)
        setattr(resolved, section, specs)
    if resolved.model is not None and resolved.loop is None:
        default = getattr(resolved.model.cls, "default_loop", None)
        if not default:
            raise ConfigError(f"{source}: model '{resolved.model.name}' has no default loop; "
                              f"set loop.name (available: {', '.join(registry.names('loop'))})")
        resolved.loop = _component("loop", {"name": default}, "loop", source)
    # The local record is always on and always first.
    if not any(t.name == "local" for t in resolved.trackers):
        resolved.trackers.insert(0, _component("tracker", {"name": "local"}, "trackers", source))
    return resolved


def locate_config(path: str | Path) -> Path:
    """``-c FILE``: the file, or else a named config on the search path (``-c
    phase1/experiment/compare_vq_vs_none`` finds configs/phase1/experiment/compare_vq_vs_none.yaml)."""
    from hookforge.config.loader import find_named_config, search_path

    file = Path(path)
    if file.exists():
        return file
    return find_named_config(str(path), search_path(None)) or file  # read_yaml says what is missing


def compose_raw(path: str | Path | dict[str, Any] | None, overrides: list[str] | tuple[str, ...] = (),
                **shortcuts: Any) -> tuple[dict[str, Any], str, dict[str, Path]]:
    """The unvalidated config: the file with its defaults list and the command line's config
    groups composed, then shortcuts and dotted overrides. Returns (config, source, origins): the
    folder of the file that set each leaf key, for relative paths."""
    from hookforge.config.loader import compose, split_group_overrides

    if isinstance(path, dict):
        raw, source, origins = normalize(path), "<dict>", {}
        groups, rest = {}, list(overrides)
    else:
        file = locate_config(path) if path is not None else None
        groups, rest = split_group_overrides(list(overrides), file)
        composed = compose(file, groups)
        raw, origins = composed.data, composed.origins
        source = str(file) if file is not None else "<command line>"
    raw = apply_shortcuts(raw, **{k: v for k, v in shortcuts.items() if v})
    raw = apply_overrides(raw, rest)
    for item in rest:  # a value given on the command line is relative to the working directory
        key = item.partition("=")[0].strip()
        key = key.split(".")[0] if key.split(".")[1:] in ([], ["name"]) else key
        for dotted in [k for k in origins if k == key or k.startswith(key + ".")]:
            del origins[dotted]
    return raw, source, origins


def load_config(path: str | Path | dict[str, Any] | None = None, overrides: list[str] | tuple[str, ...] = (),
                *, require: tuple[str, ...] = ("data", "model"), **shortcuts: Any) -> ResolvedConfig:
    """Read a YAML file (or take a dict) with its config groups, apply shortcuts then
    ``KEY=VALUE`` overrides (``GROUP=OPTION`` picks a config group), validate.

    >>> cfg = load_config("configs/quickstart.yaml", ["run.seed=7"], model="centroid")
    """
    raw, source, origins = compose_raw(path, overrides, **shortcuts)
    return resolve(raw, source=source, require=require, origins=origins)
