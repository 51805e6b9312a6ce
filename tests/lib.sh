# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Shared plumbing for the shell test suites: a private work folder, throw-away
# SoftHSM2 tokens, CA simulators on loopback, and assertions.
# A script sources this, defines case_NAME functions and ends with t_run "$@".

set -u
: "${P11ENROLL:?run through meson test}"
: "${P11E_SRCDIR:?run through meson test}"
PYTHON=/usr/bin/python3
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

T_PIDS=()
WORK=""

t_cleanup() {
	local pid
	for pid in "${T_PIDS[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	if [ -n "$WORK" ] && [ -z "${T_KEEP:-}" ]; then
		rm -rf "$WORK"
	fi
}

t_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# Skips (77) when something the test needs is missing, but fails under CI
# because there the scripts install everything.
t_skip() {
	if [ "${CI:-}" = "true" ]; then
		echo "FAIL (skips are failures under CI): $*" >&2
		exit 1
	fi
	echo "SKIP: $*" >&2
	exit 77
}

t_need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || t_skip "$c is not installed"
	done
}

t_setup() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/p11e-test.XXXXXX")
	trap t_cleanup EXIT
	cd "$WORK" || exit 1
}

# t_softhsm_token LABEL [PIN] — a new token in this test's own SoftHSM2 store.
# Leaves the PIN in $WORK/pin (mode 0600).
t_softhsm_token() {
	local label=$1 pin=${2:-1234}
	[ -e "$SOFTHSM_MODULE" ] || t_skip "SoftHSM2 ($SOFTHSM_MODULE) is not installed"
	t_need softhsm2-util
	if [ ! -f "$WORK/softhsm2.conf" ]; then
		mkdir -p "$WORK/tokens"
		printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
			"$WORK/tokens" >"$WORK/softhsm2.conf"
	fi
	export SOFTHSM2_CONF="$WORK/softhsm2.conf"
	softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin 5678 >/dev/null ||
		t_fail "cannot make SoftHSM2 token $label"
	(umask 077; printf '%s\n' "$pin" >"$WORK/pin")
}

# Lists the objects of a token, one "class label id" line each.
t_token_objects() {
	local label=$1
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$label" --login --pin "$(cat "$WORK/pin")" \
		--list-objects 2>/dev/null | awk '
		/Object;/ { cls=$1 }
		/label:/ { sub(/^[ \t]*label:[ \t]*/, ""); lbl=$0 }
		/ID:/ { print cls, lbl, $2 }'
}

# t_free_ports N — N loopback ports free at this moment, picked at random
# below the kernel's ephemeral range. Ports from bind(0) come from inside that
# range, where any outgoing connection of a test running beside this one can
# take them before our server binds (pebble once lost its port that way).
# A window remains between release and bind: callers that start a server on
# several ports retry when one answers "address already in use".
t_free_ports() {
	"$PYTHON" - "$1" <<'EOF'
import random, socket, sys
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    low = int(f.read().split()[0])
held = []
while len(held) < int(sys.argv[1]):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(10000, low)))
    except OSError:
        s.close()
        continue
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
EOF
}

# t_sim_start KIND NAME [ARGS…] — starts tests/sim/KIND_sim.py on loopback
# in $WORK/NAME and waits until it listens. Sets SIM_DIR, SIM_URL (from the
# sim's url file), SIM_ROOT (its root certificate: TLS trust and issuer).
t_sim_start() {
	local kind=$1 name=$2
	shift 2
	SIM_DIR="$WORK/$name"
	mkdir -p "$SIM_DIR"
	"$PYTHON" "$P11E_SRCDIR/tests/sim/${kind}_sim.py" --dir "$SIM_DIR" "$@" \
		>"$SIM_DIR/stdout.log" 2>"$SIM_DIR/stderr.log" &
	T_PIDS+=("$!")
	for _ in $(seq 1 300); do
		[ -f "$SIM_DIR/ready" ] && break
		kill -0 "$!" 2>/dev/null || { cat "$SIM_DIR/stderr.log" >&2; t_fail "$kind simulator died"; }
		sleep 0.05
	done
	[ -f "$SIM_DIR/ready" ] || t_fail "$kind simulator did not start"
	SIM_URL=$(cat "$SIM_DIR/url")
	SIM_ROOT="$SIM_DIR/ca/root.pem"
	SIM_BASE=${SIM_URL%/emSignHub-API}
}

