#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Enrolment end to end: a real SoftHSM2 token, a CA simulator over HTTPS on
# loopback, the p11enroll command line.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273

# setup CA-KIND KEY-TYPE [SCENARIO-JSON] — token, simulator, $WORK/p.conf
setup() {
	local kind=$1 type=$2 scenario=${3:-}
	t_need openssl curl pkcs11-tool
	t_softhsm_token edge "$PIN"
	if [ -n "$scenario" ]; then
		printf '%s\n' "$scenario" >"$WORK/scenario.json"
		t_sim_start "$kind" sim --scenario "$WORK/scenario.json"
	else
		t_sim_start "$kind" sim
	fi
	SIM_BASE=${SIM_URL%/emSignHub-API}
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo "wait = 60s"
		echo
		echo "[ca:sim]"
		if [ "$kind" = certinext ]; then
			echo "type = certinext"
			echo "api_url = $SIM_URL"
			echo "account_number = 5550001234"
			echo "access_key_file = $SIM_DIR/access.key"
			echo "requestor_name = PKI Automation"
			echo "requestor_email = pki@example.com"
			echo "signer_place = Austin"
			echo "signer_ip = 203.0.113.10"
			echo "default_product = 842"
			echo "poll_interval = 1s"
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
			echo "poll_interval = 1s"
		fi
		echo "ca_bundle = $SIM_ROOT"
		echo "timeout = 10s"
		echo "max_retries = 2"
		echo "max_retry_time = 10s"
		echo
		echo "[cert:web]"
		echo "ca = sim"
		echo "key = pkcs11:token=edge;object=web?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "key_type = $type"
		echo "subject = CN=www.example.com"
		echo "dns = www.example.com"
		echo "cert_file = $WORK/tls/cert.pem"
		echo "chain_file = $WORK/tls/chain.pem"
		echo "fullchain_file = $WORK/tls/fullchain.pem"
		echo "store_in_token = yes"
		echo "post_install = env > $WORK/hook.env"
	} >"$WORK/p.conf"
}

p11e() { "$P11ENROLL" -c "$WORK/p.conf" "$@"; }

