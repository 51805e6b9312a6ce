#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Integration cases of the CERTInext provider against the simulator, driven
# through cn_driver (the provider ops, without the agent's CLI).
# Usage (from meson): cases.sh DRIVER CASE
DRIVER=${1:?driver}
shift
# shellcheck source=../lib.sh
. "$P11E_SRCDIR/tests/lib.sh"

t_need openssl curl

# --- helpers -------------------------------------------------------------

cn_sim() {
	t_sim_start certinext sim "$@"
	SIM_BASE=${SIM_URL%/emSignHub-API}
}

# cn_config [key = value lines…] — the [ca] body in $WORK/ca.conf
cn_config() {
	{
		echo "api_url = $SIM_URL"
		echo "account_number = 5550001234"
		echo "access_key_file = $SIM_DIR/access.key"
		echo "ca_bundle = $SIM_ROOT"
		echo "requestor_name = Edge Fleet PKI"
		echo "requestor_email = pki-bot@example.net"
		echo "signer_place = Lisbon"
		echo "signer_ip = 93.184.216.34"
		echo "default_product = 842"
		echo "poll_interval = 1s"
		echo "max_retry_time = 30s"
		local line
		for line in "$@"; do echo "$line"; done
	} >"$WORK/ca.conf"
}

# cn_csr FILE CN [SAN…] — a P-256 CSR (a new key each time: the CA refuses a
# key twice)
cn_csr() {
	local out=$1 cn=$2 san="" name
	shift 2
	for name in "$cn" "$@"; do san="${san:+$san,}DNS:$name"; done
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
		-subj "/CN=$cn" -addext "subjectAltName=$san" \
		-keyout "$out.key" -out "$out" 2>/dev/null || t_fail "openssl req failed"
}

cn_scenario() {
	curl -sf --cacert "$SIM_ROOT" -X POST -H 'Content-Type: application/json' \
		-d "$1" "$SIM_BASE/_sim/scenario" >/dev/null || t_fail "scenario $1 refused"
}

cn_stats() {
	curl -sf --cacert "$SIM_ROOT" "$SIM_BASE/_sim/stats" >"$WORK/stats.json" ||
		t_fail "cannot read the simulator's stats"
}

# cn_stat EXPR — a Python expression over d (the stats JSON)
cn_stat() {
	"$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$WORK/stats.json" "$1"
}

t_eq() {
	[ "$1" = "$2" ] || t_fail "${3:-value}: got '$1', expected '$2'"
}

# value of KEY= in $WORK/out (last one)
out_val() {
	grep "^$1=" "$WORK/out" | tail -n 1 | cut -d= -f2-
}

drive() {
	t_expect "$1" "$DRIVER" "${@:2}"
}

# --- cases ---------------------------------------------------------------

case_issued_at_once() {
	cn_sim
	cn_config
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com \
		--dns www.example.com --id idem-1 --max-sleep 0 --chain-out "$WORK/chain.pem"
	t_contains "$WORK/out" "final.outcome=issued"
	t_contains "$WORK/out" "fetch.outcome=issued"
	# leaf + intermediate (the root is not part of the chain)
	t_eq "$(grep -c 'BEGIN CERTIFICATE' "$WORK/chain.pem")" 2 "certificates in the chain"
	serial=$(openssl x509 -in "$WORK/chain.pem" -noout -serial | cut -d= -f2)
	t_eq "$(out_val fetch.serial)" "$serial" "serial"
	openssl verify -CAfile "$SIM_ROOT" -untrusted <(sed -n '/END/,$p' "$WORK/chain.pem" | tail -n +2) \
		<(sed -n '1,/END/p' "$WORK/chain.pem") >/dev/null || t_fail "chain does not verify"
	cn_stats
	t_eq "$(cn_stat 'd["orders_placed"]')" 1 "orders placed"
	t_eq "$(cn_stat 'sum(d["calls"].values())')" 3 "HTTP calls for an order issued at once"
	t_eq "$(cn_stat 'd["calls"]["GenerateOrderSSL"]')" 1 "GenerateOrderSSL calls"
	# the request carried the order defaults (docs/protocol-certinext.md) and the idempotency id
	t_eq "$(cn_stat 'd["last_request"]["GenerateOrderSSL"]["orderDetails"]["additionalInformation"]["tags"]')" \
		"['p11enroll:idem-1']" "tags"
	t_eq "$(cn_stat '"[p11enroll:idem-1]" in d["last_request"]["GenerateOrderSSL"]["orderDetails"]["additionalInformation"]["remarks"]')" \
		True "remarks carry the id"
}

