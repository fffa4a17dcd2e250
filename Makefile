# snapbox - one Makefile. `make` builds the CLI, the libraries and the guests;
# `make check` runs the test suite (KVM tests inside a QEMU VM when this
# machine has no /dev/kvm); `make demo` shows the main job; `make install`
# installs the CLI, the libraries, the headers, snapbox.pc and the man pages.
#
# `make` and `make all` never install packages; deps, check, check-install,
# check-valgrind, demo, bench, fuzz and fuzz-replay first install the Debian
# packages they miss (scripts/deps.sh build), before anything is compiled.
#
# User CC, CPPFLAGS, CFLAGS and LDFLAGS are honoured: they come after the
# project's own flags (e.g. `make CFLAGS=-O0` still builds with -std=c11
# -Wall -Wextra -Werror); they apply to host code, not to the freestanding guests.

# make predefines CC=cc, so `CC ?= gcc` would never take effect.
ifeq ($(origin CC),default)
CC        := gcc
endif
# Quiet by default; `make V=1` shows every command.
V         ?= 0
Q         := $(if $(filter 1,$(V)),,@)
BUILD     ?= build
GEN       := $(BUILD)/gen
SAN       := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

WARN      := -std=c11 -Wall -Wextra -Werror
# Header dependencies: each compile writes a .d file beside its output.
DEPFLAGS  := -MMD -MP
SBX_CPPFLAGS := -D_GNU_SOURCE -Iinclude -I$(GEN) -Isrc
SBX_CFLAGS   := $(WARN) -O2 -g -fvisibility=hidden
HOST_CFLAGS   = $(SBX_CPPFLAGS) $(SBX_CFLAGS) $(CPPFLAGS) $(CFLAGS)
LIBS      := -lelf -llz4 -lxxhash -lseccomp -lpthread -lrt
# The OCI registry client (src/oci): HTTP, SHA-256, JSON.
LIBS      += -lcurl -lcrypto -ljansson
CLI_LIBS  := -ljansson -lmicrohttpd

# The version, from VERSION (checked by scripts/gen-version.sh), and the
# shared library: libsnapbox.so.MAJOR.MINOR.PATCH, SONAME libsnapbox.so.MAJOR.
VERSION_STRING := $(shell tr -d ' \n' < VERSION)
VERSION_MAJOR  := $(firstword $(subst ., ,$(VERSION_STRING)))
SONAME    := libsnapbox.so.$(VERSION_MAJOR)
SHLIB     := $(BUILD)/libsnapbox.so.$(VERSION_STRING)
LIB_MAP   := src/libsnapbox.map
GEN_HDRS  := $(GEN)/snapbox_version.h $(GEN)/sbx_version.h

LIB_SRCS  := $(wildcard src/common/*.c src/loader/*.c src/vcpu/*.c src/snapshot/*.c src/oci/*.c \
                           src/debug/*.c)
CLI_SRCS  := $(wildcard src/cli/*.c src/serve/*.c)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
SAN_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/san/%.o)
TSAN      := -fsanitize=thread -fno-omit-frame-pointer
TSAN_OBJS := $(LIB_SRCS:%.c=$(BUILD)/tsan/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
# Every header: only for the programs compiled from several sources in one
# step (fuzz replay, bench); objects and tests use their .d files.
HEADERS   := $(wildcard include/*.h src/*.h src/*/*.h) $(GEN_HDRS)

# Guests: freestanding x86-64, linked by guest/guest.ld.
GUEST_CFLAGS := $(WARN) -O2 -ffreestanding -fno-pic -fno-pie -mno-red-zone \
                -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none \
                -Iinclude -Iguest/lib -I$(GEN)
GUEST_LDFLAGS := -nostdlib -static -no-pie -T guest/guest.ld -Wl,-z,max-page-size=4096 \
                 -Wl,--build-id=none -Wl,-z,noexecstack
GUEST_LIB_CORE := $(BUILD)/guest-lib/guest.o $(BUILD)/guest-lib/entry.o $(BUILD)/guest-lib/note.o
# The guest SDK (installed with `make install`, used by the in-tree guests the
# same way): the guest library as one relocatable object per flavour, so the
# entry point and the version note come along whatever the program uses.
GUEST_LIB   := $(BUILD)/guest-sdk/snapbox-guest.o
GUEST_LIB_PARTS := $(GUEST_LIB_CORE) $(BUILD)/guest-lib/start.o $(BUILD)/guest-lib/mem.o
# Guests on Debian's musl C library: its headers and libc.a, and the guest
# library's start-up and system-call layer instead of start.o and mem.o.
# -nostartfiles (not -nostdlib): the compiler still ends the link with
# -lgcc -lc, after the program, and -L makes -lc musl's.
MUSL_DIR    := /usr/lib/x86_64-linux-musl
MUSL_CFLAGS := -nostdinc -isystem /usr/include/x86_64-linux-musl \
               -isystem $(shell $(CC) -print-file-name=include)
