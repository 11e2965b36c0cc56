# The two commands everything starts from: `make run` and `make test`.
# Each bootstraps .venv idempotently: it reinstalls only when pyproject.toml or constraints.txt changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arena-install-stamp
EXTRAS := test,offline-weights,postgres

.PHONY: venv run test lint bench

venv:
	@want="$$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"; \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
		echo "Installing FID Arena into $(VENV) (pinned by constraints.txt)..."; \
		[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || exit 1; \
		$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]" && \
		echo "$$want" > $(STAMP); \
	else \
		echo "$(VENV) is up to date."; \
	fi

run: venv
	$(VENV)/bin/arena serve --demo

# The same suite as CI on a bare machine: Debian's Chromium is installed when missing (as root; otherwise the one
# command to run is printed), and the local PostgreSQL (127.0.0.1:5432, database `test`) is used when it answers.
test: venv
	@.ci/chromium
	$(PY) -m ruff check .
	ARENA_TEST_POSTGRES_URL="$$(.ci/postgres-url $(PY))" $(PY) -m pytest -n 2 --dist loadfile

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

# Benchmarks print a table and write JSON to bench/results/; docs/BENCHMARKS.md records the numbers.
bench: venv
	$(PY) -m bench.submissions
	$(PY) -m bench.scoring
	$(PY) -m bench.server_load
	$(PY) -m bench.training

# The one-shot GPU check (bench/gpu.py, under 9 minutes on one GPU; ARGS="--smoke" runs it on the CPU). No venv
# prerequisite: on a GPU machine without the network it runs with that machine's python3 (see docs/BENCHMARKS.md).
.PHONY: bench-gpu
bench-gpu:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m bench.gpu $(ARGS)
