"""An MLflow "model from code" serving a hookforge run through ``mlflow.pyfunc``.

Logged for models that have no pickle-free MLflow flavor of their own (torch models, boosters
behind a preprocessing pipeline, third-party plugins): MLflow copies this file into the model, and
the run's record (config.yaml without trackers, run.json, dataset.json, the best checkpoint)
travels as the ``run`` artifact. Loading goes through hookforge's own loader (hash-checked
safetensors, text, JSON or skops files), so nothing is unpickled; predicting goes through the
run's data source, with the same checks and output columns as ``hookforge predict``::

    model = mlflow.pyfunc.load_model("models:/NAME@champion")
    model.predict(frame)  # prediction, and prob_<class> columns where the model gives scores

The serving environment needs hookforge and the run's plugins installed (the model's
requirements list them).
"""

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class HookforgeModel(PythonModel):
    def load_context(self, context: Any) -> None:
        import hookforge

        self.run = hookforge.Run.open(context.artifacts["run"])
        self.model = self.run.load_model()

    # a DataFrame hint: MLflow accepts it without inferring a schema (the data source checks rows);
    # evaluated at runtime by MLflow, hence no `from __future__ import annotations` in this file
    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.run.predict_frame(model_input, model=self.model)


mlflow.models.set_model(HookforgeModel())