case_pending_then_issued() {
	cn_sim
	cn_config
	cn_scenario '{"pending_polls": 2}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com \
		--dns www.example.com --max-sleep 0
	t_eq "$(grep -c '^poll.outcome=pending' "$WORK/out")" 2 "pending polls"
	t_contains "$WORK/out" "poll.status=Pending for Approver"
	t_contains "$WORK/out" "final.outcome=issued"
	cn_stats
	t_eq "$(cn_stat 'd["calls"]["TrackOrder"]')" 3 "TrackOrder calls"
}

case_families() {
	cn_sim
	cn_config "organization_number = 5550004567"
	# DV wildcard
	cn_csr "$WORK/w.csr" '*.example.com'
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/w.csr" --cn '*.example.com' --dns '*.example.com' \
		--set product=843 --max-sleep 0
	# DV UCC
	cn_csr "$WORK/u.csr" shop.example.net api.example.net
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/u.csr" --cn shop.example.net \
		--dns shop.example.net,api.example.net --set product=844 --max-sleep 0
	cn_stats
	t_eq "$(cn_stat 'd["last_request"]["GenerateOrderSSL"]["orderDetails"]["certificateInformation"]["additionalDomains"]')" \
		"['shop.example.net', 'api.example.net']" "UCC additionalDomains"
	# OV without its address: the simulator names the missing member
	cn_csr "$WORK/o.csr" ov.example.com
	drive 2 "$WORK/ca.conf" place --csr "$WORK/o.csr" --cn ov.example.com --dns ov.example.com \
		--set product=846
	t_contains "$WORK/out" "EMS-918"
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/o.csr" --cn ov.example.com --dns ov.example.com \
		--set product=846 --set locality=Austin --set postal_code=78701 \
		--set "street_address=1 Main St" --set city=Austin --set state=TX --set country=US \
		--max-sleep 0
	cn_stats
	t_eq "$(cn_stat 'd["last_request"]["GenerateOrderSSL"]["orderDetails"]["organizationDetails"]')" \
		"{'preVetting': '1', 'organizationNumber': '5550004567', 'streetAddress': '1 Main St', 'city': 'Austin', 'state': 'TX', 'country': 'US'}" \
		"OV organizationDetails"
	# EV: everything of OV plus the signer/approver blocks
	cn_csr "$WORK/e.csr" ev.example.com
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/e.csr" --cn ev.example.com --dns ev.example.com \
		--set product=850 --set locality=Austin --set postal_code=78701 \
		--set "street_address=1 Main St" --set "street_address2=Suite 5" --set city=Austin \
		--set state=TX --set country=US --set company_registration_number=REG-42 \
		--set "contract_signer_name=Ana Lopes" --set contract_signer_email=ana@example.com \
		--set contract_signer_isd_code=1 --set contract_signer_mobile=5125550100 \
		--set contract_signer_designation=CTO --set contract_signer_employee_id=E1 \
		--set "certificate_approver_name=Bo Chen" --set certificate_approver_email=bo@example.com \
		--set certificate_approver_isd_code=1 --set certificate_approver_mobile=5125550101 \
		--set certificate_approver_designation=CISO --set certificate_approver_employee_id=E2 \
		--max-sleep 0
	t_contains "$WORK/out" "final.outcome=issued"
	cn_stats
	t_eq "$(cn_stat 'd["last_request"]["GenerateOrderSSL"]["orderDetails"]["contractSignerInfo"]["employeeID"]')" \
		E1 "EV contract signer"
	t_eq "$(cn_stat 'd["orders_placed"]')" 4 "orders placed"
}

