#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Integration tests of the sslstore provider against the SSL Store simulator.
# The provider is driven through tests/sslstore/ssdriver.c (not the CLI).
#   sslstore.sh CASE SSDRIVER
. "$P11E_SRCDIR/tests/lib.sh"

SSDRIVER=${2:?path of ssdriver}
TOKEN=sim-auth-token-0001

# ---- plumbing ------------------------------------------------------------------

# ss_start [SCENARIO-JSON] — the simulator and a [ca:store] configuration
ss_start() {
	t_need openssl curl
	if [ -n "${1:-}" ]; then
		printf '%s\n' "$1" >"$WORK/scenario.json"
		t_sim_start sslstore sim --scenario "$WORK/scenario.json"
	else
		t_sim_start sslstore sim
	fi
	CONF=$WORK/store.conf
	cat >"$CONF" <<EOF
type = sslstore
api_url = $SIM_URL
partner_code = 12345678
auth_token_file = $SIM_DIR/auth.token
ca_bundle = $SIM_ROOT
default_product = positivessl
approver_email = admin@example.com
admin_email = pki@example.com
validity = 365d
renewal_window = 30d
poll_interval = 1s
timeout = 5s
connect_timeout = 2s
max_retries = 2
max_retry_time = 10s
EOF
	csr www.example.com "DNS:www.example.com,DNS:example.com"
}

# csr CN SAN [NAME] — key NAME.key and CSR NAME.csr (default: csr)
csr() {
	local name=${3:-csr}
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/$name.key" \
		-subj "/CN=$1" -addext "subjectAltName=$2" -out "$WORK/$name.csr" 2>/dev/null ||
		t_fail "openssl cannot make a CSR"
}

# conf_with FILE [key=value…] — a copy of $CONF with a [cert] section
conf_with() {
	local out=$1
	shift
	cp "$CONF" "$out"
	echo "[cert]" >>"$out"
	local kv
	for kv in "$@"; do echo "$kv" >>"$out"; done
}

drv() { "$SSDRIVER" "$@"; }

# val KEY — a key=value line of the last driver output
val() { sed -n "s/^$1=//p" "$WORK/out" | head -1; }

sim_get() { curl -sS --cacert "$SIM_ROOT" "$SIM_URL$1"; }
sim_post() { curl -sS --cacert "$SIM_ROOT" -H 'Content-Type: application/json' -d "$2" "$SIM_URL$1" >/dev/null; }
scenario() { sim_post /_sim/scenario "$1"; }

