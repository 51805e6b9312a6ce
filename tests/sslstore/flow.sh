#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent's order flow against The SSL Store simulator, through the CLI:
# one idempotency id per order intent, bounded placements, failed orders,
# renewal vs reissue, DCV instructions, revocation. See docs/providers-sslstore.md.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273

# setup [SCENARIO-JSON] [extra [ca:sim] lines…] — token, simulator, $WORK/p.conf
setup() {
	local scenario=${1:-} line
	shift || true
	t_token_and_sim sslstore "$PIN" "$scenario"
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo "wait = 30s"
		echo
		t_ca_section sslstore
		for line in "$@"; do echo "$line"; done
		echo
		echo "[cert:web]"
		echo "ca = sim"
		echo "key = pkcs11:token=edge;object=web?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "key_type = ec-p256"
		echo "subject = CN=www.example.com"
		echo "dns = www.example.com"
		echo "cert_file = $WORK/tls/cert.pem"
		echo "chain_file = $WORK/tls/chain.pem"
		echo "fullchain_file = $WORK/tls/fullchain.pem"
	} >"$WORK/p.conf"
}

p11e() { "$P11ENROLL" -c "$WORK/p.conf" "$@"; }
t_eq() { [ "$1" = "$2" ] || t_fail "${3:-value}: got '$1', expected '$2'"; }
state() { t_journal 'j["state"]'; }
# the orders the simulator holds, as a Python list expression over s
orders() { t_sim_stat "$1"; }

# A run of 5xx answers to neworder: max_retries bounds the placements of one
# run, every attempt and every later run carries the same CustomOrderID, and
# the order is looked up by it only after an attempt that may have reached
# the CA.
case_placement_storm() {
	setup '{"http_5xx": {"count": 10, "status": 503, "endpoints": ["order/neworder"]}}'
	t_expect 1 p11e enroll web
	t_eq "$(orders 'len(s["placements"])')" 3 "placement attempts with max_retries = 2"
	t_eq "$(orders 'len(set(p["CustomOrderID"] for p in s["placements"]))')" 1 "CustomOrderIDs used"
	local cid idem
	cid=$(orders 's["placements"][0]["CustomOrderID"]')
	idem=$(t_journal 'j["order"]["idempotency_id"]')
	t_eq "p11e-$idem" "$cid" "journalled id vs CustomOrderID"
	t_eq "$(orders 's["orders_placed"]')" 0 "orders"
	t_contains "$WORK/err" "placement"
	# the storm goes on: the next run still uses the same id
	t_expect 1 p11e enroll web
	t_eq "$(orders 'len(set(p["CustomOrderID"] for p in s["placements"]))')" 1 "CustomOrderIDs after a second run"
	# the storm ends: the same id becomes the order
	t_sim_scenario '{"http_5xx": null}'
	t_expect 0 p11e enroll web
	t_eq "$(state)" monitoring "state"
	t_eq "$(orders 's["orders_placed"]')" 1 "orders"
	t_eq "$(orders 's["orders"][0]["CustomOrderID"]')" "$cid" "CustomOrderID of the order"
	# lookups of an id no order holds: one per attempt that may have reached the CA, never more
	[ "$(orders 's["unknown_custom_lookups"]')" -le "$(orders 'len(s["placements"]) - 1')" ] ||
		t_fail "more lookups by CustomOrderID than placements that may have reached the CA"
}

# max_retry_time bounds the placements of a run too.
case_placement_retry_time() {
	setup '{"http_5xx": {"count": 20, "status": 503, "endpoints": ["order/neworder"]}}'
	sed -i -e 's/^max_retries = .*/max_retries = 10/' -e 's/^max_retry_time = .*/max_retry_time = 2s/' \
		"$WORK/p.conf"
	t_expect 1 p11e enroll web
	t_contains "$WORK/err" "max_retry_time = 2s"
	local n
	n=$(orders 'len(s["placements"])')
	{ [ "$n" -ge 1 ] && [ "$n" -le 3 ]; } || t_fail "$n placements within max_retry_time = 2s"
	t_eq "$(orders 'len(set(p["CustomOrderID"] for p in s["placements"]))')" 1 "CustomOrderIDs"
}