case_rejected_ems() {
	cn_sim
	cn_config
	cn_csr "$WORK/a.csr" www.example.com
	# a product the account does not have
	drive 2 "$WORK/ca.conf" place --csr "$WORK/a.csr" --cn www.example.com --set product=999
	t_contains "$WORK/out" "place.ca_code=EMS-1162"
	t_contains "$WORK/out" "Invalid Product Code"
	t_contains "$WORK/out" "p11enroll products test"
	# an organisation that is not pre-vetted
	drive 2 "$WORK/ca.conf" place --csr "$WORK/a.csr" --cn www.example.com \
		--set organization_number=5550009999
	t_contains "$WORK/out" "place.ca_code=EMS-1073"
	# a refusal: rejected, with the CA's words
	cn_scenario '{"reject": {"code": "EMS-1099", "message": "CSR already used in another order"}}'
	drive 4 "$WORK/ca.conf" place --csr "$WORK/a.csr" --cn www.example.com
	t_contains "$WORK/out" "place.outcome=rejected"
	t_contains "$WORK/out" "CSR already used in another order"
	t_contains "$WORK/out" "ca_code=EMS-1099"
	t_contains "$WORK/out" "p11enroll orders test"
	cn_stats
	t_eq "$(cn_stat 'd["orders_placed"]')" 0 "orders placed"
}

case_rate_limited_then_ok() {
	cn_sim
	cn_config
	# the 2nd GenerateOrderSSL within 2 s is refused ("Inactive Account User.")
	cn_scenario '{"rate_limit_burst": 2, "rate_limit_window_s": 2}'
	cn_csr "$WORK/a.csr" a.example.com
	cn_csr "$WORK/b.csr" b.example.com
	drive 3 "$WORK/ca.conf" place --csr "$WORK/a.csr" --cn a.example.com
	drive 3 "$WORK/ca.conf" place --csr "$WORK/b.csr" --cn b.example.com
	t_contains "$WORK/err" "rate limit"
	cn_stats
	t_eq "$(cn_stat 'd["orders_placed"]')" 2 "orders placed"
	[ "$(cn_stat 'd["calls"]["GenerateOrderSSL"]')" -ge 3 ] || t_fail "no retry after the rate limit"
	# always refused: unreachable with the CA's message, bounded
	cn_scenario '{"rate_limit_burst": 1, "rate_limit_window_s": 60}'
	cn_csr "$WORK/c.csr" c.example.com
	cn_config "max_retries = 2"
	drive 1 "$WORK/ca.conf" place --csr "$WORK/c.csr" --cn c.example.com
	t_contains "$WORK/out" "Inactive Account User"
	t_contains "$WORK/out" "place.retry_after=60"
}

case_http_429_retry_after() {
	cn_sim
	cn_config
	cn_scenario '{"http_429": {"count": 1, "retry_after": 2, "endpoints": ["GenerateOrderSSL"]}}'
	cn_csr "$WORK/a.csr" www.example.com
	start=$(date +%s)
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0
	elapsed=$(($(date +%s) - start))
	[ "$elapsed" -ge 2 ] || t_fail "Retry-After 2 not honoured (took ${elapsed}s)"
	cn_stats
	t_eq "$(cn_stat 'd["calls"]["GenerateOrderSSL"]')" 2 "GenerateOrderSSL calls"
	t_eq "$(cn_stat 'd["orders_placed"]')" 1 "orders placed"
	# a 429 beyond the retry budget: unreachable with the server's delay
	cn_scenario '{"http_429": {"count": 5, "retry_after": 120, "endpoints": ["ValidateCredentials"]}}'
	drive 1 "$WORK/ca.conf" check
	t_contains "$WORK/out" "check.retry_after=120"
}

