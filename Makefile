# text2sign: `make demo` and `make test` do all the set-up from a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# The pose environment: MediaPipe Holistic pins numpy<2 and protobuf<5, so it lives apart from the
# trainer, as the trainer venv's sibling (text2sign/pose/env.py finds it there).
POSE_VENV  := $(VENV)-pose
POSE_STAMP := $(POSE_VENV)/.installed
TORCH  ?= torch==2.13.0
DATA   ?= data/synth
ifndef STUDY
STUDY := demo-$(shell date +%Y%m%d-%H%M%S)
endif
SEEDS  ?= 0,1
RESULTS ?= results
PROFILE ?= tiny
VARIANT ?= baseline
SEED   ?= 0
IMAGE  ?= containers/text2sign.sif
CPU_IMAGE ?= containers/text2sign-cpu.sif
VARIANTS ?= all
RUNTIME ?= auto
SETS   ?=
# User values reach recipes only as (quoted) environment variables, never spliced into shell code.
export STUDY SEEDS RESULTS PROFILE VARIANT SEED DATA IMAGE CPU_IMAGE TORCH VARIANTS RUNTIME SETS

# No OMP_NUM_THREADS here: sbatch --export=ALL would carry it into every job, whose threads come
# from its allocation (text2sign/runtime/threads.py); the tests set their own (tests/conftest.py).
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help venv pose-venv data demo test lint format docs bench gpu-check clean submit collect status cancel tensorboard \
	sbatch-train sbatch-study sbatch-collect apptainer container container-dockerhub container-cpu container-check

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# torch first (the pinned CPU/CUDA build from the local wheel cache or index; never let another
# package pull a multi-GB CUDA torch), then DeepSpeed without build isolation (its setup.py
# imports torch), then the project with its pinned dependencies.
$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make: $(PYTHON)" \
	  "is older than Python 3.11, the oldest the project supports: make PYTHON=python3.11 ..." >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23" "setuptools>=64" wheel
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q hjson msgpack ninja py-cpuinfo packaging
	$(PIP) install -q --no-build-isolation "deepspeed==0.19.8"
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install everything

$(POSE_STAMP): text2sign/pose/requirements.txt
	test -x $(POSE_VENV)/bin/python || $(PYTHON) -m venv $(POSE_VENV)
	$(POSE_VENV)/bin/python -m pip install -q --upgrade "pip>=23"
	$(POSE_VENV)/bin/python -m pip install -q -r text2sign/pose/requirements.txt
	touch $@

pose-venv: $(POSE_STAMP)  ## the pose environment (MediaPipe Holistic 0.10.21 + pose-format): .venv-pose

# Regenerated when the generator changes: a set this rule made (it has .complete) is replaced;
# a folder without the marker is never removed.
$(DATA)/.complete: text2sign/data/synth.py | $(STAMP)
	if [ -f "$(DATA)/.complete" ]; then rm -rf "$(DATA)"; fi
	$(PY) -m text2sign data synth --out $(DATA)
	touch $@

data: $(DATA)/.complete  ## generate the embedded synthetic dataset

demo: $(STAMP) $(DATA)/.complete  ## run the whole study (tiny profile, 3 variants x SEEDS) and print the table
	$(PY) jobs/submit.py --variants all --seeds "$$SEEDS" --profile tiny --study "$$STUDY" \
	  --results "$$RESULTS" --set data.root="$$DATA" --executor auto --follow

test: $(STAMP) $(POSE_STAMP)  ## lint + the whole test suite
	$(VENV)/bin/ruff check text2sign tests jobs bench
	$(VENV)/bin/ruff format --check text2sign tests jobs bench
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} tests/run-suite.sh $(PY) $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check text2sign tests jobs bench

format: $(STAMP)  ## apply ruff format
	$(VENV)/bin/ruff format text2sign tests jobs bench
	$(VENV)/bin/ruff check --fix text2sign tests jobs bench

docs: $(STAMP)  ## regenerate docs/configuration.md's reference table from the schema
	$(PY) -c "from text2sign.config_docs import update_reference; update_reference('docs/configuration.md')"

gpu-check:  ## every GPU check in one call, <8 min on one H100 (prints "skipped: no CUDA" without one)
	PY="$(if $(wildcard $(PY)),$(PY),python3)" bash bench/gpu_check.sh

bench: $(STAMP)  ## measure and write BENCHMARKS.md
	$(PIP) install -q -e ".[bench]"
	$(PY) -m bench.run --out BENCHMARKS.md

