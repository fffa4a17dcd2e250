# snapbox - one Makefile. `make` builds the CLI, the libraries and the guests;
# `make check` runs the test suite (KVM tests inside a QEMU VM when this
# machine has no /dev/kvm); `make demo` shows the main job.

CC        ?= gcc
# Quiet by default; `make V=1` shows every command.
V         ?= 0
Q         := $(if $(filter 1,$(V)),,@)
BUILD     ?= build
GEN       := $(BUILD)/gen
SAN       := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

WARN      := -std=c11 -Wall -Wextra -Werror
HOST_CFLAGS := $(WARN) -O2 -g -D_GNU_SOURCE -Iinclude -I$(GEN) -Isrc -fvisibility=hidden
LIBS      := -lelf -llz4 -lxxhash -lpthread -lrt

LIB_SRCS  := $(wildcard src/common/*.c src/loader/*.c src/vcpu/*.c src/snapshot/*.c)
CLI_SRCS  := $(wildcard src/cli/*.c)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
SAN_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/san/%.o)
TSAN      := -fsanitize=thread -fno-omit-frame-pointer
TSAN_OBJS := $(LIB_SRCS:%.c=$(BUILD)/tsan/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
HEADERS   := $(wildcard include/*.h src/*.h src/*/*.h) $(GEN)/sbx_version.h

# Guests: freestanding x86-64, linked by guest/guest.ld.
GUEST_CFLAGS := $(WARN) -O2 -ffreestanding -fno-pic -fno-pie -mno-red-zone \
                -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none \
                -Iinclude -Iguest/lib -I$(GEN)
GUEST_LDFLAGS := -nostdlib -static -no-pie -T guest/guest.ld -Wl,-z,max-page-size=4096 \
                 -Wl,--build-id=none -Wl,-z,noexecstack
GUEST_LIB   := $(BUILD)/guest-lib/guest.o $(BUILD)/guest-lib/entry.o $(BUILD)/guest-lib/note.o
GUESTS      := $(BUILD)/guests/demo.elf $(BUILD)/guests/hostile.elf $(BUILD)/guests/plain.elf \
               $(BUILD)/guests/bench.elf

TESTS_NATIVE := $(BUILD)/tests/test_loader $(BUILD)/tests/test_snapshot
TESTS_KVM    := $(BUILD)/tests/test_kvm $(BUILD)/tests/test_template $(BUILD)/tests/test_crash \
                $(BUILD)/tests/test_isolation
CRASH_SHIM   := $(BUILD)/tests/crashshim.so
DEPS_STAMP   := $(BUILD)/.deps-build

FUZZ_TARGETS := fuzz_elf fuzz_note fuzz_snap_header fuzz_snap_chunks fuzz_hypercall
FUZZ_REPLAY  := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/bin/%)
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/fuzzobj/%.o)
FUZZ_SEEDS   := $(BUILD)/fuzz/seeds/.stamp

.PHONY: all check check-valgrind demo bench fuzz fuzz-replay clean deps
.SECONDARY:
all: $(BUILD)/snapbox $(BUILD)/libsnapbox.a $(BUILD)/libsnapbox.so $(GUESTS)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(@D)
	sh scripts/deps.sh build
	@touch $@

# The one source of the version: VERSION, checked and turned into a header.
$(GEN)/sbx_version.h: VERSION scripts/gen-version.sh
	@mkdir -p $(@D)
	sh scripts/gen-version.sh VERSION > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: %.c $(HEADERS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) -fPIC -c $< -o $@

$(BUILD)/san/%.o: %.c $(HEADERS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(SAN) -c $< -o $@

$(BUILD)/tsan/%.o: %.c $(HEADERS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(TSAN) -c $< -o $@

$(BUILD)/libsnapbox.a: $(LIB_OBJS)
	@echo "  AR     $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libsnapbox.so: $(LIB_OBJS)
	@echo "  CC     $@"
	$(Q)$(CC) -shared -o $@ $^ $(LIBS)

$(BUILD)/snapbox: $(CLI_OBJS) $(BUILD)/libsnapbox.a
	@echo "  CC     $@"
	$(Q)$(CC) -o $@ $(CLI_OBJS) $(BUILD)/libsnapbox.a $(LIBS)

$(BUILD)/guest-lib/%.o: guest/lib/%.c $(HEADERS) guest/lib/sbx_guest.h | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(BUILD)/guest-lib/%.o: guest/lib/%.S $(HEADERS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(BUILD)/guests/%.o: guest/%.c $(HEADERS) guest/lib/sbx_guest.h | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(BUILD)/guests/demo.elf: $(BUILD)/guests/demo/demo.o $(GUEST_LIB) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB) $<

$(BUILD)/guests/hostile.elf: $(BUILD)/guests/hostile/hostile.o $(GUEST_LIB) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB) $<

$(BUILD)/guests/bench/bench.o: guest/bench/content.h
$(BUILD)/guests/bench.elf: $(BUILD)/guests/bench/bench.o $(GUEST_LIB) guest/guest.ld
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_LIB) $<

