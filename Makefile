# sspcmr developer entry points. Both targets work on a fresh machine: they create .venv and
# install the package with its dev extras first (pip takes torch from the local disk cache where
# one exists; elsewhere it downloads the release matching the ranges in pyproject.toml).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
DEMO_SUBJECTS ?= 4

.PHONY: demo test install lint figure clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job end to end. Today: generate the synthetic phantom in both layouts and print its
# summary; later issues extend it to prepare, pretrain, fine-tune and evaluate.
demo: $(STAMP)
	$(BIN)/sspcmr synth --out $(DEMO_DIR) --layout both --subjects $(DEMO_SUBJECTS) --seed 0 --size small --workers 2

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check sspcmr tests examples

figure: $(STAMP)
	$(BIN)/python examples/phantom_figure.py --out docs/images/phantom.png --size realistic

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
