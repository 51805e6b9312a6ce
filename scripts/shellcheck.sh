#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs shellcheck over every shell script of the project (the meson test
# style-shellcheck): files named *.sh, files whose first line is a sh/bash
# shebang, and the bash completion (docs/bash-completion/, checked as bash).
# Sourced files follow .shellcheckrc. A finding is fixed, or silenced with
# `# shellcheck disable=SCxxxx # why` on the line above when deliberate.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
if ! command -v shellcheck >/dev/null; then
	# scripts/install-deps.sh installs it; a skip is a failure under CI.
	echo "shellcheck is not installed (Debian: shellcheck)" >&2
	[ "${CI:-}" = true ] && exit 1
	exit 77
fi
scripts=() completions=()
while IFS= read -r f; do
	case $f in
	docs/bash-completion/*) completions+=("$f") ;;
	*.sh) scripts+=("$f") ;;
	*) head -n 1 "$f" 2>/dev/null | grep -Eq '^#!.*[/ ](ba)?sh( |$)' && scripts+=("$f") ;;
	esac
done < <(scripts/project-files.sh)
[ ${#scripts[@]} -gt 0 ] || { echo "no shell scripts found" >&2; exit 1; }
status=0
shellcheck -x "${scripts[@]}" || status=1
if [ ${#completions[@]} -gt 0 ]; then
	shellcheck -x -s bash "${completions[@]}" || status=1
fi
[ $status = 0 ] && echo "$((${#scripts[@]} + ${#completions[@]})) shell scripts pass shellcheck"
exit $status
