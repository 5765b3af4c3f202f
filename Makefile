# logit-kd: every entry point a user needs. PROFILE=mini (default, 2-core CPU, minutes)
# or PROFILE=paper (the papers' data sets and schedules, for a GPU with the data).
PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
PROFILE  ?= mini
SEEDS    ?=
ARGS     ?=
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-fast demo mini bench teachers kl-vs-mse tau-sweep logit-matching features label-noise sequential clean-runs help

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "%-16s %s\n", $$1, $$2}'

# Re-installs only when requirements.txt changed (the stamp is newer otherwise).
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

setup: $(VENV)/.installed  ## create .venv and install requirements (idempotent)

test: setup  ## run the whole test suite (smoke scale, about a minute on 2 cores)
	$(PY) -m pytest -n 2 --durations=10 $(ARGS)

test-fast: setup  ## the tests not marked slow
	$(PY) -m pytest -m "not slow" $(ARGS)

demo: setup  ## the headline mini table of each paper (under 10 minutes on 2 cores)
	$(PY) -m reproduce.demo $(ARGS)

KLMSE_SEEDS := $(if $(SEEDS),--seeds $(SEEDS))

teachers: setup  ## train the teachers a profile needs, once
	$(PY) -m reproduce.kl_vs_mse teachers --profile $(PROFILE) $(KLMSE_SEEDS) $(ARGS)

kl-vs-mse: setup  ## paper 1: every experiment, tables, figures, claims -> results/kl_vs_mse/<profile>/
	$(PY) -m reproduce.kl_vs_mse all --profile $(PROFILE) $(KLMSE_SEEDS) $(ARGS)

tau-sweep: setup  ## paper 1: student accuracy vs tau (x alpha at paper scale), CE, LMSE, teacher
	$(PY) -m reproduce.kl_vs_mse $@ --profile $(PROFILE) $(KLMSE_SEEDS) $(ARGS)

logit-matching: setup  ## paper 1: logit distance and mean shift vs tau; gradient check of the tau limits
	$(PY) -m reproduce.kl_vs_mse $@ --profile $(PROFILE) $(KLMSE_SEEDS) $(ARGS)

features: setup  ## paper 1: penultimate features (norms, PCA, cluster spread)
	$(PY) -m reproduce.kl_vs_mse $@ --profile $(PROFILE) $(KLMSE_SEEDS) $(ARGS)

label-noise: setup  ## paper 1: noisy-label robustness (our noise assumption)
	$(PY) -m reproduce.kl_vs_mse $@ --profile $(PROFILE) $(KLMSE_SEEDS) $(ARGS)

sequential: setup  ## paper 1: big -> middle -> small distillation vs direct
	$(PY) -m reproduce.kl_vs_mse $@ --profile $(PROFILE) $(KLMSE_SEEDS) $(ARGS)

mini: setup  ## every mini experiment of every paper
	$(PY) -m reproduce.kl_vs_mse all --profile mini $(ARGS)

bench: setup  ## speed ratios measured in one run on this machine
	$(PY) -m bench.run $(ARGS)

clean-runs:  ## delete local run logs and checkpoints (committed tables stay)
	rm -rf results/*/runs results/teachers
