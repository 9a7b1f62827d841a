# Every target creates and uses .venv, so a fresh machine needs nothing but Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo demo-jobs test lint build unit functional e2e clean bench-throughput bench-scaling bench-recovery bench-retry-budgets bench-jobs bench-entry

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# A burst of 3000 messages on the embedded AWS, time x20; e.g. DEMO_ARGS="--messages 10000 --max-loops 12".
demo: $(STAMP)
	$(BIN)/sqsloops demo $(DEMO_ARGS)

# The example app's jobs (app/jobs.py) on the embedded AWS, time x60: delayed, cron, unique, retries, dead + redrive,
# concurrency and rate limits, each checked; e.g. DEMO_ARGS="--burst 30 --rate-jobs 100".
demo-jobs: $(STAMP)
	$(BIN)/sqsloops demo jobs $(DEMO_ARGS)

# pytest exits 5 when it collects nothing; that must fail, never pass silently.
test: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

functional: $(STAMP)
	$(BIN)/pytest tests/functional $(PYTEST_ARGS)

# checkov's own pins conflict with aws-sam-cli, cfn-lint and moto: it runs from a virtualenv of its own. Offline
# (--skip-download); the checks it should not apply are skipped in template.yaml, each with its reason.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	@echo '*' > $(CHECKOV_VENV)/.gitignore  # out of git status, ruff and every tool that honours .gitignore
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	@touch $@

lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --lint --template template.yaml --region us-east-1
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --quiet --compact
	$(BIN)/pytest -q tests/functional/test_template_policies.py
	$(BIN)/pytest -m build tests/build -q

# arm64 + python3.11 with pure-Python dependencies: no container needed on any host. The venv goes first on PATH so
# sam finds a python3.11 with pip even where the system has none.
build: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" SAM_CLI_TELEMETRY=0 $(BIN)/sam build --template template.yaml

clean:
	rm -rf $(VENV) .venv-checkov .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage

# Benchmarks: each prints a table and ratios measured side by side in one run on the embedded AWS (bench/).
# BENCH_ARGS passes options through, e.g. make bench-throughput BENCH_ARGS="--messages 1000 --repeat 5".
BENCH_ARGS ?=

bench-throughput: $(STAMP)
	$(BIN)/python -m bench.throughput $(BENCH_ARGS)

bench-scaling: $(STAMP)
	$(BIN)/python -m bench.scaling $(BENCH_ARGS)

bench-recovery: $(STAMP)
	$(BIN)/python -m bench.recovery $(BENCH_ARGS)

bench-retry-budgets: $(STAMP)
	$(BIN)/python bench/retry_budgets.py $(BENCH_ARGS)

# The job layer (bench/jobs.py): enqueue, throughput, latency, requests per job and tracking's cost, one table.
bench-jobs: $(STAMP)
	$(BIN)/python -m bench.jobs $(BENCH_ARGS)

# The entry points (bench/entry.py): jobs/s, latency and requests per job of enqueue_many, POST /jobs/batch and SNS.
bench-entry: $(STAMP)
	$(BIN)/python -m bench.entry $(BENCH_ARGS)

# Chaos (bench/chaos.py): 10,000 messages through failing handlers under injected faults, against the same run
# without them; e.g. make chaos BENCH_ARGS="--messages 2000 --loops 3".
.PHONY: chaos
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(BENCH_ARGS)
