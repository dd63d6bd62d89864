# edgerules: `make demo` runs the main job, `make test` runs the whole test suite.
# Both create .venv and install what they need from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv test lint demo demo-fleet bench fuzz clean system-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[proxy,postgres,dev]'
	-$(PY) -m pip install -q 'atheris>=2.3' 2>/dev/null || echo "atheris did not install here; the hypothesis fuzz targets still run"
	touch $(STAMP)

venv: $(STAMP)

# The differential tests compare with Debian's openssl; the proxy tests use curl.
system-tools:
	@command -v openssl >/dev/null && command -v curl >/dev/null || \
	  { (apt-get update -qq && apt-get install -y -qq openssl curl >/dev/null) || \
	    echo "warning: could not install openssl/curl; tests that need them will fail"; }

lint: venv
	$(VENV)/bin/ruff check src tests bench fuzz

test: venv system-tools lint
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: venv
	$(PY) -m edgerules.demo $(DEMO_ARGS)

# Two proxies on one PostgreSQL store ($$EDGERULES_DEMO_POSTGRES, default the local server):
# a revocation through the CLI blocks the device on both proxies' open connections.
demo-fleet: venv
	$(PY) -m edgerules.demo_fleet

bench: venv
	$(PY) -m pytest bench --benchmark-enable --benchmark-only --benchmark-columns=min,median,mean,ops -q

fuzz: venv
	$(PY) fuzz/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks dist build
