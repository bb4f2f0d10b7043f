VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# test modules run in parallel (pytest-xdist), each module on one worker
PYTEST_WORKERS ?= 4

.PHONY: demo demo-down test lint screens clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# demo and test first install what this machine lacks (scripts/setup-host), then the venv.
demo:
	@scripts/setup-host demo
	@$(MAKE) --no-print-directory $(VENV)/.installed
	$(VENV)/bin/drtui sandbox demo

demo-down:
	$(VENV)/bin/drtui sandbox down

test:
	@scripts/setup-host test
	@$(MAKE) --no-print-directory $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	scripts/with-docker-engine $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build dist .pytest_cache

screens: $(VENV)/.installed
	TZ=UTC $(PY) tools/gallery.py screens
