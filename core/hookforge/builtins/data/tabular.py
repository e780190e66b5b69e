"""Tabular data sources: ``csv``, ``parquet`` and ``sklearn`` (scikit-learn's bundled datasets).

All three share :class:`TabularSource`: pick feature and target columns, check them, encode class
labels, and split train/val/test with a seeded (stratified) split that is saved in the run
directory as splits.json so that evaluation and resume see exactly the same rows.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig, DataSource
from hookforge.errors import DataError, did_you_mean
from hookforge.splits import SplitConfig, fingerprint_bytes, seeded_split, without_classes
from hookforge.types import Dataset, DatasetInfo, Split

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from hookforge.run import Run

# features frame, labels, info, fingerprint, and the file each row came from (None: one file)
_Prepared = tuple[Any, Any, DatasetInfo, str, Any]
PART_COLUMN = "__hookforge_split__"  # marks the rows of data.val_path / data.test_path
_prepared: dict[tuple[Any, ...], _Prepared] = {}  # see TabularSource.load


class TabularConfig(ComponentConfig):
    target: str | None = Field(None, description="target column (default: the last column)")
    features: list[str] | None = Field(None, description="feature columns (default: all but the target)")
    categorical: list[str] | Literal["auto"] = Field(
        default_factory=list,
        description=("non-numeric feature columns the model encodes itself; 'auto': every column "
                     "whose values are all non-numeric text"))
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: classification for integer/string targets with few values")
    on_nan: Literal["error", "drop", "keep"] = Field(
        "error", description="rows with missing or infinite feature values: fail, drop them, or keep them")
    split: SplitConfig = Field(default_factory=SplitConfig)
    exclude_classes_from_train: list[Any] = Field(default_factory=list, description=(
        "classes whose rows are left out of the train split (kept in val and test): an "
        "anomaly detector learns the others, then is scored on telling these apart"))
    export_splits: str | None = Field(None, description=(
        "write the rows of each split as train/val/test files (CSV, or Parquet for a Parquet "
        "source) into this directory, to reuse the split elsewhere"))


class TabularSource(DataSource):
    """Shared logic; subclasses implement :meth:`read_frame`."""

    Config = TabularConfig

    def read_frame(self, run: Run | None) -> pd.DataFrame:
        raise NotImplementedError

    def describe(self) -> str:
        return self.plugin_name

    def source_key(self) -> tuple[Any, ...] | None:
        """What identifies the rows read_frame returns, for reuse across the trials of a search
        (None: do not reuse). File sources add the file's size and modification time."""
        return None

    # -- loading ---------------------------------------------------------------------------------
    def load(self, run: Run) -> Dataset:
        # The trials of a search load the same data: reading, checking and hashing it once per
        # process rather than per trial (~3 ms a trial on breast_cancer, ~75 ms on 200k rows).
        # A plain `train` keeps nothing, so its memory is the data it trains on.
        key = self.source_key() if run.parent is not None else None
        if key is not None:
            key = (type(self).__qualname__, key, self.config.model_dump_json(exclude={"split"}))
        prepared = _prepared.get(key) if key is not None else None
        if prepared is None:
            prepared = self._prepare(run)
            if key is not None:
                _prepared.clear()  # one data set at a time
                _prepared[key] = prepared
        X, y, info, fingerprint, origin = prepared
        fixed = None
        if origin is not None:
            import numpy as np

            fixed = {name: np.flatnonzero(origin == name) for name in ("val", "test")
                     if (origin == name).any()}
        splits = seeded_split(run, y, info.task, self.config.split, fingerprint=fingerprint,
                              source=self.describe(), fixed=fixed)
        if self.config.exclude_classes_from_train:
            splits = without_classes(splits, y, info, self.config.exclude_classes_from_train,
                                     self.describe())
        # iloc and fancy indexing copy: a trial cannot change the prepared rows (nor its info)
        parts = {name: Split(X.iloc[idx].reset_index(drop=True), y[idx])
                 for name, idx in splits.items() if len(idx)}
        if self.config.export_splits and run.primary and not run.resumed:
            self._export(Path(self.config.export_splits), parts, info)
        return Dataset(info=copy.deepcopy(info), splits=parts)

    def _export(self, directory: Path, parts: dict[str, Split], info: DatasetInfo) -> None:
        """The split's rows as files, with the original labels; a directory holding files that
        an earlier export did not write is refused (nothing is overwritten)."""
        import io

        from hookforge.errors import UsageError
        from hookforge.fileio import atomic_write_bytes, atomic_write_json, check_writable_dir, read_json

        suffix = ".parquet" if isinstance(self, ParquetSource) else ".csv"
        check_writable_dir(directory, "data.export_splits")
        manifest = directory / "splits_export.json"
        ours = manifest.is_file() and read_json(manifest).get("written_by") == "hookforge"
        names = [f"{name}{suffix}" for name in parts]
        taken = [n for n in names if (directory / n).exists()]
        if taken and not ours:
            raise UsageError(f"data.export_splits {directory}: {taken[0]} is already there and was "
                             f"not written by hookforge; choose an empty directory")
        for name, part in parts.items():
            frame = part.X.copy()
            labels = part.y if info.classes is None else [info.classes[i] for i in part.y]
            frame[info.target or "target"] = labels
            buffer = io.BytesIO()
            if suffix == ".parquet":
                frame.to_parquet(buffer, index=False)
            else:
                buffer.write(frame.to_csv(index=False).encode())
            atomic_write_bytes(directory / f"{name}{suffix}", buffer.getvalue())
        atomic_write_json(manifest, {"written_by": "hookforge", "source": self.describe(),
                                     "files": names, "sizes": {k: len(v) for k, v in parts.items()}})

    def _prepare(self, run: Run) -> _Prepared:
        """Read, check and encode the rows: features, integer class labels, the dataset info and
        the data's fingerprint (checked on resume)."""
        import numpy as np

        frame = self.read_frame(run)
        if frame.shape[0] == 0:
            raise DataError(f"{self.describe()}: the data has no rows")
        target = self.config.target or str(frame.columns[-1])
        if target not in frame.columns:
            raise DataError(f"{self.describe()}: target column '{target}' not found"
                            f"{did_you_mean(target, map(str, frame.columns))}; columns: "
                            f"{', '.join(map(str, frame.columns))}")
        features = self.config.features or [str(c) for c in frame.columns
                                            if c not in (target, PART_COLUMN)]
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise DataError(f"{self.describe()}: feature column '{missing[0]}' not found"
                            f"{did_you_mean(missing[0], map(str, frame.columns))}")
        if not features:
            raise DataError(f"{self.describe()}: no feature columns besides the target '{target}'")
        if frame[target].isna().any():
            row = int(np.flatnonzero(frame[target].isna().to_numpy())[0])
            raise DataError(f"{self.describe()}: target column '{target}' has a missing value "
                            f"(row {row + 1})")
        categorical = self._categorical_columns(frame[features])
        X = self._checked_features(frame[features], categorical, drop_allowed=True)
        y_raw = frame.loc[X.index, target]
        if len(X) == 0:
            raise DataError(f"{self.describe()}: no rows left after dropping missing values")
        task = self._task(y_raw)
        classes: list[Any] | None = None
        if task == "classification":
            classes = sorted(y_raw.unique().tolist(), key=lambda v: (str(type(v)), v))
            if len(classes) < 2:
                raise DataError(f"{self.describe()}: target '{target}' has a single class "
                                f"({classes[0]!r}); classification needs at least two")
            lookup = {c: i for i, c in enumerate(classes)}
            y = y_raw.map(lookup).to_numpy(dtype=np.int64)
        else:
            try:
                y = y_raw.to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"{self.describe()}: target '{target}' is not numeric, so it "
                                f"cannot be regressed; set data.task=classification") from None
        origin = frame.loc[X.index, PART_COLUMN].to_numpy() if PART_COLUMN in frame.columns else None
        X = X.reset_index(drop=True)
        info = DatasetInfo(task=task, classes=_plain(classes), feature_names=features,
                           target=target, n_features=len(features),
                           extra={"categorical": categorical,
                                  "source": self.describe()})
        return X, y, info, _fingerprint(frame), origin

    def _task(self, y: Any) -> str:
        if self.config.task != "auto":
            return self.config.task
        import pandas as pd

        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            return "classification"
        values = y.to_numpy()
        integral = bool((values == values.round()).all()) if pd.api.types.is_float_dtype(y) else True
        return "classification" if integral and y.nunique() <= 50 else "regression"

    def _categorical_columns(self, X: pd.DataFrame) -> list[str]:
        """The listed categorical columns, or with ``auto`` the text columns in which no value is
        a number (a mostly numeric column with a stray string stays numeric, and is reported)."""
        import pandas as pd

        if self.config.categorical != "auto":
            return [c for c in self.config.categorical if c in X.columns]
        found = []
        for column in X.columns:
            values = X[column]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                continue
            present = values.dropna()
            if pd.api.types.is_bool_dtype(values) or pd.to_numeric(present, errors="coerce").isna().all():
                found.append(str(column))
        return found

    def _checked_features(self, X: pd.DataFrame, categorical: list[str], *,
                          drop_allowed: bool, where: str | None = None) -> pd.DataFrame:
        """The feature columns, numeric where they must be, with the on_nan policy applied;
        errors name ``where`` (default: the training data; a predict input names itself)."""
        import numpy as np
        import pandas as pd

        where = where or self.describe()

        numeric = [c for c in X.columns if c not in categorical]
        dtypes = X.dtypes  # looked up once: per-column access is ~50 us a column
        for column in numeric:
            dtype = dtypes[column]
            if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                converted = pd.to_numeric(X[column], errors="coerce")
                bad = X[column][converted.isna() & X[column].notna()]
                if len(bad) or pd.api.types.is_bool_dtype(dtype):
                    example = bad.iloc[0] if len(bad) else X[column].iloc[0]
                    raise DataError(f"{where}: column '{column}' is not numeric (value "
                                    f"{example!r}); list it in data.categorical (or set "
                                    f"data.categorical=auto) or leave it out of data.features")
                X = X.assign(**{column: converted})
                dtypes = X.dtypes
        # float32 data is checked as float32: a float64 copy of a large frame costs a second pass
        wide = {dtypes[c] for c in numeric} != {np.dtype("float32")}
        values = X[numeric].to_numpy(dtype=np.float64 if wide else np.float32, na_value=np.nan)
        finite = np.isfinite(values)
        categorical_na = X[categorical].isna().to_numpy() if categorical else None
        bad_rows = ~finite.all(axis=1)
        if categorical_na is not None:
            bad_rows |= categorical_na.any(axis=1)
        if len(X) and (not finite.all() or (categorical_na is not None and categorical_na.any())):
            empty = dict(zip(numeric, np.isnan(values).all(axis=0).tolist(), strict=True))
            if categorical_na is not None:
                empty.update(zip(categorical, categorical_na.all(axis=0).tolist(), strict=True))
            all_nan = [c for c in X.columns if empty[c]]
            if all_nan:
                raise DataError(f"{where}: column '{all_nan[0]}' has no values (all "
                                f"missing)")
        if bad_rows.any():
            policy = self.config.on_nan
            if not drop_allowed and policy == "drop":  # prediction rows are never dropped silently
                policy = "error"
            if policy == "error":
                row = int(np.flatnonzero(bad_rows)[0])
                column = next(c for c in X.columns
                              if (c in numeric and not np.isfinite(values[row, numeric.index(c)]))
                              or (c not in numeric and pd.isna(X[c].iloc[row])))
                raise DataError(f"{where}: missing or infinite value in column "
                                f"'{column}' (row {row + 1}); set data.on_nan=drop or keep")
            if policy == "drop":
                X = X[~bad_rows]
        return X

    # -- prediction inputs -----------------------------------------------------------------------
    def read_inputs(self, run: Run, path: Path) -> Any:
        frame = read_table(path)
        info = run.dataset_info
        features = (info.feature_names if info else None) or self.config.features or []
        # the columns that were categorical in training, whatever the data looks like now
        categorical = (list(info.extra.get("categorical", [])) if info
                       else self._categorical_columns(frame[features]))
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: column '{missing[0]}' used in training is missing"
                            f"{did_you_mean(missing[0], map(str, frame.columns))}")
        if frame.shape[0] == 0:
            raise DataError(f"{path}: the input has no rows")
        checked = self._checked_features(frame[features], categorical, drop_allowed=False,
                                         where=f"predict input {path}")
        return checked.reset_index(drop=True)