# t_token_and_sim KIND PIN [SCENARIO-JSON] — the token "edge" and a CA
# simulator (tests/sim/KIND_sim.py) started with that scenario.
t_token_and_sim() {
	local kind=$1 pin=$2 scenario=${3:-}
	t_need openssl curl pkcs11-tool
	t_softhsm_token edge "$pin"
	if [ -n "$scenario" ]; then
		printf '%s\n' "$scenario" >"$WORK/scenario.json"
		t_sim_start "$kind" sim --scenario "$WORK/scenario.json"
	else
		t_sim_start "$kind" sim
	fi
}

# t_ca_section KIND — a [ca:sim] section for the simulator t_sim_start ran.
t_ca_section() {
	echo "[ca:sim]"
	if [ "$1" = certinext ]; then
		echo "type = certinext"
		echo "api_url = $SIM_URL"
		echo "account_number = 5550001234"
		echo "access_key_file = $SIM_DIR/access.key"
		echo "requestor_name = PKI Automation"
		echo "requestor_email = pki@example.com"
		echo "signer_place = Austin"
		echo "signer_ip = 93.184.216.34"
		echo "default_product = 842"
	else
		echo "type = sslstore"
		echo "api_url = $SIM_URL"
		echo "partner_code = 12345678"
		echo "auth_token_file = $SIM_DIR/auth.token"
		echo "default_product = positivessl"
		echo "approver_email = admin@example.com"
		echo "admin_email = pki@example.com"
		echo "validity = 365d"
		echo "renewal_window = 30d"
	fi
	echo "poll_interval = 1s"
	echo "ca_bundle = $SIM_ROOT"
	echo "timeout = 10s"
	echo "max_retries = 2"
	echo "max_retry_time = 10s"
	echo
}

# t_sim_scenario JSON — merged into the running simulator's scenario.
t_sim_scenario() {
	curl -s --cacert "$SIM_ROOT" -X POST -H 'Content-Type: application/json' \
		-d "$1" "$SIM_BASE/_sim/scenario" >/dev/null || t_fail "cannot set the scenario"
}

# t_journal PY-EXPR [NAME] — EXPR over the journal of [cert:NAME] (web), bound to `j`.
t_journal() {
	"$PYTHON" -c "import json; j=json.load(open('$WORK/state/${2:-web}.json')); print($1)"
}

# t_sim_stat PY-EXPR — EXPR over the simulator's /_sim/stats, bound to `s`.
t_sim_stat() {
	curl -s --cacert "$SIM_ROOT" "$SIM_BASE/_sim/stats" |
		"$PYTHON" -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

# t_expect CODE CMD… — runs CMD, keeps stdout/stderr in $WORK/out and
# $WORK/err, and fails unless it exits with CODE.
t_expect() {
	local want=$1 got
	shift
	"$@" >"$WORK/out" 2>"$WORK/err"
	got=$?
	if [ "$got" != "$want" ]; then
		echo "--- stdout"; cat "$WORK/out"; echo "--- stderr"; cat "$WORK/err"
		t_fail "'$*' exited $got, expected $want"
	fi
}

# t_contains FILE TEXT — fixed-string match.
t_contains() {
	grep -qF -- "$2" "$1" || { echo "--- $1"; cat "$1"; t_fail "$1 does not say '$2'"; }
}

t_not_contains() {
	if grep -qF -- "$2" "$1"; then echo "--- $1"; cat "$1"; t_fail "$1 says '$2'"; fi
}

t_run() {
	local name=${1:?case name}
	declare -F "case_$name" >/dev/null || t_fail "no case $name"
	t_setup
	"case_$name"
	echo "ok: $name"
}
