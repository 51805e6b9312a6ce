#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Coverage-guided fuzzing with libFuzzer: a benchmark, not a test (every
# build already replays the seeds with mutations: meson suite "fuzz").
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]        (all, 180 s per target)
#
# Installs clang and its libFuzzer runtime when missing (Debian: clang-14 +
# libclang-rt-14-dev, or clang-16 + libclang-rt-16-dev), builds with
# -Dfuzz=true (every project file instrumented, ASan+UBSan), then runs each
# target alone (one process, one job) with its seeds (tests/fuzz/corpus/T)
# and dictionary (tests/fuzz/dict/T.dict). The grown corpus, crash inputs
# and logs stay out of the tree, in $FUZZ_WORK (default
# ${XDG_CACHE_HOME:-~/.cache}/p11enroll-fuzz). Prints per target: executions,
# exec/s, coverage of the seeds and at the end, crashes. Exit status 1 when
# a crash, leak, timeout or out-of-memory input was found (kept under
# $FUZZ_WORK/artifacts/T/; add it to the seeds once fixed).
#
# Environment: FUZZ_WORK; CC (a clang); FUZZ_COVERAGE=1 adds libFuzzer's
# -print_coverage=1 report (covered/uncovered functions and lines) to the log.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
TARGETS=(subject key_uri config certinext sslstore sslstore_text chain journal tss2)
target=${1:-all}
seconds=${2:-180}
WORK=${FUZZ_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/p11enroll-fuzz}

case "$seconds" in
'' | *[!0-9]*) echo "usage: $0 [TARGET|all] [SECONDS]" >&2; exit 2 ;;
esac
if [ "$target" != all ]; then
	found=
	for t in "${TARGETS[@]}"; do [ "$t" = "$target" ] && found=1; done
	[ -n "$found" ] || { echo "unknown target '$target' (known: ${TARGETS[*]})" >&2; exit 2; }
	TARGETS=("$target")
fi

# A clang whose libFuzzer runtime is installed.
has_fuzzer() {
	echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' |
		"$1" -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null
}
find_clang() {
	local c
	for c in ${CC:-} clang clang-16 clang-14; do
		command -v "$c" >/dev/null 2>&1 && has_fuzzer "$c" && { echo "$c"; return 0; }
	done
	return 1
}
if ! CLANG=$(find_clang); then
	sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	for v in 14 16; do
		if apt-cache show "clang-$v" "libclang-rt-$v-dev" >/dev/null 2>&1; then
			echo "fuzz.sh: installing clang-$v and libclang-rt-$v-dev"
			$sudo apt-get install -y --no-install-recommends "clang-$v" "libclang-rt-$v-dev" >/dev/null
			break
		fi
	done
	CLANG=$(find_clang) || { echo "fuzz.sh: no clang with libFuzzer (clang-14/16 + libclang-rt-*-dev)" >&2; exit 1; }
fi

BUILD="$WORK/build"
mkdir -p "$WORK"
if [ ! -f "$BUILD/build.ninja" ]; then
	CC="$CLANG" meson setup "$BUILD" "$SRC" -Dfuzz=true >"$WORK/setup.log" 2>&1 ||
		{ cat "$WORK/setup.log" >&2; exit 1; }
fi
ninja -C "$BUILD" "${TARGETS[@]/#/tests/fuzz/libfuzzer-}" >"$WORK/build.log" 2>&1 ||
	{ tail -n 40 "$WORK/build.log" >&2; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRC/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

stat_of() { sed -n "s/^stat::$1: *//p" "$2" | tail -n1; }
cov_of() { grep -E "$1" "$2" | tail -n1 | sed -n 's/.* cov: \([0-9]*\) .*/\1/p'; }

printf '%-14s %10s %9s %9s %9s %9s %8s\n' target seconds executions exec/s "cov seeds" "cov end" crashes
bad=0
for t in "${TARGETS[@]}"; do
	corpus="$WORK/corpus/$t"
	artifacts="$WORK/artifacts/$t"
	log="$WORK/$t.log"
	mkdir -p "$corpus" "$artifacts"
	args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
		-artifact_prefix="$artifacts/")
	[ -f "$SRC/tests/fuzz/dict/$t.dict" ] && args+=(-dict="$SRC/tests/fuzz/dict/$t.dict")
	[ "${FUZZ_COVERAGE:-0}" = 1 ] && args+=(-print_coverage=1)
	touch "$artifacts/.start"
	# New inputs go to the first folder only: the seeds in the tree stay as they are.
	(cd "$WORK" && "$BUILD/tests/fuzz/libfuzzer-$t" "${args[@]}" "$corpus" "$SRC/tests/fuzz/corpus/$t") \
		>"$log" 2>&1 || true
	found=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
		-o -name 'oom-*' \) -newer "$artifacts/.start" | wc -l)
	[ "$found" = 0 ] || bad=1
	printf '%-14s %10s %9s %9s %9s %9s %8s\n' "$t" "$seconds" \
		"$(stat_of number_of_executed_units "$log")" "$(stat_of average_exec_per_sec "$log")" \
		"$(cov_of 'INITED' "$log")" "$(cov_of 'cov:' "$log")" "$found"
done
if [ "${FUZZ_COVERAGE:-0}" = 1 ]; then
	# Edges reached per source file, from the -print_coverage=1 report.
	for t in "${TARGETS[@]}"; do
		echo "== $t: edges reached per file (files the target reached)"
		awk -v root="${SRC#/}/" '
			/^(UN)?COVERED_FUNC:/ {
				split($5, e, "/"); file = $7; sub(/:[0-9]+$/, "", file)
				sub(/.*\.\.\//, "", file); sub(/^\//, "", file); sub("^" root, "", file)
				got[file] += e[1]; all[file] += e[2]
			}
			END { for (f in all) if (got[f] > 0)
				printf "  %-28s %5d/%-5d %5.1f%%\n", f, got[f], all[f], 100 * got[f] / all[f] }
		' "$WORK/$t.log" | sort
	done
fi
echo "logs, grown corpus and crash inputs: $WORK"
exit "$bad"
