# hv-guest: the mini guest OS (guests/README.md). Included by the top-level Makefile.
# Outputs: $(BUILD)/guests/hv-guest.elf (PVH ELF) and $(BUILD)/guests/hv-guest.bzimage.

GUEST_OUT := $(BUILD)/guests
GUEST_OBJDIR := $(GUEST_OUT)/obj
GUEST_CC ?= gcc
GUEST_LD ?= ld
GUEST_OBJCOPY ?= objcopy
GUEST_NM ?= nm

GUEST_CFLAGS := -std=c11 -O2 -g -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
	-mno-red-zone -mgeneral-regs-only -mcmodel=small -fcf-protection=none \
	-fno-asynchronous-unwind-tables -fno-unwind-tables --param=min-pagesize=0 \
	-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Iguests/include -MMD -MP
GUEST_ASFLAGS := -fno-pic -fno-pie -Iguests/include -MMD -MP -Wa,--fatal-warnings
GUEST_LDFLAGS := -m elf_x86_64 -nostdlib -static -z max-page-size=0x1000 \
	--no-warn-rwx-segments --build-id=none -z noexecstack --fatal-warnings

GUEST_C_SRCS := $(wildcard guests/kernel/*.c guests/prog/*.c)
GUEST_S_SRCS := guests/boot/entry.S guests/boot/vectors.S guests/boot/tables.S \
	guests/boot/trampoline.S guests/boot/user.S
GUEST_OBJS := $(GUEST_S_SRCS:%.S=$(GUEST_OBJDIR)/%.o) $(GUEST_C_SRCS:%.c=$(GUEST_OBJDIR)/%.o)

.PHONY: guests
guests: $(GUEST_OUT)/hv-guest.elf $(GUEST_OUT)/hv-guest.bzimage

$(GUEST_OBJS): guests/guests.mk

$(GUEST_C_SRCS:%.c=$(GUEST_OBJDIR)/%.o): $(GUEST_OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_S_SRCS:%.S=$(GUEST_OBJDIR)/%.o): $(GUEST_OBJDIR)/%.o: %.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_ASFLAGS) -c $< -o $@

$(GUEST_OBJDIR)/hv-guest.ld: guests/hv-guest.ld.S guests/include/layout.h guests/guests.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) -E -P -x c -Iguests/include $< -o $@

$(GUEST_OUT)/hv-guest.elf: $(GUEST_OBJS) $(GUEST_OBJDIR)/hv-guest.ld
	$(GUEST_LD) $(GUEST_LDFLAGS) -T $(GUEST_OBJDIR)/hv-guest.ld -o $@ $(GUEST_OBJS)

# bzImage: the ELF's loadable bytes as a flat payload behind a setup header.
$(GUEST_OBJDIR)/hv-guest.bin: $(GUEST_OUT)/hv-guest.elf
	$(GUEST_OBJCOPY) -O binary $< $@

$(GUEST_OBJDIR)/bzsetup.o: guests/boot/bzsetup.S $(GUEST_OBJDIR)/hv-guest.bin guests/include/layout.h
	@mkdir -p $(dir $@)
	$(GUEST_CC) -fno-pic -fno-pie -Iguests/include -Wa,--fatal-warnings \
		-DPAYLOAD='"$(GUEST_OBJDIR)/hv-guest.bin"' \
		-DINIT_END=0x$$($(GUEST_NM) -P $(GUEST_OUT)/hv-guest.elf | awk '$$1 == "_end" { print $$3 }') \
		-c $< -o $@

$(GUEST_OUT)/hv-guest.bzimage: $(GUEST_OBJDIR)/bzsetup.o
	$(GUEST_LD) -m elf_x86_64 -Ttext=0 -e 0 --oformat=binary --build-id=none -o $@ $<
