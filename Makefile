# text2sign: `make demo` and `make test` do all the set-up from a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
DATA   ?= data/synth
STUDY  ?= demo
SEEDS  ?= 0
RESULTS ?= results

export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help venv data demo test lint format bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# torch first (the pinned CPU/CUDA build from the local wheel cache or index; never let another
# package pull a multi-GB CUDA torch), then DeepSpeed without build isolation (its setup.py
# imports torch), then the project with its pinned dependencies.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23" "setuptools>=64" wheel
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q hjson msgpack ninja py-cpuinfo packaging
	$(PIP) install -q --no-build-isolation "deepspeed==0.19.8"
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install everything

$(DATA)/.complete: | $(STAMP)
	$(PY) -m text2sign data synth --out $(DATA)
	touch $@

data: $(DATA)/.complete  ## generate the embedded synthetic dataset

demo: $(STAMP) $(DATA)/.complete  ## train the three variants at the tiny profile and print the table
	@set -e; for v in baseline text_finetuned no_ema; do for s in $(SEEDS); do \
	  echo "== $$v seed $$s"; \
	  $(PY) -m text2sign train --profile tiny --variant $$v --set train.seed=$$s \
	    --set data.root=$(DATA) --run-dir $(RESULTS)/$(STUDY)/$$v/seed$$s; \
	done; done
	$(PY) -m text2sign collect $(RESULTS)/$(STUDY)

test: $(STAMP)  ## lint + the whole test suite
	$(VENV)/bin/ruff check text2sign tests jobs bench
	$(VENV)/bin/ruff format --check text2sign tests jobs bench
	$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check text2sign tests jobs bench

format: $(STAMP)  ## apply ruff format
	$(VENV)/bin/ruff format text2sign tests jobs bench
	$(VENV)/bin/ruff check --fix text2sign tests jobs bench

bench: $(STAMP)  ## measure and write BENCHMARKS.md
	$(PIP) install -q -e ".[bench]"
	$(PY) -m bench.run --out BENCHMARKS.md

clean:  ## remove the venv and generated data (never results/)
	rm -rf $(VENV) data *.egg-info

# ---- local SLURM cluster (slurm/local/): root, Debian; see slurm/local/README.md ----
.PHONY: cluster-up cluster-down cluster-status
cluster-up:  ## install (apt) and start the local SLURM cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd n1+n2)
	bash slurm/local/cluster.sh up

cluster-down:  ## stop the local SLURM cluster (cancels its jobs)
	bash slurm/local/cluster.sh down

cluster-status:  ## show the local SLURM cluster
	bash slurm/local/cluster.sh status
