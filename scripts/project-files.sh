#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Lists the project's own files, one per line, relative to the top of the
# tree: the files git knows plus new ones not yet added (without what
# .gitignore leaves out, so no build directory); outside a git checkout,
# every file except .git and meson build directories. Used by
# scripts/format.sh and scripts/shellcheck.sh, so a file added later is
# checked without touching them.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Deleted but not yet committed files are still in the index: skip them.
	git ls-files --cached --others --exclude-standard | while IFS= read -r f; do
		[ -f "$f" ] && printf '%s\n' "$f"
	done
else
	find . \( -name .git -o -exec test -d '{}/meson-private' \; \) -prune -o -type f -print |
		sed 's,^\./,,'
fi
