#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Many certificates in one run: enroll --all with worker processes, the
# summary and exit status, parallel 1 vs N, the per-account order rate.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=246810

# conf FILE STATE PARALLEL PREFIX [ORDER_RATE] — [agent], [ca:sim] and
# certificates for every "NAME:KIND" in $CERTS (KIND: ok, bad-token).
conf() {
	local file=$1 state=$2 parallel=$3 prefix=$4 rate=${5:-} c name kind
	{
		echo "[agent]"
		echo "state_dir = $state"
		echo "wait = 3s"
		echo "parallel = $parallel"
		[ -n "${AGENT_EXTRA:-}" ] && echo "$AGENT_EXTRA"
		echo
		t_ca_section certinext
		[ -n "$rate" ] && echo "order_rate = $rate"
		echo
		for c in $CERTS; do
			name=${c%%:*}
			kind=${c#*:}
			echo "[cert:$name]"
			echo "ca = sim"
			if [ "$kind" = bad-token ]; then
				echo "key = pkcs11:token=absent;object=$prefix-$name?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
			else
				echo "key = pkcs11:token=edge;object=$prefix-$name?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
			fi
			echo "key_type = ec-p256"
			echo "subject = CN=$name.example.com"
			echo "dns = $name.example.com"
			echo "cert_file = $state/tls/$name.pem"
			echo
		done
	} >"$file"
}

state_of() { "$PYTHON" -c "import json; print(json.load(open('$1/$2.json'))['state'])"; }

MIX_SCENARIO='{"domain_overrides": {
	"pend.example.com": {"pending_polls": 1000},
	"refused.example.com": {"reject": {"code": "EMS-100", "message": "Invalid CSR"}},
	"lra.example.com": {"fail_status_id": "18"}}}'
MIX="ok1:ok ok2:ok ok3:ok pend:ok refused:ok lra:ok tok:bad-token ok4:ok"

case_enroll_all_mix() {
	t_token_and_sim certinext "$PIN" "$MIX_SCENARIO"
	CERTS=$MIX
	conf "$WORK/p.conf" "$WORK/state" 8 a
	t_expect 5 "$P11ENROLL" -c "$WORK/p.conf" enroll --all
	t_contains "$WORK/err" "enroll --all: 4 issued, 1 pending, 2 refused, 1 failed (0 already installed)"
	for n in ok1 ok2 ok3 ok4; do
		[ "$(state_of "$WORK/state" $n)" = monitoring ] || t_fail "$n is not installed"
		[ -s "$WORK/state/tls/$n.pem" ] || t_fail "$n has no certificate file"
	done
	[ "$(state_of "$WORK/state" pend)" = order-pending ] || t_fail "pend is not pending"
	[ "$(state_of "$WORK/state" refused)" = rejected ] || t_fail "refused is not rejected"
	[ "$(state_of "$WORK/state" lra)" = rejected ] || t_fail "lra is not rejected"
	t_contains "$WORK/err" "EMS-100"
	t_contains "$WORK/err" "error: [cert:tok] no token matches"
	[ "$(t_sim_stat "s['orders_placed']")" = 6 ] || t_fail "expected 6 orders, got $(t_sim_stat "s['orders_placed']")"
	# A second run: the installed ones are left alone, the pending one is
	# followed (no new order), the one refused at placement is tried again
	# with its key (refused again: no order), and the one whose order failed
	# at the CA gets a new key and exactly one new order (docs/orders.md).
	t_expect 5 "$P11ENROLL" -c "$WORK/p.conf" enroll --all
	t_contains "$WORK/err" "(4 already installed)"
	[ "$(t_sim_stat "s['orders_placed']")" = 7 ] ||
		t_fail "expected one new order (lra) in the second run, got $(t_sim_stat "s['orders_placed']") in all"
	# Without the failing ones: pending decides the exit status.
	CERTS="ok1:ok ok2:ok pend:ok"
	conf "$WORK/p2.conf" "$WORK/state" 8 a
	t_expect 3 "$P11ENROLL" -c "$WORK/p2.conf" enroll --all
	t_contains "$WORK/err" "0 issued, 1 pending, 0 refused, 0 failed (2 already installed)"
}

