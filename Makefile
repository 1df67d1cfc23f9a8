# sspcmr developer entry points. Both targets work on a fresh machine: they create .venv and
# install the package with its dev extras first (pip takes torch from the local disk cache where
# one exists; elsewhere it downloads the release matching the ranges in pyproject.toml).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
DEMO_SUBJECTS ?= 8

.PHONY: demo demo-data study-smoke study-low-label low-label-data study-low-label-demo-pool test install lint figure docs clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,nnunet,docs,slurm]"  # nnunet: the export is tested against PlainConvUNet; docs: the site; slurm: submitit
	touch $(STAMP)

install: $(STAMP)

# The main job end to end: issue 14's low-label experiment in miniature. Generate the synthetic phantom in both
# layouts, prepare it, derive the reference's default split (scaled down: 1 M&Ms test subject per vendor, M&Ms-2
# test IDs 7-8, overlap pathologies kept because the phantom has few subjects) and print what each data-module mode
# serves; then `sspcmr study` with configs/study/demo.yaml in two processes side by side: MIM pretrains on every
# frame of the training subjects, its encoder is fine-tuned on 1 labelled subject and the same U-Net trained from
# scratch on the same subject, 3 seeds, scored on the test subjects in native space; print Dice and the paired
# differences with their 95% intervals.
DEMO_STUDY := $(DEMO_DIR)/studies/demo
demo-data: $(STAMP)
	$(BIN)/sspcmr synth --out $(DEMO_DIR)/raw --layout both --subjects $(DEMO_SUBJECTS) --seed 0 --size small --workers 2
	$(BIN)/sspcmr prepare --raw $(DEMO_DIR)/raw --out $(DEMO_DIR)/prepared --workers 2
	$(BIN)/sspcmr splits default --prepared $(DEMO_DIR)/prepared --test-per-vendor 1 --mm2-test 7-8 \
		--keep-mm2-overlap -o $(DEMO_DIR)/split.yaml

demo: demo-data
	$(BIN)/sspcmr inspect --prepared $(DEMO_DIR)/prepared --split $(DEMO_DIR)/split.yaml
	rm -rf $(DEMO_STUDY)
	@echo "\nLow-label experiment in miniature (configs/study/demo.yaml; second process logs to $(DEMO_DIR)/demo-study-2.log)"
	@OMP_NUM_THREADS=1 $(BIN)/sspcmr study --config configs/study/demo.yaml > $(DEMO_DIR)/demo-study-2.log 2>&1 & other=$$!; \
		OMP_NUM_THREADS=1 $(BIN)/sspcmr study --config configs/study/demo.yaml; status=$$?; \
		wait $$other || status=1; exit $$status
	@echo ""
	@cat $(DEMO_STUDY)/report/differences_to_scratch.md
	@echo "\nHow to read it: each row is MIM's encoder fine-tuned on 1 labelled subject minus the U-Net trained from"
	@echo "scratch on the same subject (same seed), per test volume; 'better' or 'worse' only when the 95% interval"
	@echo "excludes 0, 'noise' otherwise; differences within about 0.02 are noise either way (the interval resamples"
	@echo "test subjects, not training runs). A miniature (3 seeds, 12 test volumes, 8 unlabelled subjects) measures"
	@echo "the setup, not the method: docs/evidence.md has the full experiment (make study-low-label) and its controls."

# The paper's experiment grid in miniature on the demo phantom (configs/study/smoke.yaml: 19 runs, reports in
# data/demo/studies/smoke/report). Resumable: run it again after an interruption.
study-smoke: $(STAMP)
	@[ -f $(DEMO_DIR)/split.yaml ] || $(MAKE) demo-data
	OMP_NUM_THREADS=1 $(BIN)/sspcmr study --config configs/study/smoke.yaml

# Issue 14's low-label experiment (configs/study/low-label.yaml, docs/evidence.md): 80 phantom subjects of vendors
# A-E, a 60-subject unlabelled pool, 1/2/4 labelled subjects of vendors A-D, a test set with the unseen vendor E.
# 93 runs, resumable; 67 minutes with two processes on 2 CPU cores (run `make study-low-label` in two
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

# The documentation site (mkdocs.yml, pages from docs/, the API reference from the docstrings) into site/, in strict
# mode: a broken link, a missing #anchor, a page left out of the nav or a docstring the reference cannot read fails.
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict -d site

lint: $(STAMP)
	$(BIN)/ruff check sspcmr tests examples

figure: $(STAMP)
	$(BIN)/python examples/phantom_figure.py --out docs/images/phantom.png --size realistic

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache site
