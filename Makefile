# migsafe: two commands do everything on a fresh Debian machine.
#   make demo   build, then run migsafe on the bundled example migrations
#   make test   formatting, clippy, and every test (database tests on PostgreSQL 15 and 18)
CARGO ?= cargo
DEMO_OUT ?= target/demo

.PHONY: demo test setup-build setup-test build bench fresh-check

setup-build:
	@scripts/setup.sh build

setup-test:
	@scripts/setup.sh test

build: setup-build
	$(CARGO) build --release -p migsafe

demo: build
	@mkdir -p $(DEMO_OUT)
	./target/release/migsafe lint examples/nchat/migrations
	./target/release/migsafe rehearse examples/nchat/migrations --rows 1000 --report $(DEMO_OUT)/rehearsal.html
	@echo "open $(DEMO_OUT)/rehearsal.html for the lock timelines"
	@# Every file there is unsafe on purpose: report the findings, do not fail on them.
	./target/release/migsafe lint examples/unsafe/migrations --format markdown --fail-on none --output $(DEMO_OUT)/unsafe-lint.md
	@echo "wrote $(DEMO_OUT)/unsafe-lint.md (the linter on one example of each hazard)"

test: setup-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@# Every test on PostgreSQL 15 and the database suites on PostgreSQL 18, at once.
	CARGO="$(CARGO)" scripts/test-both.sh

# Not part of `make test`: builds a clean Debian root (needs root) and runs `make demo` and
# `make test` in it on a clean clone of HEAD, printing each command's exit code and wall time.
fresh-check:
	scripts/fresh-check.sh

bench: setup-test
	$(CARGO) build --release -p migsafe -p migsafe-bench
	./target/release/migsafe-bench all
