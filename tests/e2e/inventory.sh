#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The CA's inventory against the journals: `reconcile`, and the `cancel`
# and `revoke --ca --order` it offers (p11enroll(1), docs/orders.md).
# Each case takes the CA kind: certinext or sslstore.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273

cert_section() {
	echo "[cert:$1]"
	echo "ca = sim"
	echo "key = pkcs11:token=edge;object=$1?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
	echo "key_type = ec-p256"
	echo "dns = $1.example.com"
	echo "cert_file = $WORK/tls/$1.pem"
	echo "rotate_key = yes"
	echo
}

# setup KIND [SCENARIO] — token, simulator, [cert:web], [cert:api], [cert:spare]
setup() {
	KIND=$1
	t_token_and_sim "$KIND" "$PIN" "${2:-}"
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo "wait = 60s"
		echo
		t_ca_section "$KIND"
		cert_section web
		cert_section api
		cert_section spare
	} >"$WORK/p.conf"
}

p11e() { "$P11ENROLL" -c "$WORK/p.conf" "$@"; }

# sim_force ORDER-ID STATE — pending|revoked|expired at the simulator.
sim_force() {
	local body
	case "$KIND:$2" in
	certinext:revoked) body='{"certificateStatusId": "22"}' ;;
	certinext:expired) body='{"certificateStatusId": "12"}' ;;
	sslstore:revoked) body='{"MajorStatus": "Cancelled"}' ;;
	sslstore:expired) body='{"MajorStatus": "Active", "expiry_in_days": -1}' ;;
	esac
	curl -s --cacert "$SIM_ROOT" -X POST -H 'Content-Type: application/json' -d "$body" \
		"$SIM_BASE/_sim/order/$1" >/dev/null || t_fail "cannot force order $1"
}

json_get() { "$PYTHON" -c "import json,sys; d=json.load(open('$WORK/out')); print($1)"; }

cls_of() { json_get "[o['class'] for o in d['orders'] if o['order_id']=='$1'][0]"; }
action_of() { json_get "[o['action'] for o in d['orders'] if o['order_id']=='$1'][0]"; }

# Installed, in progress, unused (its journal lost), pending with no
# journal; the offered cancel and revoke then clear the attention.
case_inventory() {
	setup "$KIND_ARG"
	t_expect 0 p11e enroll web
	t_expect 0 p11e enroll spare
	local web_order spare_order api_order
	web_order=$(t_journal 'j["order"]["order_id"]' web)
	spare_order=$(t_journal 'j["order"]["order_id"]' spare)
	rm "$WORK/state/spare.json"
	t_sim_scenario '{"pending_polls": 1000}'
	t_expect 3 p11e enroll api --wait 0s
	api_order=$(t_journal 'j["order"]["order_id"]' api)
	t_expect 1 p11e reconcile --json
	[ "$(cls_of "$web_order")" = installed ] || t_fail "web: $(cls_of "$web_order")"
	[ "$(cls_of "$api_order")" = in-progress ] || t_fail "api: $(cls_of "$api_order")"
	[ "$(cls_of "$spare_order")" = unused ] || t_fail "spare: $(cls_of "$spare_order")"
	action_of "$spare_order" | grep -qF "p11enroll revoke --ca sim --order $spare_order" ||
		t_fail "no revoke offered: $(action_of "$spare_order")"
	[ "$(json_get 'd["ok"]')" = False ] || t_fail "ok is not false"
	rm "$WORK/state/api.json"
	t_expect 1 p11e reconcile --full --prometheus "$WORK/r.prom"
	t_contains "$WORK/out" "orphan-pending"
	t_contains "$WORK/out" "p11enroll cancel --ca sim --order $api_order"
	t_contains "$WORK/out" "ATTENTION"
	t_contains "$WORK/err" "need attention"
	t_contains "$WORK/r.prom" 'p11enroll_reconcile_orders{ca="sim",class="unused"} 1'
	t_contains "$WORK/r.prom" 'p11enroll_reconcile_orders{ca="sim",class="orphan-pending"} 1'
	t_contains "$WORK/r.prom" 'p11enroll_reconcile_orders{ca="sim",class="installed"} 1'
	t_expect 0 p11e cancel --ca sim --order "$api_order"
	t_expect 0 p11e revoke --ca sim --order "$spare_order"
	t_expect 0 p11e reconcile --full --json
	[ "$(cls_of "$api_order")" = ended ] || t_fail "api after cancel: $(cls_of "$api_order")"
	[ "$(cls_of "$spare_order")" = ended ] || t_fail "spare after revoke: $(cls_of "$spare_order")"
}

