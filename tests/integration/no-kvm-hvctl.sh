#!/bin/bash
# hvctl as the integration tests see it on a host without a usable /dev/kvm (run.sh puts
# it in HVCTL there; HV_REAL_HVCTL is the real one). The commands that create a VM fail at
# once with hv's line about /dev/kvm; a test that gets that line cannot run on this host, so
# it is marked ($T/needs-kvm) and its session (run.sh starts each test in one of its own) ends
# now, instead of waiting for a guest that never starts. The session, not the process group:
# a test may start hvctl under timeout(1), which takes a group of its own. run.sh counts it as skipped. Everything else is hvctl itself.
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
	pkill -TERM -s "$(ps -o sid= -p $$ | tr -d ' ')"
fi
rm -f "$err"
exit "$rc"
