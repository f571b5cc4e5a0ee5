# gapwatch's developer entry points. Every target sets up what it needs itself, so a fresh
# clone on a machine with Python 3.11+, Java 17+ and Maven only needs `make demo` / `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install lint format typecheck kafka-jars ops-tools java test unit integration chaos demo bench soak clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gapwatch needs Python 3.11 or newer (found %s)" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# ruff (with SLF001: no reaching into another object's private members) and import-linter
# (the layers and the no-cycles contracts in pyproject.toml; docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check gapwatch tests bench
	$(BIN)/ruff format --check gapwatch tests bench
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format gapwatch tests bench
	$(BIN)/ruff check --fix gapwatch tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Downloads the broker jars of every tested Kafka version (the default, the newest 3.x and
# 4.x) from Maven Central once; later runs hit the cache. Then MirrorMaker 2's jars
# (connect-mirror and the Connect runtime) of the default version, for the mirror tests.
kafka-jars: $(STAMP)
	$(BIN)/python -m gapwatch.testing.kafka fetch --matrix
	$(BIN)/python -m gapwatch.testing.mirror fetch

# promtool, prometheus, amtool and prometheus-alertmanager from Debian's packages, only if
# missing (root or sudo); the tests of deploy/ and grafana/ run them.
ops-tools:
	bash deploy/install-ops-tools.sh

# The JVM client library (clients/java): compiles, runs its JUnit tests and builds
# clients/java/target/gapwatch-clients-<version>.jar, plus the classpath file its test
# applications run with (tests/integration/test_java_producer.py, bench/bench_java_producer.py).
java:
	mvn -q -B -Dstyle.color=never -f clients/java/pom.xml package

# The README's test command: lint, types, then unit and integration tests in one pytest run.
test: lint typecheck kafka-jars ops-tools java
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP) ops-tools
	$(BIN)/pytest -m 'not kafka and not chaos' $(PYTEST_ARGS)

integration: kafka-jars ops-tools java
	$(BIN)/pytest -m 'kafka or chaos' $(PYTEST_ARGS)

# -s: each scenario prints its progress lines and a summary (what the app saw, what the log
# holds, what gapwatch reported); docs/loss-scenarios.md explains them.
chaos: kafka-jars
	$(BIN)/pytest -m chaos -v -s $(PYTEST_ARGS)

demo: kafka-jars
	$(BIN)/python -m gapwatch.demo

# Every benchmark but the soak, which runs a monitor for 20 minutes by design: `make soak`.
bench: kafka-jars java
	@for script in bench/bench_*.py; do \
		case $$script in bench/bench_soak.py) continue;; esac; \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

# Memory over time under steady load (docs/benchmarks.md, "Soak"); MINUTES=20 by default.
MINUTES ?= 20
soak: kafka-jars
	$(BIN)/python bench/bench_soak.py --minutes $(MINUTES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
