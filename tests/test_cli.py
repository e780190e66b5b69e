"""The command line: start-up cost, listing, schema display, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import IRIS_CSV, QUICKSTART

HEAVY = ("torch", "transformers", "mlflow", "comet_ml", "optuna", "lightgbm", "xgboost",
         "sklearn", "pandas", "matplotlib")


def _modules_after(*args: str) -> set[str]:
    code = ("import sys\nfrom hookforge.cli.main import main\n"
            f"try:\n    main({list(args)!r})\nexcept SystemExit:\n    pass\n"
            "print('MODULES=' + ','.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    line = next(line for line in out.stdout.splitlines() if line.startswith("MODULES="))
    return set(line[len("MODULES="):].split(","))


def test_help_and_plugins_do_not_import_heavy_libraries():
    for args in (["--help"], ["plugins"], ["plugins", "--json"]):
        loaded = _modules_after(*args)
        heavy = sorted(m for m in HEAVY if m in loaded)
        assert not heavy, f"hookforge {' '.join(args)} imported {heavy}"


def test_version_and_python_dash_m(hookforge_cli):
    from hookforge import __version__

    result = hookforge_cli("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout
    script = Path(sys.executable).with_name("hookforge")  # the console script of this venv
    direct = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert direct.stdout == result.stdout


def test_plugins_lists_builtins_and_example(hookforge_cli):
    result = hookforge_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    for key in [("data", "csv"), ("data", "parquet"), ("data", "sklearn"), ("loop", "simple"),
                ("tracker", "local"), ("evaluator", "classification"),
                ("evaluator", "regression"), ("searcher", "grid"), ("model", "centroid"),
                ("tracker", "jsonl")]:
        assert key in rows, key
        assert rows[key]["status"] == "ok"
    assert rows[("model", "centroid")]["distribution"] == "hookforge-example"
    table = hookforge_cli("plugins")
    assert "centroid" in table.stdout and "hookforge-example" in table.stdout


def test_plugins_show_prints_schema(hookforge_cli):
    result = hookforge_cli("plugins", "show", "model", "centroid")
    assert result.returncode == 0, result.stderr
    assert "temperature" in result.stdout and "default: 1.0" in result.stdout
    assert "default loop: simple" in result.stdout
    schema = json.loads(hookforge_cli("plugins", "show", "data", "csv", "--json").stdout)
    assert "path" in schema["required"]
    bad = hookforge_cli("plugins", "show", "model", "centroyd")
    assert bad.returncode == 2 and "did you mean 'centroid'" in bad.stderr
    bad_kind = hookforge_cli("plugins", "show", "modle", "x")
    assert bad_kind.returncode == 2 and "did you mean 'model'" in bad_kind.stderr


def test_train_from_shortcuts_only(hookforge_cli, hookforge_tmp):
    result = hookforge_cli("train", "--data", "csv", f"data.path={IRIS_CSV}", "data.target=species",
                           "--model", "centroid", "--run-dir", "r")
    assert result.returncode == 0, result.stderr
    assert (hookforge_tmp / "r" / "evaluation.json").exists()
    lines = result.stdout.splitlines()
    assert lines[-1] == "r" and lines[-2] == "run finished; its record:"  # the run dir alone, last
    assert any(line.startswith("test (n=") and "accuracy=" in line for line in lines)
    assert any("f1 per class: setosa=" in line for line in lines)  # grouped, not dropped
    log = (hookforge_tmp / "r" / "train.log").read_text()  # the console log, kept with the record
    assert "test (n=" in log and "f1 per class" in log


def test_train_without_config_or_components_is_usage_error(hookforge_cli):
    result = hookforge_cli("train")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_unknown_command_is_usage_error(hookforge_cli):
    result = hookforge_cli("trian")
    assert result.returncode == 2


def test_run_dir_not_empty_is_refused(hookforge_cli, hookforge_tmp):
    (hookforge_tmp / "busy").mkdir()
    (hookforge_tmp / "busy" / "file").write_text("x")
    result = hookforge_cli("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "--run-dir", "busy")
    assert result.returncode == 2 and "not empty" in result.stderr
