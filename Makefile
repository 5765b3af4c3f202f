# logit-kd: every entry point a user needs. Each paper target takes PROFILE=<name> (default: the
# paper's own, mini for paper 1), SEEDS="0 1 2" and ARGS="--dry-run" / "--jobs N".
PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
PROFILE  ?=
SEEDS    ?=
ARGS     ?=
export PYTHONUNBUFFERED := 1

# Paper scripts (reproduce/<name>.py): `make <paper>` runs everything, `make <paper>.<section>` one
# section (see `make help`), `make <paper>.teachers` / `.analyze` the runner's own commands.
PAPERS   := kl-vs-mse many-class decoupled-kl logit-distortion compare
RUN_ARGS  = $(if $(PROFILE),--profile $(PROFILE)) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

.PHONY: setup test test-fast demo mini bench gpu-check teachers clean-runs help $(PAPERS)

# A variable a target does not take is refused before anything runs, never ignored (docs/runs.md).
, := ,
refused = $(if $(and $(1),$(filter $(2),$(MAKECMDGOALS))),$(error $(3) does not apply to make $(filter $(2),$(MAKECMDGOALS)); $(strip $(4))))
$(call refused,$(PROFILE),mini test test-fast bench gpu-check setup help clean-runs,PROFILE=$(PROFILE),\
  leave it out (make teachers$(,) make demo and make <paper> take PROFILE; make mini runs each paper's own mini profiles))
$(call refused,$(SEEDS),demo test test-fast bench gpu-check setup help clean-runs,SEEDS=$(SEEDS),\
  leave it out (make mini$(,) make teachers and make <paper> take SEEDS; make demo runs one seed: ARGS="--seed N"))
$(call refused,$(ARGS),setup help clean-runs,ARGS=$(ARGS),leave it out)

help:  ## list the targets (and, after make setup, every paper's sections)
	@grep -E '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "%-22s %s\n", $$1, $$2}'
	@if test -x $(PY); then $(PY) -m reproduce.papers help; else echo "(run make setup, then make help lists each paper's sections)"; fi

# Re-installs only when requirements.txt changed (the stamp is newer otherwise).
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

setup: $(VENV)/.installed  ## create .venv and install requirements (idempotent)

test: setup  ## run the whole test suite (smoke scale, a few minutes on 2 cores)
	$(PY) -m pytest -n 2 --durations=10 $(ARGS)

test-fast: setup  ## the tests not marked slow
	$(PY) -m pytest -m "not slow" $(ARGS)

demo: setup  ## the headline mini table and figure of each paper (about 5 minutes on 2 cores, measured)
	$(PY) -m reproduce.demo $(if $(PROFILE),--profile $(PROFILE)) $(ARGS)

mini: setup  ## every mini experiment of every paper, tables/figures/claims to results/<paper>/<profile>/
	$(PY) -m reproduce.papers mini $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

teachers: setup  ## train every paper's teachers at PROFILE (default: each paper's own)
	$(PY) -m reproduce.papers teachers $(RUN_ARGS)

bench: setup  ## speed ratios measured in one run on this machine
	$(PY) -m bench.run $(ARGS)

gpu-check: setup  ## one unattended GPU check (<= 8 min on one GPU) -> results/bench/gpu.md, gpu_throughput.json
	$(PY) -m bench.gpu_check $(ARGS)

kl-vs-mse:  ## paper 1 (KL vs MSE): every experiment -> results/kl_vs_mse/<profile>/
many-class:  ## the many-class mini setting (mini100): recipe search, acceptance, hierarchy -> results/many_class/
decoupled-kl:  ## paper 2 (decoupled KL / IKL): every table -> results/decoupled_kl/<profile>/ (default mini100)
logit-distortion:  ## paper 3 (TALD-KD): every table -> results/logit_distortion/<profile>/ (default mini100)
compare:  ## every logit loss on the same pairs -> results/compare/<profile>/ (default mini100)

define paper_rules
$(1): setup
	$$(PY) -m reproduce.$(subst -,_,$(1)) all $$(RUN_ARGS)
$(1).%: setup
	$$(PY) -m reproduce.$(subst -,_,$(1)) $$* $$(RUN_ARGS)
endef
$(foreach paper,$(PAPERS),$(eval $(call paper_rules,$(paper))))

clean-runs:  ## delete local run directories and checkpoints (committed tables stay)
	rm -rf results/runs results/*/runs results/teachers results/labels
