#!/bin/sh
# The devices fuzz target, bounded (FUZZ_TIME, BUILD, CLANG as for run-target.sh).
exec "$(dirname "$0")/run-target.sh" devices
