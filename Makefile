# Thin front end to ./dev (which works on a fresh Debian machine even without make).
.PHONY: help setup run test lint typecheck bench
help: ## List the commands
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
setup: ## Install Debian packages and Python dependencies (uv.lock)
	./dev setup
run: ## Start Packyard on SQLite + ./packyard-data with demo data
	./dev run
test: ## Lint, type-check, layer contracts, alembic check, all tests with coverage
	./dev test
lint: ## ruff + import-linter
	./dev lint
typecheck: ## mypy (strict on domain, formats, services)
	./dev typecheck
bench: ## Benchmarks (bench/), printing ratios against peers
	./dev bench
