# durable-sessions — front door. `make run` starts the server, `make test` runs every test.
BUILD ?= build
APT_PACKAGES := build-essential cmake ninja-build ccache pkg-config \
  libboost1.81-dev libboost-url1.81-dev libboost-json1.81-dev libsimdjson-dev libxxhash-dev \
  libzstd-dev libsqlite3-dev libxapian-dev libcli11-dev libspdlog-dev libfmt-dev \
  libcurl4-openssl-dev libssl-dev libtcmalloc-minimal4 libgtest-dev libgmock-dev clang-14 libclang-rt-14-dev lld-14 \
  wrk
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=

.PHONY: deps deps-apt deps-npm build run test test-unit test-compat test-sessions test-system \
  test-fuzz fuzz test-asan test-tsan bench clean

deps: deps-apt deps-npm

# Idempotent: installs only what is missing.
deps-apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	for tool in node:nodejs npm:npm python3:python3; do \
	  command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool##*:}"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

deps-npm:
	@if [ ! -d tests/compat/node_modules ] || [ tests/compat/package-lock.json -nt tests/compat/node_modules/.package-lock.json ]; then \
	  cd tests/compat && npm ci --no-audit --no-fund; fi

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps-apt $(BUILD)/build.ninja
	cmake --build $(BUILD) -j2

run: build
	$(BUILD)/durable-sessions serve $(ARGS)

# Runs every suite even when one fails, then fails if any did.
test: deps build
	@failed=""; \
	for t in test-unit test-compat test-sessions test-system test-fuzz; do \
	  echo "==== $$t"; $(MAKE) --no-print-directory $$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; echo "all test suites passed"

test-unit:
	cd $(BUILD) && ctest --output-on-failure -j2

test-compat:
	bash tests/compat/run-conformance.sh

test-sessions:
	@if [ -f tests/compat/sessions/run.sh ]; then bash tests/compat/sessions/run.sh; fi

test-system:
	bash tests/system/run.sh

# Each libFuzzer target for a few seconds (make fuzz runs them longer: FUZZ_SECONDS=600).
test-fuzz:
	bash tests/fuzz/run.sh 5

FUZZ_SECONDS ?= 120
fuzz: deps-apt
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

# Unit, system, conformance and SDK suites against an ASan+UBSan / a TSan build.
test-asan: deps
	bash tests/sanitize.sh asan

test-tsan: deps
	bash tests/sanitize.sh tsan

bench: deps build
	bash bench/run_all.sh

clean:
	rm -rf $(BUILD)
