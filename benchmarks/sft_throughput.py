"""SFT training throughput: hookforge-lm against TRL's SFTTrainer (trl 1.16), one run each.

Both sides train the same tiny causal LM (a random Llama: hidden 128, 4 layers, 4 heads, saved
as a local model directory, so both start from the same weights) with the same LoRA settings
(r 8, alpha 16, q_proj and v_proj), tokenizer, data (prompt/completion pairs of the four task
families: short sums, long SAT formulas, so lengths vary), batch size, learning rate, loss on
completion tokens only, fp32 on the CPU, no gradient checkpointing (TRL's default turns it on:
switched off here as on our side), no evaluation or checkpoints during the timed part.

Sides, each in its own process (peak RSS is that process's):
  trl              SFTTrainer, prompt-completion dataset, padding to the longest in the batch;
  hookforge        `hookforge.train`, model causal_lm, data jsonl, the supervised loop;
  hookforge-group  the same with data.group_by_length (batches of similar length, shuffled);
  hookforge-pack   the same with model.packing (a batch packed into rows of max_length).
Samples/s = training examples over the wall time of training (TRL: trainer.train(); hookforge:
the epochs' training time as the engine records it, validation excluded, none here).

    .venv/bin/python benchmarks/sft_throughput.py [--examples 2048] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("trl", "hookforge", "hookforge-group", "hookforge-pack")
LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
LR = 1e-3
NOTE = ("Equal work: every example fits max_length. With max_length 128 TRL cut long examples on "
        "the right and dropped\nthe ones left without a completion token (1793 of 2048 trained), "
        "while hookforge cut prompts on the left\nand kept every completion; that run read 0.89x "
        "for the plain side while doing 14% more examples.")
# long enough for every example (the longest is about 200 tokens): TRL cuts long examples on the
# right and drops those left without a completion token, which would give it less work
MAX_LENGTH = 256


def prepare(workdir: Path, examples: int) -> None:
    """The data file, the tokenizer and the tiny model directory both sides load."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from hookforge_lm.tasks.arith import Arith, ArithOptions
    from hookforge_lm.tasks.programs import Abduction, Deduction
    from hookforge_lm.tasks.sat import Sat, SatOptions
    from hookforge_torch.tokens import TokenizerTraining, train_tokenizer

    rng = np.random.default_rng(0)
    families = [Arith(ArithOptions(max_digits=3)), Sat(SatOptions(max_vars=6)), Abduction(), Deduction()]
    rows = []
    for i in range(examples):
        instance = families[i % len(families)].generate(rng, float(rng.uniform()))
        rows.append({"prompt": instance.prompt, "completion": instance.answer})
    order = rng.permutation(len(rows))
    (workdir / "train.jsonl").write_text("".join(json.dumps(rows[i]) + "\n" for i in order))
    tokenizer = train_tokenizer([r["prompt"] + r["completion"] for r in rows],
                                TokenizerTraining(kind="bytelevel", vocab_size=512, split_digits=True))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512,
                         num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    AutoModelForCausalLM.from_config(config).save_pretrained(workdir / "model")
    tokenizer.save_pretrained(workdir / "model")


def run_trl(workdir: Path, batch_size: int) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(workdir / "model", local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(workdir / "model", local_files_only=True)
    data = datasets.load_dataset("json", data_files=str(workdir / "train.jsonl"), split="train")
    args = SFTConfig(output_dir=str(workdir / "trl"), per_device_train_batch_size=batch_size,
                     num_train_epochs=1, learning_rate=LR, lr_scheduler_type="constant",
                     warmup_steps=0, weight_decay=0.0, max_length=MAX_LENGTH,
                     completion_only_loss=True, packing=False, gradient_checkpointing=False,
                     use_cpu=True, bf16=False, fp16=False, report_to="none", save_strategy="no",
                     eval_strategy="no", logging_steps=10, dataloader_num_workers=0, seed=0,
                     disable_tqdm=True)
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft)
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    examples = len(trainer.train_dataset)  # what it trained on, after its own filtering
    assert examples == len(data), f"TRL dropped {len(data) - examples} examples"
    return {"samples_per_s": examples / seconds, "seconds": seconds,
            "loss": float(output.training_loss)}


