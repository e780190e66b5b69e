"""The ``h5`` data source: named HDF5 datasets of features, labels and an optional mask, read in
chunks, so a file larger than memory trains.

Features may have any shape per row (``[particles, features]`` for sets of particles, an
image...). Labels are read whole (one value per row: small); features and masks stay in the
file unless they fit ``data.in_memory``. A split's inputs are :class:`H5Rows`, which the torch
models read batch by batch (:meth:`hookforge_torch.model.TorchModel.collate`). One pass over the
file, chunk by chunk, checks every value is finite and fingerprints it (splits.json: resume
refuses a changed file); the split is the core's seeded, stratified one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig, DataSource
from hookforge.errors import DataError, did_you_mean
from hookforge.splits import SplitConfig, seeded_split, without_classes
from hookforge.types import Dataset, DatasetInfo, Split

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    import numpy as np


class H5Config(ComponentConfig):
    path: str = Field(..., description="the .h5/.hdf5 file", json_schema_extra={"path": True})
    features: str = Field("features", description="dataset of inputs, one row per example")
    labels: str | None = Field("labels", description="dataset of labels (None: unlabelled)")
    mask: str | None = Field(None, description="dataset of per-element masks (e.g. [rows, "
                                               "particles]: 1 for a real particle, 0 for padding)")
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: classification for integer labels")
    in_memory: Literal["auto", "always", "never"] = Field(
        "auto", description="load the features into memory (auto: when they take at most "
        "memory_limit_mb), or read every batch from the file")
    memory_limit_mb: float = Field(1024, gt=0, description="the in_memory=auto limit")
    chunk_rows: int = Field(4096, ge=1, description="rows per read when checking the file")
    split: SplitConfig = Field(default_factory=SplitConfig)
    exclude_classes_from_train: list[Any] = Field(default_factory=list, description=(
        "classes whose rows are left out of the train split (kept in val and test)"))


class H5Rows:
    """Some rows of an HDF5 dataset (and of its mask), read on demand in any order.

    ``read(positions)`` returns those rows (positions within this split) as float32; h5py reads
    only the chunks they fall in. Loaded rows (``in_memory``) are plain arrays behind the same
    interface. ``np.asarray(rows)`` reads them all.
    """

    def __init__(self, path: Path, key: str, rows: np.ndarray, mask_key: str | None,
                 chunk_rows: int, loaded: tuple[Any, Any] | None = None) -> None:
        self.path, self.key, self.rows, self.mask_key = path, key, rows, mask_key
        self.chunk_rows = chunk_rows
        self._loaded = loaded  # (features, mask) of these rows, when in memory
        self._handle: Any = None
        self.row_shape: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.row_shape)

    @property
    def has_mask(self) -> bool:
        return self.mask_key is not None

    def _file(self) -> Any:
        if self._handle is None:
            import h5py

            self._handle = h5py.File(self.path, "r")
        return self._handle

    def __getstate__(self) -> dict[str, Any]:  # an open file does not pickle (DDP spawn, copies)
        return {**self.__dict__, "_handle": None}

    def _read(self, key: str, positions: np.ndarray, loaded: Any) -> np.ndarray:
        import numpy as np

        positions = np.asarray(positions, dtype=np.int64)
        if loaded is not None:
            return loaded[positions]
        rows = self.rows[positions]
        order = np.argsort(rows, kind="stable")  # h5py reads increasing indices only
        values = self._file()[key][rows[order]]
        out = np.empty_like(values)
        out[order] = values
        return out

    def read(self, positions: np.ndarray) -> np.ndarray:
        import numpy as np

        values = self._read(self.key, positions, self._loaded[0] if self._loaded else None)
        return values.astype(np.float32, copy=False)

    def read_mask(self, positions: np.ndarray) -> np.ndarray | None:
        if self.mask_key is None:
            return None
        values = self._read(self.mask_key, positions, self._loaded[1] if self._loaded else None)
        return values.astype(bool, copy=False)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(features, mask) of consecutive rows, ``chunk_rows`` at a time (statistics)."""
        import numpy as np

        for start in range(0, len(self.rows), self.chunk_rows):
            positions = np.arange(start, min(start + self.chunk_rows, len(self.rows)))
            yield self.read(positions), self.read_mask(positions)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        import numpy as np

        values = self.read(np.arange(len(self.rows)))
        return values if dtype is None else values.astype(dtype)


