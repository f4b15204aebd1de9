# The two set-up commands of the README: `make run` (the whole service) and `make test` (the whole suite).
.PHONY: run test bench lint

run:
	@scripts/bootstrap.sh
	@.venv/bin/comfyws run

test:
	@scripts/bootstrap.sh --browser
	@scripts/services.sh
	@.venv/bin/python -m pytest -q -p no:randomly --durations=15

bench:
	@scripts/bootstrap.sh
	@scripts/services.sh
	@for b in bench/bench_*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done

lint:
	@.venv/bin/ruff check .
	@.venv/bin/mypy api database flows workers workflows deployments comfyws frontend
