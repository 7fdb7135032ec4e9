#!/bin/bash
# Page compression: zlib level 1 and zstd's fast levels on the kinds of memory a guest holds,
# in batches as the page codec compresses them (tests/bench/compress.c). This table chose the
# codec's zstd level (migrate/page_codec.c). Numbers, not assertions.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}

echo "## Page compression (tests/bench/compress, ${BENCH_COMPRESS_MIB:-64} MiB per mix)"
echo
"$BUILD/bench/compress" "${BENCH_COMPRESS_MIB:-64}"