# ---- the HPC job layer ----------------------------------------------------------------------
submit: $(STAMP)  ## submit every variant x SEEDS to SLURM: make submit PROFILE=full SEEDS=0,1,2
	$(PY) jobs/submit.py --variants all --seeds "$$SEEDS" --profile "$$PROFILE" --results "$$RESULTS" \
	  $(if $(HALVING),--halving) $(SUBMIT_ARGS)

collect: $(STAMP)  ## tables, report.md, report.html of a study by hand: make collect STUDY=name [VIDEO_SEED=k]
	$(PY) -m text2sign collect "$$RESULTS/$$STUDY" $(if $(VIDEO_SEED),--video-seed $(VIDEO_SEED))

status: $(STAMP)  ## job state, restarts, progress, ETA: make status STUDY=name
	$(PY) jobs/status.py "$$RESULTS/$$STUDY"

cancel: $(STAMP)  ## scancel every job of a study: make cancel STUDY=name
	$(PY) jobs/status.py "$$RESULTS/$$STUDY" --cancel

tensorboard: $(STAMP)  ## TensorBoard over every run of a study: make tensorboard STUDY=name
	$(VENV)/bin/tensorboard --logdir "$$RESULTS/$$STUDY"

# Plain sbatch, no submitit (jobs/sbatch_study.py): validated like `make submit` before sbatch is
# called; RUNTIME=auto|none|apptainer; SETS="k=v k=v"; RESUME=1 adds to an existing study;
# HALVING=1 runs it in rungs with a decider after each (docs/cluster.md, successive halving).
SBATCH_FLAGS = --profile "$$PROFILE" --study "$$STUDY" --results "$$RESULTS" --set data.root="$$DATA" \
	--runtime "$$RUNTIME" --image "$$IMAGE" --sets "$$SETS" $(if $(RESUME),--resume-study) \
	$(if $(HALVING),--halving)

sbatch-train: $(STAMP)  ## plain sbatch, one run: make sbatch-train VARIANT=baseline SEED=0 STUDY=name [RUNTIME=none]
	$(PY) jobs/sbatch_study.py --variants "$$VARIANT" --seeds "$$SEED" $(SBATCH_FLAGS) $(SBATCH_ARGS)

sbatch-study: $(STAMP)  ## plain sbatch, a study: make sbatch-study STUDY=name [VARIANTS=all SEEDS=0,1]
	$(PY) jobs/sbatch_study.py --variants "$$VARIANTS" --seeds "$$SEEDS" $(SBATCH_FLAGS) $(SBATCH_ARGS)

sbatch-collect: $(STAMP)  ## plain sbatch, the collector: make sbatch-collect STUDY=name
	$(PY) jobs/sbatch_study.py collect --study "$$STUDY" --results "$$RESULTS"

# ---- containers (containers/, docs/containers.md) ------------------------------------------
apptainer:  ## install apptainer on a Debian host without a package (no-op when it is there)
	bash containers/install-apptainer.sh

container:  ## build IMAGE (CUDA, containers/text2sign.def: Debian mirror + PyPI, no Docker Hub; cached)
	bash containers/build-image.sh containers/text2sign.def "$$IMAGE" "$$TORCH"

container-dockerhub:  ## build IMAGE from a Docker Hub PyTorch base instead (containers/text2sign-dockerhub.def)
	bash containers/build-image.sh containers/text2sign-dockerhub.def "$$IMAGE" "$$TORCH"

container-cpu:  ## build CPU_IMAGE (Debian bookworm + CPU torch, containers/text2sign-cpu.def; cached)
	bash containers/build-image.sh containers/text2sign-cpu.def "$$CPU_IMAGE" "$$TORCH"

container-check: $(STAMP)  ## check the defs (spython parse, one recipe, the same pins) against setup.cfg
	$(PY) -m pytest -q tests/unit/jobs/test_container.py

clean:  ## remove the venv and generated data (never results/)
	rm -rf $(VENV) $(POSE_VENV) data *.egg-info

# ---- local SLURM cluster (slurm/local/): root, Debian; see slurm/local/README.md ----
.PHONY: cluster-up cluster-down cluster-status
cluster-up:  ## install (apt) and start the local SLURM cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd n1+n2)
	bash slurm/local/cluster.sh up

cluster-down:  ## stop the local SLURM cluster (cancels its jobs)
	bash slurm/local/cluster.sh down

cluster-status:  ## show the local SLURM cluster
	bash slurm/local/cluster.sh status
