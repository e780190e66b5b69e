"""Mamba's cost per training step as documents grow, and what it buys on long-range data.

Scaling (default): time per training step and peak memory (max RSS of the process: CPU) at each
sequence length, batch 2, fp32, for
  hookforge-mamba  `hookforge.train` with model `mamba` (variant mamba2: hidden 64, 4 layers,
                   state 16, mean pooling), the `supervised` loop, local tracker, progress bar;
  plain-mamba      the same transformers Mamba2Model, pooling and head in a hand-written loop
                   (AdamW, the same batches): the framework overhead is hookforge / plain;
  hookforge-bert   the transformer baseline (hookforge-bert, a random BERT: hidden 64, 2 layers,
                   4 heads, intermediate 256, about as many weights outside the embeddings).
Every (side, length) runs in its own process with a time limit, so one that runs out of memory or
time is reported as such and the others go on. Time per step = the second epoch's training time
over its steps (the first is warm-up).

Accuracy (--accuracy): the long-range documents of examples/data/make_longdoc.py (the label
needs the first and the last key word) at a size a CPU trains in minutes; Mamba and the BERT
baseline with the same epochs, batch size, optimizer and tokenizer.

    .venv/bin/python benchmarks/mamba_scaling.py [--lengths 512 1024 ...] [--limit-s 600]
    .venv/bin/python benchmarks/mamba_scaling.py --accuracy [--docs 600 --min-words 600 --max-words 1200]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAMBA = {"hidden_size": 64, "num_hidden_layers": 4, "state_size": 16, "expand": 2, "head_dim": 16}
BERT = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 256}
BATCH = 2


def _generator():
    spec = importlib.util.spec_from_file_location("make_longdoc", ROOT / "examples/data/make_longdoc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def steps_for(length: int) -> int:
    return max(3, min(16, 65536 // length))


def prepare(directory: Path, length: int) -> tuple[Path, Path]:
    """Documents of more than ``length`` words (so every one is cut to exactly ``length``
    tokens: the tokenizer has a token per word) and that tokenizer."""
    from hookforge_torch.tokens import TokenizerTraining, train_tokenizer

    rows = _generator().make_documents(BATCH * steps_for(length), length + 8, length + 8, seed=1)
    data = directory / f"docs-{length}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tokenizer = directory / "tokenizer"
    if not tokenizer.is_dir():
        texts = [r["text"] for r in _generator().make_documents(200, 200, 400, seed=2)]
        train_tokenizer(texts, TokenizerTraining(vocab_size=512, min_frequency=1)).save_pretrained(
            tokenizer)
    return data, tokenizer


def run_hookforge(side: str, data: Path, tokenizer: Path, length: int, out: Path) -> float:
    import hookforge

    os.environ["HOOKFORGE_PROGRESS"] = "1"
    if side == "hookforge-mamba":
        model = {"name": "mamba", "variant": "mamba2", "config": MAMBA, "pooling": "mean",
                 "dropout": 0.0, "tokenizer": str(tokenizer)}
    else:
        model = {"name": "bert", "pretrained": None, "tokenizer": str(tokenizer),
                 "config": {**BERT, "max_position_embeddings": length + 8}}
    result = hookforge.train({
        "run": {"name": "scale", "seed": 0, "output_dir": str(out), "figures": False,
                "system_metrics": False},
        "data": {"name": "text", "path": str(data), "max_length": length,
                 "split": {"val": 0.0, "test": 0.0, "stratify": False}},
        "model": model,
        "loop": {"name": "supervised", "epochs": 2, "batch_size": BATCH, "device": "cpu",
                 "monitor": "train/loss", "optimizer": {"name": "adamw", "lr": 1e-3}},
        "evaluators": []})
    rows = hookforge.RunRecord.open(result.run_dir).read_metrics()
    times = [r["value"] for r in rows if r["name"] == "epoch_time_s"]
    return times[-1] / steps_for(length)


def run_plain(data: Path, tokenizer_dir: Path, length: int) -> float:
    # the libraries the hookforge process has loaded before torch (see loop_overhead.py)
    import numpy as np
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import torch
    from transformers import AutoTokenizer, Mamba2Config, Mamba2Model

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    ids = torch.tensor(tokenizer([r["text"] for r in rows], truncation=True,
                                 max_length=length)["input_ids"])
    labels = torch.tensor([r["label"] == "match" for r in rows], dtype=torch.long)
    config = Mamba2Config(**MAMBA, num_heads=MAMBA["expand"] * MAMBA["hidden_size"] // MAMBA["head_dim"],
                          n_groups=1, chunk_size=64, vocab_size=len(tokenizer),
                          pad_token_id=tokenizer.pad_token_id, use_cache=False)
    backbone, head = Mamba2Model(config), torch.nn.Linear(MAMBA["hidden_size"], 2)
    params = [*backbone.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    steps = steps_for(length)
    seconds = 0.0
    for epoch in range(2):
        order = np.random.default_rng([0, epoch]).permutation(len(ids))
        start = time.perf_counter()
        for i in range(steps):
            index = torch.from_numpy(order[i * BATCH:(i + 1) * BATCH])
            batch = ids.index_select(0, index)
            mask = torch.ones_like(batch)
            hidden = backbone(input_ids=batch, attention_mask=mask).last_hidden_state
            logits = head(hidden.mean(1))
            loss = torch.nn.functional.cross_entropy(logits, labels.index_select(0, index))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
    return seconds / steps


def child(args: argparse.Namespace) -> None:
    directory = Path(args.work)
    data, tokenizer = prepare(directory, args.length)
    with tempfile.TemporaryDirectory() as out:
        if args.side == "plain-mamba":
            step = run_plain(data, tokenizer, args.length)
        else:
            step = run_hookforge(args.side, data, tokenizer, args.length, Path(out))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step_s": step, "peak_mb": peak_mb}))


def scaling(args: argparse.Namespace) -> None:
    sides = ["plain-mamba", "hookforge-mamba", "hookforge-bert"]
    print(f"batch {BATCH}, fp32, CPU ({os.cpu_count()} cores); mamba2 {MAMBA}; bert {BERT}; "
          f"limit {args.limit_s} s per (side, length)")
    print(f"{'length':>7} {'side':<16} {'step s':>9} {'peak MB':>9}  note")
    with tempfile.TemporaryDirectory() as work:
        skip_bert = False
        for length in args.lengths:
            results = {}
            for side in sides:
                if side == "hookforge-bert" and skip_bert:
                    print(f"{length:>7} {side:<16} {'-':>9} {'-':>9}  skipped: a shorter length "
                          f"already ran out of time or memory", flush=True)
                    continue
                command = [sys.executable, __file__, "--side", side, "--length", str(length),
                           "--work", work]
                try:
                    done = subprocess.run(command, capture_output=True, text=True,
                                          timeout=args.limit_s)
                except subprocess.TimeoutExpired:
                    skip_bert |= side == "hookforge-bert"
                    print(f"{length:>7} {side:<16} {'-':>9} {'-':>9}  over {args.limit_s} s", flush=True)
                    continue
                if done.returncode != 0:
                    skip_bert |= side == "hookforge-bert"
                    last = (done.stderr.strip().splitlines() or ["?"])[-1][:120]
                    print(f"{length:>7} {side:<16} {'-':>9} {'-':>9}  failed "
                          f"(exit {done.returncode}: {last})", flush=True)
                    continue
                results[side] = json.loads(done.stdout.strip().splitlines()[-1])
                r = results[side]
                note = ""
                if side == "hookforge-mamba" and "plain-mamba" in results:
                    ratio = r["step_s"] / results["plain-mamba"]["step_s"]
                    verdict = "met" if ratio <= 1.05 else "NOT met"
                    note = f"hookforge/plain {ratio:.3f} (target <= 1.05: {verdict})"
                if side == "hookforge-bert" and "hookforge-mamba" in results:
                    note = f"bert/mamba {r['step_s'] / results['hookforge-mamba']['step_s']:.2f}x"
                print(f"{length:>7} {side:<16} {r['step_s']:>9.3f} {r['peak_mb']:>9.0f}  {note}",
                      flush=True)


def accuracy(args: argparse.Namespace) -> None:
    import hookforge

    with tempfile.TemporaryDirectory() as work:
        rows = _generator().make_documents(args.docs, args.min_words, args.max_words, seed=0)
        data = Path(work) / "longdoc.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        budget = {"epochs": args.epochs, "batch_size": 8, "device": "cpu",
                  "optimizer": {"name": "adamw", "lr": 2e-3, "weight_decay": 0.01},
                  "scheduler": {"name": "cosine", "warmup_ratio": 0.05}, "grad_clip": 1.0,
                  "monitor": "val/accuracy", "early_stopping": {"metric": None}}
        common = {"run": {"seed": 0, "output_dir": work, "figures": False, "system_metrics": False},
                  "data": {"name": "text", "path": str(data), "max_length": args.max_words + 16,
                           "group_by_length": True, "split": {"val": 0.15, "test": 0.15}}}
        print(f"{args.docs} documents of {args.min_words}-{args.max_words} words (label: do the "
              f"first and last key words match), {args.epochs} epochs, batch 8, AdamW 2e-3 cosine")
        start = time.perf_counter()
        mamba = hookforge.train({**common, "run": {**common["run"], "name": "mamba"},
                                 "model": {"name": "mamba", "variant": "mamba2", "config": MAMBA,
                                           "pooling": "last",
                                           "tokenizer": {"train": {"vocab_size": 512}}},
                                 "loop": {"name": "supervised", **budget}})
        mamba_s = time.perf_counter() - start
        tokenizer = Path(mamba.run_dir) / "checkpoints" / "best" / "tokenizer"
        start = time.perf_counter()
        bert = hookforge.train({**common, "run": {**common["run"], "name": "bert"},
                                "model": {"name": "bert", "pretrained": None,
                                          "tokenizer": str(tokenizer),
                                          "config": {**BERT, "max_position_embeddings":
                                                     args.max_words + 16}},
                                "loop": {"name": "supervised", **budget}})
        bert_s = time.perf_counter() - start
        for name, result, seconds in (("mamba", mamba, mamba_s), ("bert", bert, bert_s)):
            info = json.loads((Path(result.run_dir) / "run.json").read_text())
            params = info.get("mamba", {}).get("parameters")
            test, val = result.evaluation["test"], result.evaluation["val"]
            print(f"{name:<6} test accuracy {test['accuracy']:.3f}  val accuracy {val['accuracy']:.3f}"
                  f"  ({seconds:.0f} s{f', {params} parameters' if params else ''})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+",
                        default=[512, 1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--limit-s", type=int, default=600)
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--min-words", type=int, default=600)
    parser.add_argument("--max-words", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--side")
    parser.add_argument("--length", type=int)
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.side:
        child(args)
    elif args.accuracy:
        accuracy(args)
    else:
        scaling(args)


if __name__ == "__main__":
    main()
