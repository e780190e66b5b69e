"""The seeded train/val/test split every data source shares, saved as splits.json so that
evaluation and resume see exactly the same rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from hookforge.components import ComponentConfig
from hookforge.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run


class SplitConfig(ComponentConfig):
    val: float = Field(0.15, ge=0, lt=1, description="fraction of rows for validation")
    test: float = Field(0.15, ge=0, lt=1, description="fraction of rows for the test split")
    stratify: bool = Field(True, description="keep class proportions in every split (classification)")

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> SplitConfig:
        if self.val + self.test >= 1:
            raise ValueError(f"split.val + split.test must be below 1, got {self.val + self.test}")
        return self


def fingerprint_bytes(*chunks: bytes) -> str:
    import hashlib

    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()[:16]


def seeded_split(run: Run, y: Any, task: str, config: SplitConfig, *, fingerprint: str,
                 source: str, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Row indices of train/val/test: the saved ones if this run split before (the data must not
    have changed), else a new split seeded by ``run.seed`` (stratified for classification)."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    saved = run.record.read_json("splits.json") if run.record is not None else None
    if saved is not None:
        if saved.get("fingerprint") != fingerprint:
            raise DataError(f"{source}: the data changed since this run split it "
                            f"(splits.json fingerprint differs)")
        return {k: np.asarray(v, dtype=np.int64) for k, v in saved["indices"].items()}
    fixed = {k: np.asarray(v, dtype=np.int64) for k, v in (fixed or {}).items()}
    # rows of pre-split files (data.val_path, data.test_path) are that split's; the rest is cut
    assigned = np.concatenate([*fixed.values(), np.zeros(0, np.int64)])
    index = np.setdiff1d(np.arange(len(y)), assigned)
    val_fraction = 0.0 if "val" in fixed else config.val
    test_fraction = 0.0 if "test" in fixed else config.test
    stratify = task == "classification" and config.stratify

    def cut(idx: Any, fraction: float, labels: Any) -> tuple[Any, Any]:
        if fraction <= 0:
            return idx, idx[:0]
        try:
            return train_test_split(idx, test_size=fraction, random_state=run.seed,
                                    stratify=labels if stratify else None)
        except ValueError as exc:  # too few rows of a class to stratify, or too few rows
            raise DataError(f"{source}: cannot split {len(idx)} rows (val={config.val}, "
                            f"test={config.test}): {exc}") from None

    rest, test = cut(index, test_fraction, y[index])
    train, val = cut(rest, val_fraction / (1 - test_fraction), y[rest])
    val, test = fixed.get("val", val), fixed.get("test", test)
    indices = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    if run.record is not None:
        run.record.write_json("splits.json", {
            "seed": run.seed, "fingerprint": fingerprint, "source": source,
            "sizes": {k: len(v) for k, v in indices.items()},
            "indices": {k: v.tolist() for k, v in indices.items()},
        }, compact=True)
    return indices


def without_classes(splits: dict[str, Any], y: Any, info: Any, classes: list[Any],
                    source: str) -> dict[str, Any]:
    """``splits`` with the rows of ``classes`` left out of train (kept in val and test):
    ``data.exclude_classes_from_train``, how an anomaly detector is trained and then scored."""
    import numpy as np

    held = [str(c) for c in classes]
    known = [str(c) for c in info.classes or []]
    unknown = [c for c in held if c not in known]
    if info.task != "classification" or unknown:
        raise DataError(f"{source}: data.exclude_classes_from_train lists "
                        f"'{(unknown or held)[0]}', which is not a class of the data"
                        + (f" (classes: {', '.join(known)})" if known else ""))
    indices = [known.index(c) for c in held]
    train = splits["train"]
    return {**splits, "train": train[~np.isin(y[train], indices)]}