# A guest without the guest library and without a version note.
$(BUILD)/guests/plain.elf: guest/plain/plain.S $(HEADERS) guest/guest.ld | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $<

# Tests run against the library built with ASan and UBSan.
$(BUILD)/tests/%: tests/%.c tests/testutil.h $(SAN_OBJS) $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(SAN) -Itests -o $@ $< $(SAN_OBJS) $(LIBS) -lcmocka

# The concurrency suite (many threads restoring, calling and resetting from
# one template) again under ThreadSanitizer; any report fails it.
TEST_TSAN := $(BUILD)/tsan/tests/test_template
$(TEST_TSAN): tests/test_template.c tests/testutil.h $(TSAN_OBJS) $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(TSAN) -Itests -o $@ $< $(TSAN_OBJS) $(LIBS) -lcmocka

# Fault injection for the crash-safety test, preloaded into the plain CLI.
$(CRASH_SHIM): tests/crashshim.c
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(WARN) -O2 -shared -fPIC -o $@ $< -ldl

check: all $(TESTS_NATIVE) $(TESTS_KVM) $(TEST_TSAN) $(CRASH_SHIM) fuzz-replay
	@for t in $(TESTS_NATIVE); do echo "== $$t"; SBX_BUILD=$(BUILD) $$t || exit 1; done
	@for t in $(TESTS_KVM) $(TEST_TSAN); do echo "== $$t"; sh tests/run-kvm.sh $$t $(BUILD) || exit 1; done

# The CLI's paths under valgrind's memcheck: no error, no leak. KVM paths run
# natively or inside the KVM test VM.
check-valgrind: all $(FUZZ_SEEDS)
	sh scripts/deps.sh valgrind
	SEED_SNAPSHOT=$(BUILD)/fuzz/seeds/fuzz_snap_header/demo.elf-lz4.snap \
	    sh tests/valgrind-cli.sh $(BUILD)/snapbox $(BUILD)/guests $(BUILD)/valgrind-tmp
	sh tests/valgrind-kvm.sh $(BUILD)

demo: all
	sh scripts/demo.sh $(BUILD)

# ---- fuzzing: libFuzzer builds (clang) and gcc replay builds of each target ----
$(BUILD)/fuzz/seed: tests/fuzz/seed.c $(SAN_OBJS) $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(SAN) -o $@ $< $(SAN_OBJS) $(LIBS)

$(FUZZ_SEEDS): $(BUILD)/fuzz/seed $(GUESTS)
	rm -rf $(@D) && $(BUILD)/fuzz/seed $(BUILD)/guests $(@D) && touch $@

$(BUILD)/fuzz/replay_%: tests/fuzz/%.c tests/fuzz/replay.c tests/fuzz/snapfix.h $(SAN_OBJS) $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) $(SAN) -o $@ $< tests/fuzz/replay.c $(SAN_OBJS) $(LIBS)

# Every seed and every regression input, replayed under ASan and UBSan.
fuzz-replay: $(FUZZ_REPLAY) $(FUZZ_SEEDS)
	@for t in $(FUZZ_TARGETS); do mkdir -p tests/fuzz/regress/$$t; \
	    $(BUILD)/fuzz/replay_$$t $(BUILD)/fuzz/seeds/$$t tests/fuzz/regress/$$t || exit 1; done

$(BUILD)/.deps-fuzz: scripts/deps.sh
	@mkdir -p $(@D)
	sh scripts/deps.sh fuzz
	@touch $@

$(BUILD)/fuzzobj/%.o: %.c $(HEADERS) | $(BUILD)/.deps-fuzz $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CLANG  $@"
	$(Q)$(FUZZ_CC) $(HOST_CFLAGS) -O1 -fsanitize=fuzzer-no-link,address,undefined \
	    -fno-sanitize-recover=all -c $< -o $@

$(BUILD)/fuzz/bin/%: tests/fuzz/%.c tests/fuzz/snapfix.h $(FUZZ_OBJS)
	@mkdir -p $(@D)
	@echo "  CLANG  $@"
	$(Q)$(FUZZ_CC) $(HOST_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o $@ $< $(FUZZ_OBJS) $(LIBS)

# Each target for FUZZ_SECONDS (default 60), then its whole corpus replayed.
fuzz: $(FUZZ_BINS) $(FUZZ_REPLAY) $(FUZZ_SEEDS)
	sh tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Benchmarks run the optimised library, not the sanitized one.
BENCH_SRCS := $(wildcard bench/*.c)
$(BUILD)/bench/bench: $(BENCH_SRCS) bench/bench.h guest/bench/content.h $(LIB_OBJS) $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC     $@"
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $(BENCH_SRCS) $(LIB_OBJS) $(LIBS)

bench: all $(BUILD)/bench/bench
	sh scripts/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD)
