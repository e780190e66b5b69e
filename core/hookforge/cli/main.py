"""The ``hookforge`` command line (Click).

Only click is imported at start-up; each command imports what it needs when it runs, so
``hookforge --help`` and ``hookforge plugins`` never load torch or any other heavy library.

Exit codes: 0 success; 2 bad usage, config or input data (one line on stderr, ``--debug`` for the
traceback); 1 an unexpected failure (traceback; the run is marked failed); 130 interrupted (the run
is marked interrupted and can be resumed).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from hookforge import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_debug = False


def _overrides_argument() -> Any:
    return click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="hookforge")
@click.option("--debug", is_flag=True, help="Show tracebacks for usage and config errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only print warnings and errors.")
def cli(debug: bool, quiet: bool) -> None:
    """Train, tune, track and evaluate models through plugins.

    \b
    Quick start:
      hookforge plugins                       what is installed
      hookforge train -c configs/quickstart.yaml
      hookforge evaluate outputs/runs/<run> --split test
    """
    global _debug
    _debug = debug
    _setup_logging(logging.WARNING if quiet else logging.INFO)


def _setup_logging(level: int) -> None:
    logger = logging.getLogger("hookforge")
    console = next((h for h in logger.handlers if getattr(h, "hookforge_console", False)), None)
    if console is None:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(_Formatter())
        console.hookforge_console = True  # type: ignore[attr-defined]
        logger.addHandler(console)
        logger.propagate = False
    # -q quiets the console only; a run's train.log keeps the INFO lines
    console.setLevel(level)
    logger.setLevel(logging.INFO)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"hookforge: {prefix}{record.getMessage()}"


# ---------------------------------------------------------------------------------------------
# plugins
# ---------------------------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List every installed component by kind: name, distribution, version, status."""
    if ctx.invoked_subcommand is not None:
        return
    from hookforge import registry

    rows = []
    for entry in registry.entries():
        error = registry.check(entry)
        status = "disabled" if entry.disabled else ("broken" if error else "ok")
        rows.append({"kind": entry.kind, "name": entry.name, "distribution": entry.distribution,
                     "version": entry.version, "status": status, "error": error,
                     "entry_point": entry.value})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max([len(r["name"]) for r in rows] + [4])
    dist_width = max([len(r["distribution"]) for r in rows] + [12])
    click.echo(f"{'KIND':<10} {'NAME':<{width}} {'DISTRIBUTION':<{dist_width}} {'VERSION':<10} STATUS")
    for r in rows:
        status = r["status"] + (f": {r['error']}" if r["error"] else "")
        click.echo(f"{r['kind']:<10} {r['name']:<{width}} {r['distribution']:<{dist_width}} "
                   f"{r['version']:<10} {status}")


@plugins.command("show")
@click.argument("kind")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON schema.")
def plugins_show(kind: str, name: str, as_json: bool) -> None:
    """Show the config schema of one component, with defaults and descriptions."""
    import inspect

    from hookforge import registry

    kind = registry.normalize_kind(kind)
    entry = registry.find(kind, name)
    cls = registry.load(kind, name)
    config = getattr(cls, "Config", None)
    if as_json:
        click.echo(json.dumps(config.model_json_schema() if config else {}, indent=2))
        return
    click.echo(f"{kind} '{name}' from {entry.distribution} {entry.version} ({entry.value})")
    doc = inspect.getdoc(cls)
    if doc:
        click.echo("\n" + doc.split("\n\n")[0])
    if kind == "model" and getattr(cls, "default_loop", None):
        click.echo(f"\ndefault loop: {cls.default_loop}")
    families = getattr(cls, "plot_families", None)
    if families:  # run.plot_families.<family> switches these
        click.echo("\nfigure families: " + ", ".join(f"{family} (from run.plots={preset})"
                                                      for family, preset in families.items()))
    if config is None or not config.model_fields:
        click.echo("\n(no options)")
        return
    click.echo("\noptions:")
    for field_name, field in config.model_fields.items():
        annotation = _describe_type(field.annotation, field)
        if field.is_required():
            default = "(required)"
        else:
            value = field.get_default(call_default_factory=True)
            if hasattr(value, "model_dump"):
                value = value.model_dump()
            default = f"default: {json.dumps(value, default=str)}"
        line = f"  {field_name}: {annotation}  {default}"
        click.echo(line)
        if field.description:
            click.echo(f"      {field.description}")
        if config.model_fields and hasattr(field.annotation, "model_fields"):
            for sub_name, sub in field.annotation.model_fields.items():
                sub_default = json.dumps(sub.get_default(call_default_factory=True), default=str)
                click.echo(f"      {field_name}.{sub_name}: {_describe_type(sub.annotation, sub)}  "
                           f"default {sub_default}"
                           + (f"  ({sub.description})" if sub.description else ""))