# stat PYEXPR — evaluates PYEXPR on the stats object `s`
sstat() {
	sim_get /_sim/stats | "$PYTHON" -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

t_eq() { [ "$1" = "$2" ] || t_fail "${3:-value}: got '$1', expected '$2'"; }

place() { # place ID [driver args…]
	local id=$1
	shift
	drv "${CONF_USE:-$CONF}" place --id "$id" --csr "$WORK/csr.csr" --cn www.example.com \
		--dns "www.example.com,example.com" "$@"
}

# ---- cases ---------------------------------------------------------------------

case_check() {
	ss_start
	t_expect 0 drv "$CONF" check
	t_contains "$WORK/out" "accepts the credentials of partner 12345678"
	(umask 077; echo "wrong-token-0000" >"$WORK/bad.token")
	sed "s|^auth_token_file = .*|auth_token_file = $WORK/bad.token|" "$CONF" >"$WORK/bad.conf"
	t_expect 2 drv "$WORK/bad.conf" check
	t_contains "$WORK/out" "Invalid Partner Code or Auth Token"
	t_contains "$WORK/out" "auth_token_file"
	t_not_contains "$WORK/out" "wrong-token-0000"
	t_not_contains "$WORK/err" "wrong-token-0000"
}

case_products() {
	ss_start
	t_expect 0 drv "$CONF" products
	t_contains "$WORK/out" "product=positivessl|PositiveSSL|Sectigo DV"
	t_contains "$WORK/out" "product=digi_securesite_ev_flex|Secure Site EV|DigiCert EV Flex"
}

# One new order of each product family; each arrives pending with the
# members its family needs.
case_families() {
	ss_start
	local extra=("org_name=Example Corp" "org_address=1 Example Way" "org_city=Austin"
		"org_region=TX" "org_postal_code=78701" "org_country=us" "org_phone=+1 512 555 0100"
		"admin_first_name=Sam" "admin_last_name=Lee" "admin_phone=+1 512 555 0101"
		"admin_title=Counsel" "org_jurisdiction_country=US" "tech_email=tech@example.com"
		"org_id=204518")
	local n=0 p
	for p in positivessl sectigoovssl positiveevssl digi_sslwebserver_flex digi_securesite_ev_flex \
		digi_rapidssl digi_sslwebserver_flex-EO; do
		n=$((n + 1))
		conf_with "$WORK/$p.conf" "product=$p" "${extra[@]}"
		CONF_USE=$WORK/$p.conf t_expect 3 place "fam-$p"
		t_contains "$WORK/out" "outcome=pending"
		t_eq "$(sstat 's["orders_placed"]')" "$n" "orders after $p"
		t_eq "$(sstat 's["orders"][-1]["ProductCode"]')" "${p%-EO}" "product of order $n"
		t_eq "$(sstat 's["orders"][-1]["CustomOrderID"]')" "p11e-fam-${p//_/-}" "CustomOrderID"
		{ [ -n "$(val order_id)" ] && [ -n "$(val request_id)" ]; } || t_fail "no order ids for $p"
	done
	# what went over the wire for the last one (-EO)
	t_eq "$(sstat 's["last_request"]["/rest/order/neworder"]["TSSOrganizationId"]')" 204518 "TSSOrganizationId"
	t_eq "$(sstat 's["last_request"]["/rest/order/neworder"]["ValidityPeriod"]')" 12 "months"
	t_eq "$(sstat '"ApproverEmail" in s["last_request"]["/rest/order/neworder"]')" False "EO approver"
	t_eq "$(sstat 's["last_request"]["/rest/order/neworder"]["AuthRequest"]["AuthToken"]')" "<redacted>"
}

case_family_missing() {
	ss_start
	conf_with "$WORK/ov.conf" "product=sectigoovssl" "org_name=Example Corp"
	CONF_USE=$WORK/ov.conf t_expect 2 place ov1
	t_contains "$WORK/out" "outcome=misconfigured"
	t_contains "$WORK/out" "needs org_address, org_region, org_postal_code, org_country, org_phone"
	t_contains "$WORK/out" "[cert:web]"
	t_eq "$(sstat 's["orders_placed"]')" 0 "orders"
	t_eq "$(sstat 's["calls"].get("/rest/order/neworder", 0)')" 0 "neworder calls"
}

# Approver e-mails are checked against /order/approverlist before placing.
case_approver() {
	ss_start
	csr www.example.com "DNS:www.example.com,DNS:shop.example.org"
	# Sectigo: example.org is not covered
	t_expect 2 drv "$CONF" place --id ap1 --csr "$WORK/csr.csr" --cn www.example.com \
		--dns "www.example.com,shop.example.org"
	t_contains "$WORK/out" "no approver_email given is valid for shop.example.org"
	t_contains "$WORK/out" "admin@example.org, administrator@example.org"
	t_contains "$WORK/out" "store.conf:"
	# a stray address valid for no name
	conf_with "$WORK/a2.conf" "approver_email=admin@example.com, ceo@example.com, admin@example.org"
	CONF_USE=$WORK/a2.conf t_expect 2 drv "$WORK/a2.conf" place --id ap2 --csr "$WORK/csr.csr" \
		--cn www.example.com --dns "www.example.com,shop.example.org"
	t_contains "$WORK/out" "ceo@example.com is not valid"
	# DigiCert: exactly one address, valid for the first name
	conf_with "$WORK/d1.conf" "product=digi_rapidssl" "tech_email=t@example.com" \
		"approver_email=admin@example.com,webmaster@example.com"
	t_expect 2 drv "$WORK/d1.conf" place --id ap3 --csr "$WORK/csr.csr" --cn www.example.com \
		--dns "www.example.com,shop.example.org"
	t_contains "$WORK/out" "exactly one approver_email"
	conf_with "$WORK/d2.conf" "product=digi_rapidssl" "tech_email=t@example.com" \
		"approver_email=admin@example.org"
	t_expect 2 drv "$WORK/d2.conf" place --id ap4 --csr "$WORK/csr.csr" --cn www.example.com \
		--dns "www.example.com,shop.example.org"
	t_contains "$WORK/out" "admin@example.org is not valid for www.example.com; valid addresses: admin@example.com"
	t_eq "$(sstat 's["orders_placed"]')" 0 "orders after refusals"
	t_eq "$(sstat 's["calls"].get("/rest/order/neworder", 0)')" 0 "neworder calls"
	# both rules satisfied: placed (upper case and blanks do not matter)
	conf_with "$WORK/ok.conf" "product=positivemdcssl" \
		"approver_email= Admin@Example.com , webmaster@example.org"
	t_expect 3 drv "$WORK/ok.conf" place --id ap5 --csr "$WORK/csr.csr" --cn www.example.com \
		--dns "www.example.com,shop.example.org"
	t_eq "$(sstat 's["orders_placed"]')" 1 "orders"
	t_eq "$(sstat 's["last_request"]["/rest/order/neworder"]["ApproverEmail"]')" \
		"admin@example.com,webmaster@example.org"
	# no approver at all: say which ones are valid
	sed '/^approver_email/d' "$CONF" >"$WORK/none.conf"
	t_expect 2 drv "$WORK/none.conf" place --id ap6 --csr "$WORK/csr.csr" --cn www.example.com \
		--dns "www.example.com"
	t_contains "$WORK/out" "approver_email is not set; valid for www.example.com: admin@example.com"
}

case_eo_org() {
	ss_start
	conf_with "$WORK/eo.conf" "product=digi_ssl_basic-EO" "org_id=204519"
	t_expect 2 drv "$WORK/eo.conf" place --id eo1 --csr "$WORK/csr.csr" --cn www.example.com \
		--dns www.example.com
	t_contains "$WORK/out" "org_id 204519 is not active (status pending)"
	t_contains "$WORK/out" "Example Corp (204518)"
	t_contains "$WORK/out" "eo.conf:"
	conf_with "$WORK/eo2.conf" "product=digi_ssl_basic-EO"
	t_expect 2 drv "$WORK/eo2.conf" place --id eo2 --csr "$WORK/csr.csr" --cn www.example.com \
		--dns www.example.com
	t_contains "$WORK/out" "needs org_id"
	t_eq "$(sstat 's["orders_placed"]')" 0 "orders"
	conf_with "$WORK/eo3.conf" "product=digi_ssl_basic-EO" "org_id=204518"
	t_expect 3 drv "$WORK/eo3.conf" place --id eo3 --csr "$WORK/csr.csr" --cn www.example.com \
		--dns www.example.com
	t_eq "$(sstat 's["calls"].get("/rest/order/approverlist", 0)')" 0 "approver lists for -EO"
}

# Pending for two polls, then issued; the certificates come back as the CA
# sent them and the chain module (ssdriver --csr, as the agent) puts the leaf first.
case_lifecycle() {
	ss_start '{"pending_polls": 2}'
	t_expect 3 place life1
	local oid pid
	oid=$(val order_id)
	pid=$(val request_id)
	t_expect 3 drv "$CONF" poll --order "$oid" --request "$pid"
	t_contains "$WORK/out" "status=Pending"
	t_contains "$WORK/out" "approver e-mail"
	t_expect 3 drv "$CONF" poll --order "$oid" --request "$pid"
	t_expect 0 drv "$CONF" poll --order "$oid" --request "$pid"
	t_contains "$WORK/out" "outcome=issued"
	t_expect 0 drv "$CONF" fetch --order "$oid" --request "$pid" --csr "$WORK/csr.csr" \
		--out "$WORK/chain.pem"
	t_eq "$(grep -c 'BEGIN CERTIFICATE' "$WORK/chain.pem")" 2 "certificates in chain"
	openssl x509 -in "$WORK/chain.pem" -noout -subject | grep -q "www.example.com" ||
		t_fail "the first certificate is not the leaf"
	t_eq "$(openssl x509 -in "$WORK/chain.pem" -noout -pubkey | openssl sha256)" \
		"$(openssl pkey -in "$WORK/csr.key" -pubout | openssl sha256)" "leaf key"
	local serial
	serial=$(sstat 's["orders"][0]["SerialNumber"]')
	t_eq "$(val serial | tr a-f A-F | sed 's/^0*//')" "$serial" "serial"
	# with the root, listed first: still leaf, issuer, root
	scenario '{"download_root": true, "download_order": "root_first"}'
	t_expect 0 drv "$CONF" fetch --order "$oid" --csr "$WORK/csr.csr" --out "$WORK/chain2.pem"
	t_eq "$(grep -c 'BEGIN CERTIFICATE' "$WORK/chain2.pem")" 3 "certificates with root"
	openssl crl2pkcs7 -nocrl -certfile "$WORK/chain2.pem" | openssl pkcs7 -print_certs -noout |
		sed -n 's/^subject=.*CN *= *//p' >"$WORK/order.txt"
	t_eq "$(tr '\n' '|' <"$WORK/order.txt")" \
		"www.example.com|Simulated SSL Store Issuing CA|Simulated SSL Store Root|" "chain order"
}

# Inside renewal_window → a renewal (new order linked to the old);
# outside → a reissue on the same order.
case_renewal_vs_reissue() {
	ss_start '{"active_immediately": true}'
	t_expect 0 place first
	local oid pid
	oid=$(val order_id)
	pid=$(val request_id)
	csr www.example.com "DNS:www.example.com,DNS:example.com" csr
	# the order's plan ends in 10 days, window 30d: renewal (the certificate's
	# own end does not matter)
	sim_post "/_sim/order/$oid" '{"expiry_in_days": 10}'
	t_expect 0 place second --prev-order "$oid" --prev-request "$pid" --prev-not-after-days 200
	t_eq "$(sstat 's["orders_placed"]')" 2 "orders after renewal"
	t_eq "$(sstat 's["orders"][1]["IsRenewal"]')" True "renewal flag"
	t_eq "$(sstat 's["orders"][1]["RelatedOrderID"]')" "$oid" "related order"
	[ "$(val order_id)" != "$oid" ] || t_fail "a renewal must be a new order"
	# 200 days left on the plan, the certificate ends in 5: reissue on the
	# same order, new PartnerOrderID (a renewal would be a second paid order)
	sim_post "/_sim/order/$oid" '{"expiry_in_days": 200}'
	csr www.example.com "DNS:www.example.com,DNS:example.com" csr
	t_expect 0 place third --prev-order "$oid" --prev-request "$pid" --prev-not-after-days 5
	t_eq "$(sstat 's["orders_placed"]')" 2 "orders after reissue"
	t_eq "$(sstat 's["orders"][0]["reissues"]')" 1 "reissues"
	t_eq "$(val order_id)" "$oid" "reissue keeps the order id"
	[ "$(val request_id)" != "$pid" ] || t_fail "a reissue must get a new PartnerOrderID"
	t_eq "$(sstat 's["calls"].get("/rest/order/reissue", 0)')" 1 "reissue calls"
	t_expect 0 drv "$CONF" fetch --order "$oid" --csr "$WORK/csr.csr" --out "$WORK/chain.pem"
	t_eq "$(openssl x509 -in "$WORK/chain.pem" -noout -pubkey | openssl sha256)" \
		"$(openssl pkey -in "$WORK/csr.key" -pubout | openssl sha256)" "reissued leaf key"
	# a reissue that is still being validated is followed, not asked again
	scenario '{"active_immediately": null, "pending_polls": 5}'
	local pid2
	pid2=$(val request_id)
	t_expect 3 place fourth --prev-order "$oid" --prev-request "$pid2" --prev-not-after-days 200
	t_expect 3 place fifth --prev-order "$oid" --prev-request "$(val request_id)" --prev-not-after-days 200
	t_contains "$WORK/out" "already in progress"
	t_eq "$(sstat 's["orders"][0]["reissues"]')" 2 "reissues after a repeat"
}

case_refund() {
	ss_start '{"active_immediately": true, "cancelled_after_refund": 1}'
	t_expect 0 place r1
	local oid
	oid=$(val order_id)
	t_expect 0 drv "$CONF" revoke --order "$oid" --reason keyCompromise
	t_contains "$WORK/out" "this is a refund request"
	t_eq "$(sstat 's["orders"][0]["RefundRequestID"] != ""')" True "refund id"
	t_eq "$(sstat 's["last_request"]["/rest/order/refundrequest"]["RefundReason"]')" \
		"keyCompromise: revocation requested by p11enroll"
	# asking again is fine and says so, and sends nothing (status read first)
	t_expect 0 drv "$CONF" revoke --order "$oid"
	t_contains "$WORK/out" "a refund request is already filed"
	t_eq "$(sstat 's["calls"]["/rest/order/refundrequest"]')" 1 "refund requests sent"
	# once approved the order is cancelled: polling reports it
	t_expect 4 drv "$CONF" poll --order "$oid"
	t_expect 4 drv "$CONF" poll --order "$oid"
	t_contains "$WORK/out" "status=Cancelled/REFUNDED"
	t_contains "$WORK/out" "refund request"
	t_expect 0 drv "$CONF" revoke --order "$oid"
	t_contains "$WORK/out" "already cancelled"
	t_eq "$(sstat 's["calls"]["/rest/order/refundrequest"]')" 1 "refund requests sent"
	t_expect 7 drv "$CONF" revoke --order 999999
}

case_query_paging() {
	ss_start
	echo "page_size = 2" >>"$CONF"
	local i
	for i in 1 2 3 4 5; do
		t_expect 3 place "q$i"
	done
	# page 2 fails with a 503 twice: retried as the same page, not skipped
	scenario '{"query_fail_pages": [2, 2, 2]}'
	t_expect 0 drv "$CONF" list-all
	t_contains "$WORK/out" "total=5"
	t_eq "$(grep -c '^row=' "$WORK/out")" 5 "rows"
	t_eq "$(grep '^row=' "$WORK/out" | cut -d'|' -f1 | sort -u | wc -l)" 5 "distinct orders"
	t_contains "$WORK/out" "page=3 pages=3 n=1"
	t_eq "$(sstat 's["calls"]["/rest/order/query"]')" 6 "query calls (3 pages + 3 retries)"
	# since the future: nothing
	t_expect 0 drv "$CONF" list --since "$(($(date +%s) + 86400))"
	t_contains "$WORK/out" "total=0"
	t_contains "$WORK/out" "pages=0"
}

# A placement whose answer is lost is UNKNOWN, never retried, and found
# again through its CustomOrderID: one order in the end.
case_unknown_5xx() {
	ss_start '{"order_5xx_after_create": 1, "pending_polls": 5}'
	t_expect 6 place u1
	t_contains "$WORK/out" "outcome=unknown"
	t_eq "$(sstat 's["orders_placed"]')" 1 "orders"
	t_eq "$(sstat 's["calls"]["/rest/order/neworder"]')" 1 "neworder calls (no blind retry)"
	t_expect 3 drv "$CONF" reconcile --id u1
	t_contains "$WORK/out" "outcome=pending"
	t_eq "$(val order_id)" "$(sstat 's["orders"][0]["TheSSLStoreOrderID"]')" "reconciled id"
	t_eq "$(val request_id)" "$(sstat 's["orders"][0]["PartnerOrderID"]')" "reconciled partner id"
	t_eq "$(curl -sS --cacert "$SIM_ROOT" "$SIM_URL/_sim/stats" |
		"$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["orders_placed"])')" 1 \
		"orders after reconcile"
}

case_unknown_drop() {
	ss_start '{"drop_after_create": 1, "pending_polls": 5}'
	t_expect 6 place d1
	t_eq "$(sstat 's["orders_placed"]')" 1 "orders"
	# placing again with the same id (an agent that did not reconcile)
	# follows the existing order instead of paying twice
	t_expect 3 place d1
	t_eq "$(sstat 's["orders_placed"]')" 1 "orders after a repeated place"
	t_eq "$(val order_id)" "$(sstat 's["orders"][0]["TheSSLStoreOrderID"]')" "followed order"
	t_expect 3 drv "$CONF" reconcile --id d1
}

case_reconcile_not_found() {
	ss_start '{"pending_polls": 5}'
	t_expect 3 place other
	t_expect 7 drv "$CONF" reconcile --id never-placed
	t_contains "$WORK/out" "outcome=not-found"
	t_contains "$WORK/out" "p11e-never-placed"
	t_eq "$(sstat 's["orders_placed"]')" 1 "orders"
	# an unknown reissue is found through the changed PartnerOrderID
	scenario '{"active_immediately": true}'
	t_expect 0 place base
	local oid pid
	oid=$(val order_id)
	pid=$(val request_id)
	t_expect 0 place re1 --prev-order "$oid" --prev-request "$pid" --prev-not-after-days 300
	t_expect 0 drv "$CONF" reconcile --id re1-lost --prev-order "$oid" --prev-request "$pid"
	t_eq "$(val order_id)" "$oid" "reconciled reissue"
	[ "$(val request_id)" != "$pid" ] || t_fail "reconcile must report the new PartnerOrderID"
}

case_malformed() {
	ss_start '{"malformed_body": {"endpoints": "neworder"}, "pending_polls": 5}'
	t_expect 6 place m1
	t_contains "$WORK/out" "not JSON"
	t_eq "$(sstat 's["orders_placed"]')" 1 "orders"
	t_expect 3 drv "$CONF" reconcile --id m1
	local oid
	oid=$(val order_id)
	echo "max_response_size = 64k" >>"$CONF"
	scenario '{"oversized_body": {"endpoints": "order/status", "bytes": 200000, "count": -1}}'
	t_expect 1 drv "$CONF" poll --order "$oid"
	t_contains "$WORK/out" "outcome=unreachable"
	scenario '{"oversized_body": null, "malformed_body": {"endpoints": "order/status", "count": -1}}'
	t_expect 1 drv "$CONF" poll --order "$oid"
	scenario '{"malformed_body": null}'
	t_expect 3 drv "$CONF" poll --order "$oid"
}

case_transient() {
	ss_start '{"pending_polls": 5}'
	t_expect 3 place t1
	local oid
	oid=$(val order_id)
	# a 5xx on a poll is retried by the HTTP layer
	scenario '{"http_5xx": {"endpoints": "order/status", "count": 1, "status": 503}}'
	t_expect 3 drv "$CONF" poll --order "$oid"
	t_eq "$(sstat 's["calls"]["/rest/order/status"]')" 2 "status calls"
	# a 5xx that does not go away: unreachable, try later
	scenario '{"http_5xx": {"endpoints": "order/status", "count": -1}}'
	t_expect 1 drv "$CONF" poll --order "$oid"
	t_contains "$WORK/out" "try again later"
	# 429 on a placement: nothing created, not retried blindly
	scenario '{"http_5xx": null, "http_429": {"endpoints": "neworder", "count": -1, "retry_after": 1}}'
	t_expect 1 place t2
	t_contains "$WORK/out" "rate limited"
	t_eq "$(sstat 's["orders_placed"]')" 1 "orders"
	# a 5xx before the order exists is still an unknown outcome for a placement
	scenario '{"http_429": null, "http_5xx": {"endpoints": "neworder", "count": 1}}'
	t_expect 6 place t3
	t_expect 7 drv "$CONF" reconcile --id t3
	# the CA is down: connection refused is unreachable, nothing sent
	sed "s|^api_url = .*|api_url = https://127.0.0.1:1|" "$CONF" >"$WORK/down.conf"
	t_expect 1 drv "$WORK/down.conf" place --id t4 --csr "$WORK/csr.csr" --cn www.example.com \
		--dns www.example.com
}

case_rejected() {
	ss_start '{"reject": {"message": "Vendor returns error:the value of the apprepcountryname argument is invalid!", "code": -9009}}'
	t_expect 4 place rj1
	t_contains "$WORK/out" "outcome=rejected"
	t_contains "$WORK/out" "ca_code=-9009"
	t_contains "$WORK/out" "apprepcountryname argument is invalid"
	t_contains "$WORK/out" "[cert:web]"
	t_eq "$(sstat 's["orders_placed"]')" 0 "orders"
	# vendor rejection after submission shows in the poll
	scenario '{"vendor_reject": {"after_polls": 0}}'
	t_expect 3 place rj2
	t_expect 4 drv "$CONF" poll --order "$(val order_id)"
	t_contains "$WORK/out" "status=Pending/REJECTED"
	t_contains "$WORK/out" "ca_code=-9009"
	t_contains "$WORK/out" "apprepcountryname"
}

# The auth token never shows in debug logs, output or messages.
case_secrets() {
	ss_start '{"order_5xx_after_create": 1, "pending_polls": 5}'
	local all=$WORK/all.log
	: >"$all"
	t_expect 0 drv -v "$CONF" check
	cat "$WORK/out" "$WORK/err" >>"$all"
	grep -q "health/validate" "$WORK/err" || t_fail "no debug output to check"
	t_expect 6 drv -v "$CONF" place --id s1 --csr "$WORK/csr.csr" --cn www.example.com --dns www.example.com
	cat "$WORK/out" "$WORK/err" >>"$all"
	t_expect 3 drv -v "$CONF" reconcile --id s1
	cat "$WORK/out" "$WORK/err" >>"$all"
	t_expect 3 drv -v "$CONF" poll --order "$(val order_id)"
	cat "$WORK/out" "$WORK/err" >>"$all"
	t_expect 0 drv -v "$CONF" list
	cat "$WORK/out" "$WORK/err" >>"$all"
	grep -q "AuthToken" "$all" || t_fail "bodies are not in the debug log"
	t_not_contains "$all" "$TOKEN"
	# and not in what the sim saw in a URL or header
	t_not_contains "$SIM_DIR/stderr.log" "$TOKEN"
}

case_config_errors() {
	ss_start
	local n
	echo "colour = blue" >>"$CONF"
	n=$(wc -l <"$CONF")
	t_expect 2 drv "$CONF" check
	t_contains "$WORK/err" "store.conf:$n: [ca:store] has no key 'colour'"
	sed -i '/^colour/d' "$CONF"
	conf_with "$WORK/c2.conf" "org_country=Germany"
	n=$(wc -l <"$WORK/c2.conf")
	CONF_USE=$WORK/c2.conf t_expect 2 place c2
	t_contains "$WORK/out" "c2.conf:$n: [cert:web] org_country = 'Germany' is not a two-letter"
	chmod 644 "$SIM_DIR/auth.token"
	t_expect 2 drv "$CONF" check
	t_contains "$WORK/err" "store.conf:4"
	t_contains "$WORK/err" "chmod 600"
	chmod 600 "$SIM_DIR/auth.token"
	sed "s|^api_url = .*|api_url = http://wbapi.thesslstore.com|" "$CONF" >"$WORK/c4.conf"
	t_expect 2 drv "$WORK/c4.conf" check
	t_contains "$WORK/err" "c4.conf:2"
	t_eq "$(sstat 's["orders_placed"]')" 0 "orders"
}

case_validity() {
	ss_start
	conf_with "$WORK/v1.conf" "validity=398d"
	CONF_USE=$WORK/v1.conf t_expect 3 place v1
	t_eq "$(sstat 's["last_request"]["/rest/order/neworder"]["ValidityPeriod"]')" 12 "398 days"
	conf_with "$WORK/v2.conf" "validity=730d"
	CONF_USE=$WORK/v2.conf t_expect 3 place v2
	t_eq "$(sstat 's["last_request"]["/rest/order/neworder"]["ValidityPeriod"]')" 24 "730 days"
	conf_with "$WORK/v3.conf" "product=digi_rapidssl" "tech_email=t@example.com" "validity=2190d"
	CONF_USE=$WORK/v3.conf t_expect 3 place v3
	t_eq "$(sstat 's["last_request"]["/rest/order/neworder"]["ValidityPeriod"]')" 72 "DigiCert 2190 days"
	t_eq "$(sstat 's["orders_placed"]')" 3 "orders"
}

t_run "$1"