case_http_5xx_then_ok() {
	cn_sim
	cn_config
	cn_scenario '{"http_5xx": {"count": 2, "status": 503, "endpoints": ["TrackOrder"]}}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0
	t_contains "$WORK/err" "HTTP 503; retrying"
	cn_stats
	t_eq "$(cn_stat 'd["calls"]["TrackOrder"]')" 3 "TrackOrder attempts"
	# more 5xx than retries: unreachable, bounded
	cn_config "max_retries = 1"
	cn_scenario '{"http_5xx": {"count": 5, "status": 502, "endpoints": ["ValidateCredentials"]}}'
	drive 1 "$WORK/ca.conf" check
	t_contains "$WORK/out" "HTTP 502"
	cn_stats
	t_eq "$(cn_stat 'd["calls"]["ValidateCredentials"]')" 2 "ValidateCredentials attempts"
}

case_order_5xx_not_retried() {
	cn_sim
	cn_config
	# a 5xx on GenerateOrderSSL is never retried blindly: unknown, then
	# reconcile (nothing there) allows the second placement
	cn_scenario '{"http_5xx": {"count": 1, "status": 500, "endpoints": ["GenerateOrderSSL"]}}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0 --id i-5
	t_contains "$WORK/out" "place.outcome=unknown"
	t_contains "$WORK/out" "reconcile.outcome=not-found"
	t_contains "$WORK/out" "place2.outcome=pending"
	cn_stats
	t_eq "$(cn_stat 'd["calls"]["GenerateOrderSSL"]')" 2 "GenerateOrderSSL calls"
	t_eq "$(cn_stat 'd["orders_placed"]')" 1 "orders placed"
}

# An unknown outcome after the order exists: reconcile finds it (CSR match)
# and no second order is placed.
reconcile_case() {
	cn_sim
	cn_config
	cn_csr "$WORK/old.csr" www.example.com
	# an older order for the same name and product must not be taken
	drive 3 "$WORK/ca.conf" place --csr "$WORK/old.csr" --cn www.example.com
	cn_scenario "$1"
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0 \
		--id idem-7 --chain-out "$WORK/chain.pem"
	t_contains "$WORK/out" "place.outcome=unknown"
	t_contains "$WORK/out" "reconcile.outcome="
	t_not_contains "$WORK/out" "place2."
	t_contains "$WORK/out" "final.outcome=issued"
	cn_stats
	t_eq "$(cn_stat 'd["orders_placed"]')" 2 "orders placed (the older one and ours)"
	t_eq "$(cn_stat 'd["calls"]["GenerateOrderSSL"]')" 2 "GenerateOrderSSL calls"
	ours=$(cn_stat 'd["orders"][1]["orderNumber"]')
	t_eq "$(out_val reconcile.order_id)" "$ours" "reconciled order"
	# the fetched leaf is for our key
	t_eq "$(openssl x509 -in "$WORK/chain.pem" -noout -pubkey | openssl sha256)" \
		"$(openssl pkey -in "$WORK/a.csr.key" -pubout | openssl sha256)" "leaf key"
}

case_unknown_5xx_after_create() {
	reconcile_case '{"order_5xx_after_create": {"count": 1}}'
	t_contains "$WORK/out" "HTTP 500"
}

case_unknown_drop_after_create() {
	reconcile_case '{"drop_after_create": {"count": 1}}'
}

case_unknown_tagged() {
	# tags round-trip: the row tagged with our id is taken without a CSR check
	reconcile_case '{"drop_after_create": {"count": 1}, "report_tags": true}'
	t_contains "$WORK/err" "carries our tag p11enroll:idem-7"
}

# oauth_sim [CONFIG-LINE…] — the simulator behind OAuth, and a config using it.
# shellcheck disable=SC2120 # CONFIG-LINEs are part of the helper; today's cases pass none
oauth_sim() {
	printf 'oauth-secret-0123456789\n' >"$WORK/client.secret"
	chmod 600 "$WORK/client.secret"
	cn_sim --oauth-client-id p11e-client --oauth-client-secret-file "$WORK/client.secret"
	cn_config "auth = oauth" "oauth_token_url = $(cat "$SIM_DIR/oauth_url")" \
		"oauth_client_id = p11e-client" "oauth_client_secret_file = $WORK/client.secret" "$@"
}

