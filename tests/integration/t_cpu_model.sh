# CPU models (EVC-like baselines): what the guest sees, what KVM holds (KVM_GET_CPUID2, in
# hvctl status --json), and the migration check against a destination's ceiling. On PVM
# (shared/PLATFORM.md) the platform rewrites leaves 1 and 7 and CPUID at CPL3 is not
# intercepted, so the mask shows in leaf 0x80000001 (lahf_lm) in the guest and in KVM's
# table, and fully in what hv set (cpu_features_set). Ports 478xx.

# cm_json_field NAME KEY: a string field of hvctl status NAME --json.
cm_json_field() {
	"$HVCTL" status "$1" --json | grep -Eo "\"$2\": *\"[^\"]*\"" | sed -E 's/.*: *"(.*)"/\1/'
}

# cm_has LIST WORD: WORD is one of the space-separated names in LIST.
cm_has() { [[ " $1 " == *" $2 "* ]]; }

test_cpu_models_listed() {
	"$HVCTL" cpu-models >"$T/models" || fail "hvctl cpu-models failed"
	cat "$T/models"
	for m in host x86-64-v1 x86-64-v2 x86-64-v3 x86-64-v4; do
		grep -Eq "^$m +(yes|no) " "$T/models" || fail "cpu-models does not list $m"
	done
	grep -Eq '^host +yes' "$T/models" || fail "host is not offered"
	grep -Eq '^x86-64-v1 +yes' "$T/models" || fail "x86-64-v1 is not offered on an x86-64 host"
	awk 'length > 79 { exit 1 }' "$T/models" || echo "(note: lines longer than 79 columns)"
	expect_error "--cpu-model 'x86-64-v9' is not a CPU model; use host, x86-64-v1" \
		"$HVCTL" run --kernel "$GUEST" --cpu-model x86-64-v9
}

# A baseline guest: hv's table has only the level's features; KVM's (and the guest's CPL0
# CPUID) lacks what the platform lets hv mask; the host model keeps them.
test_cpu_model_baseline_masks_cpuid() {
	local set kvm host_kvm
	start_vm base --kernel "$GUEST" --mem 64M --cpu-model x86-64-v1 --cmdline "prog=cpuid secs=60"
	start_vm full --kernel "$GUEST" --mem 64M --cmdline "prog=cpuid secs=60"
	wait_for "$T/base.console" '^cpuid: cpl0 features:' 10
	wait_for "$T/full.console" '^cpuid: cpl0 features:' 10
	[ "$(cm_json_field base cpu_model)" = x86-64-v1 ] || fail "status does not say x86-64-v1"
	[ "$(cm_json_field full cpu_model)" = host ] || fail "status does not say host"
	"$HVCTL" status base | grep -q '^cpu: *x86-64-v1' || fail "hvctl status has no cpu line"
	set=$(cm_json_field base cpu_features_set)
	kvm=$(cm_json_field base cpu_features)
	host_kvm=$(cm_json_field full cpu_features)
	echo "set:  $set"
	echo "kvm:  $kvm"
	for f in fpu cx8 cmov sse sse2 lm syscall; do cm_has "$set" "$f" || fail "x86-64-v1 lacks $f"; done
	for f in pni ssse3 sse4_1 sse4_2 popcnt avx avx2 avx512f lahf_lm; do
		cm_has "$set" "$f" && fail "x86-64-v1 was given $f"
	done
	if cm_has "$host_kvm" lahf_lm; then
		cm_has "$kvm" lahf_lm && fail "KVM_GET_CPUID2 shows lahf_lm on an x86-64-v1 vCPU"
		grep '^cpuid: cpl0 features:' "$T/base.console" | grep -qw lahf_lm &&
			fail "the guest's CPUID at CPL0 shows lahf_lm under x86-64-v1"
		grep '^cpuid: cpl0 features:' "$T/full.console" | grep -qw lahf_lm ||
			fail "the host model's guest does not see lahf_lm"
	else
		echo "(this host has no lahf_lm: nothing the platform lets hv mask to look at)"
	fi
}

# A baseline guest moves to a destination whose ceiling is that baseline; a host-model guest
# is refused there before any page moves, with the features named, and keeps running.
test_cpu_model_migration_against_a_ceiling() {
	local port before after
	mkdir -p "$T/run-a"
	HV_RUN_DIR=$T/run-a start_vm base --kernel "$GUEST" --mem 64M --cpu-model x86-64-v1 \
		--cmdline "prog=cpuid secs=8"
	HV_RUN_DIR=$T/run-a start_vm full --kernel "$GUEST" --mem 64M --cmdline "prog=cpuid secs=60"
	wait_for "$T/base.console" '^READY' 10
	wait_for "$T/full.console" '^READY' 10
	port=$(mig_unused_port 47801)
	mig_receiver full "127.0.0.1:$port" "$T/full-dst.console" --cpu-model x86-64-v1
	expect_error "destination CPU lacks [a-z0-9_, ]+; start the VM with --cpu-model x86-64-v1 or lower" \
		env HV_RUN_DIR="$T/run-a" "$HVCTL" migrate full "127.0.0.1:$port"
	cat "$T/err"
	HV_RUN_DIR=$T/run-a "$HVCTL" status full | grep -q '^state: *running' || fail "the refused VM stopped"
	port=$(mig_unused_port $((port + 1)))
	mig_receiver base "127.0.0.1:$port" "$T/base-dst.console" --cpu-model x86-64-v1
	HV_RUN_DIR=$T/run-a mig_migrate base "127.0.0.1:$port"
	[ "$(cm_json_field base cpu_model)" = x86-64-v1 ] || fail "the destination VM's model is not x86-64-v1"
	wait_for "$T/base-dst.console" '^cpuid: after.* lm$' 20
	before=$(grep -a '^cpuid: cpl0 features:.* lm$' "$T/base.console" | sed 's/^cpuid: cpl0 features: //')
	after=$(grep -a '^cpuid: after.* lm$' "$T/base-dst.console" | sed -E 's/^cpuid: after[^:]*: //')
	echo "before: $before"
	echo "after:  $after"
	[ "$before" = "$after" ] || fail "the guest's CPUID changed across the migration"
}
