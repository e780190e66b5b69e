"""Generating completions: prompts batched by length, padded on the left (so every row's next
token is the last position), decoded by transformers' ``generate`` with its KV cache, greedy or
sampled (temperature, top_p) from a seed, so the same call gives the same answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from hookforge.components import ComponentConfig
from hookforge.seeds import derive_seed
from hookforge.types import Predictions


class GenerationSettings(ComponentConfig):
    max_new_tokens: int = Field(32, ge=1, description="tokens generated per prompt at most")
    do_sample: bool = Field(False, description="sample (temperature, top_p) instead of greedy")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    seed: int = Field(0, description="seed of the sampling (each batch derives its own)")
    batch_size: int = Field(32, ge=1, description="prompts generated together")


@dataclass
class Generations(Predictions):
    """Completions of a model for the rows of ``inputs`` (prompts, and where known their task
    family and verifier data)."""

    inputs: Any = None
    prompt_tokens: list[int] = field(default_factory=list)
    new_tokens: list[int] = field(default_factory=list)

    def to_frame(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame({"prompt": list(self.inputs["prompt"]), "completion": list(self.y_pred)})
        if "family" in self.inputs.columns and self.inputs["family"].notna().any():
            frame["family"] = list(self.inputs["family"])
        return frame


def generate(module: Any, formatter: Any, X: Any, settings: GenerationSettings, context: int,
             device: Any) -> Generations:
    """Completions of the prompts in ``X`` (a DataFrame with ``prompt``, maybe ``messages``)."""
    import numpy as np
    import torch

    tokenizer = formatter.tokenizer
    messages = X["messages"] if "messages" in X.columns else [None] * len(X)
    texts = [formatter.prompt_text(p, m) for p, m in zip(X["prompt"], messages, strict=True)]
    room = context - settings.max_new_tokens
    prompts = [formatter.fit(ids, room, f"prompt {row + 1}", what="prompt tokens",
                             total=len(ids), limit=room)
               for row, ids in enumerate(formatter.prompt_ids(texts))]
    order = np.argsort([-len(p) for p in prompts], kind="stable")  # less padding per batch
    completions: list[str] = [""] * len(prompts)
    new_tokens = [0] * len(prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else formatter.eos or 0
    was_training = module.training
    module.eval()
    try:
        for number, start in enumerate(range(0, len(order), settings.batch_size)):
            rows = order[start:start + settings.batch_size]
            width = max(len(prompts[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for k, i in enumerate(rows):
                input_ids[k, width - len(prompts[i]):] = torch.tensor(prompts[i])
                mask[k, width - len(prompts[i]):] = 1
            options: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens,
                                       "do_sample": settings.do_sample, "pad_token_id": pad,
                                       "eos_token_id": formatter.eos, "use_cache": True}
            if settings.do_sample:
                options.update(temperature=settings.temperature, top_p=settings.top_p, top_k=0)
                torch.manual_seed(derive_seed(settings.seed, "generate", number))
            with torch.no_grad():
                out = module.generate(input_ids=input_ids.to(device),
                                      attention_mask=mask.to(device), **options)
            for k, i in enumerate(rows):
                tokens = out[k, width:].tolist()
                if formatter.eos is not None and formatter.eos in tokens:
                    tokens = tokens[:tokens.index(formatter.eos)]
                new_tokens[i] = len(tokens)
                completions[i] = tokenizer.decode(tokens, skip_special_tokens=True)
    finally:
        module.train(was_training)
    return Generations(np.asarray(completions, dtype=object), task="generation", inputs=X,
                       prompt_tokens=[len(p) for p in prompts], new_tokens=new_tokens)
