"""The ``arrays`` data source: numeric arrays from a numpy ``.npz``, an HDF5 file or a CSV of
numbers, with the core's seeded (stratified) split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig, DataSource
from hookforge.errors import DataError
from hookforge.splits import SplitConfig, fingerprint_bytes, seeded_split
from hookforge.types import Dataset, DatasetInfo, Split

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


class ArraysConfig(ComponentConfig):
    path: str = Field(..., description="a .npz, .h5/.hdf5 or .csv file",
                      json_schema_extra={"path": True})
    format: Literal["auto", "npz", "hdf5", "csv"] = Field("auto", description="auto: from the suffix")
    x_key: str = Field("X", description="inputs array name (npz, hdf5)")
    y_key: str = Field("y", description="targets array name (npz, hdf5)")
    target_column: int = Field(-1, description="CSV: index of the target column")
    header: bool = Field(True, description="CSV: the first row is a header")
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: classification for integer targets")
    on_nan: Literal["error", "drop"] = Field("error", description="rows with NaN or inf inputs")
    split: SplitConfig = Field(default_factory=SplitConfig)


class ArraysSource(DataSource):
    """Numeric arrays (inputs of any shape, one target per row)."""

    Config = ArraysConfig

    def _read(self, path: Path, need_y: bool) -> tuple[np.ndarray, np.ndarray | None]:
        import numpy as np

        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        fmt = self.config.format
        if fmt == "auto":
            fmt = {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".csv": "csv"}.get(path.suffix.lower())
            if fmt is None:
                raise DataError(f"{path}: cannot tell the format from the suffix; set data.format")
        try:
            if fmt == "npz":
                with np.load(path, allow_pickle=False) as archive:  # never unpickle data files
                    X = self._member(archive, self.config.x_key, path, list(archive.files))
                    y = self._member(archive, self.config.y_key, path, list(archive.files)) \
                        if need_y or self.config.y_key in archive.files else None
            elif fmt == "hdf5":
                import h5py

                with h5py.File(path, "r") as handle:
                    X = self._member(handle, self.config.x_key, path, list(handle.keys()))
                    y = self._member(handle, self.config.y_key, path, list(handle.keys())) \
                        if need_y or self.config.y_key in handle else None
            else:
                table = np.loadtxt(path, delimiter=",", skiprows=1 if self.config.header else 0,
                                   dtype=np.float64, ndmin=2)
                column = self.config.target_column % table.shape[1] if table.size else 0
                if need_y:
                    X, y = np.delete(table, column, axis=1), table[:, column]
                else:
                    X, y = table, None
        except DataError:
            raise
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read it as {fmt} ({str(exc).splitlines()[0]})") from None
        return X, y

    @staticmethod
    def _member(container: Any, key: str, path: Path, keys: list[str]) -> np.ndarray:
        import numpy as np

        from hookforge.errors import did_you_mean

        if key not in keys:
            raise DataError(f"{path}: no array named '{key}'{did_you_mean(key, keys)}; it has: "
                            f"{', '.join(keys)}")
        return np.asarray(container[key])

    def _clean(self, X: np.ndarray, y: np.ndarray | None, path: Path) -> tuple[Any, Any]:
        import numpy as np

        if X.dtype.kind not in "biuf":
            raise DataError(f"{path}: inputs '{self.config.x_key}' are not numeric ({X.dtype})")
        if len(X) == 0:
            raise DataError(f"{path}: the data has no rows")
        if y is not None and len(y) != len(X):
            raise DataError(f"{path}: '{self.config.x_key}' has {len(X)} rows but "
                            f"'{self.config.y_key}' has {len(y)}")
        bad = ~np.isfinite(X.reshape(len(X), -1)).all(axis=1)
        if y is not None and y.dtype.kind == "f":
            bad |= ~np.isfinite(y.reshape(len(y), -1)).all(axis=1)
        if bad.any():
            if self.config.on_nan == "error":
                raise DataError(f"{path}: NaN or infinite value in row {int(np.flatnonzero(bad)[0])}; "
                                f"set data.on_nan=drop to drop such rows")
            X, y = X[~bad], (y[~bad] if y is not None else None)
        return X.astype(np.float32), y

    def load(self, run: Any) -> Dataset:
        import numpy as np

        path = Path(self.config.path)
        X, y = self._clean(*self._read(path, need_y=True), path)
        assert y is not None
        task = self.config.task
        if task == "auto":
            integral = y.dtype.kind in "biu" or (y.dtype.kind == "f" and bool((y == np.round(y)).all()))
            task = "classification" if integral and len(np.unique(y)) <= 100 else "regression"
        classes = None
        if task == "classification":
            classes_array, y = np.unique(y, return_inverse=True)
            classes = [c.item() for c in classes_array]
            if len(classes) < 2:
                raise DataError(f"{path}: the targets have a single class ({classes[0]})")
            y = y.astype(np.int64)
        else:
            y = y.astype(np.float64)
        fingerprint = fingerprint_bytes(X.tobytes(), y.tobytes())
        indices = seeded_split(run, y, task, self.config.split, fingerprint=fingerprint,
                               source=f"data.path {path}")
        features = int(np.prod(X.shape[1:]))
        info = DatasetInfo(task=task, classes=classes, n_features=features,
                           feature_names=[f"x{i}" for i in range(features)] if X.ndim == 2 else None,
                           target=self.config.y_key, extra={"input_shape": list(X.shape[1:])})
        return Dataset(info, {name: Split(X[idx], y[idx]) for name, idx in indices.items() if len(idx)})

    def read_inputs(self, run: Any, path: Path) -> Any:
        X, _ = self._read(path, need_y=False)
        X, _ = self._clean(X, None, path)
        expected = (run.dataset_info.extra or {}).get("input_shape")
        if expected is not None and list(X.shape[1:]) != list(expected):
            raise DataError(f"{path}: inputs have shape {list(X.shape[1:])} per row, the model was "
                            f"trained on {expected}")
        return X
