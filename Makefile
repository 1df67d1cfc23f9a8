# sspcmr developer entry points. Both targets work on a fresh machine: they create .venv and
# install the package with its dev extras first (pip takes torch from the local disk cache where
# one exists; elsewhere it downloads the release matching the ranges in pyproject.toml).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
DEMO_SUBJECTS ?= 8

.PHONY: demo test install lint figure clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job end to end. Today: generate the synthetic phantom in both layouts, prepare it, derive
# the reference's default split (scaled down: 1 M&Ms test subject per vendor, M&Ms-2 test IDs 7-8,
# overlap pathologies kept because the phantom has few subjects), print what each data-module mode
# serves, train the baseline U-Net from scratch (small, CPU) and print its native-space test table.
demo: $(STAMP)
	$(BIN)/sspcmr synth --out $(DEMO_DIR)/raw --layout both --subjects $(DEMO_SUBJECTS) --seed 0 --size small --workers 2
	$(BIN)/sspcmr prepare --raw $(DEMO_DIR)/raw --out $(DEMO_DIR)/prepared --workers 2
	$(BIN)/sspcmr splits default --prepared $(DEMO_DIR)/prepared --test-per-vendor 1 --mm2-test 7-8 \
		--keep-mm2-overlap -o $(DEMO_DIR)/split.yaml
	$(BIN)/sspcmr inspect --prepared $(DEMO_DIR)/prepared --split $(DEMO_DIR)/split.yaml
	$(BIN)/sspcmr fit --config configs/demo/segmentation.yaml
	$(BIN)/sspcmr test --config configs/demo/segmentation.yaml \
		--ckpt_path $(DEMO_DIR)/runs/segmentation/demo/checkpoints/last.ckpt \
		--model.init_args.results_dir $(DEMO_DIR)/results

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check sspcmr tests examples

figure: $(STAMP)
	$(BIN)/python examples/phantom_figure.py --out docs/images/phantom.png --size realistic

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
