# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV   := .venv
PY     := $(VENV)/bin/python
OUT    ?= demo-out
N      ?= 1000

.PHONY: setup demo test lint bench-labels clean

setup:
	@bash scripts/setup_env.sh

demo: setup
	$(PY) -m softlines_attr.cli demo --out $(OUT) --n $(N)

test: setup lint
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench-labels: setup
	$(PY) benchmarks/bench_labels.py

clean:
	rm -rf $(OUT) .pytest_cache
