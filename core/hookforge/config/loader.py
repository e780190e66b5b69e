"""Reading YAML config files and applying command-line overrides and shortcuts.

Everything here works on plain dicts; :mod:`hookforge.config.schema` validates the result.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hookforge.errors import ConfigError, did_you_mean

# Sections that hold a list of components; their items are {name: ..., options...}.
LIST_SECTIONS = ("trackers", "evaluators")
COMPONENT_SECTIONS = ("data", "model", "loop", "searcher")


def dump_yaml(data: Any) -> str:
    """``data`` as block-style YAML in the given key order, with libyaml's emitter where PyYAML
    has it (ten times faster than the pure-Python one: a search writes a config per trial)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping; missing, unreadable and malformed files raise ConfigError with the
    file name (and line for syntax errors)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file is a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        # libyaml's parser where PyYAML has it: ten times faster (records are read per trial,
        # and again by the trackers' model logging)
        data = yaml.load(text, Loader=_unique_key_loader())
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}:{exc.line}: '{exc.key}' is given twice (lines {exc.first} and "
                          f"{exc.line}); keep one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"YAML syntax error at {where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of sections, got "
                          f"{type(data).__name__}")
    return data


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, line: int) -> None:
        super().__init__(key)
        self.key, self.first, self.line = key, first, line


_loader_class: Any = None


def _unique_key_loader() -> Any:
    """PyYAML's safe loader (libyaml's where present) refusing a key given twice in one mapping,
    which YAML's spec forbids but PyYAML silently resolves by keeping the last one."""
    global _loader_class
    if _loader_class is None:
        import yaml

        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class UniqueKeyLoader(base):  # type: ignore[misc, valid-type]
            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    try:
                        if key in seen:
                            raise _DuplicateKey(key, seen[key], line)
                        seen[key] = line
                    except TypeError:  # an unhashable key: PyYAML's own error follows
                        break
                return super().construct_mapping(node, deep=deep)

        _loader_class = UniqueKeyLoader
    return _loader_class


def parse_scalar(text: str) -> Any:
    """Parse an override value as a YAML scalar or flow collection (``63``, ``true``,
    ``[local,mlflow]``); anything that is not valid YAML stays a string."""
    import yaml

    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def normalize(config: dict[str, Any]) -> dict[str, Any]:
    """Canonical shape: component sections as ``{name: ...}`` dicts, list sections as lists of
    them (``model: mlp`` -> ``model: {name: mlp}``; ``trackers: [local]`` -> ``[{name: local}]``)."""
    out = copy.deepcopy(config)
    for section in COMPONENT_SECTIONS:
        if isinstance(out.get(section), str):
            out[section] = {"name": out[section]}
    for section in LIST_SECTIONS:
        value = out.get(section)
        if isinstance(value, (str, dict)):
            value = [value]
        if isinstance(value, list):
            out[section] = [{"name": v} if isinstance(v, str) else v for v in value]
    return out


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts (``trackers.1.uri`` indexes a list section)."""
    parts = dotted.split(".")
    if any(p == "" for p in parts):
        raise ConfigError(f"invalid override key '{dotted}'")
    node: Any = config
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = _list_item(node, part, here)
            continue
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str) and ((part in COMPONENT_SECTIONS and i == 0)
                                         or is_sub_component(config, parts[: i + 1])):
            child = node[part] = {"name": child}  # `latent: vq` given by name, then an option
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"cannot set '{dotted}': '{here}' is a {type(child).__name__}, "
                              f"not a section")
        node = child
    last = parts[-1]
    if isinstance(node, list):
        index = _index(node, last, dotted)
        node[index] = value
        return
    # Switching a sub-component (``model.encoder=conv`` or ``model.encoder.name=conv``) starts it
    # from the new part's defaults, as switching a component does.
    if isinstance(value, str) and len(parts) >= 2:
        current = node.get(last)
        if isinstance(current, dict) and "name" in current and is_sub_component(config, parts):
            if current.get("name") != value:
                node[last] = {"name": value}
            return
        if last == "name" and len(parts) >= 3 and node.get("name") not in (None, value) \
                and is_sub_component(config, parts[:-1]):
            node.clear()
            node["name"] = value
            return
    # Changing a component's name (``model=NAME`` or ``model.name=NAME``) drops the options meant
    # for the previous component.
    if _is_switch(parts) and isinstance(value, str):
        section = parts[0]
        old = config.get(section)
        if isinstance(old, dict) and old.get("name") == value:
            return
        config[section] = {"name": value}
        return
    node[last] = value


def _is_switch(parts: list[str]) -> bool:
    return parts[0] in COMPONENT_SECTIONS and parts[1:] in ([], ["name"])


def is_sub_component(config: dict[str, Any], parts: list[str]) -> bool:
    """Whether ``parts`` (``["model", "encoder"]``) is a sub-component field of the component
    the config selects there: walks the plugins' Config classes (loading them by name)."""
    from pydantic import BaseModel

    from hookforge import registry
    from hookforge.errors import PluginError
    from hookforge.subcomponents import sub_kind_of

    section = parts[0]
    node = config.get(section)
    kind = {"data": "data", "model": "model", "loop": "loop", "searcher": "searcher"}.get(section)
    if kind is None or not isinstance(node, dict) or not isinstance(node.get("name"), str):
        return False
    try:
        current: Any = getattr(registry.load(kind, node["name"]), "Config", None)
        for i, part in enumerate(parts[1:], 1):
            field = (getattr(current, "model_fields", None) or {}).get(part)
            if field is None:
                return False
            node = node.get(part) if isinstance(node, dict) else None
            sub = sub_kind_of(field)
            if i == len(parts) - 1:
                return sub is not None
            if sub is not None:
                if not isinstance(node, dict) or not isinstance(node.get("name"), str):
                    return False
                current = getattr(registry.load(sub, node["name"]), "Config", None)
            else:
                annotation = field.annotation
                current = annotation if isinstance(annotation, type) and \
                    issubclass(annotation, BaseModel) else None
    except PluginError:  # an unknown name: validation says so, with the path
        return False
    return False


