# Benchmark helpers.
$(BUILD)/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(CFLAGS) -o $@ $< $(LDLIBS)

all: $(BUILD)/bench/firstbyte
all: $(BUILD)/bench/tcpbw

# Fault-injection helpers for the migration tests (t_migrate_faults.sh, t_migrate_distance.sh):
# a relay that cuts, corrupts, stalls or delays a stream, and a generator of crafted streams.
$(BUILD)/tools/faultproxy: tests/tools/faultproxy.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(CFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/tools/wiregen: tests/tools/wiregen.c $(BUILD)/libhv.a
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libhv.a $(LDLIBS)

all: $(BUILD)/tools/faultproxy
all: $(BUILD)/tools/wiregen
