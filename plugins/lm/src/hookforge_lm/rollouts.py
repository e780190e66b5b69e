"""What every RL loop for language models shares: sampling completions of prompts, the log
probabilities of the sampled tokens, the per-token KL to a reference, group-relative advantages.

Written here rather than taken from TRL: TRL 1.16 dropped its PPO trainer and its GRPO trainer
is a closed ``transformers.Trainer`` subclass, while these loops run on hookforge's run record
(one ``run.end_epoch`` per rollout, checkpoints, exact resume) and hookforge-ppo's clipped
objective. Each function is one step of the algorithm, as the papers state it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class Rollout:
    """Sampled completions: prompt (left-padded) then completion (right-padded) token ids."""

    input_ids: torch.Tensor  # (N, W + T)
    attention_mask: torch.Tensor  # (N, W + T): prompt tokens and completion tokens up to EOS
    prompt_width: int  # W
    completion_mask: torch.Tensor  # (N, T) float: the tokens that count (up to and with EOS)
    texts: list[str]  # the completions, decoded without special tokens
    rows: Any  # the prompts' rows, each repeated for its completions (a DataFrame)
    # multi-turn episodes: the episode each row (a turn) belongs to, rows of one episode in turn
    # order; None: every row is an episode of its own (a single completion)
    episode: torch.Tensor | None = None


def sample_completions(net: Any, formatter: Any, rows: Any, per_prompt: int, *, max_new_tokens: int,
                       temperature: float, top_p: float, context: int, seed: int,
                       device: Any) -> Rollout:
    """``per_prompt`` sampled completions of each row's prompt (rows repeated in place)."""
    tokenizer = formatter.tokenizer
    messages = rows["messages"] if "messages" in rows.columns else [None] * len(rows)
    texts = [formatter.prompt_text(p, m) for p, m in zip(rows["prompt"], messages, strict=True)]
    room = context - max_new_tokens
    prompts = [formatter.fit(ids, room, f"prompt {i + 1}", what="prompt tokens", total=len(ids),
                             limit=room) for i, ids in enumerate(formatter.prompt_ids(texts))]
    width = max(len(p) for p in prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else formatter.eos or 0
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for k, ids in enumerate(prompts):
        input_ids[k, width - len(ids):] = torch.tensor(ids)
        mask[k, width - len(ids):] = 1
    input_ids = input_ids.repeat_interleave(per_prompt, 0).to(device)
    mask = mask.repeat_interleave(per_prompt, 0).to(device)
    torch.manual_seed(seed)  # the same rollout samples the same completions, also after a resume
    was_training = net.training
    net.eval()
    with torch.no_grad():
        out = net.generate(input_ids=input_ids, attention_mask=mask, do_sample=True,
                           temperature=temperature, top_p=top_p, top_k=0,
                           max_new_tokens=max_new_tokens, pad_token_id=pad,
                           eos_token_id=formatter.eos, use_cache=True)
    net.train(was_training)
    completion = out[:, width:]
    if formatter.eos is not None:  # count tokens up to and including the first EOS
        is_eos = completion == formatter.eos
        after = (is_eos.cumsum(1) - is_eos.long()) > 0
        completion_mask = (~after).float()
    else:
        completion_mask = torch.ones_like(completion, dtype=torch.float)
    decoded = []
    for k in range(completion.shape[0]):
        tokens = completion[k][completion_mask[k] > 0].tolist()
        if formatter.eos is not None and tokens and tokens[-1] == formatter.eos:
            tokens = tokens[:-1]
        decoded.append(tokenizer.decode(tokens, skip_special_tokens=True))
    return Rollout(out, torch.cat([mask, completion_mask.long()], 1), width, completion_mask,
                   decoded, rows.loc[rows.index.repeat(per_prompt)].reset_index(drop=True))


def select(rollout: Rollout, index: torch.Tensor) -> Rollout:
    """The completions at ``index`` (those whose rewards are usable; in order, for episodes)."""
    return Rollout(rollout.input_ids[index], rollout.attention_mask[index], rollout.prompt_width,
                   rollout.completion_mask[index], [rollout.texts[i] for i in index.tolist()],
                   rollout.rows.iloc[index.cpu().numpy()].reset_index(drop=True),
                   None if rollout.episode is None else rollout.episode[index])


def concat_rollouts(parts: list[Rollout], pad: int) -> Rollout:
    """One Rollout of the rows of ``parts`` (the turns of episodes, each sampled on its own):
    prompts re-padded on the left to the widest, completions on the right to the longest."""
    import pandas as pd

    width = max(p.prompt_width for p in parts)
    length = max(p.completion_mask.shape[1] for p in parts)
    rows = sum(len(p.texts) for p in parts)
    device = parts[0].input_ids.device
    input_ids = torch.full((rows, width + length), pad, dtype=torch.long, device=device)
    attention = torch.zeros((rows, width + length), dtype=torch.long, device=device)
    completion = torch.zeros((rows, length), dtype=torch.float, device=device)
    start = 0
    for p in parts:
        n, w, t = len(p.texts), p.prompt_width, p.completion_mask.shape[1]
        input_ids[start:start + n, width - w:width + t] = p.input_ids
        attention[start:start + n, width - w:width + t] = p.attention_mask
        completion[start:start + n, :t] = p.completion_mask
        start += n
    return Rollout(input_ids, attention, width, completion, [t for p in parts for t in p.texts],
                   pd.concat([p.rows for p in parts], ignore_index=True))


def completion_logprobs(net: Any, rollout: Rollout, value_head: Any = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(log p of each sampled completion token, the distribution's entropy there, and with a
    value head the value of the state before each token), each (N, T)."""
    mask = rollout.attention_mask
    positions = (mask.cumsum(1) - 1).clamp(min=0)  # left padding: positions start at each prompt
    out = net(input_ids=rollout.input_ids, attention_mask=mask, position_ids=positions,
              use_cache=False, output_hidden_states=value_head is not None)
    width = rollout.prompt_width
    logits = out.logits[:, width - 1:-1].float()  # the logits that predicted each completion token
    logp_all = F.log_softmax(logits, dim=-1)
    tokens = rollout.input_ids[:, width:]
    logprob = logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    values = None
    if value_head is not None:  # the last layer's state where each token was predicted
        hidden = out.hidden_states[-1][:, width - 1:-1].float()
        values = value_head(hidden).squeeze(-1)
    return logprob, entropy, values


def reward_value(value: Any) -> float:
    """A reward as a float; NaN where it is not a finite number (its row is then dropped)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def kl_per_token(logprob: torch.Tensor, ref_logprob: torch.Tensor) -> torch.Tensor:
    """KL(policy || reference) per sampled token, the unbiased, never negative estimator
    ``exp(ref - logp) - (ref - logp) - 1`` (Schulman's "k3"; as DeepSeekMath's GRPO uses)."""
    delta = ref_logprob - logprob
    return delta.exp() - delta - 1.0


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's advantages: each completion's reward minus its group's mean, over the group's
    standard deviation (a group of equal rewards gets 0: it says nothing about which is better)."""
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(1, keepdim=True)
    std = grouped.std(1, keepdim=True, unbiased=True)
    return ((grouped - mean) / (std + eps)).view(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per sequence, the mean over its counted tokens; then the mean over sequences (each
    completion weighs the same, whatever its length: GRPO's normalisation)."""
    per_sequence = (values * mask).sum(1) / mask.sum(1).clamp(min=1)
    return per_sequence.mean()
