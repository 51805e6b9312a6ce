#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The house style of the C sources (.clang-format at the top) over every
# project .c/.h file.
#
#   scripts/format.sh           rewrites the files that differ (clang-format -i)
#   scripts/format.sh --check   changes nothing; fails listing every difference
#                               (the meson test style-clang-format)
#
# The style was fitted with Debian's clang-format 14; another major version
# may break a few lines differently.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
mode=(-i)
case ${1:-} in
--check) mode=(--dry-run -Werror) ;;
"") ;;
*) echo "usage: scripts/format.sh [--check]" >&2; exit 2 ;;
esac
if ! command -v clang-format >/dev/null; then
	# scripts/install-deps.sh installs it; a skip is a failure under CI.
	echo "clang-format is not installed (Debian: clang-format)" >&2
	[ "${CI:-}" = true ] && exit 1
	exit 77
fi
mapfile -t files < <(scripts/project-files.sh | grep -E '\.[ch]$')
[ ${#files[@]} -gt 0 ] || { echo "no C files found" >&2; exit 1; }
clang-format --style=file "${mode[@]}" "${files[@]}"
[ "${mode[0]}" = -i ] || echo "${#files[@]} C files follow .clang-format"