# An order of a certificate no longer configured is found by its tag alone.
case_tag_only() {
	setup "$KIND_ARG" "$([ "$KIND_ARG" = certinext ] && echo '{"report_tags": true}')"
	t_expect 0 p11e enroll spare
	local spare_order
	spare_order=$(t_journal 'j["order"]["order_id"]' spare)
	sed -i '/^\[cert:spare\]/,/^$/d' "$WORK/p.conf"
	t_expect 1 p11e reconcile --json
	[ "$(cls_of "$spare_order")" = unused ] || t_fail "spare: $(cls_of "$spare_order")"
	[ "$(json_get "[o['placed_by_p11enroll'] for o in d['orders'] if o['order_id']=='$spare_order'][0]")" = True ] ||
		t_fail "the tag was not read"
}

# Revoked (and expired) at the CA while installed here.
case_revoked_installed() {
	setup "$KIND_ARG"
	t_expect 0 p11e enroll web
	local web_order
	web_order=$(t_journal 'j["order"]["order_id"]' web)
	t_expect 0 p11e reconcile
	t_contains "$WORK/out" "1 installed"
	sim_force "$web_order" revoked
	t_expect 1 p11e reconcile --json
	[ "$(cls_of "$web_order")" = revoked-installed ] || t_fail "web: $(cls_of "$web_order")"
	action_of "$web_order" | grep -qF "p11enroll renew --force web" || t_fail "no renew offered"
	t_expect 0 p11e renew --force web
	t_expect 0 p11e reconcile --full --json
	[ "$(cls_of "$web_order")" = ended ] || t_fail "old web order: $(cls_of "$web_order")"
	[ "$(json_get 'd["counts"]["installed"]')" = 1 ] || t_fail "the renewed order is not installed"
}

# Expired orders are skipped unless --include-expired (CERTInext status 12).
case_expired() {
	setup certinext
	t_expect 0 p11e enroll web
	local web_order
	web_order=$(t_journal 'j["order"]["order_id"]' web)
	sim_force "$web_order" expired
	t_expect 0 p11e reconcile --full --json
	[ "$(json_get 'len(d["orders"])')" = 0 ] || t_fail "an expired order was listed"
	t_expect 1 p11e reconcile --full --include-expired --json
	[ "$(cls_of "$web_order")" = expired-installed ] || t_fail "web: $(cls_of "$web_order")"
}

# Incremental from the last reconcile (state_dir), or everything with --full.
case_incremental() {
	setup certinext
	t_expect 0 p11e enroll web
	t_expect 0 p11e reconcile
	[ -s "$WORK/state/reconcile-sim.json" ] || t_fail "no reconcile state"
	[ "$(t_sim_stat '"orderDateFrom" in s["last_request"]["GetOrderReport"]["searchCriteria"]')" = False ] ||
		t_fail "the first reconcile was not full"
	t_expect 0 p11e reconcile
	[ "$(t_sim_stat 's["last_request"]["GetOrderReport"]["searchCriteria"]["orderDateFrom"]')" = \
		"$(date -u -d yesterday +%Y-%m-%d)" ] || t_fail "the second reconcile did not start from the last one less a day"
	t_expect 0 p11e reconcile --full
	[ "$(t_sim_stat '"orderDateFrom" in s["last_request"]["GetOrderReport"]["searchCriteria"]')" = False ] ||
		t_fail "--full sent a start date"
	t_expect 0 p11e reconcile --since 2026-01-02
	[ "$(t_sim_stat 's["last_request"]["GetOrderReport"]["searchCriteria"]["orderDateFrom"]')" = 2026-01-02 ] ||
		t_fail "--since was not sent"
	t_expect 2 p11e reconcile --since yesterday
	t_expect 2 p11e reconcile nosuchca
	t_contains "$WORK/err" "no [ca:nosuchca]"
}

# cancel NAME: the journal's pending order is withdrawn at the CA; the next
# enroll orders again with a new key. An issued order cannot be cancelled.
case_cancel() {
	setup "$KIND_ARG" '{"pending_polls": 1000}'
	t_expect 3 p11e enroll web --wait 0s
	local order key
	order=$(t_journal 'j["order"]["order_id"]' web)
	key=$(t_journal 'j["key"]["id"]' web)
	t_expect 1 p11e cancel api
	t_contains "$WORK/err" "no pending order to cancel"
	t_expect 0 p11e cancel web
	t_contains "$WORK/out" "$order"
	[ "$(t_journal 'j["state"]' web)" = rejected ] || t_fail "state $(t_journal 'j["state"]' web)"
	if [ "$KIND_ARG" = certinext ]; then
		[ "$(t_sim_stat "[o['status'] for o in s['orders'] if o['orderNumber']=='$order'][0]")" = 13 ] ||
			t_fail "the sim did not cancel order $order"
	fi
	t_sim_scenario '{"pending_polls": 0}'
	t_expect 0 p11e enroll web
	[ "$(t_journal 'j["order"]["order_id"]' web)" != "$order" ] || t_fail "the cancelled order was followed"
	[ "$(t_journal 'j["key"]["id"]' web)" != "$key" ] || t_fail "the key of the cancelled order was reused"
	t_expect 4 p11e cancel --ca sim --order "$(t_journal 'j["order"]["order_id"]' web)"
	t_contains "$WORK/err" "revoke"
	t_expect 2 p11e cancel web --ca sim
}