GUEST_LIBC_CFLAGS := $(WARN) -O2 -fno-pic -fno-pie $(MUSL_CFLAGS) -Iinclude -Iguest/lib -I$(GEN)
GUEST_LIBC  := $(BUILD)/guest-sdk/snapbox-guest-libc.o
GUEST_LIBC_PARTS := $(GUEST_LIB_CORE) $(BUILD)/guest-lib/libc.o $(BUILD)/guest-lib/syscall.o
GUEST_LINK_FLAGS := -no-pie -T guest/guest.ld -Wl,-z,max-page-size=4096 -Wl,--build-id=none \
                    -Wl,-z,noexecstack
GUEST_LIBC_LDFLAGS := -nostartfiles -static -L$(MUSL_DIR) $(GUEST_LINK_FLAGS)
GUESTS      := $(BUILD)/guests/demo.elf $(BUILD)/guests/hostile.elf $(BUILD)/guests/plain.elf \
               $(BUILD)/guests/bench.elf $(BUILD)/guests/big.elf $(BUILD)/guests/libctest.elf \
               $(BUILD)/guests/rules.elf $(BUILD)/guests/wordfreq.elf $(BUILD)/guests/crash.elf \
               $(BUILD)/guests/crash-init.elf

TESTS_NATIVE := $(BUILD)/tests/test_loader $(BUILD)/tests/test_snapshot $(BUILD)/tests/test_api \
                $(BUILD)/tests/test_core
TESTS_KVM    := $(BUILD)/tests/test_kvm $(BUILD)/tests/test_template $(BUILD)/tests/test_crash \
                $(BUILD)/tests/test_libc $(BUILD)/tests/test_isolation $(BUILD)/tests/test_ready
CRASH_SHIM   := $(BUILD)/tests/crashshim.so
DEPS_STAMP   := $(BUILD)/.deps-build

# Installation: `make install PREFIX=/usr DESTDIR=/tmp/stage`.
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
MANDIR       ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL      ?= install
PUBLIC_HDRS  := include/snapbox.h include/sbx_abi.h $(GEN)/snapbox_version.h include/snapbox_oci.h
# The guest SDK: its objects and linker script, and the headers a guest includes.
GUEST_SDKDIR ?= $(LIBDIR)/snapbox-guest
GUEST_SDK_HDRS := guest/lib/sbx_guest.h include/sbx_abi.h

# The goals that install missing packages first: every compile waits for
# `deps` (order-only). Plain `make` / `make all` never run apt-get.
DEPS_GOALS   := deps check check-install check-valgrind demo bench fuzz fuzz-replay bench-serve \
                check-serve check-oci
DEPS_FIRST   := $(if $(filter $(DEPS_GOALS),$(MAKECMDGOALS)),deps)

FUZZ_TARGETS := fuzz_elf fuzz_note fuzz_snap_header fuzz_snap_chunks fuzz_hypercall
FUZZ_REPLAY  := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/bin/%)
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/fuzzobj/%.o)
FUZZ_SEEDS   := $(BUILD)/fuzz/seeds/.stamp

.PHONY: all check check-install check-valgrind demo bench fuzz fuzz-replay clean deps \
        install uninstall
.SECONDARY:
all: $(BUILD)/snapbox $(BUILD)/libsnapbox.a $(BUILD)/libsnapbox.so $(GUESTS)

# Always asks dpkg (cheap); installs only what is missing.
deps:
	sh scripts/deps.sh build

# Kept for rules that still name it; new rules use $(DEPS_FIRST).
$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(@D)
	sh scripts/deps.sh build
	@touch $@

# The one source of the version: VERSION, checked and turned into the
# installed header snapbox_version.h; sbx_version.h, the name the library and
# the guest library include, is that header under its internal name.
$(GEN)/snapbox_version.h: VERSION scripts/gen-version.sh
	@mkdir -p $(@D)
	sh scripts/gen-version.sh VERSION > $@.tmp && mv $@.tmp $@

