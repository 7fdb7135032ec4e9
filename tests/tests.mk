# Benchmark helpers.
$(BUILD)/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(HV_CFLAGS) $(CFLAGS) -o $@ $< $(LDLIBS)

all: $(BUILD)/bench/firstbyte
all: $(BUILD)/bench/tcpbw
