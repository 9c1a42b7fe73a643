# Two commands on a fresh machine: `make test` (install, then the test suite) and `make demo`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# torch/torchvision pinned to the builds this project is tested with (CUDA wheels, run on CPU too)
TORCH_PINS := "torch==2.14.1" "torchvision==0.29.1"
# Detectron2's runtime deps (its wheel is installed without them, see tools/install_detectron2.sh)
D2_DEPS := fvcore iopath pycocotools yacs "omegaconf>=2.1,<2.4" "hydra-core>=1.1" termcolor tabulate \
           cloudpickle tqdm tensorboard matplotlib Pillow packaging "setuptools<81"

# drops the warnings this machine's pip config prints for absent local indexes; pip's status survives
QUIET := { grep -v "is ignored" || true; }

.PHONY: install test test-all demo benchmark bench-gpu clean

install: $(STAMP)

# Re-runs only when the dependency declarations change; a second `make install` is a no-op.
$(STAMP): setup.py Makefile tools/install_detectron2.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | $(QUIET)
	$(BIN)/python -m pip install -q $(TORCH_PINS) $(D2_DEPS) 2>&1 | $(QUIET)
	$(BIN)/python -m pip install -q -e ".[test,ray,draw,export,search]" 2>&1 | $(QUIET)
	PYTHON=$(BIN)/python bash tools/install_detectron2.sh
	$(BIN)/python -c "import torch, torchvision, timm, fvcore, detectron2, optuna, nasnet_det; print('installed: torch', torch.__version__, '| detectron2', detectron2.__version__, '| nasnet_det', nasnet_det.__version__)"
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q tests

# includes the slow-marked tests (learning checks that take minutes)
test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow" tests

demo: install
	$(BIN)/python tools/demo.py

benchmark: install
	$(BIN)/python tools/benchmark.py backbone

# every comparison in one run on a GPU machine: runs/bench/results-<device>.json and .md
bench-gpu: install
	$(BIN)/python tools/benchmark.py all --out runs/bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
