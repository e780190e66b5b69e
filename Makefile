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
	touch $(STAMP)

demo: setup
	$(BIN)/hookforge train -c configs/quickstart.yaml
	@if [ -d plugins/torch ]; then $(BIN)/hookforge train -c configs/mlp_quickstart.yaml; fi

test: setup
	$(BIN)/ruff check core plugins tests examples benchmarks
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check core plugins tests examples benchmarks

clean:
	rm -rf $(VENV) outputs