class H5Source(DataSource):
    """Features, labels and masks from named HDF5 datasets, read in chunks."""

    Config = H5Config

    def describe(self) -> str:
        return f"data.path {self.config.path}"

    def _open(self) -> Any:
        import h5py

        path = Path(self.config.path)
        if not path.is_file():
            raise DataError(f"data.path {path}: no such file")
        try:
            return h5py.File(path, "r")
        except OSError as exc:
            raise DataError(f"data.path {path}: not an HDF5 file ({exc})") from None

    def _dataset(self, handle: Any, key: str, option: str) -> Any:
        import h5py

        keys = [k for k in handle.keys() if isinstance(handle[k], h5py.Dataset)]
        if key not in handle or not isinstance(handle[key], h5py.Dataset):
            raise DataError(f"{self.describe()}: no dataset '{key}' ({option}){did_you_mean(key, keys)}; "
                            f"it has: {', '.join(keys) or 'none'}")
        return handle[key]

    def _scan(self, features: Any, mask: Any) -> str:
        """Check every value is finite and numeric, chunk by chunk; the file's fingerprint."""
        import hashlib

        import numpy as np

        if features.dtype.kind not in "biuf":
            raise DataError(f"{self.describe()}: '{self.config.features}' is not numeric "
                            f"({features.dtype})")
        digest = hashlib.sha256(repr((features.shape, str(features.dtype))).encode())
        step = self.config.chunk_rows
        for start in range(0, features.shape[0], step):
            chunk = np.asarray(features[start:start + step])
            finite = np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
            if not finite.all():
                row = start + int(np.flatnonzero(~finite)[0])
                raise DataError(f"{self.describe()}: NaN or infinite value in "
                                f"'{self.config.features}' row {row}")
            digest.update(chunk.tobytes())
            if mask is not None:
                digest.update(np.asarray(mask[start:start + step]).tobytes())
        return digest.hexdigest()[:16]

    def load(self, run: Any) -> Dataset:
        import numpy as np

        cfg = self.config
        with self._open() as handle:
            features = self._dataset(handle, cfg.features, "data.features")
            n = features.shape[0]
            if n == 0:
                raise DataError(f"{self.describe()}: '{cfg.features}' has no rows")
            mask = self._dataset(handle, cfg.mask, "data.mask") if cfg.mask else None
            if mask is not None and tuple(mask.shape) != tuple(features.shape[:mask.ndim]):
                raise DataError(f"{self.describe()}: mask '{cfg.mask}' has shape "
                                f"{list(mask.shape)}, features '{cfg.features}' "
                                f"{list(features.shape)}: a mask needs the leading dimensions")
            y = None
            if cfg.labels:
                labels = self._dataset(handle, cfg.labels, "data.labels")
                if labels.ndim > 1 and any(d != 1 for d in labels.shape[1:]):
                    raise DataError(f"{self.describe()}: labels '{cfg.labels}' must hold one "
                                    f"value per row (shape {list(labels.shape)})")
                y = np.asarray(labels).reshape(-1)
                if len(y) != n:
                    raise DataError(f"{self.describe()}: '{cfg.features}' has {n} rows but "
                                    f"'{cfg.labels}' has {len(y)}")
            fingerprint = self._scan(features, mask)
            row_shape = tuple(int(d) for d in features.shape[1:])
            size_mb = features.size * 4 / 2 ** 20
            in_memory = cfg.in_memory == "always" or (cfg.in_memory == "auto"
                                                      and size_mb <= cfg.memory_limit_mb)
            all_features = np.asarray(features, dtype=np.float32) if in_memory else None
            all_mask = np.asarray(mask, dtype=bool) if in_memory and mask is not None else None
        task, classes, labels = self._labels(y, n)
        splits = seeded_split(run, labels, task, cfg.split, fingerprint=fingerprint,
                              source=self.describe())
        if cfg.exclude_classes_from_train:
            info_probe = DatasetInfo(task=task, classes=classes)
            splits = without_classes(splits, labels, info_probe, cfg.exclude_classes_from_train,
                                     self.describe())
        n_features = int(np.prod(row_shape)) if row_shape else 1
        info = DatasetInfo(task=task, classes=classes, n_features=n_features,
                           target=cfg.labels,
                           extra={"input_shape": list(row_shape), "mask": cfg.mask is not None,
                                  "source": "h5"})
        parts = {}
        for name, idx in splits.items():
            if not len(idx):
                continue
            loaded = None
            if all_features is not None:
                loaded = (all_features[idx], all_mask[idx] if all_mask is not None else None)
            rows = H5Rows(Path(cfg.path), cfg.features, idx, cfg.mask, cfg.chunk_rows, loaded)
            rows.row_shape = row_shape
            parts[name] = Split(rows, labels[idx] if y is not None else None)
        run.emit("h5", rows=n, row_shape=list(row_shape), in_memory=in_memory,
                 features_mb=round(size_mb, 1))
        return Dataset(info, parts)

    def _labels(self, y: Any, n: int) -> tuple[str, list[Any] | None, Any]:
        import numpy as np

        if y is None:  # unlabelled: a plain (unstratified) split, nothing to classify
            return "regression", None, np.zeros(n)
        task = self.config.task
        if task == "auto":
            integral = y.dtype.kind in "biu" or (y.dtype.kind == "f" and bool((y == np.round(y)).all()))
            task = "classification" if integral and len(np.unique(y)) <= 100 else "regression"
        if task == "regression":
            return task, None, y.astype(np.float64)
        values, codes = np.unique(y, return_inverse=True)
        if len(values) < 2:
            raise DataError(f"{self.describe()}: labels '{self.config.labels}' have a single class")
        return task, [v.item() for v in values], codes.astype(np.int64)

    def read_inputs(self, run: Any, path: Path) -> Any:
        """Prediction inputs: the same datasets of another HDF5 file, all rows."""
        import numpy as np

        source = type(self)(self.config.model_copy(update={"path": str(path)}))
        with source._open() as handle:
            features = source._dataset(handle, self.config.features, "data.features")
            mask = source._dataset(handle, self.config.mask, "data.mask") if self.config.mask else None
            source._scan(features, mask)
            expected = (run.dataset_info.extra or {}).get("input_shape")
            if expected is not None and list(features.shape[1:]) != list(expected):
                raise DataError(f"{path}: '{self.config.features}' has shape "
                                f"{list(features.shape[1:])} per row, the model was trained on "
                                f"{expected}")
            loaded = (np.asarray(features, dtype=np.float32),
                      np.asarray(mask, dtype=bool) if mask is not None else None)
        rows = H5Rows(path, self.config.features, np.arange(len(loaded[0])), self.config.mask,
                      self.config.chunk_rows, loaded)
        rows.row_shape = tuple(loaded[0].shape[1:])
        return rows