# A placement that certainly was not sent (the CA refuses the connection)
# is never followed by a lookup by CustomOrderID, and the next run places
# with the same id.
case_placement_not_sent() {
	setup
	kill "${T_PIDS[0]}"; wait "${T_PIDS[0]}" 2>/dev/null
	t_expect 1 p11e enroll web
	t_contains "$WORK/err" "not placed"
	t_eq "$(state)" csr-ready "state after a placement that was not sent"
	local idem
	idem=$(t_journal 'j["order"]["idempotency_id"]')
	# the CA is back (a new simulator at another port)
	t_sim_start sslstore sim2
	sed -i -e "s|^api_url = .*|api_url = $SIM_URL|" -e "s|^ca_bundle = .*|ca_bundle = $SIM_ROOT|" \
		-e "s|^auth_token_file = .*|auth_token_file = $SIM_DIR/auth.token|" "$WORK/p.conf"
	t_expect 0 p11e enroll web
	t_eq "$(orders 's["unknown_custom_lookups"]')" 0 "lookups by CustomOrderID"
	t_eq "$(orders 's["calls"].get("/rest/order/query", 0)')" 0 "inventory queries"
	t_eq "$(orders 'len(s["placements"])')" 1 "placements"
	t_eq "$(orders 's["placements"][0]["CustomOrderID"]')" "p11e-$idem" "CustomOrderID"
}

# Renewal vs reissue from the order's own plan: a certificate ending while
# the plan has most of a year left gets a reissue, not a second paid order.
case_reissue_when_plan_left() {
	setup '{"leaf_days": 20}'
	t_expect 0 p11e enroll web
	echo "renew_before = 30d" >>"$WORK/p.conf"
	t_expect 0 p11e renew --all
	t_eq "$(state)" monitoring "state"
	t_eq "$(orders 's["orders_placed"]')" 1 "orders (a reissue is no new order)"
	t_eq "$(orders 's["orders"][0]["reissues"]')" 1 "reissues"
	t_contains "$WORK/err" "reissue"
}

# A reissue whose answer is lost is recognised by the previous order's
# PartnerOrderID, never looked up by CustomOrderID (a reissue ignores it).
case_reissue_lost_answer() {
	setup
	t_expect 0 p11e enroll web
	echo "renew_before = 400d" >>"$WORK/p.conf"
	t_sim_scenario '{"http_5xx": {"count": 1, "status": 502, "endpoints": ["order/reissue"]}}'
	t_expect 0 p11e renew --all
	t_eq "$(state)" monitoring "state"
	t_eq "$(orders 's["orders_placed"]')" 1 "orders"
	t_eq "$(orders 's["orders"][0]["reissues"]')" 1 "reissues"
	t_eq "$(orders 'len([p for p in s["placements"] if p["path"].endswith("reissue")])')" 2 "reissue attempts"
	t_eq "$(orders 's["unknown_custom_lookups"]')" 0 "lookups by CustomOrderID"
	t_eq "$(t_journal 'j["order"]["placed_as"]')" reissue "journalled placement kind"
}

# An order the CA cancels or rejects: the next enroll places a new order
# (new CustomOrderID) with a new key, without hand work.
failed_order() {
	setup "{\"vendor_reject\": {\"after_polls\": 0, \"mode\": \"$1\", \"message\": \"Domain control failed\", \"code\": \"-9009\"}}"
	t_expect 4 p11e enroll web
	t_eq "$(state)" rejected "state"
	t_contains "$WORK/err" "Domain control failed"
	local key cid
	key=$(t_journal 'j["key"]["id"]')
	cid=$(orders 's["orders"][0]["CustomOrderID"]')
	t_eq "$(t_journal 'j["failed_order"]["key_id"]')" "$key" "retired key"
	t_sim_scenario '{"vendor_reject": null}'
	t_expect 0 p11e enroll web
	t_eq "$(state)" monitoring "state"
	[ "$(t_journal 'j["key"]["id"]')" != "$key" ] || t_fail "the same key again"
	t_eq "$(orders 's["orders_placed"]')" 2 "orders"
	[ "$(orders 's["orders"][1]["CustomOrderID"]')" != "$cid" ] || t_fail "the failed order's CustomOrderID again"
}
case_failed_order_rejected() { failed_order minor; }
case_failed_order_cancelled() { failed_order cancelled; }

