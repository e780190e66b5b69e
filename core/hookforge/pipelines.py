"""``hookforge pipeline``: stages of runs in dependency order, each a normal run with its own record.

A pipeline file lists ``stages``; each names a command (``train``, ``search``, ``evaluate``,
``export``, a nested ``pipeline``, or a ``script`` such as data preparation), its config file
and overrides, and what it ``needs``. A stage refers to an earlier stage's outputs as
``${stages.NAME.OUTPUT}`` (``run_dir``, ``checkpoint``, ``best_config``, ...), resolved when it
starts; a reference is also a need.

The pipeline's own record, ``pipeline.json`` in its directory, says for every stage its status,
run directories, resolved references, outputs and the content hash of what went in (the command,
the config file's text, the overrides, the outputs it read). It is written atomically after every
change, under a lock, so stages running as separate cluster jobs can share it. A finished stage
whose hash is unchanged is skipped; a stage that failed or was killed continues with ``resume``
(a killed train stage resumes exactly, like ``train --resume``). A stage whose inputs changed
gets a new directory (``stages/NAME-HASH``): nothing recorded before is overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hookforge.errors import ConfigError, UsageError, did_you_mean

log = logging.getLogger("hookforge")

PIPELINE_FILE = "pipeline.json"
REFERENCE = re.compile(r"\$\{stages\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\}")
# what each command's stage makes available to later stages
OUTPUTS = {
    "train": ("run_dir", "checkpoint", "config", "evaluation", "run_dirs"),
    "search": ("dir", "best_config", "study"),
    "evaluate": ("run_dir", "evaluation"),
    "export": ("dir", "manifest"),
    "pipeline": ("dir",),
    "script": ("path",),
}


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]+$", description="the stage's name")
    command: Literal["train", "search", "evaluate", "export", "pipeline", "script"]
    config: str | None = Field(None, description="train/search: the config file; pipeline: the "
                                                 "nested pipeline file")
    overrides: list[str] = Field(default_factory=list, description="KEY=VALUE overrides")
    needs: list[str] = Field(default_factory=list, description="stages that must finish first")
    seeds: list[int] | None = Field(None, description="train: one run per seed, and a mean ± "
                                                      "interval table of their test metrics")
    run: str | None = Field(None, description="evaluate: the run directory (e.g. "
                                              "${stages.sft.run_dir})")
    splits: list[str] = Field(default_factory=lambda: ["test"], description="evaluate: splits")
    stage: str | None = Field(None, description="search: one stage of a multi-stage plan")
    storage: str | None = Field(None, description="search: the study storage URL")
    workers: int = Field(1, ge=1, description="search: worker processes")
    include: list[str] = Field(default_factory=list, description=(
        "export: the stages whose results to collect (default: every stage it needs)"))
    script: str | None = Field(None, description="script: a Python file run as `python SCRIPT "
                                                 "ARGS` in the pipeline file's folder (data "
                                                 "preparation)")
    args: list[str] = Field(default_factory=list, description="script: its arguments")
    produces: str | None = Field(None, description="script: the file or folder it writes (its "
                                                   "output `path`; hashed into later stages)")

    @field_validator("overrides", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if isinstance(value, dict):  # {loop.epochs: 2} reads as well as ["loop.epochs=2"]
            return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in value.items()]
        return value


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("pipeline", description="the pipeline's name (its directory's)")
    output_dir: str = Field("outputs/pipelines", description="where pipelines' directories go")
    stages: list[StageConfig]


@dataclass
class StageResult:
    name: str
    command: str
    status: str  # finished | skipped | failed | planned
    outputs: dict[str, Any] = field(default_factory=dict)
    results: list[Any] = field(default_factory=list)  # RunResult / SearchResult objects (this call)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    directory: Path
    status: str
    stages: dict[str, StageResult]
    plan: list[str]

    def __getitem__(self, name: str) -> StageResult:
        return self.stages[name]


# -- reading and checking a pipeline file ------------------------------------------------------------
def load(path: str | Path) -> tuple[PipelineConfig, Path]:
    from hookforge.config.loader import read_yaml

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"pipeline file not found: {path}")
    raw = read_yaml(path)
    if not isinstance(raw, dict) or "stages" not in raw:
        raise ConfigError(f"{path}: a pipeline file needs a 'stages:' list")
    raw = {k: v for k, v in raw.items() if k != "pipeline"} | dict(raw.get("pipeline") or {})
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        stages = raw.get("stages") if isinstance(raw.get("stages"), list) else []
        if error["loc"][:1] == ("stages",) and len(error["loc"]) > 1 and \
                isinstance(error["loc"][1], int) and error["loc"][1] < len(stages):
            stage = stages[error["loc"][1]]
            label = stage.get("name") if isinstance(stage, dict) else None
            where = f"stages[{label or error['loc'][1]}]" + "".join(
                f".{p}" for p in error["loc"][2:])
        known = list(StageConfig.model_fields) if "stages" in where else list(PipelineConfig.model_fields)
        hint = did_you_mean(str(error["loc"][-1]), known) if error["type"] == "extra_forbidden" else ""
        raise ConfigError(f"{path}: {where}: {error['msg']}{hint}") from None
    names = [s.name for s in config.stages]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ConfigError(f"{path}: stage '{doubled[0]}' is defined twice")
    return config, path.resolve().parent


def _within(key: str, prefix: str) -> bool:
    """``loop.reward.run`` is within ``loop.reward`` (and within itself)."""
    return key == prefix or key.startswith(prefix + ".")


def references(stage: StageConfig) -> list[tuple[str, str]]:
    """The (stage, output) pairs a stage refers to."""
    texts = [stage.config or "", stage.run or "", *stage.overrides, *stage.args]
    return [m.groups() for text in texts for m in REFERENCE.finditer(text)]


def dependencies(config: PipelineConfig, source: str) -> dict[str, list[str]]:
    """Every stage's needs (declared, referenced, and an export's included stages), checked: a
    stage or output that does not exist is a ConfigError with a "did you mean"."""
    by_name = {s.name: s for s in config.stages}
    graph: dict[str, list[str]] = {}
    for stage in config.stages:
        needs = list(stage.needs)
        for other, output in references(stage):
            if other not in by_name:
                raise ConfigError(f"{source}: stage '{stage.name}' refers to ${{stages.{other}."
                                  f"{output}}}: no stage '{other}'{did_you_mean(other, by_name)}")
            outputs = OUTPUTS[by_name[other].command]
            if output not in outputs:
                raise ConfigError(f"{source}: stage '{stage.name}' refers to ${{stages.{other}."
                                  f"{output}}}: a {by_name[other].command} stage has no output "
                                  f"'{output}'{did_you_mean(output, outputs)}; it has: "
                                  f"{', '.join(outputs)}")
            needs.append(other)
        needs += stage.include
        for need in needs:
            if need not in by_name:
                raise ConfigError(f"{source}: stage '{stage.name}' needs '{need}': no such stage"
                                  f"{did_you_mean(need, by_name)}")
        graph[stage.name] = list(dict.fromkeys(needs))
    return graph


def order(config: PipelineConfig, graph: dict[str, list[str]], source: str) -> list[str]:
    """The stages in dependency order (file order among independent ones); a cycle is named."""
    done: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name):], name]
            raise ConfigError(f"{source}: the stages' needs form a cycle: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for need in graph[name]:
            visit(need, [*path, name])
        state[name] = "done"
        done.append(name)

    for stage in config.stages:
        visit(stage.name, [])
    return done


def select(plan: list[str], graph: dict[str, list[str]], stages: Iterable[str] = (),
           skip: Iterable[str] = (), start: str | None = None) -> list[str]:
    """The stages to run this time (``--stages``, ``--skip``, ``--from``), in plan order."""
    stages, skip = list(stages), list(skip)
    for option, names in (("--stages", stages), ("--skip", skip),
                          ("--from", [start] if start else [])):
        for name in names:
            if name not in graph:
                raise UsageError(f"{option} {name}: no such stage{did_you_mean(name, graph)}; "
                                 f"stages: {', '.join(plan)}")
    chosen = [n for n in plan if n in stages] if stages else list(plan)
    if start:
        chosen = chosen[plan.index(start) if start in chosen else 0:]
        chosen = [n for n in chosen if plan.index(n) >= plan.index(start)]
    return [n for n in chosen if n not in skip]


# -- the record -----------------------------------------------------------------------------------------
class Record:
    """pipeline.json, read and written under a lock (stages may be separate cluster jobs)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / PIPELINE_FILE

    def read(self) -> dict[str, Any]:
        from hookforge.fileio import read_json

        return read_json(self.path) if self.path.is_file() else {}

    def update(self, change: Any) -> dict[str, Any]:
        """Apply ``change(data)`` to the record and write it atomically, holding the lock."""
        import fcntl

        from hookforge.fileio import atomic_write_json

        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".pipeline.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            change(data)
            atomic_write_json(self.path, data)
            return data

    def set_stage(self, name: str, **fields: Any) -> None:
        def change(data: dict[str, Any]) -> None:
            data.setdefault("stages", {}).setdefault(name, {}).update(fields)

        self.update(change)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


