.PHONY: deps test unit integration interop demo bench bench-engine bench-network clean

VENV   := .venv
PYTEST := $(VENV)/bin/pytest -q -rfEs

# `make test` runs everything; pytest's exit status 5 (no tests collected) fails like any other.
# The leak check in tests/conftest.py also fails the run when dockyard left objects on the host.

deps:
	@bash scripts/install-deps.sh

test: deps
	$(PYTEST) tests

unit: deps
	$(PYTEST) tests/unit

integration: deps
	$(PYTEST) tests/integration

interop: deps
	$(PYTEST) tests/interop

demo: deps
	bash scripts/demo.sh

bench: deps
	bash bench/runtime/run.sh

# by hand only (root; private dockerd and podman): bench/engine/README
bench-engine: deps
	bash bench/engine/run.sh

# by hand only (root; private dockerd and podman, iperf3): bench/network/README
bench-network: deps
	bash bench/network/run.sh

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
