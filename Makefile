# Two commands for a newcomer: `make run` (the app on its embedded SQLite store) and `make test`.
# Both create .venv from requirements.txt when it is missing or older than requirements.txt.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: run test lint system-deps clean-venv

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python -m streamlit run app.py --server.port $(PORT)

# Debian packages the tests drive: chromium (browser tests), postgresql (the store tests also run against a
# throwaway cluster, tests/pg_support.py) and nginx (the shipped deploy/nginx/imglab.conf in front of the app,
# tests/nginx_support.py). Missing ones are installed in one apt-get run when we are root (CI, containers);
# otherwise the tests that need them are skipped.
system-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; the tests that need them will be skipped"; \
	  else echo "note: missing Debian packages:$$missing (apt-get install$$missing); the tests that need them will be skipped"; fi; \
	fi

# Static checks first (seconds): ruff's lint rules and mypy on core/ and db/ (pyproject.toml), then the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(STAMP) system-deps lint
	$(VENV)/bin/python -m pytest

clean-venv:
	rm -rf $(VENV)
