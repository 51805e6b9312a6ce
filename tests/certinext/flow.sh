#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent's order flow against the CERTInext simulator, through the CLI:
# failed orders and their keys, DCV instructions, revocation, error texts.
# See docs/orders.md and docs/providers.md.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273

# setup SCENARIO-JSON CERT-NAME… — token, simulator, $WORK/p.conf with one
# [cert:NAME] per name (key object NAME, www.example.com)
setup() {
	local scenario=$1 name
	shift
	t_token_and_sim certinext "$PIN" "$scenario"
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo "wait = 30s"
		echo
		t_ca_section certinext
		for name in "$@"; do
			echo "[cert:$name]"
			echo "ca = sim"
			echo "key = pkcs11:token=edge;object=$name?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
			echo "key_type = ec-p256"
			echo "subject = CN=www.example.com"
			echo "dns = www.example.com"
			echo "cert_file = $WORK/tls/$name.pem"
			echo "fullchain_file = $WORK/tls/$name-full.pem"
			echo
		done
	} >"$WORK/p.conf"
}

p11e() { "$P11ENROLL" -c "$WORK/p.conf" "$@"; }
t_eq() { [ "$1" = "$2" ] || t_fail "${3:-value}: got '$1', expected '$2'"; }
keys_of() { t_token_objects edge | awk -v l="$1" '$1 == "Private" && $2 == l' | wc -l; }

# An order that fails at the CA (every failure status of the protocol
# notes, and 12 "expired") leaves the certificate in `rejected`; the next
# enroll retires the key the CA has seen and succeeds with a new one.
failed_status() {
	local st=$1 name=web$1 key
	t_sim_scenario "{\"fail_status_id\": \"$st\"}"
	t_expect 4 p11e enroll "$name"
	t_eq "$(t_journal 'j["state"]' "$name")" rejected "state after status $st"
	key=$(t_journal 'j["key"]["id"]' "$name")
	t_eq "$(t_journal 'j["failed_order"]["key_id"]' "$name")" "$key" "retired key after status $st"
	t_contains "$WORK/err" "new key"
	t_sim_scenario '{"fail_status_id": null}'
	t_expect 0 p11e enroll "$name"
	t_eq "$(t_journal 'j["state"]' "$name")" monitoring "state after the next enroll (status $st)"
	[ "$(t_journal 'j["key"]["id"]' "$name")" != "$key" ] || t_fail "status $st: the same key again"
	t_eq "$(keys_of "$name")" 1 "private keys of $name after status $st (the retired one removed)"
	t_not_contains "$WORK/err" "EMS-1099"
}

case_failed_statuses() {
	local st names=()
	for st in 3 5 8 12 13 14 18 19 21; do names+=("web$st"); done
	setup '{"rate_limit_burst": 0}' "${names[@]}"
	for st in 3 5 8 12 13 14 18 19 21; do failed_status "$st"; done
	t_eq "$(t_sim_stat 's["orders_placed"]')" 18 "orders (one failed, one good per status)"
}

# An issued certificate that has already expired is an order failure too:
# never installed, and the next enroll orders anew with a new key. MODE:
# the CA refuses the download (status 12) or hands the certificate out.
issued_expired() {
	setup "{\"leaf_expired\": $1}" web
	t_expect 4 p11e enroll web
	t_contains "$WORK/err" "$2"
	t_eq "$(t_journal 'j["state"]')" rejected "state"
	[ ! -e "$WORK/tls/web.pem" ] || t_fail "an expired certificate was installed"
	local key
	key=$(t_journal 'j["key"]["id"]')
	t_sim_scenario '{"leaf_expired": false}'
	t_expect 0 p11e enroll web
	t_eq "$(t_journal 'j["state"]')" monitoring "state"
	[ "$(t_journal 'j["key"]["id"]')" != "$key" ] || t_fail "the same key again"
	t_eq "$(keys_of web)" 1 "private keys"
}
case_issued_expired() { issued_expired true "Certificate Expired"; }
case_issued_expired_download() { issued_expired '"download"' "already expired"; }

# A CA error code is shown once, with the CA's words, and no wrong hint:
# EMS-939 is CERTInext's generic error, not a refusal of the key.
case_error_code_once() {
	setup '{"reject": {"code": "EMS-939", "message": "Something went Wrong"}}' web
	t_expect 4 p11e enroll web
	t_contains "$WORK/err" "Something went Wrong"
	t_eq "$(grep -o 'EMS-939' "$WORK/err" | wc -l)" 1 "times EMS-939 is shown"
	t_not_contains "$WORK/err" "refused the key"
	t_eq "$(t_journal 'j["last_error"]["ca_code"]')" EMS-939 "journalled code"
	t_eq "$(grep -o 'EMS-939' <<<"$(t_journal 'j["last_error"]["message"]')" | wc -l)" 1 \
		"times EMS-939 is in the journalled message"
	# a refusal at placement keeps the key (no order holds it)
	local key
	key=$(t_journal 'j["key"]["id"]')
	t_expect 0 p11e enroll web
	t_eq "$(t_journal 'j["key"]["id"]')" "$key" "key after a refusal at placement"
}

# Without a dcv_hook the TXT records to publish reach the operator: on
# stderr when the order goes pending, in the journal, in `status` and
# `status --json`; GetDcv is not asked again on every poll.
case_dcv_instructions() {
	setup '{"dcv_required": true}' web
	t_expect 3 p11e enroll web --wait 4s
	grep -q 'publish:' "$WORK/err" || t_fail "no instructions on stderr"
	grep -q 'TXT _emsign-validation.www.example.com "[0-9a-f]\{32\}"' "$WORK/err" ||
		{ cat "$WORK/err"; t_fail "no TXT record on stderr"; }
	local want
	want=$(t_journal 'j["order"]["dcv_instructions"]')
	grep -q '^TXT _emsign-validation.www.example.com "[0-9a-f]\{32\}"$' <<<"$want" ||
		t_fail "journalled instructions: $want"
	[ "$(t_sim_stat 's["calls"]["TrackOrder"]')" -ge 2 ] || t_fail "fewer than two polls"
	t_eq "$(t_sim_stat 's["calls"]["GetDcv"]')" 1 "GetDcv calls over several polls"
	# status (text and JSON) shows them; a pending order needs attention
	"$P11ENROLL" -c "$WORK/p.conf" status >"$WORK/out" 2>"$WORK/err"
	t_contains "$WORK/out" "$want"
	"$P11ENROLL" -c "$WORK/p.conf" status --json >"$WORK/out" 2>"$WORK/err"
	t_eq "$("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["certificates"][0]["order"]["dcv_instructions"])' "$WORK/out")" \
		"$want" "status --json"
	# a later run shows them again, from the journal, without GetDcv
	t_expect 3 p11e enroll web --wait 2s
	t_contains "$WORK/err" "$want"
	t_eq "$(t_sim_stat 's["calls"]["GetDcv"]')" 1 "GetDcv calls after a second run"
}

t_run "$@"
