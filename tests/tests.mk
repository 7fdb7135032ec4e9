# Benchmark helpers.
$(BUILD)/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(FORTIFY) $(CFLAGS) $(HARDEN_LDFLAGS) -o $@ $< $(LDLIBS)

all: $(BUILD)/bench/firstbyte
all: $(BUILD)/bench/tcpbw
all: $(BUILD)/bench/memfill
all: $(BUILD)/bench/compress

# Fault-injection helpers for the migration tests (t_migrate_faults.sh, t_migrate_distance.sh):
# a relay that cuts, corrupts, stalls or delays a stream, and a generator of crafted streams.
$(BUILD)/tools/faultproxy: tests/tools/faultproxy.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(FORTIFY) $(CFLAGS) $(HARDEN_LDFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/tools/wiregen: tests/tools/wiregen.c $(BUILD)/libhv.a
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(FORTIFY) $(CFLAGS) $(HARDEN_LDFLAGS) -o $@ $< $(BUILD)/libhv.a $(LDLIBS)

all: $(BUILD)/tools/faultproxy
all: $(BUILD)/tools/wiregen

# Device test helpers (t_blk.sh, t_net.sh): a host-side checker of the disk that the guest's
# prog=blkcheck wrote, and a UDP echo client / sink for prog=netecho and prog=netbench.
$(BUILD)/tools/blkverify: tests/tools/blkverify.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(FORTIFY) $(CFLAGS) $(HARDEN_LDFLAGS) -o $@ $<

$(BUILD)/tools/udpecho: tests/tools/udpecho.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(FORTIFY) $(CFLAGS) $(HARDEN_LDFLAGS) -o $@ $<

# What a user of a migrating guest feels (tools/lab.sh, t_lab.sh): UDP requests at a fixed
# rate and a TCP connection kept open, with the longest gaps.
$(BUILD)/tools/labclient: tests/tools/labclient.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(FORTIFY) $(CFLAGS) $(HARDEN_LDFLAGS) -o $@ $<

all: $(BUILD)/tools/blkverify
all: $(BUILD)/tools/udpecho
all: $(BUILD)/tools/labclient

# hvctl built with ASan + UBSan: t_migrate_faults.sh runs the receiver of hostile streams
# under it when it is there (it is built with the unit tests, i.e. by 'make check').
$(BUILD)/tools/hvctl-asan: $(TOOL_SRCS) $(BUILD)/libhv-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) -O1 -g $(SAN) $(HARDEN_LDFLAGS) -o $@ $(TOOL_SRCS) $(BUILD)/libhv-asan.a $(LDLIBS)

unit: $(BUILD)/tools/hvctl-asan

# Tiny PVH kernels for crash and reset tests (tests/guests/*.S).
$(BUILD)/tools/%.elf: tests/guests/%.S tests/guests/pvh_note.h tests/guests/tiny.ld
	@mkdir -p $(dir $@)
	$(CC) -nostdlib -static -no-pie -Wl,-T,tests/guests/tiny.ld -Wl,--build-id=none -Itests/guests -o $@ $<

all: $(BUILD)/tools/triplefault.elf $(BUILD)/tools/i8042reset.elf $(BUILD)/tools/exit126.elf
