# Two commands for a newcomer: `make run` (the app on its embedded SQLite store) and `make test`.
# Both create .venv from requirements.txt when it is missing or older than requirements.txt.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: run test browser-deps postgres-deps clean-venv

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python -m streamlit run app.py --server.port $(PORT)

# Debian's chromium drives the browser tests; installed when missing and we are root (CI, containers).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "note: /usr/bin/chromium missing (apt-get install chromium); browser tests will be skipped"; fi; \
	fi

# Debian's PostgreSQL: the store tests also run against a throwaway cluster (tests/pg_support.py).
postgres-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	      || echo "warning: could not install postgresql; PostgreSQL store tests will be skipped"; \
	  else echo "note: PostgreSQL missing (apt-get install postgresql); PostgreSQL store tests will be skipped"; fi; \
	fi

test: $(STAMP) browser-deps postgres-deps
	$(VENV)/bin/python -m pytest

clean-venv:
	rm -rf $(VENV)
