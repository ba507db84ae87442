# The two commands of the README:
#   make run    serve the API on http://127.0.0.1:$(PORT) with the embedded SQLite default
#   make test   lint, type-check and run every test
# Both create .venv and install the locked dependencies on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
FLASK := $(BIN)/flask --app billing

.PHONY: run test test-stripe-live lint deps lock bench bench-webhooks bench-plans faults fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.deps-dev: requirements.lock requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.lock
	touch $@

deps: $(VENV)/.deps-dev

run: deps
	$(FLASK) db upgrade
	$(FLASK) seed
	$(BIN)/python -m billing.devserver --port $(PORT)

lint: deps
	$(BIN)/ruff check billing schemas migrations tests bench
	$(BIN)/ruff format --check billing schemas migrations tests bench
	$(BIN)/mypy billing schemas

# Three pytest workers (pytest-xdist): each has its own throwaway database and Stripe
# stand-in; much of the run waits on sockets, webhooks and a browser rather than the
# CPU, so a third worker still pays on two cores (10 m 53 s with two, 9 m 28 s with three).
PYTEST_WORKERS ?= 3

test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Against Stripe's test mode (needs the internet and STRIPE_TEST_SECRET_KEY=sk_test_...):
# proves what the stand-in cannot, that the real API accepts every request. Never in CI.
test-stripe-live: deps
	$(BIN)/python -m pytest -p no:xdist tests/live $(PYTEST_ARGS)

bench: deps
	$(BIN)/python bench/quotes.py

bench-webhooks: deps
	$(BIN)/python bench/webhooks.py

bench-plans: deps
	$(BIN)/python bench/plans.py

faults: deps
	$(BIN)/python bench/faults.py

# The OpenAPI contract fuzzed deeper than `make test` does (FUZZ_EXAMPLES cases per
# operation; the suite runs 25 to stay within its time): on demand, and before a release.
FUZZ_EXAMPLES ?= 300
fuzz: deps
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -p no:xdist \
		tests/api/test_openapi_contract.py::test_no_response_differs_from_the_document

lock:
	rm -rf /tmp/billing-lock && $(PYTHON) -m venv /tmp/billing-lock
	/tmp/billing-lock/bin/pip install -q -e .
	/tmp/billing-lock/bin/pip freeze --exclude-editable > requirements.lock.new
	@echo "review requirements.lock.new, then move it over requirements.lock"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
