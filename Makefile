# sspcmr developer entry points. Both targets work on a fresh machine: they create .venv and
# install the package with its dev extras first (pip takes torch from the local disk cache where
# one exists; elsewhere it downloads the release matching the ranges in pyproject.toml).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
DEMO_SUBJECTS ?= 8

.PHONY: demo demo-data study-smoke study-low-label low-label-data study-low-label-demo-pool test install lint figure clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job end to end, the paper in miniature: generate the synthetic phantom in both layouts,
# prepare it, derive the reference's default split (scaled down: 1 M&Ms test subject per vendor,
# M&Ms-2 test IDs 7-8, overlap pathologies kept because the phantom has few subjects), print what
# each data-module mode serves; pretrain MIM on every frame of the training subjects, fine-tune it on
# 2 labelled subjects, train the same U-Net from scratch on the same 2, score both on the test
# subjects in native space and print the two side by side.
DEMO_RUNS := $(DEMO_DIR)/runs
demo-data: $(STAMP)
	$(BIN)/sspcmr synth --out $(DEMO_DIR)/raw --layout both --subjects $(DEMO_SUBJECTS) --seed 0 --size small --workers 2
	$(BIN)/sspcmr prepare --raw $(DEMO_DIR)/raw --out $(DEMO_DIR)/prepared --workers 2
	$(BIN)/sspcmr splits default --prepared $(DEMO_DIR)/prepared --test-per-vendor 1 --mm2-test 7-8 \
		--keep-mm2-overlap -o $(DEMO_DIR)/split.yaml

demo: demo-data
	$(BIN)/sspcmr inspect --prepared $(DEMO_DIR)/prepared --split $(DEMO_DIR)/split.yaml
	rm -rf $(DEMO_RUNS) $(DEMO_DIR)/results
	$(BIN)/sspcmr fit --config configs/demo/mim.yaml
	$(BIN)/sspcmr fit --config configs/demo/scratch.yaml
	$(BIN)/sspcmr fit --config configs/demo/finetune-mim.yaml
	$(BIN)/sspcmr test --config configs/demo/scratch.yaml --ckpt_path $(DEMO_RUNS)/scratch/demo/checkpoints/last.ckpt \
		--model.init_args.results_dir $(DEMO_DIR)/results/scratch
	$(BIN)/sspcmr test --config configs/demo/finetune-mim.yaml \
		--ckpt_path $(DEMO_RUNS)/finetune-mim/demo/checkpoints/last.ckpt \
		--model.init_args.results_dir $(DEMO_DIR)/results/finetune-mim
	@echo "\nTest subjects, native resolution: U-Net from scratch vs fine-tuned from MIM (2 labelled subjects)"
	$(BIN)/sspcmr compare scratch=$(DEMO_DIR)/results/scratch mim=$(DEMO_DIR)/results/finetune-mim

# The paper's experiment grid in miniature on the demo phantom (configs/study/smoke.yaml: 19 runs, reports in
# data/demo/studies/smoke/report). Resumable: run it again after an interruption.
study-smoke: $(STAMP)
	@[ -f $(DEMO_DIR)/split.yaml ] || $(MAKE) demo-data
	OMP_NUM_THREADS=1 $(BIN)/sspcmr study --config configs/study/smoke.yaml

# Issue 14's low-label experiment (configs/study/low-label.yaml, docs/evidence.md): 80 phantom subjects of vendors
# A-E, a 60-subject unlabelled pool, 1/2/4 labelled subjects of vendors A-D, a test set with the unseen vendor E.
# 93 runs, resumable; about 80 minutes with two processes on 2 CPU cores (run `make study-low-label` in two
# shells, or once for about 2.5 hours). Report in data/low-label/study/report.
LOWLABEL_DIR ?= data/low-label
low-label-data: $(STAMP)
	$(BIN)/sspcmr synth --out $(LOWLABEL_DIR)/raw --layout mnms --subjects 80 --vendors A B C D E --seed 1 \
		--size small --workers 2 --quiet
	$(BIN)/sspcmr prepare --raw $(LOWLABEL_DIR)/raw --out $(LOWLABEL_DIR)/prepared --datasets mnms --workers 2 --quiet
	$(BIN)/sspcmr splits default --prepared $(LOWLABEL_DIR)/prepared --test-per-vendor 4 -o $(LOWLABEL_DIR)/split-pool.yaml
	$(BIN)/sspcmr splits vendors --base $(LOWLABEL_DIR)/split-pool.yaml --prepared $(LOWLABEL_DIR)/prepared \
		--group A,B,C,D -o $(LOWLABEL_DIR)/split.yaml

study-low-label: $(STAMP)
	@[ -f $(LOWLABEL_DIR)/split.yaml ] || $(MAKE) low-label-data
	OMP_NUM_THREADS=1 $(BIN)/sspcmr study --config configs/study/low-label.yaml

# The first measurement (docs/evidence.md): the demo phantom's 8 training subjects as the only pool (41 runs).
study-low-label-demo-pool: $(STAMP)
	@[ -f $(DEMO_DIR)/split.yaml ] || $(MAKE) demo-data
	OMP_NUM_THREADS=1 $(BIN)/sspcmr study --config configs/study/low-label-demo-pool.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check sspcmr tests examples

figure: $(STAMP)
	$(BIN)/python examples/phantom_figure.py --out docs/images/phantom.png --size realistic

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
