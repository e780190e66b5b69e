"""The ``voting`` model: a soft-voting ensemble of the best finished runs.

It trains nothing. ``build`` ranks the runs named in ``model.runs`` (directories or glob patterns,
e.g. every trial of a search) by a validation metric from their evaluation.json, takes the top k,
and loads each one's hash-checked ``best`` checkpoint with its own model plugin. Predictions average
the members' class probabilities (or values, for regression). The checkpoint holds a copy of every
member's files plus voting.json, so the ensemble is self-contained and loads without the member runs.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from hookforge import registry
from hookforge.components import ComponentConfig, Model
from hookforge.errors import CheckpointError, ConfigError, DataError
from hookforge.record import RunRecord
from hookforge.types import DatasetInfo, Predictions

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Dataset

VOTING_FILE = "voting.json"


class VotingConfig(ComponentConfig):
    runs: list[str] = Field(..., min_length=1,
                            description="run directories or glob patterns (e.g. outputs/hpo/s/*/trials/*)")
    top_k: int = Field(3, ge=1, description="how many of the best runs vote")
    metric: str | None = Field(None, description=("ranking metric split/name[:max|min] from each "
                                                  "run's evaluation.json (default val/accuracy or "
                                                  "val/rmse)"))


class VotingModel(Model):
    """Soft-voting ensemble of the top-k finished runs (see the module docstring)."""

    Config = VotingConfig
    default_loop = "simple"

    info: DatasetInfo | None = None

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.members: list[Model] = []
        self.chosen: list[dict[str, Any]] = []

    # -- choosing the members ----------------------------------------------------------------------
    def build(self, run: Run, dataset: Dataset) -> None:
        from hookforge.compare import Objective

        self.info = dataset.info
        metric = self.config.metric or ("val/rmse" if dataset.task == "regression" else "val/accuracy")
        objective = Objective.parse(metric)
        candidates = []
        for run_dir in self._run_dirs(run):
            record = RunRecord.open(run_dir)
            if record.status != "finished" or record.checkpoint_dir("best") is None:
                continue
            split, _, name = objective.key.partition("/")
            value = record.evaluation().get(split, {}).get(name)
            if isinstance(value, (int, float)):
                candidates.append((float(value), record))
        if not candidates:
            raise DataError(f"model.runs: no finished run with a best checkpoint and the metric "
                            f"'{objective.key}' among {', '.join(self.config.runs)}")
        candidates.sort(key=lambda item: -item[0] if objective.direction == "maximize" else item[0])
        self.members, self.chosen = [], []
        for value, record in candidates[: self.config.top_k]:
            self._check_compatible(record, dataset.info)
            spec = record.read_config()["model"]
            member = _instantiate(spec, record.config_file)
            member.load(record.verified_checkpoint("best"), dataset.info)
            self.members.append(member)
            self.chosen.append({"run_dir": str(record.path), "name": record.info().get("name"),
                                "model": spec, objective.key: value})
        if run.record is not None:
            # each member's model name, not its whole config: enough to say which plugins
            # the ensemble needs (e.g. the requirements of a served MLflow model)
            run.record.update_info(ensemble={"metric": objective.key, "members": [
                {**{k: v for k, v in m.items() if k != "model"}, "model": m["model"].get("name")}
                for m in self.chosen]})
        run.emit("ensemble", metric=objective.key,
                 members=[m["run_dir"] for m in self.chosen])

    def _run_dirs(self, run: Run) -> list[Path]:
        found: list[Path] = []
        for pattern in self.config.runs:
            matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            for match in matches:
                path = Path(match)
                if not (path / "run.json").is_file():
                    if not glob.has_magic(pattern):
                        raise ConfigError(f"model.runs: {match} is not a run directory")
                    continue
                if run.record is None or path.resolve() != run.record.path.resolve():
                    found.append(path)
        return found

    def _check_compatible(self, record: RunRecord, info: DatasetInfo) -> None:
        theirs = DatasetInfo.from_dict(record.read_json("dataset.json") or {"task": "?"})
        for field in ("task", "classes", "feature_names"):
            if getattr(theirs, field) != getattr(info, field):
                raise DataError(f"model.runs: {record.path} was trained on other data ({field} "
                                f"{getattr(theirs, field)!r}, this run has {getattr(info, field)!r})")

    # -- the Model interface ------------------------------------------------------------------------
    def fit(self, run: Run, dataset: Dataset) -> None:
        """Nothing to train: the members are trained runs."""

    def predict(self, inputs: Any) -> Predictions:
        import numpy as np

        assert self.info is not None
        outputs = [member.predict(inputs) for member in self.members]
        if self.info.task == "regression":
            values = np.mean([np.asarray(o.y_pred, dtype=np.float64) for o in outputs], axis=0)
            return Predictions(y_pred=values, task="regression")
        missing = [self.chosen[i]["run_dir"] for i, o in enumerate(outputs) if o.scores is None]
        if missing:
            raise DataError(f"soft voting needs class probabilities; {missing[0]} gives none")
        scores = np.mean([np.asarray(o.scores, dtype=np.float64) for o in outputs], axis=0)
        return Predictions(y_pred=scores.argmax(axis=1), scores=scores, classes=self.info.classes,
                           task="classification")

    def save(self, directory: Path) -> None:
        for i, member in enumerate(self.members):
            target = directory / f"member-{i}"
            target.mkdir()
            member.save(target)
        (directory / VOTING_FILE).write_text(json.dumps({"members": self.chosen}, indent=2))

    def load(self, directory: Path, info: DatasetInfo) -> None:
        meta_file = directory / VOTING_FILE
        if not meta_file.is_file():
            raise CheckpointError(f"{directory} has no {VOTING_FILE}: it is not a voting ensemble")
        self.info = info
        self.chosen = json.loads(meta_file.read_text())["members"]
        self.members = []
        for i, chosen in enumerate(self.chosen):
            member = _instantiate(chosen["model"], meta_file)
            member.load(directory / f"member-{i}", info)
            self.members.append(member)


def _instantiate(spec: dict[str, Any], source: Path) -> Model:
    """A model component from a recorded ``model`` config section."""
    from pydantic import ValidationError

    name = spec.get("name")
    cls = registry.load("model", str(name))
    try:
        config = cls.Config(**{k: v for k, v in spec.items() if k != "name"})
    except ValidationError as exc:
        raise ConfigError(f"{source}: model '{name}' config is not valid here: "
                          f"{exc.errors()[0]['msg']}") from None
    return cls(config)