$(GEN)/sbx_version.h: $(GEN)/snapbox_version.h
	@mkdir -p $(@D)
	printf '/* Generated by the Makefile: the internal name of snapbox_version.h. */\n#include "snapbox_version.h"\n' > $@.tmp && mv $@.tmp $@

# Everything compiled depends on the generated version headers (snapbox.h
# includes them: a new version rebuilds everything, and so does the first
# build of a tree made before the .d files existed) and, for DEPS_GOALS, waits
# for the packages; the .d files name the other headers.
$(BUILD)/obj/%.o: %.c $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(DEPFLAGS) -fPIC -c $< -o $@

$(BUILD)/san/%.o: %.c $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(DEPFLAGS) $(SAN) -c $< -o $@

$(BUILD)/tsan/%.o: %.c $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(DEPFLAGS) $(TSAN) -c $< -o $@

$(BUILD)/libsnapbox.a: $(LIB_OBJS)
	@echo "  AR     $@"
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# Exports only the SBX_API functions (visibility), under the version node of
# $(LIB_MAP); programs record the SONAME, libsnapbox.so.MAJOR.
$(SHLIB): $(LIB_OBJS) $(LIB_MAP)
	@echo "  CC     $@"
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script,$(LIB_MAP) -Wl,-z,defs \
	    $(LDFLAGS) -o $@ $(LIB_OBJS) $(LIBS)

$(BUILD)/$(SONAME): $(SHLIB)
	$(Q)ln -sf $(notdir $<) $@

$(BUILD)/libsnapbox.so: $(BUILD)/$(SONAME)
	$(Q)ln -sf $(notdir $<) $@

$(BUILD)/snapbox: $(CLI_OBJS) $(BUILD)/libsnapbox.a
	@echo "  CC     $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(BUILD)/libsnapbox.a $(LIBS) $(CLI_LIBS)

# General registers only: guest.c and libc.c run inside the guest's system
# calls, which must leave vector registers as they found them.
$(BUILD)/guest-lib/%.o: guest/lib/%.c $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_CFLAGS) -mgeneral-regs-only $(DEPFLAGS) -c $< -o $@

$(BUILD)/guest-lib/libc.o: guest/lib/libc.c $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LIBC_CFLAGS) -mno-red-zone -mgeneral-regs-only $(DEPFLAGS) -c $< -o $@

$(BUILD)/guests/libc/%.o: guest/libc/%.c $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LIBC_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/examples/%.o: examples/%.c $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LIBC_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(GUEST_LIB): $(GUEST_LIB_PARTS)
	@mkdir -p $(@D)
	@echo "  LD     $@"
	$(Q)$(CC) -nostdlib -r -o $@ $^

$(GUEST_LIBC): $(GUEST_LIBC_PARTS)
	@mkdir -p $(@D)
	@echo "  LD     $@"
	$(Q)$(CC) -nostdlib -r -o $@ $^

# Guests on the C library: the test guest and the examples.
$(BUILD)/guests/libctest.elf: $(BUILD)/guests/libc/libctest.o
$(BUILD)/guests/rules.elf: $(BUILD)/examples/rules/rules.o
$(BUILD)/guests/wordfreq.elf: $(BUILD)/examples/wordfreq/wordfreq.o
$(BUILD)/guests/libctest.elf $(BUILD)/guests/rules.elf $(BUILD)/guests/wordfreq.elf: \
		$(GUEST_LIBC) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LIBC_LDFLAGS) -o $@ $(GUEST_LIBC) $(filter-out $(GUEST_LIBC) guest/guest.ld,$^)

$(BUILD)/guest-lib/%.o: guest/lib/%.S $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/guests/%.o: guest/%.c $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/guests/demo.elf: $(BUILD)/guests/demo/demo.o $(GUEST_LIB) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB) $<

$(BUILD)/guests/hostile.elf: $(BUILD)/guests/hostile/hostile.o $(GUEST_LIB) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB) $<

$(BUILD)/guests/big.elf: $(BUILD)/guests/big/big.o $(GUEST_LIB) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB) $<

$(BUILD)/guests/bench/bench.o: guest/bench/content.h
$(BUILD)/guests/bench.elf: $(BUILD)/guests/bench/bench.o $(GUEST_LIB) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB) $<

