# make run   - set up and start the gateway (a demo in front of a local httpbin
#              when GATEWAY_UPSTREAM_URL is unset)
# make test  - set up and run the whole test suite (installs nginx, redis-server, wrk)
# make bench - the load benchmark (bench/)
# make docs  - regenerate the generated pages of docs/ and build the site (site/, --strict)
# make profile - where a gateway worker spends its CPU under load (py-spy; ARGS='--enrichment hits')

PYTHON ?= python3
VENV := .venv
HTTPBIN_VENV := .venv-httpbin
BIN := $(VENV)/bin

.PHONY: run test bench profile lint install system-deps docs

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,docs]'
	touch $@

# httpbin pins greenlet<3, gevent needs greenlet>=3: httpbin gets its own venv.
$(HTTPBIN_VENV)/.installed:
	$(PYTHON) -m venv $(HTTPBIN_VENV)
	$(HTTPBIN_VENV)/bin/pip install --quiet 'httpbin==0.10.*' 'gunicorn>=23'
	touch $@

install: $(VENV)/.installed $(HTTPBIN_VENV)/.installed

system-deps:
	sh deploy/install-system-deps.sh

run: install
	$(BIN)/python deploy/demo.py

lint: $(VENV)/.installed
	$(BIN)/ruff check .

test: install system-deps lint
	$(BIN)/pytest

bench: install system-deps
	$(BIN)/python bench/run.py

profile: install system-deps
	$(BIN)/pip install --quiet py-spy
	$(BIN)/python bench/profile.py $(ARGS)

# The generated pages first (the settings table, the Kong matrix, the home page), then
# the site: --strict fails on a broken link, a missing page or one left out of the nav.
docs: $(VENV)/.installed
	$(BIN)/python -m gateway docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