# -- running -----------------------------------------------------------------------------------------------
class Pipeline:
    """One pipeline file and its directory (see the module docstring)."""

    def __init__(self, path: str | Path, output_dir: str | Path | None = None,
                 overrides: Iterable[str] = ()) -> None:
        self.config, self.base = load(path)
        self.file = Path(path).resolve()
        self.source = str(path)
        self.stages = {s.name: s for s in self.config.stages}
        self.overrides = self._split_overrides(list(overrides))
        self._replace_stage_overrides()
        self.graph = dependencies(self.config, self.source)
        self.plan = order(self.config, self.graph, self.source)
        self.chosen = list(self.plan)  # the stages this run takes (run() narrows it)
        if output_dir is not None:
            self.directory = Path(output_dir)
        else:
            out = Path(self.config.output_dir)
            self.directory = (out if out.is_absolute() else self._path(str(out))) / self.config.name
        self.record = Record(self.directory)

    def _replace_stage_overrides(self) -> None:
        """A command-line ``KEY=V`` for a stage replaces the stage's own overrides of KEY and of
        the keys inside it, references included: ``ppo.loop.reward={name: verifier}`` frees the
        stage from the reward stage it referred to, so that one can be skipped."""
        for name, stage in self.stages.items():
            keys = [item.partition("=")[0].strip() for item in self.overrides[name]]
            if keys:
                stage.overrides = [o for o in stage.overrides
                                   if not any(_within(o.partition("=")[0].strip(), k) for k in keys)]

    def _split_overrides(self, overrides: list[str]) -> dict[str, list[str]]:
        """``NAME.KEY=V`` goes to stage NAME; any other ``KEY=V`` to every train/search stage."""
        out: dict[str, list[str]] = {name: [] for name in self.stages}
        for item in overrides:
            key, sep, _ = item.partition("=")
            if not sep:
                raise UsageError(f"override '{item}' is not KEY=VALUE")
            head, _, rest = key.partition(".")
            if head in self.stages and rest:
                out[head].append(item[len(head) + 1:])
            else:
                for name, stage in self.stages.items():
                    if stage.command in ("train", "search"):
                        out[name].append(item)
        return out

    # -- references and hashes ------------------------------------------------------------------------
    def outputs_of(self, name: str) -> dict[str, Any] | None:
        """The outputs of a finished stage from the record (None if it has not finished)."""
        entry = self.record.read().get("stages", {}).get(name) or {}
        return entry.get("outputs") if entry.get("status") == "finished" else None

    def resolve(self, text: str | None, name: str, *, planned: bool = False) -> str | None:
        if text is None:
            return None

        def value(match: re.Match[str]) -> str:
            other, output = match.groups()
            outputs = self.outputs_of(other)
            if outputs is None:
                if planned:
                    return f"<{other}.{output} once '{other}' has run>"
                raise UsageError(f"stage '{name}' needs the output '{output}' of stage '{other}', "
                                 f"which has not finished; run it first (or leave it out of --skip)")
            if outputs.get(output) is None:
                raise UsageError(f"stage '{other}' recorded no '{output}' (needed by '{name}')")
            return str(outputs[output])

        return REFERENCE.sub(value, text)

    def _path(self, text: str | None) -> Path | None:
        if text is None:
            return None
        import os

        path = Path(text).expanduser()
        return path if path.is_absolute() else Path(os.path.normpath(self.base / path))

    def inputs(self, name: str, *, planned: bool = False) -> dict[str, Any]:
        """What goes into a stage, references resolved: what its hash is made of."""
        stage = self.stages[name]
        resolved = self.resolve(stage.config, name, planned=planned)
        config = self._path(resolved) if resolved and not resolved.startswith("<") else None
        text = config.read_text() if config is not None and config.is_file() else None
        needed = {}
        for need in self.graph[name]:
            entry = self.record.read().get("stages", {}).get(need) or {}
            needed[need] = entry.get("hash")
        return {"command": stage.command, "config": str(config) if config else resolved,
                "config_text": text,
                "overrides": [self.resolve(o, name, planned=planned) for o in
                              [*stage.overrides, *self.overrides[name]]],
                "run": self.resolve(stage.run, name, planned=planned), "seeds": stage.seeds,
                "splits": stage.splits, "stage": stage.stage, "include": stage.include,
                "script": self._script_text(stage), "args": [self.resolve(a, name, planned=planned)
                                                            for a in stage.args],
                "needs": needed}

    def _script_text(self, stage: StageConfig) -> str | None:
        path = self._path(stage.script)
        return path.read_text() if path is not None and path.is_file() else None

    @staticmethod
    def digest(inputs: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()

    # -- checking before anything runs ----------------------------------------------------------------
    def check(self, name: str) -> str | None:
        """Validate a stage's config (a missing plugin, an unknown key) now; returns a note when
        it can only be checked once an earlier stage has run."""
        stage = self.stages[name]
        if stage.command not in ("train", "search"):
            if stage.command == "script":
                path = self._path(stage.script)
                if path is None or not path.is_file():
                    raise ConfigError(f"{self.source}: stage '{name}': script {path} not found")
            if stage.command == "pipeline":
                path = self._path(stage.config)
                if path is None or not path.is_file():
                    raise ConfigError(f"{self.source}: stage '{name}': pipeline file {path} not found")
                Pipeline(path)  # its own file, checked the same way
            elif stage.command == "evaluate" and not stage.run:
                raise ConfigError(f"{self.source}: stage '{name}': evaluate needs 'run' (a run "
                                  f"directory or ${{stages.NAME.run_dir}})")
            return None
        if stage.config is None:
            raise ConfigError(f"{self.source}: stage '{name}': {stage.command} needs 'config'")
        if REFERENCE.search(stage.config) or any(REFERENCE.search(o) for o in stage.overrides):
            return "validated when the stages it refers to have run"
        path = self._path(stage.config)
        if not path.is_file():
            raise ConfigError(f"{self.source}: stage '{name}': config file {path} not found")
        from hookforge.config import load_config

        try:
            load_config(path, [*stage.overrides, *self.overrides[name]])
        except (ConfigError, UsageError) as exc:
            raise type(exc)(f"stage '{name}': {exc}") from None
        return None

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self, stages: Iterable[str] = (), skip: Iterable[str] = (), start: str | None = None,
            resume: bool = False, dry_run: bool = False,
            echo: Any = None) -> PipelineResult:
        echo = echo or (lambda text: log.info("%s", text))
        chosen = select(self.plan, self.graph, stages, skip, start)
        self.chosen = chosen
        notes = {name: self.check(name) for name in chosen}
        if dry_run:
            return self._dry_run(chosen, notes, echo)
        self.record.update(lambda data: data.update({
            "name": self.config.name, "file": str(self.file), "plan": self.plan,
            "status": "running", "started": data.get("started") or _now(), "ended": None}))
        results: dict[str, StageResult] = {}
        status = "finished"
        try:
            for number, name in enumerate(chosen, 1):
                echo(f"[{number}/{len(chosen)}] stage {name} ({self.stages[name].command})")
                results[name] = self._run_stage(name, resume, echo)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) or \
                type(exc).__name__ == "RunInterrupted" else "failed"
            raise
        finally:
            final = status
            self.record.update(lambda data: data.update({"status": final, "ended": _now()}))
        return PipelineResult(self.directory, status, results, chosen)

    def _dry_run(self, chosen: list[str], notes: dict[str, str | None], echo: Any) -> PipelineResult:
        results = {}
        recorded = self.record.read().get("stages", {})
        for number, name in enumerate(chosen, 1):
            stage = self.stages[name]
            inputs = self.inputs(name, planned=True)
            digest = self.digest(inputs)
            entry = recorded.get(name) or {}
            unchanged = entry.get("status") == "finished" and entry.get("hash") == digest
            what = "skip (finished, unchanged)" if unchanged else (
                f"resume ({entry.get('status')})" if entry.get("status") in ("failed", "running",
                                                                             "interrupted")
                else "run")
            echo(f"[{number}/{len(chosen)}] {name}: {stage.command} -> {what}")
            if inputs["config"]:
                echo(f"    config: {inputs['config']}")
            for item in inputs["overrides"]:
                echo(f"    override: {item}")
            if inputs["run"]:
                echo(f"    run: {inputs['run']}")
            if self.graph[name]:
                echo(f"    needs: {', '.join(self.graph[name])}")
            if notes.get(name):
                echo(f"    config {notes[name]}")
            results[name] = StageResult(name, stage.command, "planned",
                                        {"action": what, **{k: v for k, v in inputs.items()
                                                            if k != "config_text"}})
        return PipelineResult(self.directory, "planned", results, chosen)

    def _run_stage(self, name: str, resume: bool, echo: Any) -> StageResult:
        stage = self.stages[name]
        inputs = self.inputs(name)
        digest = self.digest(inputs)
        entry = self.record.read().get("stages", {}).get(name) or {}
        if entry.get("status") == "finished" and entry.get("hash") == digest:
            echo(f"    {name}: finished before with the same inputs; skipped")
            self.record.set_stage(name, last_skipped=_now())
            return StageResult(name, stage.command, "skipped", entry.get("outputs") or {})
        directory = self.directory / "stages" / f"{name}-{digest[:8]}"
        unfinished = entry.get("hash") == digest and entry.get("status") in (
            "running", "failed", "interrupted")
        if unfinished and not resume:
            raise UsageError(f"stage '{name}' did not finish last time ({entry.get('status')}; "
                             f"{directory}); add --resume to continue it")
        self.record.set_stage(name, command=stage.command, status="running", hash=digest,
                              directory=str(directory), started=_now(), ended=None, error=None,
                              references={f"{o}.{k}": self.resolve(f"${{stages.{o}.{k}}}", name)
                                          for o, k in references(stage)},
                              config=inputs["config"], overrides=inputs["overrides"])
        try:
            result = getattr(self, f"_{stage.command}")(name, stage, inputs, directory,
                                                       resume and unfinished)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "RunInterrupted"
            self.record.set_stage(name, status="interrupted" if interrupted else "failed",
                                  ended=_now(), error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        self.record.set_stage(name, status="finished", ended=_now(), outputs=result.outputs,
                              summary=result.summary or None)
        return result

    # -- commands --------------------------------------------------------------------------------------
    def _train(self, name: str, stage: StageConfig, inputs: dict[str, Any], directory: Path,
               resume: bool) -> StageResult:
        from hookforge.record import RunRecord
        from hookforge.run import Run

        seeds = stage.seeds or [None]
        results, run_dirs = [], []
        for seed in seeds:
            run_dir = directory if seed is None else directory / f"seed-{seed}"
            overrides = list(inputs["overrides"]) + ([f"run.seed={seed}"] if seed is not None else [])
            status = RunRecord.open(run_dir).status if (run_dir / "run.json").is_file() else None
            if status == "finished":
                run_dirs.append(run_dir)  # an earlier attempt of this stage got this far
                continue
            if status is not None:
                run = Run.resume(run_dir)  # killed or failed: continue exactly from 'last'
            else:
                run = Run.from_config(inputs["config"], overrides, run_dir=run_dir,
                                      command=["hookforge", "pipeline", str(self.file), name])
            result = run.fit()
            if result.status != "finished":
                raise UsageError(f"stage '{name}': the run ended {result.status} ({run_dir})")
            results.append(result)
            run_dirs.append(run_dir)
        first = run_dirs[0]
        checkpoint = first / "checkpoints" / "best"
        if not checkpoint.exists():
            checkpoint = first / "checkpoints" / "last"
        outputs = {"run_dir": str(first), "checkpoint": str(checkpoint),
                   "config": str(first / "config.yaml"), "evaluation": str(first / "evaluation.json"),
                   "run_dirs": [str(d) for d in run_dirs]}
        summary = seed_summary(run_dirs) if stage.seeds else {}
        if summary:
            for line in summary_lines(summary):
                log.info("%s", line)
        return StageResult(name, "train", "finished", outputs, results, summary)

    def _search(self, name: str, stage: StageConfig, inputs: dict[str, Any], directory: Path,
                resume: bool) -> StageResult:
        from hookforge.search import tune

        overrides = [*inputs["overrides"], f"run.output_dir={directory}"]
        options: dict[str, Any] = {"stage": stage.stage, "workers": stage.workers}
        if stage.storage:
            options["storage"] = stage.storage
        result = tune(inputs["config"], overrides, **options)
        found = sorted(directory.rglob("best_config.yaml"), key=lambda p: p.stat().st_mtime)
        outputs = {"dir": str(result.output_dir or directory), "study": result.study,
                   "best_config": str(found[-1]) if found else None}
        return StageResult(name, "search", "finished", outputs, [result])

    def _evaluate(self, name: str, stage: StageConfig, inputs: dict[str, Any], directory: Path,
                  resume: bool) -> StageResult:
        from hookforge.run import Run

        run_dir = Path(inputs["run"])
        evaluation = Run.open(run_dir).evaluate(stage.splits)
        return StageResult(name, "evaluate", "finished",
                           {"run_dir": str(run_dir), "evaluation": str(run_dir / "evaluation.json")},
                           [evaluation])

    def _export(self, name: str, stage: StageConfig, inputs: dict[str, Any], directory: Path,
                resume: bool) -> StageResult:
        from hookforge.export import export

        included = stage.include or self.graph[name]
        sources = {}
        for other in included:
            outputs = self.outputs_of(other)
            if outputs is None and other not in self.chosen:
                # left out of this run (--skip) and never finished: nothing of it to export
                log.info("    %s: not exporting '%s' (skipped, never finished)", name, other)
                continue
            outputs = outputs or {}
            if not outputs.get("run_dir"):
                raise UsageError(f"stage '{name}' exports '{other}', a {self.stages[other].command} "
                                 f"stage without a run directory")
            sources[other] = Path(outputs["run_dir"])
        manifest = export(sources, directory)
        return StageResult(name, "export", "finished",
                           {"dir": str(directory), "manifest": str(manifest)})

    def _script(self, name: str, stage: StageConfig, inputs: dict[str, Any], directory: Path,
                resume: bool) -> StageResult:
        import subprocess
        import sys

        script = self._path(stage.script)
        assert script is not None
        done = subprocess.run([sys.executable, str(script), *inputs["args"]], cwd=self.base)
        if done.returncode != 0:
            raise UsageError(f"stage '{name}': {script.name} exited with {done.returncode}")
        produced = self._path(stage.produces)
        if produced is not None and not produced.exists():
            raise UsageError(f"stage '{name}': {script.name} did not write {produced} (produces)")
        return StageResult(name, "script", "finished",
                           {"path": str(produced) if produced is not None else None})

    def _pipeline(self, name: str, stage: StageConfig, inputs: dict[str, Any], directory: Path,
                  resume: bool) -> StageResult:
        nested = Pipeline(inputs["config"], output_dir=directory, overrides=inputs["overrides"])
        result = nested.run(resume=resume)
        return StageResult(name, "pipeline", "finished", {"dir": str(directory)}, [result])


def seed_summary(run_dirs: list[Path], level: float = 0.8) -> dict[str, Any]:
    """Mean, std and a Student-t interval of every test metric over the seeds' runs."""
    import numpy as np
    from scipy import stats

    from hookforge.record import RunRecord

    values: dict[str, list[float]] = {}
    for run_dir in run_dirs:
        for key, value in (RunRecord.open(run_dir).evaluation().get("test") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "n_samples":
                values.setdefault(key, []).append(float(value))
    summary: dict[str, Any] = {"seeds": len(run_dirs), "level": level, "metrics": {}}
    for key, series in sorted(values.items()):
        if len(series) != len(run_dirs):
            continue
        data = np.asarray(series)
        mean, std = float(data.mean()), float(data.std(ddof=1)) if len(data) > 1 else 0.0
        half = float(stats.t.ppf(0.5 + level / 2, len(data) - 1) * std / np.sqrt(len(data))) \
            if len(data) > 1 else 0.0
        summary["metrics"][key] = {"mean": mean, "std": std, "low": mean - half, "high": mean + half}
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    level = int(summary["level"] * 100)
    lines = [f"test metrics over {summary['seeds']} seeds: mean ± std [{level}% interval]"]
    for key, m in summary["metrics"].items():
        lines.append(f"  {key:24} {m['mean']:.4f} ± {m['std']:.4f}  [{m['low']:.4f}, {m['high']:.4f}]")
    return lines


def pipeline(path: str | Path, overrides: Iterable[str] = (), *, stages: Iterable[str] = (),
             skip: Iterable[str] = (), start: str | None = None, output_dir: str | Path | None = None,
             resume: bool = False, dry_run: bool = False) -> PipelineResult:
    """Run a pipeline file from Python, as ``hookforge pipeline -c`` does; returns every stage's
    result (``result["sft"].outputs["checkpoint"]``)."""
    return Pipeline(path, output_dir, overrides).run(stages, skip, start, resume, dry_run)