# File and CNAME DCV: what to publish reaches the operator (stderr when the
# order goes pending, journal, status, status --json).
dcv_instructions() {
	setup '{"dcv_required": true}' "$1 = yes"
	t_expect 3 p11e enroll web --wait 3s
	t_contains "$WORK/err" "publish:"
	local want
	want=$(t_journal 'j["order"]["dcv_instructions"]')
	{ [ -n "$want" ] && [ "$want" != None ]; } || t_fail "no instructions journalled"
	t_contains "$WORK/err" "$want"
	t_contains "$WORK/err" "$2"
	"$P11ENROLL" -c "$WORK/p.conf" status >"$WORK/out" 2>"$WORK/err"
	t_contains "$WORK/out" "$want"
	"$P11ENROLL" -c "$WORK/p.conf" status --json >"$WORK/out" 2>"$WORK/err"
	t_eq "$("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["certificates"][0]["order"]["dcv_instructions"])' "$WORK/out")" \
		"$want" "status --json"
	# the operator publishes; the CA validates; the next enroll installs
	curl -s --cacert "$SIM_ROOT" -H 'Content-Type: application/json' -d '{"dcv_completed": true}' \
		"$SIM_BASE/_sim/order/$(t_journal 'j["order"]["order_id"]')" >/dev/null
	t_expect 0 p11e enroll web
	t_eq "$(state)" monitoring "state"
}
case_dcv_file() { dcv_instructions file_auth_dcv "file "; }
case_dcv_cname() { dcv_instructions cname_auth_dcv "CNAME "; }

# Several processes on one certificate during a placement storm (timer,
# agent, an operator's enroll): still one order intent, one id, one order.
case_parallel_storm() {
	setup '{"http_5xx": {"count": 4, "status": 503, "endpoints": ["order/neworder"]}, "slow_ms": {"ms": 300, "endpoints": ["order/neworder"]}}'
	local pids=() i
	for i in 1 2 3; do
		"$P11ENROLL" -c "$WORK/p.conf" enroll web >"$WORK/p$i.out" 2>"$WORK/p$i.err" &
		pids+=("$!")
	done
	T_PIDS+=("${pids[@]}")
	for i in "${pids[@]}"; do wait "$i"; done
	t_sim_scenario '{"http_5xx": null}'
	t_expect 0 p11e enroll web
	t_eq "$(state)" monitoring "state"
	t_eq "$(orders 's["orders_placed"]')" 1 "orders"
	t_eq "$(orders 'len(set(p["CustomOrderID"] for p in s["placements"]))')" 1 "CustomOrderIDs"
}

# Lost answers on every kind of call (the call was carried out, the answer
# never came): each enrolment still ends with exactly one order.
case_lost_answers() {
	setup
	local ep n=0
	for ep in order/approverlist order/neworder order/status order/download; do
		rm -f "$WORK/state/web.json"
		t_sim_scenario "{\"drop_after_process\": {\"count\": 1, \"endpoints\": [\"$ep\"]}}"
		t_expect 0 p11e enroll web
		n=$((n + 1))
		t_eq "$(state)" monitoring "state after a lost $ep answer"
		t_eq "$(orders 's["orders_placed"]')" "$n" "orders after a lost $ep answer"
	done
	t_eq "$(grep -c 'fault=drop_after_process' "$SIM_DIR/stderr.log")" 4 "lost answers"
}

# plan_days: the plan of a new order ends sooner than its validity says, so
# a renewal (not a reissue) is due while the certificate has time left.
case_plan_ending() {
	setup '{"plan_days": 10}'
	t_expect 0 p11e enroll web
	echo "renew_before = 400d" >>"$WORK/p.conf"
	t_expect 0 p11e renew --all
	t_eq "$(orders 's["orders_placed"]')" 2 "orders (a renewal is a new order)"
	t_eq "$(orders 's["orders"][1]["IsRenewal"]')" True "renewal flag"
}

t_run "$@"
