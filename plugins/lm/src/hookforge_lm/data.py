"""Data sources of causal language models: ``tasks`` (generated, verifiable problems) and
``jsonl`` (a user's own prompt/completion pairs or chat conversations).

Both give splits whose inputs ``X`` are a DataFrame of prompts (columns ``prompt``, and where
known ``family``, ``data`` (the verifier's JSON), ``difficulty``, ``messages``) and whose targets
``y`` are the reference completions; the dataset's task is ``generation``. The model turns them
into tokens (chat templates, masking the prompt); the ``tasks`` evaluator scores what it
generates with each row's family verifier.

``tasks`` writes the instances it generated to the run directory (``data/train.jsonl``, ...)
and reads them back when the run resumes or is evaluated later, so a run's problems never change
under it, even if a generator does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from hookforge.components import ComponentConfig, DataSource
from hookforge.errors import DataError, did_you_mean
from hookforge.seeds import derive_seed
from hookforge.splits import SplitConfig, fingerprint_bytes, seeded_split
from hookforge.subcomponents import Sub
from hookforge.types import Dataset, DatasetInfo, Split

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from hookforge.run import Run

COLUMNS = ["prompt", "family", "data", "difficulty"]
DATA_DIR = "data"


class CurriculumConfig(ComponentConfig):
    enabled: bool = Field(False, description="train on easy instances first")
    start: float = Field(0.25, ge=0, le=1, description="the highest difficulty allowed in epoch 1")
    epochs: int = Field(3, ge=1, description="epochs over which the ceiling rises to 1 (linearly)")


def ceiling(curriculum: dict[str, Any] | None, epoch: int) -> float:
    """The highest difficulty the curriculum allows in ``epoch`` (1.0 without one)."""
    if not curriculum or not curriculum.get("enabled"):
        return 1.0
    start, epochs = float(curriculum["start"]), int(curriculum["epochs"])
    return min(1.0, start + (1.0 - start) * epoch / max(epochs - 1, 1))


class TasksConfig(ComponentConfig):
    families: list[Sub("task")] = Field(  # type: ignore[valid-type]
        default_factory=lambda: [{"name": "arith"}], validate_default=True,
        description="task families to mix, each {name: NAME, weight: W, options...} "
                    "(hookforge.tasks)")
    n_train: int = Field(2000, ge=1, description="training instances")
    n_val: int = Field(200, ge=0, description="validation instances")
    n_test: int = Field(200, ge=0, description="test instances")
    max_length: int = Field(256, ge=8, description="tokens of prompt and completion together")
    group_by_length: bool = Field(False, description="batch instances of similar length together")
    data_seed: int | None = Field(None, description="seed of the instances (default run.seed): fix "
                                                    "it to score different runs on the same problems")
    difficulty: tuple[float, float] = Field((0.0, 1.0), description="range the difficulty of each "
                                                                    "instance is drawn from")
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)

    @model_validator(mode="after")
    def _distinct(self) -> TasksConfig:
        names = [spec.name for spec in self.families]
        if not names:
            raise ValueError("families needs at least one task family")
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"family '{doubled[0]}' is listed twice")
        low, high = self.difficulty
        if not 0 <= low <= high <= 1:
            raise ValueError(f"difficulty ({low}, {high}) must satisfy 0 <= low <= high <= 1")
        return self


def family_options(info: DatasetInfo) -> dict[str, dict[str, Any]]:
    """The families of a dataset and their options, as the ``tasks`` source recorded them."""
    return dict(info.extra.get("families") or {})


def frame_split(rows: pd.DataFrame) -> Split:
    """A split from rows with prompt/completion (and family, data, difficulty) columns."""
    import numpy as np

    X = rows.drop(columns=["completion"]).reset_index(drop=True)
    for column in COLUMNS:
        if column not in X.columns:
            X[column] = None if column != "difficulty" else 0.0
    return Split(X, rows["completion"].astype(str).to_numpy(dtype=object) if "completion" in rows
                 else np.full(len(rows), "", dtype=object))


class TasksSource(DataSource):
    """Generated instances of task families, mixed by weight (see the module docstring)."""

    Config = TasksConfig

    def load(self, run: Run) -> Dataset:
        import pandas as pd

        c = self.config
        sizes = {"train": c.n_train, "val": c.n_val, "test": c.n_test}
        frames: dict[str, pd.DataFrame] = {}
        saved = run.record.path / DATA_DIR if run.record is not None else None
        for split, size in sizes.items():
            if not size:
                continue
            path = saved / f"{split}.jsonl" if saved is not None else None
            if path is not None and path.is_file():  # resume, evaluate: the run's own problems
                frames[split] = pd.read_json(path, lines=True, dtype=False)
            else:
                frames[split] = self._generate(run, split, size)
                if path is not None and run.primary:
                    from hookforge.fileio import atomic_write_text

                    path.parent.mkdir(exist_ok=True)
                    atomic_write_text(path, frames[split].to_json(orient="records", lines=True))
        families = {spec.name: spec.options.model_dump(mode="json") for spec in c.families}
        info = DatasetInfo(task="generation", extra={
            "max_length": c.max_length, "group_by_length": c.group_by_length,
            "families": families, "curriculum": c.curriculum.model_dump(),
            "source": "tasks"})
        return Dataset(info=info, splits={name: frame_split(f) for name, f in frames.items()})

    def _generate(self, run: Run, split: str, size: int) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        c = self.config
        seed = c.data_seed if c.data_seed is not None else run.seed
        weights = np.array([spec.options.weight for spec in c.families], dtype=float)
        # how many of each family: a seeded multinomial draw, so the mix follows the weights
        counts = np.random.default_rng(derive_seed(seed, "tasks", split, "mix")).multinomial(
            size, weights / weights.sum())
        rows = []
        low, high = c.difficulty
        for spec, count in zip(c.families, counts, strict=True):
            task = spec.create()
            # every (split, family) its own stream: adding a family leaves the others' problems
            rng = np.random.default_rng(derive_seed(seed, "tasks", split, spec.name))
            for _ in range(int(count)):
                instance = task.generate(rng, float(rng.uniform(low, high)))
                rows.append({"prompt": instance.prompt, "completion": instance.answer,
                             "family": spec.name, "data": json.dumps(instance.data),
                             "difficulty": round(instance.difficulty, 6)})
        order = np.random.default_rng(derive_seed(seed, "tasks", split, "order")).permutation(len(rows))
        return pd.DataFrame([rows[i] for i in order], columns=["prompt", "completion", *COLUMNS[1:]])

    def read_inputs(self, run: Run, path: Path) -> Any:
        return read_prompts(path)


# -- user data ------------------------------------------------------------------------------------
class JsonlConfig(ComponentConfig):
    path: str = Field(..., description="JSON-lines file: prompt/completion fields, or messages "
                                       "(a chat: [{role, content}, ...], the last one the "
                                       "assistant's answer)", json_schema_extra={"path": True})
    format: Literal["auto", "completion", "chat"] = Field(
        "auto", description="auto: chat where rows have 'messages', else prompt/completion")
    prompt_field: str = Field("prompt", description="field with the prompt")
    completion_field: str = Field("completion", description="field with the completion")
    max_length: int = Field(256, ge=8, description="tokens of prompt and completion together")
    group_by_length: bool = Field(False, description="batch examples of similar length together")
    val_path: str | None = Field(None, description="a separate file for the val split",
                                 json_schema_extra={"path": True})
    test_path: str | None = Field(None, description="a separate file for the test split",
                                  json_schema_extra={"path": True})
    split: SplitConfig = Field(default_factory=lambda: SplitConfig(stratify=False))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file; a line that is not a JSON object is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: each line must be a JSON object")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _chat(messages: Any, where: str, *, needs_answer: bool) -> tuple[list[dict[str, str]], str]:
    """(the conversation before the answer, the answer) of a chat row."""
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages):
        raise DataError(f"{where}: 'messages' must be a list of {{role, content}} objects")
    if not needs_answer:
        return messages, ""
    if messages[-1]["role"] != "assistant" or len(messages) < 2:
        raise DataError(f"{where}: the last message must be the assistant's answer, after at "
                        f"least one other")
    return messages[:-1], messages[-1]["content"]


def rows_frame(rows: list[dict[str, Any]], path: Path | str, fmt: str, prompt_field: str,
               completion_field: str, *, needs_answer: bool = True) -> pd.DataFrame:
    """Rows of a JSONL file as prompt/completion (and messages) columns, checked row by row."""
    import pandas as pd

    chat = fmt == "chat" or (fmt == "auto" and "messages" in rows[0])
    out = []
    for number, row in enumerate(rows, 1):
        where = f"{path}: row {number}"
        if chat:
            if "messages" not in row:
                raise DataError(f"{where}: no 'messages' (the file is read as chat rows)")
            messages, answer = _chat(row["messages"], where, needs_answer=needs_answer)
            prompt = "\n".join(m["content"] for m in messages)
            out.append({"prompt": prompt, "completion": answer, "messages": messages})
            continue
        for field in (prompt_field, *((completion_field,) if needs_answer else ())):
            if not isinstance(row.get(field), str):
                raise DataError(f"{where}: no text field '{field}'"
                                f"{did_you_mean(field, [str(k) for k in row])}; fields: "
                                f"{', '.join(map(str, row)) or 'none'}")
        if not row[prompt_field].strip():
            raise DataError(f"{where}: empty prompt")
        out.append({"prompt": row[prompt_field], "completion": row.get(completion_field, ""),
                    "family": row.get("family"),
                    "data": json.dumps(row["data"]) if isinstance(row.get("data"), dict)
                    else row.get("data")})
    return pd.DataFrame(out)


def read_prompts(path: Path) -> Any:
    """Prediction inputs: prompts (or chats without the answer) from a JSONL or CSV file."""
    import pandas as pd

    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, keep_default_na=False)
        if "prompt" not in frame.columns:
            raise DataError(f"{path}: column 'prompt' not found; columns: {', '.join(frame.columns)}")
        return frame_split(frame.assign(completion="")).X
    rows = read_jsonl(path)
    chat = "messages" in rows[0]
    if chat:  # a chat to continue: every message is context
        frame = rows_frame(rows, path, "chat", "prompt", "completion", needs_answer=False)
    else:
        frame = rows_frame(rows, path, "completion", "prompt", "completion", needs_answer=False)
    return frame_split(frame).X


class JsonlSource(DataSource):
    """A user's prompt/completion pairs or chats from JSON lines (see the module docstring)."""

    Config = JsonlConfig

    def _frame(self, path: str) -> pd.DataFrame:
        c = self.config
        return rows_frame(read_jsonl(path), path, c.format, c.prompt_field, c.completion_field)

    def load(self, run: Run) -> Dataset:
        import numpy as np
        import pandas as pd

        c = self.config
        frame = self._frame(c.path)
        pieces = [frame]
        fixed: dict[str, Any] = {}
        for name, path in (("val", c.val_path), ("test", c.test_path)):
            if path:
                start = sum(len(p) for p in pieces)
                pieces.append(self._frame(path))
                fixed[name] = np.arange(start, start + len(pieces[-1]))
        frame = pd.concat(pieces, ignore_index=True)
        text = "\x00".join(frame["prompt"] + "\x01" + frame["completion"])
        indices = seeded_split(run, np.zeros(len(frame)), "generation", c.split,
                               fingerprint=fingerprint_bytes(text.encode()),
                               source=f"data.path {c.path}", fixed=fixed)
        splits = {name: frame_split(frame.iloc[idx]) for name, idx in indices.items() if len(idx)}
        info = DatasetInfo(task="generation", extra={
            "max_length": c.max_length, "group_by_length": c.group_by_length, "source": c.path})
        return Dataset(info=info, splits=splits)

    def read_inputs(self, run: Run, path: Path) -> Any:
        return read_prompts(path)