def _describe_type(annotation: Any, field: Any = None) -> str:
    """A field's type as a user reads it: the allowed values of a Literal or an enum, each part
    of a Union, the installed names of a sub-component kind."""
    import enum
    import typing

    from hookforge.subcomponents import sub_kind_of

    kind = sub_kind_of(field) if field is not None else None
    if kind is not None:
        from hookforge import registry

        return f"{kind} ({', '.join(registry.names(kind)) or 'none installed'})"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) if not isinstance(a, str) else a for a in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        return " | ".join(_describe_type(a) for a in args if a is not type(None)) + \
            (" | null" if type(None) in args else "")
    if origin is typing.Annotated:
        return _describe_type(args[0])
    if origin in (list, dict, tuple, set):
        inner = ", ".join(_describe_type(a) for a in args)
        return f"{origin.__name__}[{inner}]" if inner else origin.__name__
    name = getattr(annotation, "__name__", None) or str(annotation)
    return name.replace("typing.", "")


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


@cli.command()
@click.option("-c", "--config", "config_file", help="YAML config file.")
@click.option("--data", help="Select the data source by name.")
@click.option("--model", help="Select the model by name.")
@click.option("--loop", help="Select the training loop by name.")
@click.option("--tracker", "trackers", multiple=True, help="Add a tracker (repeatable).")
@click.option("--evaluator", "evaluators", multiple=True, help="Add an evaluator (repeatable).")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Write the run record here.")
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue the run in RUN_DIR.")
@_overrides_argument()
def train(config_file: str | None, data: str | None, model: str | None, loop: str | None,
          trackers: tuple[str, ...], evaluators: tuple[str, ...], run_dir: str | None,
          resume_dir: str | None, overrides: tuple[str, ...]) -> None:
    """Train a model: validate the config, run the loop, evaluate, record everything.

    \b
    Examples:
      hookforge train -c configs/quickstart.yaml model.num_leaves=63 run.seed=7
      hookforge train --data sklearn data.dataset=iris --model centroid --tracker local
      hookforge train --resume outputs/runs/20260101-120000_quickstart
    """
    from hookforge.run import Run

    command = ["hookforge", *sys.argv[1:]]
    if resume_dir:
        if config_file or data or model or loop or trackers or evaluators or run_dir:
            raise click.UsageError("--resume continues a run with its own config; only "
                                   "KEY=VALUE overrides may be added")
        run = Run.resume(resume_dir, overrides, command=command)
    else:
        if not config_file and not (data and model):
            raise click.UsageError("give a config file with -c FILE, or at least --data and --model")
        run = Run.from_config(config_file, overrides, data=data, model=model, loop=loop,
                              trackers=trackers, evaluators=evaluators, run_dir=run_dir,
                              command=command)
    result = run.fit()
    if run.primary:
        _print_evaluation(result.evaluation)
        click.echo(f"run {result.status}; its record:")
        click.echo(str(result.run_dir))  # alone on the last line, for scripts: $(... | tail -1)


def _print_evaluation(evaluation: dict[str, dict[str, Any]]) -> None:
    from hookforge.summary import evaluation_lines

    for line in evaluation_lines(evaluation):
        click.echo(line)


# ---------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------


@cli.command()
@click.option("-c", "--config", "config_file",
              help="YAML config with a 'searcher' section (or a plan); or --data and --model.")
