# ws-broadcaster -- GNU make.  `make help` lists the targets.

CC        ?= cc
PKGS      := libwebsockets hiredis libcjson msgpack libsystemd libjwt
PY        := /usr/bin/python3
SAN       ?=
FUZZ_SECONDS ?= 30

ifeq ($(SAN),1)
BUILD     := build/san
BIN       := bin/ws-broadcaster-san
SANFLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD     := build/release
BIN       := bin/ws-broadcaster
SANFLAGS  :=
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wformat=2 -Wpointer-arith
CFLAGS    ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARN) $(SANFLAGS) $(PKG_CFLAGS) -MMD -MP
LDLIBS    := $(PKG_LIBS) -lev -lm
VERSION   := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

SRCS      := $(wildcard src/common/*.c src/ingest/*.c src/worker/*.c src/supervisor/*.c)
MAIN_SRC  := src/supervisor/main.c
# Defines recv() for the whole process (src/worker/recv_override.h): only the
# service binary gets it, never the unit tests.
RECV_SRC  := src/worker/recv_override.c
LIB_SRCS  := $(filter-out $(MAIN_SRC) $(RECV_SRC),$(SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(MAIN_SRC:%.c=$(BUILD)/%.o) $(RECV_SRC:%.c=$(BUILD)/%.o)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=bin/%)

.PHONY: all build deps run demo test test-unit test-valgrind test-integration test-js asan clean format format-check help check-deps

all: $(BIN) $(TOOL_BINS)

build: all

$(BIN): $(LIB_OBJS) $(MAIN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DWSB_VERSION='"$(VERSION)"' -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DWSB_VERSION='"$(VERSION)"' -Isrc -o $@ $< $(LIB_OBJS) $(LDLIBS)

bin/%: tests/tools/%.c
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

# Install what is missing (Debian packages), as root or through sudo.
deps:
	@sh tests/tools/deps.sh

check-deps:
	@sh tests/tools/deps.sh --check

# Install what is missing, build, and run the service against a local Redis
# (started if none answers at REDIS_URL).  Sub-makes, so the build sees the
# packages deps just installed.
run:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@sh tests/tools/run.sh

# The same, plus a demo feed publishing changing NBA odds.
demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@DEMO=1 sh tests/tools/run.sh

test: test-unit test-integration test-js

test-unit: $(UNIT_BINS)
	@sh tests/unit/run.sh $(UNIT_BINS)

# The unit tests under valgrind: memory errors and definite leaks fail them.
test-valgrind: $(UNIT_BINS)
	@VALGRIND=1 sh tests/unit/run.sh $(UNIT_BINS)

test-integration: all
	WSB_BIN=$(BIN) $(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

# The JavaScript client (clients/js) against the real binary, and the demo
# page in headless Chromium.
test-js: all
	@WSB_BIN=$(BIN) sh tests/tools/test-js.sh

asan:
	$(MAKE) SAN=1 test

format:
	clang-format -i $(SRCS) $(wildcard src/*/*.h tests/unit/*.c tests/unit/*.h tests/tools/*.c)

format-check:
	clang-format --dry-run --Werror $(SRCS) $(wildcard src/*/*.h tests/unit/*.c tests/unit/*.h tests/tools/*.c)

clean:
	rm -rf build bin

help:
	@echo "make [all]          build bin/ws-broadcaster"
	@echo "make deps           install missing Debian packages"
	@echo "make run            build, start Redis if needed, run the service"
	@echo "make demo           run, plus a demo feed of changing NBA odds"
	@echo "make test           unit, integration and JS client tests (SAN=1: with ASan+UBSan)"
	@echo "make test-unit | test-integration | test-js | asan | format | clean"

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- fuzzing: libFuzzer harnesses in tests/fuzz (clang) ----------------------
# `make fuzz` fuzzes each harness for FUZZ_SECONDS on a scratch copy of its
# seed corpus (build/fuzz/corpus/<harness>, kept between runs); crashing
# inputs land in tests/fuzz/findings/<harness>/.  `make fuzz-regress` runs
# each harness once over its committed corpus (fast, for CI).  Both end with
# "fuzz: N passed, N failed" and fail if any harness crashed.  Only the
# I/O-free sources are linked: no lws, hiredis or systemd objects.
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_NAMES   := fuzz_client_message fuzz_entry_decode fuzz_frame fuzz_config fuzz_proxy_header \
                fuzz_auth_token fuzz_forwarded
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/%)
FUZZ_SRCS    := $(wildcard src/common/*.c) src/worker/cmsg.c \
                src/worker/sub.c src/worker/sub_filter.c src/worker/encode.c src/worker/authtoken.c
FUZZ_OBJS    := $(FUZZ_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_PKGS    := libcjson msgpack libjwt
# clang's -Wformat=2 adds -Wformat-nonliteral, which gcc's leaves out for
# va_list callers and which log_vmsg (no format attribute) trips.
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -Wno-format-nonliteral \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer $(shell pkg-config --cflags $(FUZZ_PKGS) 2>/dev/null) \
                -MMD -MP
FUZZ_LIBS    := $(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null) -lm

.PHONY: fuzz fuzz-build fuzz-regress
.SECONDARY: $(FUZZ_OBJS)

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@sh tests/fuzz/run.sh fuzz $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-regress: $(FUZZ_BINS)
	@sh tests/fuzz/run.sh regress $(FUZZ_BINS)

$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Isrc -o $@ $< $(FUZZ_OBJS) $(FUZZ_LIBS)

# ---- benchmark: load generator, publisher and ceiling probe in bench/ --------
# `make bench` builds the service and the tools, then runs bench/run.sh
# (settings through the environment: SCENARIOS, RUNS, DURATION, WARMUP, PIN;
# see bench/README.md).  `make bench-tools` only builds bin/wsb-*.
BENCH_TOOLS  := bin/wsb-load bin/wsb-publish bin/wsb-ceiling
BENCH_CFLAGS := -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARN) \
                $(shell pkg-config --cflags hiredis 2>/dev/null)
BENCH_LIBS   := $(shell pkg-config --libs hiredis 2>/dev/null) -lpthread -lm

.PHONY: bench bench-tools

bench-tools: $(BENCH_TOOLS)

bench: all bench-tools
	bash bench/run.sh

bin/wsb-%: bench/wsb-%.c bench/bench.c bench/bench.h
	@mkdir -p bin
	$(CC) $(BENCH_CFLAGS) -o $@ $< bench/bench.c $(BENCH_LIBS)