case_oauth_refresh() {
	oauth_sim
	# tokens live 2 s; the order stays pending for 3 polls a second apart
	cn_scenario '{"oauth_expires_in": 2, "pending_polls": 3}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" -v enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 1
	t_contains "$WORK/out" "final.outcome=issued"
	cn_stats
	[ "$(cn_stat 'd["token_requests"]')" -ge 2 ] || t_fail "the token was not refreshed"
	t_not_contains "$WORK/err" "oauth-secret-0123456789"
	grep -Eq 'Bearer [A-Za-z0-9_-]{8}' "$WORK/err" && t_fail "a bearer token was logged"
	t_contains "$WORK/err" "Authorization: <redacted>"
}

case_oauth_401_refresh() {
	oauth_sim
	# The gateway drops the token the client still holds: one 401, one new
	# token, one retry, and the order goes through.
	cn_scenario '{"oauth_revoke_next": 1}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" -v enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 1
	t_contains "$WORK/out" "final.outcome=issued"
	t_contains "$WORK/err" "answered 401; refreshing the OAuth token once"
	cn_stats
	[ "$(cn_stat 'd["token_requests"]')" = 2 ] || t_fail "expected exactly one refresh, token requests: $(cn_stat 'd["token_requests"]')"
	[ "$(cn_stat 'd["orders_placed"]')" = 1 ] || t_fail "orders placed: $(cn_stat 'd["orders_placed"]')"
	# Twice in a row: one refresh only, then a clear failure.
	cn_scenario '{"oauth_revoke_next": 2}'
	drive 2 "$WORK/ca.conf" check
	t_contains "$WORK/out" "oauth"
}

case_oauth_bad_secret() {
	oauth_sim
	printf 'wrong-secret\n' >"$WORK/client.secret"
	drive 2 "$WORK/ca.conf" check
	t_contains "$WORK/out" "oauth_client_id / oauth_client_secret_file"
	t_not_contains "$WORK/out" "wrong-secret"
}

hook_script() {
	cat >"$WORK/hook.sh" <<EOF
#!/bin/sh
echo "\$P11ENROLL_DCV_ACTION \$P11ENROLL_DCV_DOMAIN \$P11ENROLL_DCV_RECORD \$P11ENROLL_DCV_VALUE" >>"$WORK/hook.log"
env >>"$WORK/hook.env"
echo "\$*" >>"$WORK/hook.argv"
EOF
	chmod 755 "$WORK/hook.sh"
}

# The simulator in a scenario ($1), with the recording hook and quick DCV timing.
dcv_hook_sim() {
	cn_sim
	hook_script
	cn_config "dcv_hook = $WORK/hook.sh" "dcv_propagation_wait = 0" "dcv_poll_interval = 1s" \
		"dcv_timeout = 20s"
	cn_scenario "$1"
}