@click.option("--stage", help="Run only this stage of a multi-stage plan.")
@click.option("--storage", help="Study storage URL (e.g. sqlite:///study.db, postgresql://...).")
@click.option("--study", help="Study name (default: run.name).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine.")
@click.option("--searcher", "searcher_name", help="Select the searcher by name.")
@click.option("--data", help="Select the data source by name.")
@click.option("--model", help="Select the model by name.")
@click.option("--tracker", "trackers", multiple=True,
              help="Add a tracker (repeatable): each trial is a run in it, nested under the study.")
@_overrides_argument()
def search(config_file: str | None, stage: str | None, storage: str | None, study: str | None,
           workers: int, searcher_name: str | None, data: str | None, model: str | None,
           trackers: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Search hyper-parameters with the configured searcher.

    KEY=a,b,c sweeps those values (grid searcher, one run each).

    \b
    Examples:
      hookforge search -c configs/hpo/mlp_digits.yaml --tracker mlflow
      hookforge search -c configs/hpo/mlp_digits.yaml --stage fine --workers 2
      hookforge search -c configs/quickstart.yaml model.metric=euclidean,manhattan
    """
    from hookforge.config import resolve
    from hookforge.config.loader import parse_scalar
    from hookforge.config.schema import compose_raw
    from hookforge.search import SearchSession

    plain, sweep = [], {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and _is_sweep(value):
            sweep[key] = [parse_scalar(v) for v in _split_top_level(value)]
        else:
            plain.append(item)
    if searcher_name:
        plain.insert(0, f"searcher={searcher_name}")
    if not config_file and not (data and model):
        raise click.UsageError("give a config file with -c FILE, or at least --data and --model")
    raw, source, origins = compose_raw(config_file, plain, data=data, model=model,
                                       trackers=trackers)
    if sweep and not (raw.get("searcher") or {}).get("name"):
        raw.setdefault("searcher", {})["name"] = "grid"  # a command-line sweep needs no section
    config = resolve(raw, source=source, origins=origins)
    session = SearchSession(config, study=study, stage=stage, storage=storage, workers=workers,
                            sweep=sweep, command=["hookforge", *sys.argv[1:]])
    result = session.search()
    _print_trials(result)


def _is_sweep(value: str) -> bool:
    return not value.strip().startswith(("[", "{", '"', "'")) and len(_split_top_level(value)) > 1


def _split_top_level(value: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in value:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts]


def _print_trials(result: Any) -> None:
    from rich.table import Table

    metric = result.extra.get("metric")
    metrics = result.extra.get("metrics") or [metric or "value"]  # several: a Pareto front
    table = Table(title=f"study {result.study}: {len(result.trials)} trials")
    params = sorted({k for t in result.trials for k in t.params})
    table.add_column("#", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for param in params:  # parameter values may wrap; objective columns stay whole
        table.add_column(_short_key(param), overflow="fold")
    for name in metrics:
        table.add_column(str(name), no_wrap=True, min_width=len(str(name)))
    table.add_column("run dir", overflow="fold")
    best_numbers = {t.number for t in result.best}
    for t in result.trials:
        value = t.value if t.value is not None else (t.metrics.get(metric) if metric else None)
        values = value if isinstance(value, list) else [value] + [None] * (len(metrics) - 1)
        shown = [f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))
                 for v in values]
        shown[-1] += " *" if t.number in best_numbers else ""
        table.add_row(str(t.number), t.state, *[_short_value(t.params.get(p, "")) for p in params],
                      *shown, _short_dir(t.run_dir, result.output_dir))
    console = _console()
    console.print(table)
    if result.extra.get("note"):
        click.echo(f"note: {result.extra['note']}")
    for stage in result.extra.get("stages") or []:
        click.echo(_stage_summary(stage))
    if result.output_dir:
        click.echo(f"study outputs: {result.output_dir}")


def _console() -> Any:
    """A rich console as wide as the terminal, or 100 columns when output is not a terminal."""
    import shutil

    from rich.console import Console

    width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
    return Console(width=width)


def _short_key(dotted: str, limit: int = 16) -> str:
    """``loop.optimizer.weight_decay`` -> ``…weight_decay``: the end of a path says the most."""
    if len(dotted) <= limit:
        return dotted
    parts = dotted.split(".")
    kept = parts[-1]
    for part in reversed(parts[:-1]):
        if len(part) + 1 + len(kept) > limit - 1:
            break
        kept = f"{part}.{kept}"
    return f"…{kept}"


def _short_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _short_dir(run_dir: Any, output_dir: Any) -> str:
    if not run_dir:
        return ""
    from pathlib import Path

    try:  # under the study outputs printed below the table: the trial's own folder says it
        Path(run_dir).relative_to(Path(output_dir))
        return Path(run_dir).name
    except (ValueError, TypeError):
        return str(run_dir)


def _stage_summary(stage: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(stage["trials"].items()))
    line = f"stage {stage['stage']}: {counts or 'no trials'}"
    refit = stage.get("refit")
    if refit:
        line += (f"; mean {refit['mean']:.4f} ± {refit['std']:.4f} over {refit['n']} seeds "
                 f"[{refit['ci_low']:.4f}, {refit['ci_high']:.4f}] ({refit['method']})")
    elif stage.get("best_value") is not None:
        value = stage["best_value"]
        shown = ", ".join(f"{v:.4g}" for v in value) if isinstance(value, list) else f"{value:.4g}"
        params = ", ".join(f"{_short_key(k)}={_short_value(v)}"
                           for k, v in (stage.get("best_params") or {}).items())
        line += f"; best {shown}" + (f" ({params})" if params else "")
    if stage.get("note"):
        line += f"; {stage['note']}"
    return line


# ---------------------------------------------------------------------------------------------
# evaluate, predict
# ---------------------------------------------------------------------------------------------


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--split", "splits", multiple=True, default=("test",), show_default=True,
              help="Split to evaluate (repeatable).")
@click.option("--episodes", type=click.IntRange(min=1),
              help="Environment data sources: play this many episodes per split "
                   "(sets data.<split>_episodes).")
@_overrides_argument()
def evaluate(run_dir: str, splits: tuple[str, ...], episodes: int | None,
             overrides: tuple[str, ...]) -> None:
    """Evaluate a run's best checkpoint on a split; merges into its evaluation.json."""
    from hookforge.run import Run

    if episodes is not None:
        overrides = (*[f"data.{split}_episodes={episodes}" for split in splits], *overrides)
    run = Run.open(run_dir, overrides, command=["hookforge", *sys.argv[1:]])
    _print_evaluation(run.evaluate(list(splits)))


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write predictions (.csv or .parquet; - for CSV on stdout).")
def predict(run_dir: str, input_path: str, output: str) -> None:
    """Predict INPUT with a run's best checkpoint."""
    from hookforge.run import Run

    run = Run.open(run_dir, command=["hookforge", *sys.argv[1:]])
    if output == "-":  # for pipes: only the CSV on stdout
        sys.stdout.write(run.predictions(input_path).to_csv(index=False))
        return
    path = run.predict(input_path, output)
    click.echo(f"predictions written to {path}")


# ---------------------------------------------------------------------------------------------
# compare, sync
# ---------------------------------------------------------------------------------------------


@cli.command()
@click.argument("run_dirs", nargs=-1, type=click.Path())
@click.option("--metric", "metrics", multiple=True,
              help="split/name[:max|min]; repeat for a Pareto front (first one ranks).")
@click.option("--threshold", type=float, help="Name a champion only if it clears this value.")
@click.option("--interval", "level", type=float, default=0.8, show_default=True,
              help="Probability mass of the Jeffreys interval for proportions.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--tracker", "tracker_name", help="Compare a tracker's runs instead of run directories.")
@click.option("--experiment", help="With --tracker: the experiment whose runs are compared.")
@click.option("--register-as", help="With --tracker: registered model name (default: the experiment).")
@click.option("--promote", "promote_to", type=click.Path(file_okay=False),
              help="Copy the champion (if it clears --threshold) to this directory, with its test "
                   "metrics; `hookforge predict DIR ...` serves from it.")
def compare(run_dirs: tuple[str, ...], metrics: tuple[str, ...], threshold: float | None,
            level: float, as_json: bool, tracker_name: str | None, experiment: str | None,
            register_as: str | None, promote_to: str | None) -> None:
    """Rank runs by a metric; intervals, Pareto front and champion.

    With --tracker NAME --experiment EXP the tracker's finished runs are compared, and a champion
    that clears --threshold is registered in the tracker's model registry (alias champion).
    """
    from hookforge.compare import compare as run_compare
    from hookforge.compare import compare_tracker, promote

    if promote_to and tracker_name:
        raise click.UsageError("--promote copies a local run; with --tracker the champion is "
                               "registered in the tracker's model registry")
    if tracker_name:
        if run_dirs or not experiment:
            raise click.UsageError("--tracker compares an --experiment's runs, not RUN_DIRs")
        result = compare_tracker(tracker_name, experiment, list(metrics), threshold, level,
                                 register_as)
    else:
        result = run_compare(list(run_dirs), list(metrics), threshold, level)
    promoted = promote(result, promote_to) if promote_to else None
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "promoted": promoted}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    grouped = all(o.key.count("/") >= 2 for o in result.objectives)  # e.g. test/arith/success_rate
    if len(result.objectives) > 2 or grouped:  # a column per metric, value and interval together
        table = _wide_comparison(result, Table)
    else:
        table = Table(title="comparison")
        table.add_column("rank")
        table.add_column("run")
        for objective in result.objectives:
            table.add_column(f"{objective.key} ({'max' if objective.direction == 'maximize' else 'min'})")
            table.add_column(f"{int(result.level * 100)}% interval")
        table.add_column("pareto")
        for row in result.rows:
            cells = [str(row.rank or "-"), str(row.run_dir)]
            for objective in result.objectives:
                value = row.values[objective.key]
                interval = row.intervals.get(objective.key)
                cells.append("-" if value is None else f"{value:.4f}")
                cells.append(f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")
            cells.append("*" if row.pareto else "")
            table.add_row(*cells)
    Console(width=160).print(table)
    click.echo(result.message)
    if promoted:
        click.echo(promoted)


def _wide_comparison(result: Any, table_class: Any) -> Any:
    """Many metrics (one per task family...): a column each, the value with its interval, the
    run's name and directory name, and the split in the title when every metric shares one."""
    splits = {o.key.partition("/")[0] for o in result.objectives}
    shared = splits.pop() if len(splits) == 1 else None
    title = f"comparison ({shared + ', ' if shared else ''}{int(result.level * 100)}% intervals)"
    table = table_class(title=title)
    table.add_column("rank")
    table.add_column("run")
    for objective in result.objectives:
        name = objective.key.partition("/")[2] if shared else objective.key
        table.add_column(f"{name} ({'max' if objective.direction == 'maximize' else 'min'})")
    table.add_column("pareto")
    for row in result.rows:
        cells = [str(row.rank or "-"), f"{row.name}\n{Path(str(row.run_dir)).name}"]
        for objective in result.objectives:
            value, interval = row.values[objective.key], row.intervals.get(objective.key)
            cells.append("-" if value is None else f"{value:.3f}" + (
                f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""))
        cells.append("*" if row.pareto else "")
        table.add_row(*cells)
    return table


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--tracker", "tracker_name", required=True, help="Tracker to replay the run into.")
def sync(run_dir: str, tracker_name: str) -> None:
    """Replay a run's local record (params, metrics, artifacts, status) into a tracker."""
    from hookforge.sync import sync_run

    click.echo(sync_run(run_dir, tracker_name))


# ---------------------------------------------------------------------------------------------
# pipelines, clusters, status
# ---------------------------------------------------------------------------------------------


@cli.command()
@click.option("-c", "--config", "config_file", required=True, help="Pipeline YAML (a 'stages:' list).")
@click.option("--stages", "stages", multiple=True, help="Run only these stages (repeatable, or "
                                                         "several names after one --stages).")
@click.option("--skip", "skip", multiple=True, help="Leave these stages out (repeatable, or "
                                                    "several names after one --skip).")
@click.option("--from", "start", help="Start at this stage (and run what follows it).")
@click.option("--output-dir", type=click.Path(file_okay=False),
              help="The pipeline's directory (default: pipeline.output_dir/NAME).")
@click.option("--resume", is_flag=True, help="Continue a stage that failed or was killed.")
@click.option("--dry-run", is_flag=True, help="Print the plan: references, what would be skipped.")
@_overrides_argument()
def pipeline(config_file: str, stages: tuple[str, ...], skip: tuple[str, ...], start: str | None,
             output_dir: str | None, resume: bool, dry_run: bool,
             overrides: tuple[str, ...]) -> None:
    """Run the stages of a pipeline in dependency order, each a normal run with its own record.

    KEY=VALUE goes to every train and search stage; STAGE.KEY=VALUE to that stage only.

    \b
    Examples:
      hookforge pipeline -c configs/pipelines/hpo_then_refit.yaml --dry-run
      hookforge pipeline -c configs/pipelines/full.yaml --stages mamba bert --output-dir runs/full
      hookforge pipeline -c configs/pipelines/full.yaml --resume
    """
    from hookforge.pipelines import Pipeline

    names, skipped, extra = _names_and_overrides(stages, skip, overrides)
    runner = Pipeline(config_file, output_dir, extra)
    result = runner.run(names, skipped, start, resume, dry_run, echo=click.echo)
    if dry_run:
        click.echo(f"dry run: nothing ran; the pipeline's directory would be {result.directory}")
        return
    for name, stage in result.stages.items():
        where = stage.outputs.get("run_dir") or stage.outputs.get("dir") or ""
        click.echo(f"{name:16} {stage.status:9} {where}")
    click.echo(f"pipeline {result.status}; its record:")
    click.echo(str(result.directory))


def _names_and_overrides(stages: tuple[str, ...], skip: tuple[str, ...], overrides: tuple[str, ...]
                         ) -> tuple[list[str], list[str], list[str]]:
    """``--stages a b`` (or ``--skip a b``): click gives ``a`` to the option and ``b`` to the
    overrides; a bare word there is one more stage name for --stages, else for --skip."""
    names, skipped = list(stages), list(skip)
    extra, bare = [], []
    for item in overrides:
        (extra if "=" in item else bare).append(item)
    if bare and not stages and not skip:
        raise click.UsageError(f"'{bare[0]}' is not KEY=VALUE (stage names go after --stages "
                               f"or --skip)")
    (names if stages else skipped).extend(bare)
    return names, skipped, extra


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--backend", type=click.Choice(["slurm", "condor"]), required=True,
              help="The batch system.")