# sim_stat PY-EXPR — evaluates EXPR over the simulator's /_sim/stats as `s`.
sim_stat() {
	curl -s --cacert "$SIM_ROOT" "$SIM_BASE/_sim/stats" |
		"$PYTHON" -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

sim_scenario() {
	curl -s --cacert "$SIM_ROOT" -X POST -H 'Content-Type: application/json' \
		-d "$1" "$SIM_BASE/_sim/scenario" >/dev/null || t_fail "cannot set the scenario"
}

journal() {
	"$PYTHON" -c "import json,sys; j=json.load(open('$WORK/state/web.json')); print($1)"
}

orders_placed() { sim_stat 's["orders_placed"]'; }

# Everything a finished enrolment must show.
assert_installed() {
	local f
	[ "$(journal 'j["state"]')" = monitoring ] || t_fail "journal state is $(journal 'j["state"]')"
	for f in cert chain fullchain; do
		[ -s "$WORK/tls/$f.pem" ] || t_fail "$f.pem missing"
	done
	openssl verify -CAfile "$SIM_ROOT" -untrusted "$WORK/tls/chain.pem" "$WORK/tls/cert.pem" >/dev/null ||
		t_fail "openssl verify failed"
	openssl verify -CAfile "$SIM_ROOT" -untrusted "$WORK/tls/fullchain.pem" "$WORK/tls/fullchain.pem" >/dev/null ||
		t_fail "openssl verify of the fullchain failed"
	[ "$(stat -c %a "$WORK/tls/cert.pem")" = 644 ] || t_fail "cert.pem mode is not 0644"
	[ "$(stat -c %a "$WORK/state/web.json")" = 600 ] || t_fail "journal mode is not 0600"
	# The token: the certificate beside the key, same CKA_ID and label.
	local key_id cert_ids
	key_id=$(pkcs11-tool --module "$SOFTHSM_MODULE" --token-label edge --login --pin "$PIN" \
		--list-objects --type privkey 2>/dev/null | awk '/ID:/ {print $2}')
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label edge --list-objects --type cert \
		2>/dev/null >"$WORK/certs.txt"
	awk '/Certificate Object/ { label="" } /label:/ { label=$2 } /ID:/ { print label, $2 }' \
		"$WORK/certs.txt" | grep -qx "web $key_id" ||
		{ cat "$WORK/certs.txt"; t_fail "no certificate object with the key's id $key_id and label web"; }
	[ "$(grep -c 'label: *web$' "$WORK/certs.txt")" = 1 ] || t_fail "not exactly one certificate beside the key"
	[ "$(t_token_objects edge | grep -c '^Private')" = 1 ] || t_fail "not exactly one private key"
	# The journal's serial is the installed leaf's.
	local serial
	serial=$(openssl x509 -in "$WORK/tls/cert.pem" -noout -serial | cut -d= -f2)
	[ "$(journal 'j["cert"]["serial"]')" = "$serial" ] || t_fail "journal serial differs from cert.pem"
}

enroll_ok() {
	setup "$@"
	t_expect 0 p11e enroll web
	assert_installed
	[ "$(orders_placed)" = 1 ] || t_fail "the CA saw $(orders_placed) orders"
	# Again: nothing to do, no second order.
	t_expect 0 p11e enroll web
	t_contains "$WORK/err" "nothing to do"
	[ "$(orders_placed)" = 1 ] || t_fail "a second order was placed"
}

case_certinext_ec_p256() { enroll_ok certinext ec-p256; }
case_certinext_ec_p384() { enroll_ok certinext ec-p384; }
case_certinext_rsa_2048() { enroll_ok certinext rsa-2048; }
case_sslstore_ec_p256() { enroll_ok sslstore ec-p256; }
case_sslstore_rsa_2048() { enroll_ok sslstore rsa-2048; }

# The installed certificate and the token key serve TLS together.
case_tls_handshake() {
	setup certinext ec-p256
	t_expect 0 p11e enroll web
	local port
	port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	PKCS11_MODULE_PATH=$SOFTHSM_MODULE openssl s_server -engine pkcs11 -keyform engine \
		-key "pkcs11:token=edge;object=web;type=private;pin-value=$PIN" \
		-cert "$WORK/tls/cert.pem" -cert_chain "$WORK/tls/chain.pem" \
		-accept "127.0.0.1:$port" -naccept 1 -www >"$WORK/s_server.log" 2>&1 &
	T_PIDS+=("$!")
	local i
	for i in $(seq 1 100); do
		grep -q ACCEPT "$WORK/s_server.log" && break
		sleep 0.05
	done
	echo | openssl s_client -connect "127.0.0.1:$port" -servername www.example.com \
		-verify_return_error -verify_hostname www.example.com -CAfile "$SIM_ROOT" \
		>"$WORK/s_client.log" 2>&1 || { cat "$WORK/s_server.log" "$WORK/s_client.log"; t_fail "TLS handshake failed"; }
	t_contains "$WORK/s_client.log" "Verify return code: 0 (ok)"
}

# post_install sees P11ENROLL_* and no secret; its failure keeps the install.
case_post_install() {
	setup certinext ec-p256
	t_expect 0 p11e enroll web
	t_contains "$WORK/hook.env" "P11ENROLL_NAME=web"
	t_contains "$WORK/hook.env" "P11ENROLL_CERT_FILE=$WORK/tls/cert.pem"
	t_contains "$WORK/hook.env" "P11ENROLL_SERIAL=$(journal 'j["cert"]["serial"]')"
	t_contains "$WORK/hook.env" "P11ENROLL_KEY_URI=pkcs11:"
	t_not_contains "$WORK/hook.env" "$PIN"
	t_not_contains "$WORK/hook.env" "pin-"
	t_not_contains "$WORK/hook.env" "sim-access-key"
	t_not_contains "$WORK/hook.env" "SOFTHSM2_CONF"
}

case_post_install_failure() {
	setup certinext ec-p256
	sed -i 's|^post_install = .*|post_install = exit 7|' "$WORK/p.conf"
	t_expect 1 p11e enroll web
	t_contains "$WORK/err" "post_install (exit 7) exited with status 7; the certificate is installed"
	assert_installed
	[ -n "$(journal 'j["last_error"]["message"]')" ] || t_fail "the hook's failure is not in the journal"
}

# Pending for a while: enroll gives up with 3, the next enroll resumes the same order.
case_pending_then_resume() {
	setup certinext ec-p256 '{"pending_polls": 4}'
	t_expect 3 p11e enroll web --wait 2s
	t_contains "$WORK/err" "is still pending at the CA"
	[ "$(journal 'j["state"]')" = order-pending ] || t_fail "state $(journal 'j["state"]')"
	local order
	order=$(journal 'j["order"]["order_id"]')
	t_expect 0 p11e enroll web --wait 60s
	t_contains "$WORK/err" "resuming from state order-pending"
	assert_installed
	[ "$(journal 'j["order"]["order_id"]')" = "$order" ] || t_fail "another order was followed"
	[ "$(orders_placed)" = 1 ] || t_fail "the CA saw $(orders_placed) orders"
}

# The placement's answer is lost: the order is found again, not placed twice.
unknown_outcome() {
	setup "$1" ec-p256 "$2"
	t_expect 0 p11e enroll web
	t_contains "$WORK/err" "found the order placed before the interruption"
	assert_installed
	[ "$(orders_placed)" = 1 ] || t_fail "the CA saw $(orders_placed) orders"
}
case_certinext_unknown_outcome_5xx() { unknown_outcome certinext '{"order_5xx_after_create": 1}'; }
case_certinext_unknown_outcome_drop() { unknown_outcome certinext '{"drop_after_create": 1}'; }
case_sslstore_unknown_outcome_5xx() { unknown_outcome sslstore '{"order_5xx_after_create": 1}'; }

case_rejected() {
	setup certinext ec-p256 '{"reject": {"code": "EMS-1234", "message": "Order refused by policy"}}'
	t_expect 4 p11e enroll web
	t_contains "$WORK/err" "EMS-1234"
	t_contains "$WORK/err" "Order refused by policy"
	[ "$(journal 'j["state"]')" = rejected ] || t_fail "state $(journal 'j["state"]')"
	[ "$(journal 'j["last_error"]["ca_code"]')" = EMS-1234 ] || t_fail "CA code not journalled"
	[ ! -e "$WORK/tls/cert.pem" ] || t_fail "something was installed"
	# The operator fixes things; the next enroll places a new order with the same key.
	local key
	key=$(journal 'j["key"]["id"]')
	t_expect 0 p11e enroll web
	[ "$(journal 'j["key"]["id"]')" = "$key" ] || t_fail "a new key was made"
	assert_installed
}

# Verification refusals: nothing installed, the journal says why.
case_verify_wrong_key() {
	setup certinext ec-p256 '{"wrong_key": true}'
	t_expect 1 p11e enroll web
	t_contains "$WORK/err" "the CA's certificate is for another key"
	[ "$(journal 'j["state"]')" = verify-failed ] || t_fail "state $(journal 'j["state"]')"
	t_contains "$WORK/state/web.json" "for another key"
	[ ! -e "$WORK/tls" ] || t_fail "files were written"
	[ "$(t_token_objects edge | grep -c '^Certificate')" = 0 ] || t_fail "a certificate object was stored"
}

case_verify_other_names() {
	setup certinext ec-p256
	P11ENROLL_FAULT=cert-issued t_expect 137 p11e enroll web
	# The configuration now asks for a name the issued certificate lacks.
	sed -i 's|^dns = .*|dns = www.example.com, api.example.com|' "$WORK/p.conf"
	t_expect 1 p11e enroll web
	t_contains "$WORK/err" "does not cover the requested name api.example.com"
	[ "$(journal 'j["state"]')" = verify-failed ] || t_fail "state $(journal 'j["state"]')"
	[ ! -e "$WORK/tls" ] || t_fail "files were written"
}

case_verify_broken_chain() {
	setup certinext ec-p256
	P11ENROLL_FAULT=cert-issued t_expect 137 p11e enroll web
	# As if the CA had sent the leaf with someone else's intermediate.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
		-subj "/O=p11enroll simulator/CN=Simulated CERTInext Issuing CA" -days 2 \
		-out "$WORK/fake.pem" 2>/dev/null
	"$PYTHON" - "$WORK/state/web.json" "$WORK/fake.pem" <<'PY'
import json, re, sys
path, fake = sys.argv[1], open(sys.argv[2]).read()
j = json.load(open(path))
certs = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", j["cert"]["chain"], re.S)
j["cert"]["chain"] = certs[0] + fake
json.dump(j, open(path, "w"))
PY
	# Re-verification happens from the journal in state cert-issued.
	t_expect 1 p11e enroll web
	t_contains "$WORK/err" "the CA sent no issuer certificate for the leaf"
	[ ! -e "$WORK/tls" ] || t_fail "files were written"
}

# A product the account lacks: nothing ordered, a configuration error (2).
case_product_not_provisioned() {
	setup certinext ec-p256
	sed -i 's|^default_product = .*|default_product = 100|' "$WORK/p.conf"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "EMS-1162"
	t_contains "$WORK/err" "p11enroll products sim"
	[ "$(journal 'j["state"]')" = csr-ready ] || t_fail "state $(journal 'j["state"]')"
	sed -i 's|^default_product = .*|default_product = 842|' "$WORK/p.conf"
	t_expect 0 p11e enroll web
	assert_installed
}

# Exit codes for configuration and token errors.
case_exit_codes() {
	setup certinext ec-p256
	echo "colour = blue" >>"$WORK/p.conf"
	t_expect 2 p11e enroll web
	sed -i '/^colour/d' "$WORK/p.conf"
	(umask 077; echo 000000 >"$WORK/pin")
	t_expect 5 p11e enroll web
	t_contains "$WORK/err" "wrong PIN"
	[ "$(orders_placed)" = 0 ] || t_fail "an order was placed"
	sed -i 's|^key_type = .*|key_type = rsa-1024|' "$WORK/p.conf"
	t_expect 2 p11e enroll web
}

# Two runs on one certificate never interleave.
case_lock() {
	setup certinext ec-p256 '{"pending_polls": 100}'
	"$P11ENROLL" -c "$WORK/p.conf" enroll web --wait 25s >"$WORK/first.out" 2>"$WORK/first.err" &
	local first=$!
	T_PIDS+=("$first")
	local i
	for i in $(seq 1 100); do
		[ -f "$WORK/state/web.json" ] && grep -q order-pending "$WORK/state/web.json" && break
		sleep 0.1
	done
	t_expect 1 p11e enroll web --wait 1s
	t_contains "$WORK/err" "another p11enroll (pid $first) is working on [cert:web]"
	kill "$first"
	[ "$(orders_placed)" = 1 ] || t_fail "the CA saw $(orders_placed) orders"
}

# Crash at a named step (SIGKILL through the fault hook), then rerun.
crash_at() {
	local step=$1
	setup certinext ec-p256
	P11ENROLL_FAULT=$step t_expect 137 p11e enroll web
	t_contains "$WORK/err" "P11ENROLL_FAULT=$step"
	# Files are absent or whole, never partial.
	local f
	for f in "$WORK"/tls/*.pem; do
		[ -e "$f" ] || continue
		openssl x509 -in "$f" -noout 2>/dev/null || t_fail "$f is partial"
	done
	ls "$WORK"/tls/*.tmp.* >/dev/null 2>&1 && t_fail "temporary files left beside the certificate"
	t_expect 0 p11e enroll web
	assert_installed
	[ "$(orders_placed)" = 1 ] || t_fail "after a crash at $step the CA saw $(orders_placed) orders"
	[ "$(t_token_objects edge | grep -c '^Private')" = 1 ] || t_fail "after a crash at $step the token holds another key count"
}
case_crash_key_generating() { crash_at key-generating; }
case_crash_key_generated() { crash_at key-generated; }
case_crash_key_ready() { crash_at key-ready; }
case_crash_csr_ready() { crash_at csr-ready; }
case_crash_order_placing() { crash_at order-placing; }
case_crash_order_placed() { crash_at order-placed; }
case_crash_order_pending() { crash_at order-pending; }
case_crash_cert_issued() { crash_at cert-issued; }
case_crash_installing() { crash_at installing; }
case_crash_files_written() { crash_at files-written; }
case_crash_token_stored() { crash_at token-stored; }
case_crash_installed() { crash_at installed; }

t_run "$@"