case_dcv_hook() {
	dcv_hook_sim '{"dcv_required": true, "dcv_slot_polls": 1, "getdcv_ems956_polls": 1, "dcv_verify_polls": 1}'
	cn_csr "$WORK/a.csr" shop.example.net api.example.net
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn shop.example.net \
		--dns shop.example.net,api.example.net --set product=844 --max-sleep 0
	t_contains "$WORK/out" "final.outcome=issued"
	t_contains "$WORK/out" "EMS-956"
	t_eq "$(grep -c '^publish ' "$WORK/hook.log")" 2 "publish calls"
	t_eq "$(grep -c '^remove ' "$WORK/hook.log")" 2 "remove calls"
	grep -q '^publish shop.example.net _emsign-validation.shop.example.net [0-9a-f]\{32\}$' "$WORK/hook.log" ||
		t_fail "publish line: $(cat "$WORK/hook.log")"
	# removal names the same record and value as the publication
	for d in shop.example.net api.example.net; do
		pub=$(grep "^publish $d " "$WORK/hook.log" | cut -d' ' -f3-)
		rem=$(grep "^remove $d " "$WORK/hook.log" | cut -d' ' -f3-)
		t_eq "$rem" "$pub" "removed record of $d"
	done
	# publish before remove, and nothing in argv or env but ours
	[ "$(head -n 1 "$WORK/hook.log" | cut -d' ' -f1)" = publish ] || t_fail "remove before publish"
	t_eq "$(sort -u "$WORK/hook.argv")" "" "hook arguments"
	t_not_contains "$WORK/hook.env" "sim-access-key-0001"
	grep -v -E '^(P11ENROLL_DCV_(ACTION|DOMAIN|RECORD|VALUE)|PATH|PWD|SHLVL|_)=' "$WORK/hook.env" |
		grep -q . && t_fail "unexpected environment: $(cat "$WORK/hook.env")"
	cn_stats
	t_eq "$(cn_stat 'd["calls"]["VerifyDcv"]')" 2 "VerifyDcv calls"
}

# Enrols www.example.com with the recording hook in a scenario ($2), expecting
# exit $1: its one record is published and removed, whatever the end.
dcv_enrol_one() {
	dcv_hook_sim "$2"
	cn_csr "$WORK/a.csr" www.example.com
	drive "$1" "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0
	t_eq "$(grep -c '^publish ' "$WORK/hook.log")" 1 "publish calls"
	t_eq "$(grep -c '^remove ' "$WORK/hook.log")" 1 "remove calls"
}

# TrackOrder may list more domains while p11enroll waits for validation
# than when it published: nothing is sized by the longer list (a stray
# write used to corrupt the heap).
case_dcv_domains_grow() {
	dcv_enrol_one 0 '{"dcv_required": true, "dcv_verify_polls": 1, "dcv_extra_domains": 8}'
	t_contains "$WORK/out" "final.outcome=issued"
}

case_dcv_fail() {
	dcv_enrol_one 4 '{"dcv_required": true, "dcv_fail": true}'
	t_contains "$WORK/out" "rejected domain validation of www.example.com"
}

case_dcv_no_hook() {
	cn_sim
	cn_config
	cn_scenario '{"dcv_required": true}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 3 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0 \
		--max-polls 1
	t_contains "$WORK/out" "set dcv_hook"
	grep -q 'TXT _emsign-validation.www.example.com "[0-9a-f]\{32\}"' "$WORK/out" ||
		t_fail "no publishing instructions"
}

case_oversized_body() {
	cn_sim
	cn_config
	cn_scenario '{"oversized_body": {"count": 1, "bytes": 6000000, "endpoints": ["ValidateCredentials"]}}'
	drive 1 "$WORK/ca.conf" check
	t_contains "$WORK/out" "larger than 4194304 bytes"
	# an order whose answer is cut off: unknown, not a second order
	cn_scenario '{"oversized_body": {"count": 1, "endpoints": ["GenerateOrderSSL"]}}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 5 "$WORK/ca.conf" place --csr "$WORK/a.csr" --cn www.example.com
	t_contains "$WORK/out" "place.outcome=unknown"
	cn_stats
	t_eq "$(cn_stat 'd["calls"]["GenerateOrderSSL"]')" 1 "GenerateOrderSSL calls"
}

case_malformed_body() {
	cn_sim
	cn_config
	cn_scenario '{"malformed_body": {"count": 1, "endpoints": ["ValidateCredentials"]}}'
	drive 1 "$WORK/ca.conf" check
	t_contains "$WORK/out" "is not the JSON the API sends"
	cn_scenario '{"malformed_body": {"count": 1, "endpoints": ["GenerateOrderSSL"]}}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 5 "$WORK/ca.conf" place --csr "$WORK/a.csr" --cn www.example.com
	t_contains "$WORK/out" "place.outcome=unknown"
	t_contains "$WORK/out" "reconciled"
	# dropped connections on a read are retried
	cn_scenario '{"drop_connection": {"count": 1, "endpoints": ["ValidateCredentials"]}}'
	drive 0 "$WORK/ca.conf" check
}