@click.option("--dry-run", is_flag=True, help="Print the jobs and the batch script; submit nothing.")
@click.option("--partition", help="Slurm partition.")
@click.option("--account", help="Slurm account.")
@click.option("--time", "time_min", type=click.IntRange(min=1), default=60, show_default=True,
              help="Time limit per job, minutes.")
@click.option("--cpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPUs per job.")
@click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True,
              help="GPUs per job.")
@click.option("--mem", "mem_gb", type=click.FloatRange(min=0.1), default=4.0, show_default=True,
              help="Memory per job, GB.")
@click.option("--array-parallelism", type=click.IntRange(min=1), default=64, show_default=True,
              help="Array tasks (sweep points, search workers) running at once.")
@click.option("--job-dir", type=click.Path(file_okay=False),
              help="Where submit.json, statuses and logs go (default outputs/jobs/STAMP_COMMAND).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def submit(backend: str, dry_run: bool, partition: str | None, account: str | None, time_min: int,
           cpus: int, gpus: int, mem_gb: float, array_parallelism: int, job_dir: str | None,
           command: tuple[str, ...]) -> None:
    """Run a hookforge command on a batch system: submit [OPTIONS] -- COMMAND ...

    A train sweep (KEY=a,b,c) becomes a job array, search --workers N N workers on one
    --storage, a pipeline one job per stage (Slurm: afterok dependencies).

    \b
    Examples:
      hookforge submit --backend slurm --partition gpu --gpus 1 -- train -c configs/lm/sft_tiny.yaml
      hookforge submit --backend slurm -- train -c configs/quickstart.yaml run.seed=1,2,3
      hookforge submit --backend condor --dry-run -- pipeline -c configs/pipelines/full.yaml
    """
    from hookforge.cluster import Resources, describe_command
    from hookforge.cluster import submit as submit_jobs

    argv = list(command)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    resources = Resources(partition=partition, time_min=time_min, cpus=cpus, gpus=gpus,
                          mem_gb=mem_gb, array_parallelism=array_parallelism, account=account)
    record = submit_jobs(backend, argv, resources, job_dir, dry_run)
    for job in record["jobs"]:
        needs = f"  after {', '.join(str(n) for n in job['needs'])}" if job["needs"] else ""
        ident = job.get("job_id") or "-"
        click.echo(f"job {job['index']:>3} {ident:>10}  {describe_command(job['argv'])}{needs}")
    if dry_run:
        click.echo(record["script"].rstrip())
        click.echo(f"dry run: {len(record['jobs'])} job(s) for {backend}; nothing was submitted")
        return
    click.echo(f"submitted {len(record['jobs'])} job(s) to {backend}; `hookforge status "
               f"{record['job_dir']}` follows them:")
    click.echo(record["job_dir"])


