"""Prompts and completions as token ids: the chat template where the tokenizer has one, BOS and
EOS where it has them, the prompt masked from the loss, and what happens to an example longer
than the context (``truncate``: drop the start of the prompt, keeping the end next to the answer;
``error``: a one-line DataError naming the row)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hookforge.errors import DataError


@dataclass
class Encoded:
    ids: list[list[int]]  # prompt + completion (+ EOS) per example
    prompt_lengths: list[int]  # tokens of the prompt part (masked from the loss)


class Formatter:
    """Turns rows of prompts (and completions) into token ids for one tokenizer."""

    def __init__(self, tokenizer: Any, chat_template: str = "auto", too_long: str = "truncate") -> None:
        self.tokenizer = tokenizer
        self.chat = chat_template == "auto" and bool(getattr(tokenizer, "chat_template", None))
        self.too_long = too_long
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id

    def prompt_text(self, prompt: str, messages: Any = None) -> str:
        """The text the model continues: the chat template with a generation prompt where there
        is one, else the prompt itself."""
        if not self.chat:
            return prompt
        if isinstance(messages, str):  # read back from a JSON file
            messages = json.loads(messages)
        conversation = messages if isinstance(messages, list) and messages else \
            [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(conversation, tokenize=False,
                                                  add_generation_prompt=True)

    def prompt_ids(self, texts: list[str]) -> list[list[int]]:
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        if self.bos is not None and not self.chat:  # a chat template writes its own BOS
            ids = [[self.bos, *row] for row in ids]
        return ids

    def encode(self, X: Any, completions: Any, max_length: int, split_name: str) -> Encoded:
        """Prompt + completion ids of a split's rows (``X`` a DataFrame with ``prompt`` and, for
        chats, ``messages``), at most ``max_length`` tokens each."""
        messages = X["messages"] if "messages" in X.columns else [None] * len(X)
        texts = [self.prompt_text(p, m) for p, m in zip(X["prompt"], messages, strict=True)]
        prompts = self.prompt_ids(texts)
        answers = self.tokenizer([str(c) for c in completions], add_special_tokens=False)["input_ids"]
        ids, prompt_lengths = [], []
        for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
            answer = [*answer, self.eos] if self.eos is not None else list(answer)
            prompt = self.fit(prompt, max_length - min(len(answer), max_length // 2),
                              f"{split_name} row {row + 1}", what="prompt and completion",
                              total=len(prompt) + len(answer), limit=max_length)
            answer = answer[:max_length - len(prompt)]
            ids.append(prompt + answer)
            prompt_lengths.append(len(prompt))
        return Encoded(ids, prompt_lengths)

    def fit(self, prompt: list[int], room: int, where: str, *, what: str, total: int,
            limit: int) -> list[int]:
        """``prompt`` cut to ``room`` tokens from the left (or the configured error)."""
        if total <= limit:
            return prompt
        if self.too_long == "error":
            raise DataError(f"{where}: {what} are {total} tokens, above the limit of {limit} "
                            f"(data.max_length, or the context minus max_new_tokens); set "
                            f"model.too_long=truncate to cut the start of the prompt")
        keep = max(room, 1)
        head = [self.bos] if self.bos is not None and not self.chat and prompt[:1] == [self.bos] else []
        return head + prompt[len(prompt) - keep + len(head):]