case_wrong_access_key() {
	cn_sim
	printf 'not-the-key-1234\n' >"$WORK/bad.key"
	chmod 600 "$WORK/bad.key"
	cn_config "access_key_file = $WORK/bad.key"
	drive 2 "$WORK/ca.conf" -v check
	t_contains "$WORK/out" "check.outcome=misconfigured"
	t_contains "$WORK/out" "EMS-001"
	t_contains "$WORK/out" "check account_number and access_key_file"
	t_not_contains "$WORK/out" "not-the-key-1234"
	t_not_contains "$WORK/err" "not-the-key-1234"
	# a key file others may read is refused before any call
	chmod 644 "$WORK/bad.key"
	drive 2 "$WORK/ca.conf" check
	t_contains "$WORK/out" "chmod 600"
}

case_secrets_not_logged() {
	cn_sim
	cn_config
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" -v enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0
	t_contains "$WORK/err" "debug: CERTInext GenerateOrderSSL: > POST"
	t_contains "$WORK/err" '"authKey":"<redacted>"'
	t_not_contains "$WORK/err" "sim-access-key-0001"
	grep -Eq '[0-9a-f]{64}' "$WORK/err" && t_fail "something like an authKey was logged"
	t_not_contains "$WORK/out" "sim-access-key-0001"
	true
}

case_revoke() {
	cn_sim
	cn_config
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0
	order=$(out_val fetch.order_id)
	# reasons CERTInext cannot express are refused before any call
	drive 2 "$WORK/ca.conf" revoke --order "$order" --reason unspecified
	t_contains "$WORK/out" "accepts keyCompromise, affiliationChanged, superseded and cessationOfOperation"
	cn_stats
	t_eq "$(cn_stat 'd["calls"].get("RevokeOrder", 0) + d["calls"]["TrackOrder"]')" 1 "calls before the refusal"
	drive 0 "$WORK/ca.conf" revoke --order "$order" --reason superseded
	t_contains "$WORK/out" "revokeReasonId 4"
	cn_stats
	t_eq "$(cn_stat 'd["last_request"]["RevokeOrder"]["revocationDetails"]["revokeReasonId"]')" 4 "reason id"
	# already revoked counts as success, without a second RevokeOrder
	drive 0 "$WORK/ca.conf" revoke --order "$order" --reason keyCompromise
	t_contains "$WORK/out" "already revoked"
	cn_stats
	t_eq "$(cn_stat 'd["calls"]["RevokeOrder"]')" 1 "RevokeOrder calls"
	drive 4 "$WORK/ca.conf" poll --order "$order"
	t_contains "$WORK/out" "Certificate Revoked"
	drive 6 "$WORK/ca.conf" poll --order 1234567890
	t_contains "$WORK/out" "EMS-943"
}

case_products_and_list() {
	cn_sim
	cn_config "group_number = 5550009876" "page_size = 2"
	drive 0 "$WORK/ca.conf" products
	t_contains "$WORK/out" "product=842|DV SSL 1 Year|"
	t_contains "$WORK/out" "product=850|EV SSL 1 Year|"
	cn_stats
	t_eq "$(cn_stat 'd["last_request"]["GetProductDetails"]["productDetails"]["groupNumber"]')" 5550009876 "groupNumber"
	cn_config "page_size = 2"
	for n in a b c; do
		cn_csr "$WORK/$n.csr" "$n.example.com"
		drive 3 "$WORK/ca.conf" place --csr "$WORK/$n.csr" --cn "$n.example.com"
	done
	drive 0 "$WORK/ca.conf" list --page 2 --since "$(date +%s)"
	t_contains "$WORK/out" "list.pages=2"
	t_contains "$WORK/out" "|c.example.com|842|"
	t_eq "$(grep -c '^row=' "$WORK/out")" 1 "rows on page 2"
	cn_stats
	t_eq "$(cn_stat 'd["last_request"]["GetOrderReport"]["searchCriteria"]["orderDateFrom"]')" \
		"$(date -u +%Y-%m-%d)" "orderDateFrom"
	# an empty listing is success
	drive 0 "$WORK/ca.conf" list --since "$(($(date +%s) + 3 * 86400))"
	t_contains "$WORK/out" "list.pages=0"
}

