"""configs/lm/rlhf.yaml through `hookforge pipeline`: SFT, preference pairs, a reward model from
the SFT run, PPO from the SFT run rewarded by the verifier and the reward model, evaluation and
an export with the merged model; then the old tool's --skip-sft and --skip-reward."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import hookforge
from hookforge.export import verify

ROOT = Path(__file__).resolve().parents[3]
RLHF = ROOT / "configs" / "lm" / "rlhf.yaml"
SMALL = ["sft.data.n_train=400", "sft.data.n_test=40", "reward.loop.epochs=1",
         "ppo.loop.num_rollouts=2", "ppo.loop.rollout_batch_size=8", "ppo.data.n_train=64",
         "ppo.data.n_test=40"]


def test_the_rlhf_pipeline_runs_end_to_end_and_skips_as_the_old_tool_did(hookforge_cli, hookforge_tmp):
    done = hookforge_cli("pipeline", "-c", RLHF, "--output-dir", "rlhf", *SMALL,
                         timeout=900)
    assert done.returncode == 0, done.stderr
    record = json.loads((hookforge_tmp / "rlhf" / "pipeline.json").read_text())
    assert record["status"] == "finished"
    stages = record["stages"]
    sft_run = stages["sft"]["outputs"]["run_dir"]
    ppo_config = yaml.safe_load(Path(stages["ppo"]["outputs"]["config"]).read_text())
    assert ppo_config["model"]["pretrained"] == sft_run  # each stage takes the one before
    assert ppo_config["loop"]["reward"]["parts"][1] == {
        "name": "model", "run": stages["reward"]["outputs"]["run_dir"], "weight": 0.5}
    ppo_info = json.loads(Path(stages["ppo"]["outputs"]["run_dir"], "run.json").read_text())
    merged = Path(sft_run).resolve() / "checkpoints" / "best" / "merged"
    assert ppo_info["lm"]["base"] == str(merged)  # the SFT run's merged model
    assert "test" in json.loads(Path(stages["evaluate"]["outputs"]["evaluation"]).read_text())

    export = Path(stages["export"]["outputs"]["dir"])
    verify(export)  # every sha256 in the manifest
    manifest = json.loads((export / "manifest.json").read_text())
    files = set(manifest["files"])
    assert {"ppo/checkpoints/best/merged/config.json", "ppo/checkpoints/best/merged/model.safetensors",
            "ppo/checkpoints/best/tokenizer/tokenizer.json", "ppo/evaluation.json",
            "reward/evaluation.json", "sft/checkpoints/best/merged/config.json"} <= files
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(export / "ppo" / "checkpoints" / "best" / "merged",
                                         local_files_only=True)

    # --skip-sft: the finished SFT stage is reused; --num-rl-steps 3 retrains PPO only
    again = hookforge.pipeline(RLHF, [*SMALL, "ppo.loop.num_rollouts=3"], skip=["sft"],
                               output_dir=hookforge_tmp / "rlhf")
    assert again["ppo"].status == "finished" and again["reward"].status == "skipped"
    assert again["ppo"].outputs["run_dir"] != stages["ppo"]["outputs"]["run_dir"]

    # --skip-reward: a fresh pipeline without pairs or a reward model; PPO on the verifier alone
    fresh = hookforge_cli("pipeline", "-c", RLHF, "--output-dir", "plain", "--skip", "prefs",
                          "reward", *SMALL, "ppo.loop.reward={name: verifier}", timeout=900)
    assert fresh.returncode == 0, fresh.stderr
    record = json.loads((hookforge_tmp / "plain" / "pipeline.json").read_text())
    assert "reward" not in record["stages"] or record["stages"]["reward"]["status"] != "finished"
    config = yaml.safe_load(Path(record["stages"]["ppo"]["outputs"]["config"]).read_text())
    assert config["loop"]["reward"]["name"] == "verifier"


def test_a_checkpoint_without_a_merged_model_is_one_line(hookforge_cli, hookforge_tmp, lm_config):
    trained = hookforge.train(lm_config(loop={"epochs": 1}), run_dir=str(hookforge_tmp / "sft"))
    Path("p.yaml").write_text(yaml.safe_dump(lm_config(model={
        "config": None, "tokenizer": None, "pretrained": str(trained.run_dir)})))
    done = hookforge_cli("train", "-c", "p.yaml")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"hookforge: error: model.pretrained: {trained.run_dir}/checkpoints/best is a causal_lm "
        f"checkpoint without a merged model; train it with model.export_merged=true"]
