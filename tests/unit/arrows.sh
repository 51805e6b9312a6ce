#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The arrows between rooms, mechanically: every #include of a header of
# another room must be an arrow of the table in docs/architecture.md ("The
# arrows"), every arrow there must be used by some #include, and no agent/
# file names a CA type (adding a CA touches only providers/).
# Usage: arrows.sh [SOURCE_DIR] (default: $P11E_SRCDIR).
set -u
src=${1:-${P11E_SRCDIR:?run through meson test or give the source folder}}
rooms=(agent keygen hsm providers common)
fail=0

complain() {
	echo "FAIL: $*" >&2
	fail=1
}

# Which room each header belongs to (headers are included by their names).
declare -A home
for r in "${rooms[@]}"; do
	for h in "$src/$r"/*.h; do
		[ -e "$h" ] || continue
		h=${h##*/}
		[ -z "${home[$h]:-}" ] || complain "$h is in both $r/ and ${home[$h]}/"
		home[$h]=$r
	done
done

# The arrows the code has, with one place that makes each.
declare -A used
for r in "${rooms[@]}"; do
	for f in "$src/$r"/*.[ch]; do
		[ -e "$f" ] || continue
		while IFS= read -r line; do
			h=${line#*\"}
			h=${h%%\"*}
			to=${home[${h##*/}]:-}
			if [ -z "$to" ] || [ "$to" = "$r" ]; then
				continue
			fi
			[ -n "${used[$r $to]:-}" ] || used[$r $to]="$r/${f##*/} includes $h"
		done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
	done
done

# The arrows the documentation shows: rows "| `FROM/` | `TO/` | why |".
declare -A shown
row='^\| *.([a-z]+)/. *\| *.([a-z]+)/. *\|'
while IFS= read -r line; do
	[[ $line =~ $row ]] && shown[${BASH_REMATCH[1]} ${BASH_REMATCH[2]}]=1
done < <(sed -n '/^## The arrows/,/^## /p' "$src/docs/architecture.md")
[ "${#shown[@]}" -gt 0 ] || complain "docs/architecture.md has no table of arrows under '## The arrows'"

for a in "${!used[@]}"; do
	[ -n "${shown[$a]:-}" ] ||
		complain "arrow ${a% *}/ -> ${a#* }/ is not in docs/architecture.md (${used[$a]}); document it or remove the #include"
	case $a in
	hsm\ agent | providers\ agent | keygen\ agent | common\ *)
		complain "${a% *}/ must not include ${a#* }/ (${used[$a]})" ;;
	esac
done
for a in "${!shown[@]}"; do
	[ -n "${used[$a]:-}" ] ||
		complain "docs/architecture.md shows ${a% *}/ -> ${a#* }/, but no #include makes that arrow"
done

# No CA type in agent/: what it needs of a CA comes from providers/provider.h.
types=$(sed -n -E 's/^[[:space:]]*\.type = "([^"]+)",.*/\1/p' "$src"/providers/*.c)
[ -n "$types" ] || complain "no provider types found in providers/*.c"
for t in $types; do
	if grep -n -- "\"$t\"" "$src"/agent/*.[ch] >&2; then
		complain "agent/ names the CA type \"$t\"; make it an entry of struct p11e_ca_ops"
	fi
done

[ "$fail" = 0 ] && echo "ok: ${#used[@]} arrows, all documented; agent/ names no CA type (${types//$'\n'/ })"
exit "$fail"