def _applied_first(key: str, keys: list[str]) -> bool:
    """Switches go before the options given with them: a component switch, a ``.name``, or a
    key that other keys are inside of (``model.encoder`` before ``model.encoder.channels``)."""
    return _is_switch(key.split(".")) or key.endswith(".name") or \
        any(other.startswith(key + ".") for other in keys)


def set_all(config: dict[str, Any], items: list[tuple[str, Any]]) -> None:
    """``set_dotted`` for each (key, value); switches go first, so the new component's (or
    part's) options given alongside survive whatever order they were written in."""
    keys = [key for key, _ in items]
    for key, value in sorted(items, key=lambda item: not _applied_first(item[0], keys)):
        set_dotted(config, key, value)


def _index(items: list[Any], part: str, where: str) -> int:
    try:
        index = int(part)
    except ValueError:
        raise ConfigError(f"'{where}': expected a list index, got '{part}'") from None
    if not -len(items) <= index < len(items):
        raise ConfigError(f"'{where}': index {index} out of range (the list has {len(items)} items)")
    return index


def _list_item(items: list[Any], part: str, where: str) -> Any:
    return items[_index(items, part, where)]


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` strings (values parsed as YAML) to a copy of ``config``."""
    out = normalize(config)
    items = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"invalid override '{item}': expected KEY=VALUE, e.g. run.seed=7")
        items.append((key.strip(), parse_scalar(raw)))
    set_all(out, items)
    return normalize(out)


def apply_shortcuts(config: dict[str, Any], *, data: str | None = None, model: str | None = None,
                    loop: str | None = None, trackers: tuple[str, ...] = (),
                    evaluators: tuple[str, ...] = ()) -> dict[str, Any]:
    """``--data/--model/--loop NAME`` select a component (dropping options meant for another);
    ``--tracker`` and ``--evaluator`` add to their lists."""
    out = normalize(config)
    for section, name in (("data", data), ("model", model), ("loop", loop)):
        if name:
            set_dotted(out, section, name)
    for section, names in (("trackers", trackers), ("evaluators", evaluators)):
        for name in names:
            items = out.setdefault(section, [])
            if not any(item.get("name") == name for item in items):
                items.append({"name": name})
    return out


# ---------------------------------------------------------------------------------------------
# Config groups: `GROUP=OPTION` merges GROUP/OPTION.yaml from the config search path; a file's
# `defaults:` list composes groups (Hydra's convention, without Hydra: see docs/architecture.md)
# ---------------------------------------------------------------------------------------------

CONFIG_PATH_ENV = "HOOKFORGE_CONFIG_PATH"
PACKAGE_DIRECTIVE = "# @package "


def search_path(config_file: str | Path | None = None) -> list[Path]:
    """Where config groups and named configs are looked up, in order: the config file's folder,
    ``./configs``, then each folder of ``HOOKFORGE_CONFIG_PATH`` (``os.pathsep``-separated)."""
    import os

    folders: list[Path] = []
    if config_file is not None:
        folders.append(Path(config_file).resolve().parent)
    folders.append((Path.cwd() / "configs").resolve())
    folders += [Path(p).resolve() for p in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if p]
    seen: list[Path] = []
    for folder in folders:
        if folder not in seen:
            seen.append(folder)
    return seen


def group_options(group: str, path: list[Path]) -> list[str]:
    """The options of config group ``group`` (``model``, ``phase1/latent_space``) on the path."""
    options: set[str] = set()
    for folder in path:
        directory = folder / group
        if directory.is_dir():
            options.update(p.stem for p in directory.glob("*.yaml"))
    return sorted(options)


def find_group_file(group: str, option: str, path: list[Path]) -> Path | None:
    for folder in path:
        candidate = folder / group / f"{option}.yaml"
        if candidate.is_file():
            return candidate
    return None


def find_named_config(name: str, path: list[Path]) -> Path | None:
    """``-c phase1/experiment/compare`` when no such file exists here: NAME(.yaml) on the path."""
    for folder in path:
        for candidate in (folder / name, folder / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    return None


class Composed:
    """A composed config: the merged dict, and the folder of the file that set each leaf key
    (relative paths in a file are relative to that file's folder)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origins: dict[str, Path] = {}

    def merge(self, overlay: dict[str, Any], origin: Path | None, at: list[str] | None = None) -> None:
        target = self.data
        for part in at or []:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {} if not isinstance(child, str) else {"name": child}
            target = child
        self._merge(target, normalize(overlay) if not at else overlay, origin, list(at or []))

    def _merge(self, base: dict[str, Any], overlay: dict[str, Any], origin: Path | None,
               prefix: list[str]) -> None:
        for key, value in overlay.items():
            here = [*prefix, str(key)]
            current = base.get(key)
            if isinstance(value, dict) and isinstance(current, dict):
                switched = "name" in value and current.get("name") not in (None, value["name"]) \
                    and (len(here) == 1 or is_sub_component(self.data, here))
                if switched:  # another component or part: start from its defaults
                    base[key] = {}
                    self._forget(here)
                self._merge(base[key], value, origin, here)
                continue
            base[key] = copy.deepcopy(value)
            self._forget(here)
            if origin is not None:
                self._record(here, value, origin)

    def _forget(self, here: list[str]) -> None:
        dotted = ".".join(here)
        for key in [k for k in self.origins if k == dotted or k.startswith(dotted + ".")]:
            del self.origins[key]

    def _record(self, here: list[str], value: Any, origin: Path) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                self._record([*here, str(key)], inner, origin)
        elif isinstance(value, str):
            self.origins[".".join(here)] = origin


def _package(path: Path, group: str) -> list[str]:
    """Where a group file's content goes: the group's own path (``model/latent`` ->
    model.latent) unless its first line says ``# @package _global_`` (the root) or another
    dotted package, as in Hydra."""
    with open(path, encoding="utf-8") as handle:
        first = handle.readline().strip()
    if first.startswith(PACKAGE_DIRECTIVE):
        package = first[len(PACKAGE_DIRECTIVE):].strip()
        return [] if package in ("_global_", "") else package.split(".")
    return group.replace("/", ".").split(".")


def compose(config_file: str | Path | None, group_choices: dict[str, Any] | None = None,
            path: list[Path] | None = None) -> Composed:
    """The config file with its defaults list composed, then the command line's group choices
    (which replace the defaults list's choice for the same group)."""
    path = path if path is not None else search_path(config_file)
    choices = dict(group_choices or {})
    composed = Composed()
    if config_file is not None:
        _compose_file(Path(config_file), [], composed, choices, path, stack=[])
    for group, option in choices.items():  # groups the files did not choose
        _merge_group(group, option, composed, choices, path, stack=[], where="the command line")
    return composed


def _compose_file(file: Path, at: list[str], composed: Composed, choices: dict[str, Any],
                  path: list[Path], stack: list[Path]) -> None:
    if file.resolve() in stack:
        chain = " -> ".join(p.name for p in [*stack, file.resolve()])
        raise ConfigError(f"{file}: the defaults lists include each other ({chain})")
    data = read_yaml(file)
    defaults = data.pop("defaults", None)
    if defaults is None:
        entries: list[Any] = ["_self_"]
    elif not isinstance(defaults, list):
        raise ConfigError(f"{file}: 'defaults' must be a list, e.g. [{{model: bert_base}}, _self_]")
    else:
        entries = list(defaults) if "_self_" in defaults else [*defaults, "_self_"]
    for entry in entries:
        if entry == "_self_":
            composed.merge(data, file.resolve().parent, at)
        elif isinstance(entry, str):  # another config of the same folder
            other = file.parent / (entry if entry.endswith(".yaml") else f"{entry}.yaml")
            if not other.is_file():
                raise ConfigError(f"{file}: defaults entry '{entry}': no file {other}")
            _compose_file(other, at, composed, choices, path, [*stack, file.resolve()])
        elif isinstance(entry, dict) and len(entry) == 1:
            group, option = next(iter(entry.items()))
            group = str(group).removeprefix("override ").strip()
            option = choices.pop(group, option)  # the command line's choice wins
            _merge_group(group, option, composed, choices, path, [*stack, file.resolve()],
                         where=str(file))
        else:
            raise ConfigError(f"{file}: defaults entry {entry!r}: expected GROUP: OPTION, a config "
                              f"name or _self_")


def _merge_group(group: str, option: Any, composed: Composed, choices: dict[str, Any],
                 path: list[Path], stack: list[Path], where: str) -> None:
    if option is None:  # `model: null` in a defaults list: nothing from that group
        return
    found = find_group_file(group, str(option), path)
    if found is None:
        options = group_options(group, path)
        raise ConfigError(f"{where}: config group '{group}' has no option '{option}'"
                          f"{did_you_mean(str(option), options)}; options: "
                          f"{', '.join(options) or 'none'} (searched {', '.join(map(str, path))})")
    _compose_file(found, _package(found, group), composed, choices, path, stack)


def split_group_overrides(overrides: list[str], config_file: str | Path | None) -> tuple[
        dict[str, str], list[str]]:
    """Separate ``GROUP=OPTION`` items (a config group on the search path) from dotted
    overrides. ``model=xgboost`` is a group choice only when configs/model/xgboost.yaml exists;
    otherwise it stays a plugin switch."""
    path = search_path(config_file)
    groups: dict[str, str] = {}
    rest: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if sep and "." not in key and value and "," not in value \
                and ("/" in key or find_group_file(key, value, path) is not None):
            groups[key] = value
            continue
        rest.append(item)
    return groups, rest


def resolve_relative_paths(section: dict[str, Any], prefix: str, config_cls: Any,
                           origins: dict[str, Path]) -> dict[str, Any]:
    """Relative values of path options (fields marked ``path``: data files, model directories)
    set in a config file are relative to that file's folder. A path that exists only relative to
    the working directory is kept that way, with a warning (configs written before this rule)."""
    import logging
    import os

    fields = getattr(config_cls, "model_fields", {}) or {}
    out = dict(section)
    for name, field in fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        value = out.get(name)
        key = f"{prefix}.{name}"
        if not extra.get("path") or not isinstance(value, str) or key not in origins:
            continue
        candidate = Path(value).expanduser()
        if candidate.is_absolute() or value in extra.get("names", ()):
            continue
        beside = origins[key] / candidate
        if not beside.exists() and candidate.exists():
            logging.getLogger("hookforge").warning(
                "%s: '%s' is resolved against the working directory; a path in a config file is "
                "relative to the file's folder (%s)", key, value, origins[key])
            continue
        out[name] = os.path.normpath(beside)
    return out