case_parallel_1_vs_8() {
	local p outcome1 outcome8
	t_token_and_sim certinext "$PIN" "$MIX_SCENARIO"
	CERTS=$MIX
	for p in 1 8; do
		conf "$WORK/p$p.conf" "$WORK/state$p" $p p$p
		"$P11ENROLL" -c "$WORK/p$p.conf" enroll --all >"$WORK/out$p" 2>"$WORK/err$p"
		echo "exit $?" >"$WORK/outcome$p"
		for c in $CERTS; do
			echo "${c%%:*} $(state_of "$WORK/state$p" "${c%%:*}" 2>/dev/null || echo none)" >>"$WORK/outcome$p"
		done
		grep -o 'enroll --all: .*' "$WORK/err$p" >>"$WORK/outcome$p"
	done
	outcome1=$(cat "$WORK/outcome1")
	outcome8=$(cat "$WORK/outcome8")
	[ "$outcome1" = "$outcome8" ] || { diff "$WORK/outcome1" "$WORK/outcome8"; t_fail "parallel 1 and 8 differ"; }
	t_contains "$WORK/outcome8" "ok4 monitoring"
	t_contains "$WORK/outcome8" "exit 5"
	# parallel 1 keeps the configuration's order
	grep -o '\[cert:[a-z0-9]*\] generated' "$WORK/err1" | sed 's/\[cert:\(.*\)\] generated/\1/' | tr '\n' ' ' >"$WORK/order1"
	[ "$(cat "$WORK/order1")" = "ok1 ok2 ok3 pend refused lra ok4 " ] || t_fail "order with parallel 1: $(cat "$WORK/order1")"
}

# The client-side limit keeps a burst under the CA's: all issued, one
# order each, no rate-limit answer.
case_order_rate_burst() {
	local i
	t_token_and_sim certinext "$PIN" '{"rate_limit_burst": 5, "rate_limit_window_s": 3}'
	CERTS=""
	for i in $(seq 1 16); do CERTS="$CERTS c$i:ok"; done
	conf "$WORK/p.conf" "$WORK/state" 8 r 4/3s
	t_expect 0 "$P11ENROLL" -c "$WORK/p.conf" enroll --all --wait 20s
	t_contains "$WORK/err" "enroll --all: 16 issued, 0 pending, 0 refused, 0 failed"
	[ "$(t_sim_stat "s['orders_placed']")" = 16 ] || t_fail "expected 16 orders"
	[ "$(t_sim_stat "s['rate_limited']")" = 0 ] || t_fail "the CA rate-limited $(t_sim_stat "s['rate_limited']") calls"
	t_contains "$WORK/err" "the next placement waits"
}

# The CA's rate-limit answer ("Inactive Account User.", no code) is
# waited out, inside the provider and, once it gives up, by placing again
# later: never a refusal, never a second order.
case_rate_limit_answers() {
	local i
	t_token_and_sim certinext "$PIN" '{"reject": {"code": "", "message": "Inactive Account User.", "count": 7}}'
	CERTS=""
	for i in $(seq 1 3); do CERTS="$CERTS c$i:ok"; done
	conf "$WORK/p.conf" "$WORK/state" 8 n
	t_expect 0 "$P11ENROLL" -c "$WORK/p.conf" enroll --all --wait 15s
	t_contains "$WORK/err" "enroll --all: 3 issued, 0 pending, 0 refused, 0 failed"
	t_contains "$WORK/err" "placing it again in"
	[ "$(t_sim_stat "s['orders_placed']")" = 3 ] || t_fail "expected 3 orders, got $(t_sim_stat "s['orders_placed']")"
	[ "$(t_sim_stat "s['calls']['GenerateOrderSSL']")" = 10 ] || t_fail "expected 10 placements, got $(t_sim_stat "s['calls']")"
}

# sslconf FILE STATE [ORDER_RATE] — The SSL Store and $CERTS (all ok).
sslconf() {
	local c
	{
		echo "[agent]"
		echo "state_dir = $2"
		echo "wait = 30s"
		echo
		t_ca_section sslstore
		[ -n "${3:-}" ] && echo "order_rate = $3"
		echo
		for c in $CERTS; do
			echo "[cert:${c%%:*}]"
			echo "ca = sim"
			echo "key = pkcs11:token=edge;object=${c%%:*}?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
			echo "key_type = ec-p256"
			echo "subject = CN=${c%%:*}.example.com"
			echo "dns = ${c%%:*}.example.com"
			echo "cert_file = $2/tls/${c%%:*}.pem"
			echo
		done
	} >"$1"
}

