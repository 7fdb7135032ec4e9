# hv: one entry point. `make` builds build/hvctl and build/guests/*.elf.
# BUILD can be overridden so that several trees of outputs can coexist.
BUILD ?= build
CC ?= gcc

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter -Wformat=2 -Wvla
CFLAGS ?= -O2 -g
# Hardening for everything built for the host (not the freestanding guest, guests/guests.mk):
# stack canaries and stack-clash probes everywhere, position-independent code, and a link that
# resolves every symbol at start-up and then makes the GOT read-only (full RELRO). FORTIFY
# only where the build optimises and has no sanitizer (ASan replaces the same functions).
HARDEN_CFLAGS := -fstack-protector-strong -fstack-clash-protection -fPIE
FORTIFY := -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2
HARDEN_LDFLAGS := -pie -Wl,-z,relro,-z,now
HV_CFLAGS := -std=c11 -D_GNU_SOURCE -I. $(WARN) $(HARDEN_CFLAGS) -pthread -MMD -MP
LDLIBS := -pthread -luuid -lz -lzstd -ljson-c -lxxhash -lseccomp -lssl -lcrypto -lm
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRCS := $(wildcard hv/*.c devices/*.c migrate/*.c)
TOOL_SRCS := $(wildcard tools/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/obj/%.o)
ASAN_LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/asan/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
ASAN_UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests-asan/%)

.PHONY: all check unit bench demo install clean guests tools deps fuzz
all: $(BUILD)/hvctl guests

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(FORTIFY) $(CFLAGS) -c $< -o $@

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) -O1 -g $(SAN) -c $< -o $@

$(BUILD)/libhv.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libhv-asan.a: $(ASAN_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/hvctl: $(TOOL_OBJS) $(BUILD)/libhv.a
	$(CC) $(CFLAGS) $(HARDEN_LDFLAGS) -o $@ $(TOOL_OBJS) $(BUILD)/libhv.a $(LDLIBS)

# A unit test links libhv and any object it lists as a prerequisite below (pure parts of
# the command line, which is not in libhv).
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libhv.a
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(FORTIFY) $(CFLAGS) $(HARDEN_LDFLAGS) -o $@ $< $(filter %.o,$^) $(BUILD)/libhv.a $(LDLIBS) -lcmocka

$(BUILD)/tests-asan/%: tests/unit/%.c $(BUILD)/libhv-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) -O1 -g $(SAN) $(HARDEN_LDFLAGS) -o $@ $< $(filter %.o,$^) $(BUILD)/libhv-asan.a $(LDLIBS) -lcmocka

$(BUILD)/tests/test_migrate_bar: $(BUILD)/obj/tools/migrate_bar.o
$(BUILD)/tests-asan/test_migrate_bar: $(BUILD)/asan/tools/migrate_bar.o
$(BUILD)/tests/test_migrate_report: $(BUILD)/obj/tools/migrate_report.o $(BUILD)/obj/tools/migrate_event.o $(BUILD)/obj/tools/migrate_bar.o
$(BUILD)/tests-asan/test_migrate_report: $(BUILD)/asan/tools/migrate_report.o $(BUILD)/asan/tools/migrate_event.o $(BUILD)/asan/tools/migrate_bar.o
$(BUILD)/tests/test_migrate_explain: $(BUILD)/obj/tools/migrate_explain.o $(BUILD)/obj/tools/migrate_event.o
$(BUILD)/tests-asan/test_migrate_explain: $(BUILD)/asan/tools/migrate_explain.o $(BUILD)/asan/tools/migrate_event.o

$(BUILD)/tests/test_agent_policy: $(BUILD)/obj/tools/agent_policy.o
$(BUILD)/tests-asan/test_agent_policy: $(BUILD)/asan/tools/agent_policy.o
$(BUILD)/tests/test_agent_state: $(BUILD)/obj/tools/agent_state.o
$(BUILD)/tests-asan/test_agent_state: $(BUILD)/asan/tools/agent_state.o
$(BUILD)/tests/test_placement: $(BUILD)/obj/tools/placement.o
$(BUILD)/tests-asan/test_placement: $(BUILD)/asan/tools/placement.o

unit: $(UNIT_BINS) $(ASAN_UNIT_BINS)

include guests/guests.mk
-include tests/tests.mk

# check, bench and demo install what they need first (Debian packages), so each is one
# command on a fresh machine.
deps:
	tools/install-deps.sh

# Unit tests (plain and ASan+UBSan), the fuzzer, then integration tests under real KVM.
check: deps
	$(MAKE) all unit
	BUILD=$(BUILD) tests/run-all.sh

# Every fuzz target for a long run (FUZZ_EXECS executions each, default 10 million; one
# fuzzing process at a time; FUZZ_TARGETS="net ..." for only some), then a table:
# executions, seconds, coverage, crashes.
fuzz: deps
	BUILD=$(BUILD) tests/fuzz/run-long.sh $(FUZZ_TARGETS)

bench: deps
	tools/install-deps.sh --bench
	$(MAKE) all
	BUILD=$(BUILD) tests/bench/run-bench.sh

demo: deps
	$(MAKE) all
	BUILD=$(BUILD) tools/demo.sh

PREFIX ?= /usr/local
install: all
	install -D -m 0755 $(BUILD)/hvctl $(DESTDIR)$(PREFIX)/bin/hvctl
	install -d $(DESTDIR)$(PREFIX)/share/hv/guests
	install -m 0644 $(BUILD)/guests/*.elf $(DESTDIR)$(PREFIX)/share/hv/guests/
	install -D -m 0644 docs/man/hvctl-serve.8 $(DESTDIR)$(PREFIX)/share/man/man8/hvctl-serve.8
	install -D -m 0644 tools/systemd/hv-agent.service $(DESTDIR)$(PREFIX)/lib/systemd/system/hv-agent.service

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