def read_table(path: str | Path, fmt: Literal["auto", "csv", "parquet"] = "auto") -> pd.DataFrame:
    """A CSV or Parquet file (``auto``: by suffix) as a DataFrame, with clear errors for missing
    or unreadable files."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        if fmt == "parquet" or (fmt == "auto" and path.suffix.lower() in (".parquet", ".pq")):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read it as a table ({first})") from None


def _fingerprint(frame: pd.DataFrame) -> str:
    import pandas as pd

    return fingerprint_bytes(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())


def _plain(values: list[Any] | None) -> list[Any] | None:
    return [v.item() if hasattr(v, "item") else v for v in values] if values is not None else None


class CsvConfig(TabularConfig):
    path: str = Field(..., description="CSV file with a header row", json_schema_extra={"path": True})
    val_path: str | None = Field(None, description="a separate file of the val split (then "
                                                   "split.val is not cut from path)",
                                 json_schema_extra={"path": True})
    test_path: str | None = Field(None, description="a separate file of the test split (then "
                                                    "split.test is not cut from path)",
                                  json_schema_extra={"path": True})


class CsvSource(TabularSource):
    """Rows of a CSV file (header row required); optionally pre-split val and test files."""

    Config = CsvConfig
    format: Literal["auto", "csv", "parquet"] = "auto"

    def describe(self) -> str:
        return f"data.path {self.config.path}"

    def _files(self) -> list[tuple[str, str]]:
        c = self.config
        files = [("train", c.path)]
        for part, path in (("val", c.val_path), ("test", c.test_path)):
            if path:
                files.append((part, path))
        return files

    def read_frame(self, run: Run | None) -> pd.DataFrame:
        files = self._files()
        if len(files) == 1:
            return read_table(self.config.path, self.format)
        import pandas as pd

        frames: list[pd.DataFrame] = []
        columns: list[str] = []
        for part, path in files:
            frame = read_table(path, self.format)
            if frames and list(frame.columns) != columns:
                missing = sorted(set(columns) - set(frame.columns))
                raise DataError(f"data.{part}_path {path}: its columns differ from data.path's"
                                + (f" (missing '{missing[0]}')" if missing else ""))
            columns = columns or list(frame.columns)
            frames.append(frame.assign(**{PART_COLUMN: part}))
        return pd.concat(frames, ignore_index=True)

    def source_key(self) -> tuple[Any, ...] | None:
        key: list[Any] = []
        for _, path in self._files():
            try:
                stat = Path(path).stat()
            except OSError:  # read_frame will say what is wrong
                return None
            key += [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]
        return tuple(key)


class ParquetConfig(CsvConfig):
    path: str = Field(..., description="Parquet file", json_schema_extra={"path": True})


class ParquetSource(CsvSource):
    """Rows of a Parquet file; optionally pre-split val and test files."""

    Config = ParquetConfig
    format = "parquet"


class SklearnConfig(TabularConfig):
    dataset: Literal["breast_cancer", "wine", "digits", "iris", "diabetes"] = Field(
        ..., description="one of scikit-learn's bundled datasets (no download)")


class SklearnSource(TabularSource):
    """scikit-learn's bundled datasets: breast_cancer, wine, digits, iris (classification) and
    diabetes (regression). They ship with scikit-learn, so nothing is downloaded."""

    Config = SklearnConfig

    def describe(self) -> str:
        return f"sklearn dataset '{self.config.dataset}'"

    def read_frame(self, run: Run | None) -> pd.DataFrame:
        return _bundled(self.config.dataset).copy()  # the target is the last column, "target"

    def source_key(self) -> tuple[Any, ...] | None:
        return (self.config.dataset,)  # shipped with scikit-learn: fixed for the process


@lru_cache(maxsize=8)
def _bundled(name: str) -> pd.DataFrame:
    """A bundled scikit-learn dataset, parsed once per process (searches load it every trial)."""
    from sklearn import datasets

    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    frame.columns = [str(c) for c in frame.columns]
    return frame
