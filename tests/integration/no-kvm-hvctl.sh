#!/bin/bash
# hvctl as the integration tests see it on a host without a usable /dev/kvm (run.sh puts
# it in HVCTL there; HV_REAL_HVCTL is the real one). The commands that create a VM fail at
# once with hv's line about /dev/kvm; a test that gets that line cannot run on this host, so
# it is marked ($T/needs-kvm) and its process group (the test) ends now, instead of waiting
# for a guest that never starts. run.sh counts it as skipped. Everything else is hvctl itself.
case ${1:-} in
run | restore | cpu-models) ;;
*) exec "$HV_REAL_HVCTL" "$@" ;;
esac
err=$(mktemp)
"$HV_REAL_HVCTL" "$@" 2>"$err"
rc=$?
cat "$err" >&2
if [ "$rc" -ne 0 ] && grep -q '/dev/kvm' "$err"; then
	rm -f "$err"
	: >"$T/needs-kvm"
	kill -TERM 0
fi
rm -f "$err"
exit "$rc"