# The SSL Store: revoke --no-refund (certificaterevokerequest) keeps the
# order paid; --refund-status reads refundstatus after a refund request.
case_no_refund() {
	setup sslstore '{"cancelled_after_refund": -1}'
	t_expect 0 p11e enroll web
	t_expect 0 p11e enroll api
	local web_order
	web_order=$(t_journal 'j["order"]["order_id"]' web)
	t_expect 0 p11e revoke web --no-refund
	t_contains "$WORK/out" "without a refund"
	[ "$(t_sim_stat "[(o['MajorStatus'], o['MinorStatus']) for o in s['orders'] if o['TheSSLStoreOrderID']=='$web_order'][0]")" = \
		"('Cancelled', 'REVOKED')" ] || t_fail "the sim did not revoke order $web_order"
	[ "$(t_sim_stat 's["calls"].get("/rest/order/refundrequest", 0)')" = 0 ] || t_fail "a refund was asked for"
	[ "$(t_journal 'j["revocation"]["refund"]' web)" = no ] || t_fail "journal does not say no refund"
	t_expect 0 p11e revoke web --no-refund
	t_contains "$WORK/out" "already"
	[ "$(t_sim_stat 's["calls"]["/rest/order/certificaterevokerequest"]')" = 1 ] || t_fail "a second revocation was sent"
	t_expect 1 p11e revoke web --refund-status
	t_contains "$WORK/err" "no refund was asked for"
	t_expect 0 p11e revoke api
	t_contains "$WORK/out" "refund request"
	t_expect 0 p11e revoke api --refund-status
	t_contains "$WORK/out" "not approved yet"
	[ "$(t_journal 'j["revocation"]["refund_status"]' api)" = requested ] || t_fail "refund status not journalled"
	curl -s --cacert "$SIM_ROOT" -X POST -H 'Content-Type: application/json' -d '{"isRefundApproved": true}' \
		"$SIM_BASE/_sim/order/$(t_journal 'j["order"]["order_id"]' api)" >/dev/null
	t_expect 0 p11e revoke api --refund-status
	t_contains "$WORK/out" "approved"
	t_not_contains "$WORK/out" "not approved"
	t_expect 2 p11e revoke api --no-refund --refund-status
}

# CERTInext refunds nothing on revocation: --no-refund is its plain revoke,
# --refund-status is a configuration error.
case_no_refund_certinext() {
	setup certinext
	t_expect 0 p11e enroll web
	t_expect 2 p11e revoke web --refund-status
	t_contains "$WORK/err" "refunds nothing on revocation"
	t_expect 0 p11e revoke web --no-refund
	[ "$(t_sim_stat 's["calls"]["RevokeOrder"]')" = 1 ] || t_fail "RevokeOrder was not called"
}

# enroll --dry-run: the CA checks the order (The SSL Store /order/validate);
# no key, no journal, no order. CERTInext has no such call and says so.
case_dry_run() {
	setup "$KIND_ARG"
	t_expect 0 p11e enroll web --dry-run
	[ ! -e "$WORK/state/web.json" ] || t_fail "a journal was written"
	[ -z "$(t_token_objects edge)" ] || t_fail "the token was changed: $(t_token_objects edge)"
	[ "$(t_sim_stat 's["orders_placed"]')" = 0 ] || t_fail "an order was placed"
	if [ "$KIND_ARG" = certinext ]; then
		t_contains "$WORK/out" "has no dry-run call"
		return 0
	fi
	t_contains "$WORK/out" "The SSL Store accepts the order"
	[ "$(t_sim_stat 's["calls"]["/rest/order/validate"]')" = 1 ] || t_fail "validate was not called"
	t_sim_scenario '{"validity_months": [24]}'
	t_expect 4 p11e enroll web --dry-run
	t_contains "$WORK/err" "Invalid ValidityPeriod"
	t_contains "$WORK/err" "dry run"
	[ "$(t_sim_stat 's["orders_placed"]')" = 0 ] || t_fail "an order was placed"
}

