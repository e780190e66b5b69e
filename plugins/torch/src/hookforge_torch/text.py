"""The ``text`` data source: CSV or JSON-lines files with a text column and one label column
(single-label classification), several 0/1 label columns (multi-label), or no label at all
(``label_column: null``: texts for language modelling). Shared by every text model (hookforge-bert,
hookforge-mamba, ...), which is why it lives in the torch engine.

Splits are the core's seeded split (stratified for single-label data), or separate files with
``val_path``/``test_path``. Texts stay strings here; the model tokenizes them (its tokenizer
decides the ids), with ``max_length`` and length-grouped batching passed along in the dataset
info. The label mapping is saved in the run directory as labels.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from hookforge.components import ComponentConfig, DataSource
from hookforge.errors import DataError, did_you_mean
from hookforge.splits import SplitConfig, fingerprint_bytes, seeded_split
from hookforge.types import Dataset, DatasetInfo, Split

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from hookforge.run import Run


class TextConfig(ComponentConfig):
    path: str = Field(..., description="CSV or JSON-lines file (by suffix: .csv, .jsonl, .json)",
                      json_schema_extra={"path": True})
    text_column: str = Field("text", description="column with the texts")
    label_column: str | None = Field("label", description="single-label: the label column; null "
                                                          "(and no label_columns): unlabelled texts "
                                                          "for language modelling")
    label_columns: list[str] | None = Field(
        None, description="multi-label: one 0/1 column per label (replaces label_column)")
    on_empty: Literal["error", "drop"] = Field("error", description="empty or missing texts")
    max_length: int = Field(128, ge=8, description="tokens per text (longer texts are truncated)")
    truncation_side: Literal["right", "left"] = Field(
        "right", description="which end of a text longer than max_length is cut off (left keeps "
                             "the end of a document)")
    group_by_length: bool = Field(False, description="batch texts of similar length together "
                                                     "(less padding, faster; still shuffled)")
    val_path: str | None = Field(None, description="a separate file for the val split",
                                 json_schema_extra={"path": True})
    test_path: str | None = Field(None, description="a separate file for the test split",
                                  json_schema_extra={"path": True})
    split: SplitConfig = Field(default_factory=SplitConfig)

    @model_validator(mode="after")
    def _one_kind_of_label(self) -> TextConfig:
        if self.label_columns is not None and not self.label_columns:
            raise ValueError("label_columns needs at least one column")
        return self


def read_texts(path: str | Path) -> pd.DataFrame:
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            return pd.read_json(path, lines=path.suffix.lower() != ".json", dtype=False)
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read it ({first})") from None


class TextSource(DataSource):
    """Texts and labels from CSV or JSON lines (see the module docstring)."""

    Config = TextConfig

    @property
    def multilabel(self) -> bool:
        return self.config.label_columns is not None

    @property
    def unlabelled(self) -> bool:
        return self.config.label_columns is None and self.config.label_column is None

    def load(self, run: Run) -> Dataset:
        import numpy as np

        c = self.config
        frame = self._frame(c.path)
        if self.unlabelled:
            return self._load_unlabelled(run, frame)
        label_columns = c.label_columns or [c.label_column]
        if self.multilabel:
            classes = list(c.label_columns)
        else:
            classes = sorted(frame[c.label_column].astype(str).unique().tolist())
            if len(classes) < 2:
                raise DataError(f"{c.path}: label column '{c.label_column}' has a single class "
                                f"({classes[0]!r}); classification needs at least two")
        texts, y = self._encode(frame, classes, c.path)
        extra_splits = {name: self._encode(self._frame(path), classes, path)
                        for name, path in (("val", c.val_path), ("test", c.test_path)) if path}
        task = "multilabel" if self.multilabel else "classification"
        fingerprint = fingerprint_bytes("\x00".join(texts.tolist()).encode(), np.asarray(y).tobytes())
        indices = seeded_split(run, y if not self.multilabel else np.zeros(len(y)), task,
                               self._split_config(), fingerprint=fingerprint,
                               source=f"data.path {c.path}")
        splits = {name: Split(texts[idx], y[idx]) for name, idx in indices.items() if len(idx)}
        for name, (split_texts, split_y) in extra_splits.items():
            splits[name] = Split(split_texts, split_y)
        info = DatasetInfo(task=task, classes=classes, target=label_columns if self.multilabel
                           else c.label_column, extra=self._extra())
        if run.record is not None and run.primary:
            run.record.write_json("labels.json", {
                "task": task, "labels": {label: i for i, label in enumerate(classes)}})
        return Dataset(info=info, splits=splits)

    def _load_unlabelled(self, run: Run, frame: pd.DataFrame) -> Dataset:
        import numpy as np

        c = self.config
        texts = frame[c.text_column].astype(str).to_numpy(dtype=object)
        splits_from_files = {name: self._frame(path)[c.text_column].astype(str).to_numpy(dtype=object)
                             for name, path in (("val", c.val_path), ("test", c.test_path)) if path}
        fingerprint = fingerprint_bytes("\x00".join(texts.tolist()).encode())
        indices = seeded_split(run, np.zeros(len(texts)), "language_modeling", self._split_config(),
                               fingerprint=fingerprint, source=f"data.path {c.path}")
        splits = {name: Split(texts[idx], None) for name, idx in indices.items() if len(idx)}
        splits.update({name: Split(values, None) for name, values in splits_from_files.items()})
        return Dataset(info=DatasetInfo(task="language_modeling", extra=self._extra()), splits=splits)

    def _split_config(self) -> SplitConfig:
        """The configured fractions, without the splits that come from files of their own."""
        c = self.config
        return c.split.model_copy(update={"val": 0.0 if c.val_path else c.split.val,
                                          "test": 0.0 if c.test_path else c.split.test})

    def _extra(self) -> dict[str, Any]:
        """What the models read from the dataset info: how to tokenize and batch the texts."""
        c = self.config
        return {"text_column": c.text_column, "max_length": c.max_length,
                "group_by_length": c.group_by_length, "truncation_side": c.truncation_side,
                "source": c.path}

    def _frame(self, path: str) -> pd.DataFrame:
        frame = read_texts(path)
        c = self.config
        labels = [] if self.unlabelled else (c.label_columns or [c.label_column])
        needed = [c.text_column, *labels]
        for column in needed:
            if column not in frame.columns:
                raise DataError(f"{path}: column '{column}' not found"
                                f"{did_you_mean(column, map(str, frame.columns))}; columns: "
                                f"{', '.join(map(str, frame.columns))}")
        return self._checked_texts(frame, path, drop_allowed=True)

    def _checked_texts(self, frame: pd.DataFrame, path: str | Path, *,
                       drop_allowed: bool) -> pd.DataFrame:
        import numpy as np

        column = frame[self.config.text_column]
        empty = column.isna().to_numpy() | (column.astype(str).str.strip() == "").to_numpy()
        if empty.any():
            if self.config.on_empty == "drop" and drop_allowed:
                frame = frame[~empty].reset_index(drop=True)
            else:
                row = int(np.flatnonzero(empty)[0])
                raise DataError(f"{path}: empty or missing text in column '{self.config.text_column}' "
                                f"(row {row + 1}); set data.on_empty=drop to skip such rows")
        if len(frame) == 0:
            raise DataError(f"{path}: no texts")
        return frame

    def _encode(self, frame: pd.DataFrame, classes: list[str], path: str | Path) -> tuple[Any, Any]:
        import numpy as np

        c = self.config
        texts = frame[c.text_column].astype(str).to_numpy(dtype=object)
        if self.multilabel:
            values = frame[c.label_columns]
            bad = [col for col in c.label_columns if not values[col].isin([0, 1, True, False]).all()]
            if bad:
                raise DataError(f"{path}: label column '{bad[0]}' must hold 0 or 1 for every row "
                                f"(multi-label)")
            return texts, values.to_numpy(dtype=np.int64)
        labels = frame[c.label_column]
        if labels.isna().any():
            row = int(np.flatnonzero(labels.isna().to_numpy())[0])
            raise DataError(f"{path}: missing label in column '{c.label_column}' (row {row + 1})")
        labels = labels.astype(str)
        unseen = sorted(set(labels) - set(classes))
        if unseen:
            raise DataError(f"{path}: label '{unseen[0]}' does not occur in the training data "
                            f"{c.path} (labels there: {', '.join(classes)})")
        lookup = {label: i for i, label in enumerate(classes)}
        return texts, labels.map(lookup).to_numpy(dtype=np.int64)

    def read_inputs(self, run: Run, path: Path) -> Any:
        frame = read_texts(path)
        if self.config.text_column not in frame.columns:
            raise DataError(f"{path}: column '{self.config.text_column}' not found"
                            f"{did_you_mean(self.config.text_column, map(str, frame.columns))}")
        frame = self._checked_texts(frame, path, drop_allowed=False)
        return frame[self.config.text_column].astype(str).to_numpy(dtype=object)