def run_hookforge(workdir: Path, batch_size: int, side: str) -> dict:
    import hookforge
    from hookforge.record import RunRecord

    config = {
        "run": {"name": side, "seed": 0, "output_dir": str(workdir / "hf"), "progress": False,
                "log_every_n_steps": 10, "system_metrics": False},
        "data": {"name": "jsonl", "path": str(workdir / "train.jsonl"), "max_length": MAX_LENGTH,
                 "split": {"val": 0.0, "test": 0.0, "stratify": False},
                 "group_by_length": side == "hookforge-group"},
        "model": {"name": "causal_lm", "pretrained": str(workdir / "model"),
                  "lora": {"enabled": True, **LORA}, "packing": side == "hookforge-pack"},
        "loop": {"name": "supervised", "epochs": 1, "batch_size": batch_size, "device": "cpu",
                 "optimizer": {"name": "adamw", "lr": LR, "weight_decay": 0.0},
                 "monitor": "train/loss", "early_stopping": {"metric": None}},
        "evaluators": [{"name": "tasks"}],
    }
    result = hookforge.train(config, evaluate_splits=())
    rows = RunRecord.open(result.run_dir).read_metrics()
    seconds = sum(r["value"] for r in rows if r["name"] == "epoch_time_s")
    loss = [r["value"] for r in rows if r["name"] == "loss" and r["split"] == "train"][-1]
    examples = sum(1 for _ in open(workdir / "train.jsonl"))
    return {"samples_per_s": examples / seconds, "seconds": seconds, "loss": loss}


def worker(side: str, workdir: Path, batch_size: int) -> None:
    torch_threads = os.environ.get("BENCH_THREADS")
    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))
    out = run_trl(workdir, batch_size) if side == "trl" else run_hookforge(workdir, batch_size, side)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--worker", choices=SIDES)
    parser.add_argument("--workdir")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sft_throughput.txt"))
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.workdir), args.batch_size)
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="hookforge-sft-bench-") as tmp:
        workdir = Path(tmp)
        prepare(workdir, args.examples)
        for side in SIDES:
            done = subprocess.run([sys.executable, __file__, "--worker", side, "--workdir", tmp,
                                   "--batch-size", str(args.batch_size)],
                                  capture_output=True, text=True, cwd=ROOT)
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{side} failed:\n{done.stderr[-3000:]}")
            results[side] = json.loads(line[7:])
            print(side, results[side], flush=True)
    import transformers
    import trl

    base = results["trl"]["samples_per_s"]
    lines = [
        "SFT throughput, hookforge-lm vs TRL SFTTrainer (benchmarks/sft_throughput.py)",
        f"tiny Llama (hidden 128, 4 layers), LoRA r8 on q_proj/v_proj, {args.examples} examples, "
        f"batch {args.batch_size}, max_length {MAX_LENGTH}, CPU fp32, 1 epoch; trl {trl.__version__}, "
        f"transformers {transformers.__version__}",
        "",
        f"{'side':16} {'samples/s':>10} {'vs trl':>7} {'train s':>8} {'final loss':>10} {'peak RSS MB':>12}",
    ]
    for side, r in results.items():
        lines.append(f"{side:16} {r['samples_per_s']:>10.1f} {r['samples_per_s'] / base:>6.2f}x "
                     f"{r['seconds']:>8.1f} {r['loss']:>10.4f} {r['peak_rss_mb']:>12.0f}")
    plain = results["hookforge"]["samples_per_s"] / base
    best = max(results["hookforge-group"]["samples_per_s"], results["hookforge-pack"]["samples_per_s"]) / base
    lines += ["", f"target >= 1.0x plain: {plain:.2f}x ({'met' if plain >= 1.0 else 'NOT met'}); "
                  f">= 1.2x grouped or packed: {best:.2f}x ({'met' if best >= 1.2 else 'NOT met'})",
              "", NOTE]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