case_config_errors() {
	cn_sim
	cn_config "validity = 5"
	drive 2 "$WORK/ca.conf" check
	t_contains "$WORK/out" "$WORK/ca.conf:12: validity = '5' is not a subscription length"
	cn_config "signer_ip = 127.0.0.1"
	drive 2 "$WORK/ca.conf" check
	t_contains "$WORK/out" "EMS-1091"
	cn_config "api_url = http://ca.example.com/emSignHub-API"
	drive 2 "$WORK/ca.conf" check
	t_contains "$WORK/out" "plain http:// is refused except to loopback"
	cn_config "timeout = soon"
	drive 2 "$WORK/ca.conf" check
	t_contains "$WORK/out" "timeout = 'soon' is not a duration"
	# per-certificate overrides are checked and named
	cn_config
	cn_csr "$WORK/a.csr" www.example.com
	drive 2 "$WORK/ca.conf" place --csr "$WORK/a.csr" --cn www.example.com --set renew_criteria=45
	t_contains "$WORK/out" "[cert:test]:1: renew_criteria = '45' is not 30 or 60"
	cn_config "requestor_email ="
	drive 2 "$WORK/ca.conf" place --csr "$WORK/a.csr" --cn www.example.com
	t_contains "$WORK/out" "requestor_email is not set"
	# TLS trust comes from ca_bundle: without it the simulator is not trusted
	grep -v '^ca_bundle' "$WORK/ca.conf" >"$WORK/nobundle.conf"
	drive 2 "$WORK/nobundle.conf" check
	t_contains "$WORK/out" "set ca_bundle"
	cn_stats
	t_eq "$(cn_stat 'd["orders_placed"]')" 0 "orders placed"
}

# A lost answer on a kept-alive connection: the retry carries a fresh txn
# (libcurl must never re-send the same signed body on its own).
case_lost_answer_fresh_txn() {
	cn_sim
	cn_config
	cn_scenario '{"keep_alive": true, "pending_polls": 1, "drop_after_process": {"count": 1, "endpoints": ["GetCertificate"]}}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0 \
		--chain-out "$WORK/chain.pem"
	t_contains "$WORK/out" "fetch.outcome=issued"
	t_not_contains "$WORK/out" "Invalid credentials"
	t_not_contains "$WORK/err" "Invalid credentials"
	cn_stats
	t_eq "$(cn_stat 'd["orders_placed"]')" 1 "orders placed"
	# every call of the three endpoints was answered once, the lost ones retried
	[ "$(cn_stat 'd["calls"]["TrackOrder"] + d["calls"]["GetCertificate"]')" -ge 4 ] ||
		t_fail "the lost answers were not retried"
	t_contains "$SIM_DIR/stderr.log" "dropped-after-process"
}

# A revocation the CA has accepted but not yet carried out: a repeat reads
# TrackOrder and sends nothing.
case_revoke_in_progress() {
	cn_sim
	cn_config
	cn_scenario '{"revoke_initiated_first": 5}'
	cn_csr "$WORK/a.csr" www.example.com
	drive 0 "$WORK/ca.conf" enroll --csr "$WORK/a.csr" --cn www.example.com --max-sleep 0
	order=$(out_val fetch.order_id)
	drive 0 "$WORK/ca.conf" revoke --order "$order" --reason superseded
	drive 0 "$WORK/ca.conf" revoke --order "$order" --reason superseded
	t_contains "$WORK/out" "revocation in progress"
	cn_stats
	t_eq "$(cn_stat 'd["calls"]["RevokeOrder"]')" 1 "RevokeOrder calls"
}

t_run "$@"