@cli.command()
@click.argument("directory", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(directory: str, as_json: bool) -> None:
    """The state of a run, a pipeline, a submission (its jobs) or an export (verified)."""
    from hookforge.status import describe

    lines, data = describe(directory)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    for line in lines:
        click.echo(line)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps exceptions to exit codes (see the module docstring)."""
    if argv is None:  # the real command line (tests pass argv and keep their collector)
        import atexit

        atexit.register(_skip_exit_collections)
    _dispatch(argv)


def _skip_exit_collections() -> None:
    """Freeze the heap before the interpreter tears down. With pandas, scikit-learn, LightGBM or
    torch loaded, the cyclic collections that finalisation runs over every live object take about
    0.3 s; the process is ending, so there is nothing for them to reclaim. Modules and objects are
    still finalised by reference counting, so open files are flushed and closed as usual."""
    import gc

    gc.disable()
    gc.freeze()


def _dispatch(argv: list[str] | None) -> None:
    from hookforge.errors import HookforgeError, RunInterrupted, UsageError

    try:
        code = cli.main(args=argv, prog_name="hookforge", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # one line, as for every usage error, not Click's block
        command = exc.ctx.command_path if exc.ctx is not None else "hookforge"
        click.echo(f"hookforge: error: {exc.format_message()} (see `{command} --help`)", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("hookforge: interrupted", err=True)
        sys.exit(130)
    except (RunInterrupted, KeyboardInterrupt) as exc:
        click.echo(f"hookforge: {exc or 'interrupted'}", err=True)
        sys.exit(130)
    except UsageError as exc:
        if _debug:
            import traceback

            traceback.print_exc()
        click.echo(f"hookforge: error: {exc}", err=True)
        sys.exit(2)
    except HookforgeError:
        import traceback

        traceback.print_exc()
        sys.exit(1)
    except OSError as exc:  # disk full, a read-only checkpoint folder...: not a bug to trace
        from hookforge.fileio import describe_os_error

        if _debug:
            import traceback

            traceback.print_exc()
        run_dir = getattr(exc, "hookforge_run_dir", None)
        hint = (f"; the run is marked failed and `hookforge train --resume {run_dir}` continues it "
                f"once that is fixed") if run_dir else ""
        click.echo(f"hookforge: error: {describe_os_error(exc)}{hint}", err=True)
        sys.exit(1)
    except Exception:
        import traceback

        traceback.print_exc()
        sys.exit(1)
    sys.exit(0)
