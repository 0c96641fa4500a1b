# kafka-forensics — two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench fuzz lab fixtures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## set up, then run the whole pipeline on the bundled demo incident
	$(BIN)/kforensics run fixtures/demo -o kforensics-out; rc=$$?; \
	echo; echo "database: kforensics-out/incident.duckdb   (try: $(BIN)/kforensics query \"select kind, status, rows from artifacts\")"; \
	echo "report:   kforensics-out/report.html"; \
	test $$rc -le 1

test: $(STAMP)  ## set up, then run lint and the test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)  ## benchmarks side by side with the reference tools (minutes)
	$(BIN)/python bench/run_all.py

lab: $(STAMP)  ## real incidents on loop-mounted ext4/XFS (root, bpftrace, JDK): every config x 3 runs
	$(BIN)/kforensics lab matrix --runs 3 --duration 20 -o lab-out

FUZZ_SECONDS ?= 60
fuzz: $(STAMP)  ## coverage-guided fuzzing of every parser for FUZZ_SECONDS each
	$(BIN)/pip install --quiet 'atheris>=2.3,<4'
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python fuzz/run_all.py

fixtures: $(STAMP)  ## regenerate committed fixtures
	$(BIN)/python fixtures/make_demo.py
	$(BIN)/python fixtures/segments/make_segments.py

clean:
	rm -rf $(VENV) kforensics-out .pytest_cache