# CERTInext DCV done by the operator: an HTTP file (method 2) or an e-mail
# to an approver (method 3), chosen per certificate; the instructions are
# shown as for DNS, VerifyDcv asks the CA to check.
dcv_case() {
	setup certinext '{"dcv_required": true}'
	sed -i "/^\[cert:web\]/,/^\$/ s|^ca = sim\$|ca = sim\ndcv_method = $1${2:+\ndcv_email = $2}|" "$WORK/p.conf"
	t_expect 0 p11e enroll web --wait 60s
	[ "$(t_journal 'j["state"]' web)" = monitoring ] || t_fail "state $(t_journal 'j["state"]' web)"
}
case_dcv_http() {
	dcv_case http
	t_contains "$WORK/err" "FILE http://web.example.com/.well-known/pki-validation/"
	[ "$(t_sim_stat 's["last_request"]["VerifyDcv"]["dcvDetails"]["dcvMethod"]')" = 2 ] || t_fail "VerifyDcv was not method 2"
	[ "$(t_sim_stat 's["last_request"]["GetDcv"]["dcvDetails"]["dcvMethod"]')" = 2 ] || t_fail "GetDcv was not method 2"
}
case_dcv_email() {
	dcv_case email hostmaster@web.example.com
	t_contains "$WORK/err" "EMAIL hostmaster@web.example.com"
	[ "$(t_sim_stat 's["last_request"]["VerifyDcv"]["dcvDetails"]["dcvEmail"]')" = hostmaster@web.example.com ] ||
		t_fail "VerifyDcv did not name the approver"
	[ "$(t_sim_stat 's["calls"]["VerifyDcv"]')" = 1 ] || t_fail "the approval e-mail was asked for more than once"
}
case_dcv_config() {
	setup certinext
	sed -i "/^\[cert:web\]/,/^\$/ s|^ca = sim\$|ca = sim\ndcv_method = carrier-pigeon|" "$WORK/p.conf"
	t_expect 2 p11e status
	t_contains "$WORK/err" "dcv_method = carrier-pigeon: write dns, http or email"
}

# The SSL Store DCV by a file over HTTPS (HTTPSFileAuthDVIndicator).
case_dcv_https() {
	setup sslstore '{"dcv_required": true}'
	sed -i "/^\[cert:web\]/,/^\$/ s|^ca = sim\$|ca = sim\nhttps_file_auth_dcv = yes|" "$WORK/p.conf"
	t_expect 3 p11e enroll web --wait 2s
	t_contains "$WORK/err" "file https://NAME/.well-known/pki-validation/"
	[ "$(t_sim_stat 's["last_request"]["/rest/order/neworder"]["HTTPSFileAuthDVIndicator"]')" = True ] ||
		t_fail "HTTPSFileAuthDVIndicator was not sent"
	[ "$(t_sim_stat 's["last_request"]["/rest/order/neworder"]["FileAuthDVIndicator"]')" = False ] ||
		t_fail "FileAuthDVIndicator was sent too"
	sed -i "s|^https_file_auth_dcv = yes|https_file_auth_dcv = yes\nfile_auth_dcv = yes|" "$WORK/p.conf"
	t_expect 2 p11e enroll web --dry-run
	t_contains "$WORK/err" "choose one"
}

# The SSL Store AutoWWW: a single-domain product also covers the www twin;
# a multi-domain product does not offer it (the dry run says so first).
case_auto_www() {
	setup sslstore
	sed -i "/^\[cert:web\]/,/^\$/ s|^ca = sim\$|ca = sim\nauto_www = yes|" "$WORK/p.conf"
	t_expect 0 p11e enroll web
	[ "$(t_sim_stat 's["last_request"]["/rest/order/neworder"]["AutoWWW"]')" = True ] || t_fail "AutoWWW was not sent"
	openssl x509 -in "$WORK/tls/web.pem" -noout -ext subjectAltName | grep -qF "DNS:www.web.example.com" ||
		t_fail "the certificate does not cover the www twin"
	[ "$(t_sim_stat '"AutoWWW" in s["last_request"]["/rest/order/neworder"]')" = True ] || t_fail "no AutoWWW"
	sed -i "/^\[cert:api\]/,/^\$/ s|^ca = sim\$|ca = sim\nproduct = positivemdcssl\nauto_www = yes|" "$WORK/p.conf"
	t_expect 4 p11e enroll api --dry-run
	t_contains "$WORK/err" "AutoWWW is only offered for single-domain products"
	t_expect 0 p11e enroll spare
	[ "$(t_sim_stat '"AutoWWW" in s["last_request"]["/rest/order/neworder"]')" = False ] ||
		t_fail "AutoWWW sent without auto_www"
}

KIND_ARG=${2:-certinext}
t_run "$1"
