# Built by the guest OS work: build/guests/*.elf
guests:
