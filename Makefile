VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# test modules run in parallel (pytest-xdist), each module on one worker
PYTEST_WORKERS ?= 3

.PHONY: demo test lint screens clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/drtui sandbox demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build dist .pytest_cache

screens: $(VENV)/.installed
	TZ=UTC $(PY) -m drtui.tui.gallery screens
