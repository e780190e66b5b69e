"""Regenerate examples/data/iris.csv from the copy of Fisher's iris data that ships with
scikit-learn (no download): `python examples/data/make_iris_csv.py`."""

from pathlib import Path

from sklearn.datasets import load_iris

frame = load_iris(as_frame=True).frame
frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
frame["species"] = frame["species"].map(dict(enumerate(["setosa", "versicolor", "virginica"])))
frame.to_csv(Path(__file__).with_name("iris.csv"), index=False)
