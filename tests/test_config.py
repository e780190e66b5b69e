"""Config files, overrides, shortcuts and strict validation (through Python and the CLI)."""

from __future__ import annotations

import pytest
import yaml
from conftest import IRIS_CSV, QUICKSTART

from hookforge.config import apply_overrides, apply_shortcuts, load_config, redact
from hookforge.config.secrets import REDACTED, redact_argv
from hookforge.errors import ConfigError, PluginError


def test_overrides_parse_yaml_scalars_and_lists():
    raw = apply_overrides({"model": {"name": "centroid"}},
                          ["model.temperature=2", "run.seed=7", "trackers=[local,jsonl]",
                           "model.standardize=false", "run.name=my run"])
    assert raw["model"]["temperature"] == 2
    assert raw["run"]["seed"] == 7
    assert raw["trackers"] == [{"name": "local"}, {"name": "jsonl"}]
    assert raw["model"]["standardize"] is False
    assert raw["run"]["name"] == "my run"


def test_selecting_another_component_drops_options_of_the_old_one():
    raw = apply_overrides({"model": {"name": "lightgbm", "num_leaves": 31}}, ["model=centroid"])
    assert raw["model"] == {"name": "centroid"}
    same = apply_overrides({"model": {"name": "centroid", "temperature": 2}}, ["model=centroid"])
    assert same["model"]["temperature"] == 2


def test_switching_by_name_key_keeps_the_new_components_options_in_any_order():
    base = {"model": {"name": "lightgbm", "num_leaves": 31}}
    raw = apply_overrides(base, ["model.temperature=2", "model.name=centroid"])
    assert raw["model"] == {"name": "centroid", "temperature": 2}
    kept = apply_overrides({"model": {"name": "centroid", "temperature": 2}}, ["model.name=centroid"])
    assert kept["model"]["temperature"] == 2


def test_shortcuts_select_and_add():
    raw = apply_shortcuts({"trackers": ["local"]}, data="sklearn", model="centroid",
                          trackers=("jsonl", "local"), evaluators=("classification",))
    assert raw["data"] == {"name": "sklearn"} and raw["model"] == {"name": "centroid"}
    assert [t["name"] for t in raw["trackers"]] == ["local", "jsonl"]
    assert raw["evaluators"] == [{"name": "classification"}]


def test_load_config_fills_defaults_and_default_loop():
    config = load_config(QUICKSTART, ["model.temperature=0.5"])
    assert config.loop.name == "simple"
    assert config.model.options.temperature == 0.5
    full = config.to_dict()
    assert full["model"]["metric"] == "euclidean"  # a default, written out
    assert full["trackers"][0]["name"] == "local"


def test_local_tracker_is_always_on_and_first():
    config = load_config({"data": {"name": "sklearn", "dataset": "iris"}, "model": "centroid",
                          "trackers": ["jsonl"]})
    assert [t.name for t in config.trackers] == ["local", "jsonl"]


@pytest.mark.parametrize("override, expected", [
    (["modle.x=1"], "unknown section 'modle' (did you mean 'model'?)"),
    (["model.standardise=false"], "unknown key 'model.standardise' (did you mean 'standardize'?)"),
    (["model.temperature=abc"], "invalid value for 'model.temperature': 'abc'"),
    (["model.temperature=-1"], "invalid value for 'model.temperature': -1 (expected greater than 0)"),
    (["run.seed=-3"], "invalid value for 'run.seed'"),
    (["data.split.val=0.6", "data.split.test=0.6"], "split.val + split.test must be below 1"),
    (["run.log_every_n_steps=zero"], "'run.log_every_n_steps'"),
    (["trackers.0.flush_rows=0"], "'trackers.0.flush_rows'"),
])
def test_validation_errors_name_the_dotted_path(override, expected):
    with pytest.raises(ConfigError) as info:
        load_config(QUICKSTART, override)
    assert expected in str(info.value)
    assert str(QUICKSTART) in str(info.value)


def test_unknown_plugin_lists_names_and_suggests():
    with pytest.raises(PluginError) as info:
        load_config(QUICKSTART, ["model=centroyd"])
    message = str(info.value)
    assert "unknown model 'centroyd'" in message
    assert "did you mean 'centroid'" in message
    available = message.split("available model plugins: ")[1].split(", ")
    assert "centroid" in available and available == sorted(available)


def test_missing_required_option():
    with pytest.raises(ConfigError, match=r"missing required key 'data\.path'"):
        load_config({"data": "csv", "model": "centroid"})


def test_missing_section():
    with pytest.raises(ConfigError, match="the 'model' section is missing"):
        load_config({"data": {"name": "sklearn", "dataset": "iris"}})


def test_yaml_syntax_error_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  name: x\nmodel: [centroid\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error at .*bad.yaml:4"):
        load_config(bad)


def test_missing_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listing)


def test_redaction_of_keys_urls_and_argv():
    config = {"trackers": [{"name": "comet", "api_key": "abc123", "uri": "postgresql://u:pw@h/db"}],
              "model": {"token_length": 3}}
    clean = redact(config)
    assert clean["trackers"][0]["api_key"] == REDACTED
    assert clean["trackers"][0]["uri"] == f"postgresql://u:{REDACTED}@h/db"
    argv = redact_argv(["train", "trackers.0.api_key=abc123", "--token", "xyz", "--storage",
                        "postgresql://u:pw@h/db"])
    assert "abc123" not in " ".join(argv) and "xyz" not in argv and "pw@" not in " ".join(argv)
    # "token" is a secret on its own or as hf_token/auth_token, not in a language model's words
    words = {"tokenizer": "tok/", "max_new_tokens": 64, "pad_token_id": 0, "eos_token": "[EOS]",
             "token_length": 3, "hf_token": "hf_abc", "token": "t0k", "auth-token": "a"}
    assert redact(words) == {**words, "hf_token": REDACTED, "token": REDACTED,
                             "auth-token": REDACTED}
    argv = redact_argv(["model.tokenizer=tok/", "hub.hf_token=hf_abc", "x={token: t0k}"])
    assert argv[0] == "model.tokenizer=tok/" and "hf_abc" not in argv[1] and "t0k" not in argv[2]


def test_cli_bad_config_is_one_line_exit_2(hookforge_cli, hookforge_tmp):
    bad = hookforge_tmp / "bad.yaml"
    bad.write_text("run: {name: x\n")
    for args in (["train", "-c", "nope.yaml"], ["train", "-c", str(bad)],
                 ["train", "-c", QUICKSTART, "model.standardise=false"],
                 ["train", "-c", QUICKSTART, "model.temperature=hot"],
                 ["train", "-c", QUICKSTART, "--model", "centroyd"]):
        result = hookforge_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("hookforge: error: ")
    assert not (hookforge_tmp / "outputs").exists()  # validation happens before any work


def test_debug_shows_the_traceback(hookforge_cli):
    result = hookforge_cli("--debug", "train", "-c", QUICKSTART, "model.temperature=hot")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_resolved_config_is_saved_with_secrets_redacted(hookforge_cli, hookforge_tmp):
    result = hookforge_cli("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}",
                           "--tracker", "jsonl", "run.tags={api_key: s3cret}", "--run-dir", "r")
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((hookforge_tmp / "r" / "config.yaml").read_text())
    assert saved["run"]["tags"]["api_key"] == REDACTED
    assert saved["model"]["temperature"] == 1.0
    assert "s3cret" not in (hookforge_tmp / "r" / "run.json").read_text()
    assert "s3cret" not in (hookforge_tmp / "r" / "tracker.jsonl").read_text()