# The SSL Store's 429 with Retry-After: waited out, one order each.
case_sslstore_429() {
	local i
	t_token_and_sim sslstore "$PIN" '{"neworder_burst": {"burst": 2, "window_s": 2, "retry_after": 2}}'
	CERTS=""
	for i in $(seq 1 5); do CERTS="$CERTS t$i:ok"; done
	sslconf "$WORK/p.conf" "$WORK/state"
	t_expect 0 "$P11ENROLL" -c "$WORK/p.conf" enroll --all
	t_contains "$WORK/err" "enroll --all: 5 issued, 0 pending, 0 refused, 0 failed"
	[ "$(t_sim_stat "s['orders_placed']")" = 5 ] || t_fail "expected 5 orders, got $(t_sim_stat "s['orders_placed']")"
	[ "$(t_sim_stat "s['rate_limited']")" -gt 0 ] || t_fail "the test never met the CA's limit"
	# the same with order_rate: no 429 at all
	CERTS=""
	for i in $(seq 6 10); do CERTS="$CERTS t$i:ok"; done
	# (a second of slack in the limit: slow builds stretch a request's way)
	sslconf "$WORK/q.conf" "$WORK/state2" 2/3s
	sleep 2.5 # the first run's orders leave the CA's window
	before=$(t_sim_stat "s['rate_limited']")
	t_expect 0 "$P11ENROLL" -c "$WORK/q.conf" enroll --all
	t_contains "$WORK/err" "enroll --all: 5 issued, 0 pending, 0 refused, 0 failed"
	[ "$(t_sim_stat "s['rate_limited']")" = "$before" ] || t_fail "429 answers despite order_rate"
	[ "$(t_sim_stat "s['orders_placed']")" = 10 ] || t_fail "expected 10 orders"
}

# The agent's round runs what is due in worker processes: four new
# certificates installed in one round, one order each; SIGTERM ends it.
case_agent_parallel() {
	local pid n
	# (one pending poll: every order is still open when the last key is made)
	t_token_and_sim certinext "$PIN" '{"pending_polls": 1}'
	CERTS="g1:ok g2:ok g3:ok g4:ok"
	conf "$WORK/p.conf" "$WORK/state" 8 g
	"$P11ENROLL" -c "$WORK/p.conf" agent --interval-min 1s >"$WORK/out" 2>"$WORK/err" &
	pid=$!
	T_PIDS+=("$pid")
	for _ in $(seq 1 300); do
		n=0
		for c in g1 g2 g3 g4; do
			[ -f "$WORK/state/$c.json" ] && [ "$(state_of "$WORK/state" $c)" = monitoring ] && n=$((n + 1))
		done
		[ "$n" = 4 ] && break
		sleep 0.1
	done
	[ "$n" = 4 ] || { cat "$WORK/err"; t_fail "the agent installed $n of 4"; }
	kill -TERM "$pid"
	wait "$pid" || t_fail "agent exit $?"
	[ "$(t_sim_stat "s['orders_placed']")" = 4 ] || t_fail "expected 4 orders"
	# all four started before any was installed: they ran side by side
	"$PYTHON" - "$WORK/err" <<'PY' || t_fail "the certificates ran one after the other"
import sys
lines = open(sys.argv[1]).read().splitlines()
first_install = min(i for i, l in enumerate(lines) if "installed certificate" in l)
started = {l.split("]")[0] for l in lines[:first_install] if "generated a" in l}
assert len(started) == 4, started
PY
	pgrep -f "$WORK/p.conf" >/dev/null && t_fail "a worker outlived the agent"
	true
}

case_config_checks() {
	t_token_and_sim certinext "$PIN"
	CERTS="a:ok"
	conf "$WORK/p.conf" "$WORK/state" 0 x
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" enroll --all
	t_contains "$WORK/err" "p.conf:4"
	t_contains "$WORK/err" "parallel"
	conf "$WORK/p.conf" "$WORK/state" 2 x 16/0s
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" enroll --all
	t_contains "$WORK/err" "order_rate"
	conf "$WORK/p.conf" "$WORK/state" 2 x 16
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" enroll --all
	t_contains "$WORK/err" "15/10s"
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" enroll a --all
}

# SIGTERM reaches the workers: every process ends, pending orders stay
# pending in their journals.
case_stop_workers() {
	local pid
	t_token_and_sim certinext "$PIN" '{"pending_polls": 1000}'
	CERTS="s1:ok s2:ok s3:ok"
	conf "$WORK/p.conf" "$WORK/state" 8 s
	"$P11ENROLL" -c "$WORK/p.conf" enroll --all --wait 600s >"$WORK/out" 2>"$WORK/err" &
	pid=$!
	for _ in $(seq 1 200); do
		[ "$(grep -c 'order placed' "$WORK/err")" = 3 ] && break
		sleep 0.1
	done
	[ "$(grep -c 'order placed' "$WORK/err")" = 3 ] || t_fail "the orders were not placed"
	kill -TERM "$pid"
	for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && t_fail "enroll --all still runs 4 s after SIGTERM"
	wait "$pid"
	pgrep -f "$WORK/p.conf" >/dev/null && t_fail "a worker outlived the stop"
	for n in s1 s2 s3; do
		[ "$(state_of "$WORK/state" $n)" = order-pending ] || t_fail "$n is not pending"
	done
}