# The debugging tests' guest: debug information and no optimisation, so
# gdb sees every frame, argument and global.
$(BUILD)/guests/crash/crash.o: GUEST_CFLAGS += -g -O0
$(BUILD)/guests/crash.elf: $(BUILD)/guests/crash/crash.o $(GUEST_LIB) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB) $<
$(BUILD)/guests/crash/crash-init.o: guest/crash/crash.c $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_CFLAGS) -g -O0 -DCRASH_IN_INIT $(DEPFLAGS) -c $< -o $@
$(BUILD)/guests/crash-init.elf: $(BUILD)/guests/crash/crash-init.o $(GUEST_LIB) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB) $<

# A guest without the guest library and without a version note.
$(BUILD)/guests/plain.elf: guest/plain/plain.S guest/guest.ld $(GEN_HDRS) | $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_CFLAGS) $(DEPFLAGS) $(GUEST_LDFLAGS) -o $@ $<

# Tests run against the library built with ASan and UBSan.
$(BUILD)/tests/%: tests/%.c tests/testutil.h $(SAN_OBJS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(DEPFLAGS) $(SAN) -Itests $(LDFLAGS) -o $@ $< $(SAN_OBJS) $(LIBS) -lcmocka

# The concurrency suites (many threads restoring, calling and resetting from
# one template; ready pools taken and released by threads while their own
# thread resets and refills) again under ThreadSanitizer; any report fails it.
TEST_TSAN := $(BUILD)/tsan/tests/test_template $(BUILD)/tsan/tests/test_ready
$(BUILD)/tsan/tests/%: tests/%.c tests/testutil.h $(TSAN_OBJS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(DEPFLAGS) $(TSAN) -Itests $(LDFLAGS) -o $@ $< $(TSAN_OBJS) $(LIBS) -lcmocka

# Fault injection for the crash-safety test, preloaded into the plain CLI.
$(CRASH_SHIM): tests/crashshim.c
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(WARN) -O2 $(CPPFLAGS) $(CFLAGS) -shared -fPIC $(LDFLAGS) -o $@ $< -ldl

check: all $(TESTS_NATIVE) $(TESTS_KVM) $(TEST_TSAN) $(CRASH_SHIM) fuzz-replay
	@for t in $(TESTS_NATIVE); do echo "== $$t"; SBX_BUILD=$(BUILD) $$t || exit 1; done
	@echo "== tests/test_cli.sh"; sh tests/test_cli.sh $(BUILD)
	@for t in $(TESTS_KVM) $(TEST_TSAN); do echo "== $$t"; sh tests/run-kvm.sh $$t $(BUILD) || exit 1; done
	@$(MAKE) --no-print-directory check-install

# Install into a scratch DESTDIR, build a C and a C++ program against it with
# pkg-config alone, run them, read the man pages, uninstall. Runs last in
# `make check`, so that the suites' results come first.
# (A line naming $(MAKE) runs even under `make -n`: then it only says what it would do.)
DRY_RUN := $(findstring n,$(firstword -$(MAKEFLAGS)))
check-install: all
	@echo "== tests/test_install.sh"
	@$(if $(DRY_RUN),echo) MAKE="$(MAKE)" BUILD="$(BUILD)" CC="$(CC)" sh tests/test_install.sh

# The CLI's paths under valgrind's memcheck: no error, no leak. KVM paths run
# natively or inside the KVM test VM.
check-valgrind: all $(FUZZ_SEEDS)
	sh scripts/deps.sh valgrind
	SEED_SNAPSHOT=$(BUILD)/fuzz/seeds/fuzz_snap_header/demo.elf-lz4.snap \
	    sh tests/valgrind-cli.sh $(BUILD)/snapbox $(BUILD)/guests $(BUILD)/valgrind-tmp
	sh tests/valgrind-kvm.sh $(BUILD)

demo: all
	sh scripts/demo.sh $(BUILD)

# The public surface: snapbox.h alone as C11 and C++17, and the exported
# symbols of libsnapbox.so against tests/abi/snapbox.sym.
.PHONY: check-api
check-api: $(BUILD)/libsnapbox.so
	sh tests/check-api.sh $(BUILD)
check: check-api

# The CLI built with ASan and UBSan (leaks included), for the suites that
# drive it: serve's and the registries'.
SAN_CLI := $(BUILD)/snapbox-asan
$(SAN_CLI): $(CLI_SRCS:%.c=$(BUILD)/san/%.o) $(SAN_OBJS)
	@echo "  CC     $@"
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LIBS) $(CLI_LIBS)

# `snapbox serve` with curl against real KVM (inside the KVM test VM, curl
# carried in): endpoints, statuses, backpressure, SIGTERM, /metrics.
.PHONY: check-serve
check-serve: all $(CRASH_SHIM) $(SAN_CLI)
	@echo "== tests/test_serve.sh"
	SBX_SERVE_ASAN=1 KVMVM_EXTRA="$$(command -v curl) $(SAN_CLI)" \
	    sh tests/run-kvm.sh tests/test_serve.sh $(BUILD)
check: check-serve

# OCI registries: push and pull against docker-registry on loopback (plain
# HTTP; TLS with a self-signed CA and htpasswd), then a snapshot pulled by
# reference restored and called in real KVM (natively or in the test VM).
.PHONY: check-oci
check-oci: all $(SAN_CLI) $(BUILD)/tests/test_oci_parse
	sh scripts/deps.sh oci
	@echo "== $(BUILD)/tests/test_oci_parse"; $(BUILD)/tests/test_oci_parse
	@echo "== tests/test_oci.sh"; SNAPBOX_CLI=$(SAN_CLI) sh tests/test_oci.sh $(BUILD)
	@echo "== tests/test_oci_kvm.sh"; sh tests/test_oci_kvm.sh $(BUILD)
check: check-oci

# Debugging guests: core files and the gdb stub, checked with Debian's gdb
# in batch mode against real KVM (natively or inside the KVM test VM).
.PHONY: check-debug
check-debug: all
	@echo "== tests/test_debug.sh"
	sh tests/run-debug.sh $(BUILD)
check: check-debug

# ---- fuzzing: libFuzzer builds (clang) and gcc replay builds of each target ----
$(BUILD)/fuzz/seed: tests/fuzz/seed.c $(SAN_OBJS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(DEPFLAGS) $(SAN) $(LDFLAGS) -o $@ $< $(SAN_OBJS) $(LIBS)

$(FUZZ_SEEDS): $(BUILD)/fuzz/seed $(GUESTS)
	rm -rf $(@D) && $(BUILD)/fuzz/seed $(BUILD)/guests $(@D) && touch $@

$(BUILD)/fuzz/replay_%: tests/fuzz/%.c tests/fuzz/replay.c tests/fuzz/snapfix.h $(SAN_OBJS) $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(SAN) $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(SAN_OBJS) $(LIBS)

# Every seed and every regression input, replayed under ASan and UBSan.
fuzz-replay: $(FUZZ_REPLAY) $(FUZZ_SEEDS)
	@for t in $(FUZZ_TARGETS); do mkdir -p tests/fuzz/regress/$$t; \
	    $(BUILD)/fuzz/replay_$$t $(BUILD)/fuzz/seeds/$$t tests/fuzz/regress/$$t || exit 1; done

$(BUILD)/.deps-fuzz: scripts/deps.sh
	@mkdir -p $(@D)
	sh scripts/deps.sh fuzz
	@touch $@

$(BUILD)/fuzzobj/%.o: %.c $(GEN_HDRS) | $(BUILD)/.deps-fuzz $(DEPS_FIRST)
	@mkdir -p $(@D)
	@echo "  CLANG  $@"
	$(Q)$(FUZZ_CC) $(HOST_CFLAGS) $(DEPFLAGS) -O1 -fsanitize=fuzzer-no-link,address,undefined \
	    -fno-sanitize-recover=all -c $< -o $@

$(BUILD)/fuzz/bin/%: tests/fuzz/%.c tests/fuzz/snapfix.h $(FUZZ_OBJS)
	@mkdir -p $(@D)
	@echo "  CLANG  $@"
	$(Q)$(FUZZ_CC) $(HOST_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    $(LDFLAGS) -o $@ $< $(FUZZ_OBJS) $(LIBS)

# Each target for FUZZ_SECONDS (default 60), then its whole corpus replayed.
# Then the differential isolation test, longer than in `make check` (60
# rounds per memory mode there): ISOLATION_ROUNDS rounds of random hostile
# requests against one sandbox, each followed by a reset.
ISOLATION_ROUNDS ?= 2000
fuzz: $(FUZZ_BINS) $(FUZZ_REPLAY) $(FUZZ_SEEDS) $(BUILD)/tests/test_isolation $(CRASH_SHIM)
	sh tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)
	SBX_ISOLATION_ROUNDS=$(ISOLATION_ROUNDS) SBX_ISOLATION_ONLY=differential \
	    sh tests/run-kvm.sh $(BUILD)/tests/test_isolation $(BUILD)

# Benchmarks run the optimised library, not the sanitized one.
BENCH_SRCS := $(wildcard bench/*.c)
$(BUILD)/bench/bench: $(BENCH_SRCS) bench/bench.h guest/bench/content.h $(LIB_OBJS) $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(LDFLAGS) -o $@ $(BENCH_SRCS) $(LIB_OBJS) $(LIBS)

# The tables, bench/results.json, and its pictures in docs/bench/ (gnuplot).
bench: all $(BUILD)/bench/bench
	sh scripts/bench.sh $(BUILD)
	python3 bench/plot.py docs/bench bench/results.json

# `snapbox serve` under wrk, per strategy (scripts/bench-serve.sh; SERVE_SECONDS
# per run, default 3): bench/serve-results.json, a table, and its pictures in
# docs/bench/ (gnuplot).
.PHONY: bench-serve
bench-serve: all
	SERVE_SECONDS=$(SERVE_SECONDS) sh scripts/bench-serve.sh $(BUILD)
	python3 bench/plot.py docs/bench bench/serve-results.json
SERVE_SECONDS ?= 3

# A directory as snapbox.pc writes it: under ${prefix} where it is.
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

# ---- installation: PREFIX (default /usr/local), DESTDIR, BINDIR, LIBDIR,
# INCLUDEDIR, MANDIR, PKGCONFIGDIR; `make uninstall` with the same values
# removes exactly what `make install` put there.
install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
	    $(DESTDIR)$(GUEST_SDKDIR) $(DESTDIR)$(INCLUDEDIR)/snapbox-guest
	$(INSTALL) -m 755 $(BUILD)/snapbox $(DESTDIR)$(BINDIR)/snapbox
	$(INSTALL) -m 644 $(BUILD)/libsnapbox.a $(DESTDIR)$(LIBDIR)/libsnapbox.a
	$(INSTALL) -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/$(notdir $(SHLIB))
	ln -sf $(notdir $(SHLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsnapbox.so
	$(INSTALL) -m 644 $(PUBLIC_HDRS) $(DESTDIR)$(INCLUDEDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pc_dir,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(call pc_dir,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION_STRING)|g' \
	    snapbox.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/snapbox.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/snapbox.pc
	$(INSTALL) -m 644 docs/man/snapbox.1 $(DESTDIR)$(MANDIR)/man1/snapbox.1
	$(INSTALL) -m 644 docs/man/libsnapbox.3 $(DESTDIR)$(MANDIR)/man3/libsnapbox.3
	$(INSTALL) -m 644 $(GUEST_LIB) $(GUEST_LIBC) guest/guest.ld $(DESTDIR)$(GUEST_SDKDIR)/
	$(INSTALL) -m 644 $(GUEST_SDK_HDRS) $(DESTDIR)$(INCLUDEDIR)/snapbox-guest/
	for pc in snapbox-guest snapbox-guest-libc; do \
	    sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pc_dir,$(LIBDIR))|g' \
	        -e 's|@INCLUDEDIR@|$(call pc_dir,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION_STRING)|g' \
	        -e 's|@MUSL_DIR@|$(MUSL_DIR)|g' -e 's|@CC_INCLUDE@|$(shell $(CC) -print-file-name=include)|g' \
	        $$pc.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/$$pc.pc && chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/$$pc.pc; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/snapbox
	rm -f $(DESTDIR)$(LIBDIR)/libsnapbox.a $(DESTDIR)$(LIBDIR)/$(notdir $(SHLIB)) \
	    $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libsnapbox.so
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(notdir $(PUBLIC_HDRS)))
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/snapbox.pc
	rm -f $(DESTDIR)$(MANDIR)/man1/snapbox.1 $(DESTDIR)$(MANDIR)/man3/libsnapbox.3
	rm -f $(addprefix $(DESTDIR)$(GUEST_SDKDIR)/,$(notdir $(GUEST_LIB) $(GUEST_LIBC)) guest.ld)
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/snapbox-guest/,$(notdir $(GUEST_SDK_HDRS)))
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/snapbox-guest.pc $(DESTDIR)$(PKGCONFIGDIR)/snapbox-guest-libc.pc
	-rmdir $(DESTDIR)$(GUEST_SDKDIR) $(DESTDIR)$(INCLUDEDIR)/snapbox-guest 2>/dev/null

clean:
	rm -rf $(BUILD)

# The header dependencies the compiler wrote (absent before the first build).
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