# Renewals of certificates issued together spread over the first third of
# the window, at a point fixed per host and certificate.
case_renew_spread() {
	local i
	t_token_and_sim certinext "$PIN"
	CERTS=""
	for i in $(seq 1 40); do CERTS="$CERTS s$i:ok"; done
	conf "$WORK/p.conf" "$WORK/state" 8 x
	mkdir -p "$WORK/state"; chmod 700 "$WORK/state"
	"$PYTHON" - "$WORK/state" <<'PY'
import json, sys, time
na = int(time.time()) + 60 * 86400
for i in range(1, 41):
    json.dump({"version": 1, "name": f"s{i}", "state": "monitoring",
               "cert": {"chain": "x", "serial": "01", "not_after": na}},
              open(f"{sys.argv[1]}/s{i}.json", "w"))
PY
	"$P11ENROLL" -c "$WORK/p.conf" status --json >"$WORK/a.json" 2>/dev/null
	"$P11ENROLL" -c "$WORK/p.conf" status --json >"$WORK/b.json" 2>/dev/null
	"$PYTHON" - "$WORK/a.json" "$WORK/b.json" <<'PY' || t_fail "renewals are not spread"
import json, sys
a = json.load(open(sys.argv[1]))["certificates"]
b = json.load(open(sys.argv[2]))["certificates"]
due = [c["next_action_at"] for c in a]
assert due == [c["next_action_at"] for c in b], "not fixed between runs"
for c in a:
    assert c["not_after"] - 40 * 86400 <= c["next_action_at"] <= c["not_after"] - 30 * 86400, c
span = max(due) - min(due)
assert span > 5 * 86400, f"spread over only {span} s"
assert len(set(due)) > 35, "too many alike"
print(f"40 certificates due over {span / 86400:.1f} days")
PY
	# nothing is due yet: renew --all places no order
	t_expect 0 "$P11ENROLL" -c "$WORK/p.conf" renew --all
	[ "$(t_sim_stat "s['orders_placed']")" = 0 ] || t_fail "renew ordered before the window"
}

# [agent] fleet_slot = K/N: the due time is the last point before
# notAfter - renew_before at phase K/N of the period renew_before/3, the
# formula scripts/fleet-sim uses; N hosts fall due evenly spaced.
case_fleet_slot() {
	local k
	t_token_and_sim certinext "$PIN"
	CERTS="s1:ok s2:ok s3:ok"
	mkdir -p "$WORK/state"; chmod 700 "$WORK/state"
	"$PYTHON" - "$WORK/state" <<'PY'
import json, sys, time
now = int(time.time())
for i, na in enumerate((now + 60 * 86400, now + 61 * 86400 + 12345, now + 75 * 86400 + 7), 1):
    json.dump({"version": 1, "name": f"s{i}", "state": "monitoring",
               "cert": {"chain": "x", "serial": "01", "not_after": na}},
              open(f"{sys.argv[1]}/s{i}.json", "w"))
PY
	for k in 0 1 2 3 4 5 6 7; do
		AGENT_EXTRA="fleet_slot = $k/8" conf "$WORK/p.conf" "$WORK/state" 8 x
		# (exits 1: these journals hold no real certificate)
		"$P11ENROLL" -c "$WORK/p.conf" status --json >"$WORK/k$k.json" 2>"$WORK/err" || true
	done
	"$PYTHON" - "$WORK" "$P11E_SRCDIR/scripts/fleet-sim" <<'PY' || t_fail "fleet_slot due times are wrong"
import importlib.machinery, importlib.util, json, sys
loader = importlib.machinery.SourceFileLoader("fleet_sim", sys.argv[2])
spec = importlib.util.spec_from_loader("fleet_sim", loader)
sim = importlib.util.module_from_spec(spec)
loader.exec_module(sim)
rb, period = 30 * 86400, 10 * 86400
for k in range(8):
    for c in json.load(open(f"{sys.argv[1]}/k{k}.json"))["certificates"]:
        latest = int(c["not_after"]) - rb
        want = latest - sim.slot_spread(k, 8, latest, rb)
        assert c["next_action_at"] == want, (k, c["name"], c["next_action_at"], want)
        assert latest - period < c["next_action_at"] <= latest, c
        # evenly spaced: slot k sits k/8 into the period, counted from the epoch
        assert c["next_action_at"] % period == period * k // 8, (k, c)
print("slots 0..7 of 8 due at their phases, within the first third of the window")
PY
	for bad in 8/8 3/0 x/8 1/2x 1 -1/8 1/1000001; do
		AGENT_EXTRA="fleet_slot = $bad" conf "$WORK/p.conf" "$WORK/state" 8 x
		t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" status
		t_contains "$WORK/err" "p.conf:5"
		t_contains "$WORK/err" "K/N"
	done
}

t_run "$@"
