#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ACME end to end: Debian's pebble and pebble-challtestsrv on free loopback
# ports with a TLS certificate made here, a real SoftHSM2 token holding both
# the account key and the certificate key, the p11enroll command line.
# Every JWS is checked by pebble itself.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273

# wait_port PORT PID NAME — until something listens on 127.0.0.1:PORT.
# Returns 1 when NAME died because one of its ports was taken meanwhile.
wait_port() {
	for _ in $(seq 1 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		if ! kill -0 "$2" 2>/dev/null; then
			grep -qi 'address already in use' "$WORK/$3.log" && return 1
			cat "$WORK/$3.log" >&2
			t_fail "$3 died"
		fi
		sleep 0.05
	done
	t_fail "$3 did not listen on port $1"
}

# servers_stop PID… — stops servers of an attempt that lost a port.
servers_stop() {
	kill "$@" 2>/dev/null
	wait "$@" 2>/dev/null
	return 0
}

# servers_start EAB REJECT — challtestsrv, pebble and the http-01 web server
# on fresh ports; 1 when one of them found its port taken.
servers_start() {
	local eab=$1 reject=$2 pids=()
	read -r ACME_PORT MGMT_PORT HTTP_PORT TLS_PORT DNS_PORT DNSM_PORT <<<"$(t_free_ports 6)"
	cat >"$WORK/pebble.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:$ACME_PORT", "managementListenAddress": "127.0.0.1:$MGMT_PORT",
 "certificate": "$WORK/pki/tls.pem", "privateKey": "$WORK/pki/tls.key",
 "httpPort": $HTTP_PORT, "tlsPort": $TLS_PORT, "ocspResponderURL": "",
 "externalAccountBindingRequired": $([ "$eab" = yes ] && echo true || echo false),
 "externalAccountMACKeys": {"$EAB_KID": "$EAB_KEY"}}}
EOF
	# AAAA answers off: validation then dials 127.0.0.1 only.
	pebble-challtestsrv -defaultIPv6 "" -dns01 "127.0.0.1:$DNS_PORT" -http01 "" -https01 "" \
		-tlsalpn01 "" -management "127.0.0.1:$DNSM_PORT" >"$WORK/challtestsrv.log" 2>&1 &
	pids+=("$!")
	wait_port "$DNSM_PORT" "$!" challtestsrv || { servers_stop "${pids[@]}"; return 1; }
	PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=$reject PEBBLE_AUTHZREUSE=0 \
		pebble -config "$WORK/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" >"$WORK/pebble.log" 2>&1 &
	pids+=("$!")
	if ! wait_port "$ACME_PORT" "$!" pebble || ! wait_port "$MGMT_PORT" "$!" pebble; then
		servers_stop "${pids[@]}"
		return 1
	fi
	(cd "$WORK/webroot" && exec "$PYTHON" -m http.server "$HTTP_PORT" --bind 127.0.0.1) \
		>"$WORK/http.log" 2>&1 &
	pids+=("$!")
	wait_port "$HTTP_PORT" "$!" http || { servers_stop "${pids[@]}"; return 1; }
	# challtestsrv's DNS port is UDP, which wait_port cannot see.
	kill -0 "${pids[0]}" 2>/dev/null || { servers_stop "${pids[@]}"; return 1; }
	T_PIDS+=("${pids[@]}")
}

# pebble_start [EAB=yes|no] [NONCE_REJECT_PERCENT] — pebble, challtestsrv
# (DNS only) and a web server for http-01 on pebble's httpPort.
pebble_start() {
	local eab=${1:-yes} reject=${2:-0}
	t_need pebble pebble-challtestsrv openssl curl pkcs11-tool
	mkdir -p "$WORK/pki" "$WORK/webroot"
	(
		cd "$WORK/pki" || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
			-out ca.pem -days 2 -subj /CN=p11enroll-acme-test-ca 2>/dev/null &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key \
			-out tls.csr -subj /CN=localhost 2>/dev/null &&
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext &&
		openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.pem \
			-days 2 -extfile ext 2>/dev/null
	) || t_fail "cannot make pebble's TLS certificate"
	EAB_KID=kid-1
	EAB_KEY=$(head -c 48 /dev/urandom | basenc --base64url | tr -d '=\n')
	(umask 077; printf '%s\n' "$EAB_KEY" >"$WORK/eab.key")
	local attempt
	for attempt in 1 2 3 4 5; do
		servers_start "$eab" "$reject" && break
		echo "attempt $attempt: a port was taken before its server bound it; new ports" >&2
		[ "$attempt" = 5 ] && t_fail "pebble's servers lost their ports 5 times"
	done
	ACME_URL="https://127.0.0.1:$ACME_PORT/dir"
	curl -sf --cacert "$WORK/pki/ca.pem" "$ACME_URL" >/dev/null || t_fail "pebble's directory is not there"
	# The dns-01 hook: challtestsrv's management API.
	cat >"$WORK/dns-hook" <<EOF
#!/bin/sh
set -e
echo "\$P11ENROLL_DCV_ACTION \$P11ENROLL_DCV_DOMAIN \$P11ENROLL_DCV_RECORD" >>"$WORK/hook.calls"
env >"$WORK/hook.env"
case "\$P11ENROLL_DCV_ACTION" in
publish) curl -sf -X POST -d "{\"host\":\"\$P11ENROLL_DCV_RECORD.\",\"value\":\"\$P11ENROLL_DCV_VALUE\"}" http://127.0.0.1:$DNSM_PORT/set-txt ;;
remove) curl -sf -X POST -d "{\"host\":\"\$P11ENROLL_DCV_RECORD.\"}" http://127.0.0.1:$DNSM_PORT/clear-txt ;;
esac
EOF
	chmod 755 "$WORK/dns-hook"
}

# pebble's issuing chain (root + intermediate), for openssl verify.
pebble_roots() {
	curl -sf --cacert "$WORK/pki/ca.pem" "https://127.0.0.1:$MGMT_PORT/roots/0" >"$WORK/pebble-root.pem" ||
		t_fail "cannot read pebble's root"
}

orders_placed() { grep -c 'Added order' "$WORK/pebble.log"; }
accounts_made() { grep -c 'There are now .* accounts in memory' "$WORK/pebble.log"; }

# conf CHALLENGE "NAME…" [ACCOUNT-KEY-TYPE] [EAB=yes|no|wrong] — $WORK/p.conf.
conf() {
	local challenge=$1 names=$2 ak_type=${3:-ec-p256} eab=${4:-yes} n first
	local uri="module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
	first=${names%% *}
	first=${first#\*.}
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo "wait = 60s"
		echo
		echo "[ca:pebble]"
		echo "type = acme"
		echo "directory_url = $ACME_URL"
		echo "ca_bundle = $WORK/pki/ca.pem"
		echo "contact = mailto:pki@example.com"
		echo "terms_agreed = yes"
		echo "account_key = pkcs11:token=edge;object=acme-account?$uri"
		echo "account_key_type = $ak_type"
		case $eab in
		yes) echo "eab_kid = $EAB_KID"; echo "eab_hmac_key_file = $WORK/eab.key" ;;
		wrong)
			(umask 077; head -c 48 /dev/urandom | basenc --base64url | tr -d '=\n' >"$WORK/wrong.key")
			echo "eab_kid = $EAB_KID"; echo "eab_hmac_key_file = $WORK/wrong.key" ;;
		esac
		echo "challenge = $challenge"
		echo "dcv_hook = $WORK/dns-hook"
		echo "webroot = $WORK/webroot"
		echo "timeout = 10s"
		echo "max_retries = 2"
		echo "max_retry_time = 10s"
		echo
		echo "[cert:web]"
		echo "ca = pebble"
		echo "key = pkcs11:token=edge;object=web?$uri"
		echo "key_type = ec-p256"
		echo "subject = CN=$first"
		echo "dns = ${names// /, }"
		echo "cert_file = $WORK/tls/cert.pem"
		echo "chain_file = $WORK/tls/chain.pem"
		echo "fullchain_file = $WORK/tls/fullchain.pem"
		echo "store_in_token = yes"
	} >"$WORK/p.conf"
	for n in $names; do :; done
}

p11e() { "$P11ENROLL" -c "$WORK/p.conf" "$@"; }

# setup CHALLENGE "NAMES" [ACCOUNT-KEY-TYPE] [EAB] [PEBBLE-EAB] [NONCE-REJECT]
setup() {
	t_softhsm_token edge "$PIN"
	pebble_start "${5:-yes}" "${6:-0}"
	conf "$1" "$2" "${3:-ec-p256}" "${4:-yes}"
}

assert_installed() {
	local names=$1 n serial
	[ "$(t_journal 'j["state"]')" = monitoring ] || t_fail "journal state is $(t_journal 'j["state"]')"
	pebble_roots
	openssl verify -CAfile "$WORK/pebble-root.pem" -untrusted "$WORK/tls/chain.pem" "$WORK/tls/cert.pem" \
		>/dev/null || t_fail "the certificate does not verify up to pebble's root"
	openssl x509 -in "$WORK/tls/cert.pem" -noout -ext subjectAltName >"$WORK/san.txt"
	for n in $names; do
		t_contains "$WORK/san.txt" "DNS:$n"
	done
	# The leaf certifies the token's key.
	openssl x509 -in "$WORK/tls/cert.pem" -noout -pubkey >"$WORK/leaf.pub"
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label edge --read-object --type pubkey \
		--label web 2>/dev/null | openssl pkey -pubin -inform DER >"$WORK/token.pub" 2>/dev/null
	cmp -s "$WORK/leaf.pub" "$WORK/token.pub" || t_fail "the leaf does not certify the token's key 'web'"
	serial=$(openssl x509 -in "$WORK/tls/cert.pem" -noout -serial | cut -d= -f2)
	[ "$(t_journal 'j["cert"]["serial"]')" = "$serial" ] || t_fail "journal serial differs from cert.pem"
	# Both keys live in the token: the account key and the certificate key.
	t_token_objects edge >"$WORK/objects.txt"
	grep -q '^Private.* acme-account ' "$WORK/objects.txt" || { cat "$WORK/objects.txt"; t_fail "no account key on the token"; }
	grep -q '^Private.* web ' "$WORK/objects.txt" || t_fail "no certificate key on the token"
}

enroll_ok() {
	t_expect 0 p11e enroll web
	assert_installed "$1"
	[ "$(orders_placed)" = 1 ] || t_fail "pebble saw $(orders_placed) orders"
	[ "$(accounts_made)" = 1 ] || t_fail "pebble made $(accounts_made) accounts"
}

# ---- cases ------------------------------------------------------------------

case_http01() {
	setup http-01 www.example.com
	enroll_ok www.example.com
	[ -f "$WORK/state/acme-pebble.account.json" ] || t_fail "the account URL was not kept"
	[ "$(stat -c %a "$WORK/state/acme-pebble.account.json")" = 600 ] || t_fail "account file mode"
	# The challenge file is gone again.
	[ -z "$(ls -A "$WORK/webroot/.well-known/acme-challenge")" ] || t_fail "challenge files left in the webroot"
	grep -q 'GET /.well-known/acme-challenge/' "$WORK/http.log" || t_fail "pebble never fetched the http-01 file"
	t_expect 0 p11e enroll web
	t_contains "$WORK/err" "nothing to do"
	[ "$(orders_placed)" = 1 ] || t_fail "a second order was placed"
}

case_dns01() {
	setup dns-01 www.example.com
	enroll_ok www.example.com
	t_contains "$WORK/hook.calls" "publish www.example.com _acme-challenge.www.example.com"
	t_contains "$WORK/hook.calls" "remove www.example.com _acme-challenge.www.example.com"
	# The hook sees only its four variables and PATH.
	[ "$(grep -c . "$WORK/hook.env")" -le 6 ] || { cat "$WORK/hook.env"; t_fail "the hook got more environment"; }
	t_not_contains "$WORK/hook.env" "$EAB_KEY"
}

case_two_names() {
	setup dns-01 "www.example.com api.example.com"
	enroll_ok "www.example.com api.example.com"
	t_contains "$WORK/hook.calls" "publish api.example.com _acme-challenge.api.example.com"
}

case_wildcard() {
	setup dns-01 "*.example.com example.com"
	enroll_ok "*.example.com example.com"
	t_contains "$WORK/hook.calls" "publish example.com _acme-challenge.example.com"
}

# A [cert:] overrides the CA's challenge and webroot.
case_cert_overrides() {
	setup dns-01 www.example.com
	sed -i "s|^webroot = .*|webroot = $WORK/not-served|" "$WORK/p.conf"
	printf 'challenge = http-01\nwebroot = %s\n' "$WORK/webroot" >>"$WORK/p.conf"
	enroll_ok www.example.com
	[ ! -e "$WORK/hook.calls" ] || t_fail "the CA's dns-01 hook ran although the certificate asks for http-01"
	grep -q 'GET /.well-known/acme-challenge/' "$WORK/http.log" || t_fail "pebble never fetched the http-01 file"
}

case_wildcard_needs_dns01() {
	setup http-01 "*.example.com"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "can only be validated by dns-01"
}

case_http01_failure_refused() {
	setup http-01 www.example.com
	# Nobody serves the webroot: pebble's validation fails, the order is refused.
	kill "${T_PIDS[2]}"; wait "${T_PIDS[2]}" 2>/dev/null
	t_expect 4 p11e enroll web
	t_contains "$WORK/err" "validation of www.example.com failed (http-01)"
	[ "$(t_journal 'j["state"]')" = rejected ] || t_fail "not recorded as refused"
}

case_eab_wrong_hmac() {
	setup http-01 www.example.com ec-p256 wrong
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "ACME newAccount"
	[ "$(orders_placed)" = 0 ] || t_fail "an order was placed without an account"
	[ "$(t_journal 'j["state"]')" = csr-ready ] || t_fail "state $(t_journal 'j["state"]'), not csr-ready"
	t_not_contains "$WORK/err" "$(cat "$WORK/wrong.key")"
	# The right key: the same run goes on.
	conf http-01 www.example.com ec-p256 yes
	enroll_ok www.example.com
}

case_eab_missing() {
	setup http-01 www.example.com ec-p256 no
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "requires External Account Binding"
	[ "$(orders_placed)" = 0 ] || t_fail "an order was placed"
}

case_terms_not_agreed() {
	setup http-01 www.example.com
	sed -i '/^terms_agreed/d' "$WORK/p.conf"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "terms of service"
	t_contains "$WORK/err" "terms_agreed = yes"
	[ "$(accounts_made)" = 0 ] || t_fail "an account was made without agreeing to the terms"
}

case_no_eab_server() {
	# A CA without EAB: the account is made without it.
	setup http-01 www.example.com ec-p256 no no
	enroll_ok www.example.com
}

case_account_es384() {
	setup http-01 www.example.com ec-p384
	enroll_ok www.example.com
	t_token_objects edge >"$WORK/objects.txt"
}

case_account_rs256() {
	setup http-01 www.example.com rsa-2048
	enroll_ok www.example.com
}

# The account key in a (software) TPM through the tpm2 OpenSSL provider.
case_account_key_tpm() {
	local dir
	t_need swtpm tpm2_getcap
	dir=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
	[ -e "$dir/tpm2.so" ] || t_skip "tpm2-openssl ($dir/tpm2.so) is not installed"
	export ASAN_OPTIONS="${ASAN_OPTIONS:-}:fast_unwind_on_malloc=0"
	setup http-01 www.example.com
	mkdir -p "$WORK/tpmstate" "$WORK/keys"
	swtpm socket --tpm2 --tpmstate dir="$WORK/tpmstate" \
		--server type=unixio,path="$WORK/tpm.sock" --ctrl type=unixio,path="$WORK/tpm.sock.ctrl" \
		--flags not-need-init,startup-clear --log file="$WORK/swtpm.log" &
	T_PIDS+=("$!")
	for _ in $(seq 1 250); do [ -S "$WORK/tpm.sock" ] && break; sleep 0.02; done
	[ -S "$WORK/tpm.sock" ] || t_fail "swtpm did not start"
	unset TPM2OPENSSL_TCTI
	sed -i "s|^account_key = .*|account_key = provider:tpm2:$WORK/keys/acme.tss2.pem?tcti=swtpm:path=$WORK/tpm.sock|" "$WORK/p.conf"
	t_expect 0 p11e enroll web
	[ "$(t_journal 'j["state"]')" = monitoring ] || t_fail "journal state is $(t_journal 'j["state"]')"
	[ "$(orders_placed)" = 1 ] || t_fail "pebble saw $(orders_placed) orders"
	grep -q "BEGIN TSS2 PRIVATE KEY" "$WORK/keys/acme.tss2.pem" || t_fail "the account key is not a TPM key file"
	[ -z "$(TPM2TOOLS_TCTI="swtpm:path=$WORK/tpm.sock" tpm2_getcap handles-transient)" ] ||
		t_fail "transient TPM objects left behind"
}

case_account_found_again() {
	setup http-01 www.example.com
	enroll_ok www.example.com
	# Lost state: the account is found with onlyReturnExisting, not made again.
	rm -f "$WORK/state/acme-pebble.account.json"
	t_expect 0 p11e -v renew --force --all
	[ "$(accounts_made)" = 1 ] || t_fail "a second account was made"
	t_contains "$WORK/err" "onlyReturnExisting"
	[ -f "$WORK/state/acme-pebble.account.json" ] || t_fail "the account URL was not kept again"
}

case_check_products_orders() {
	setup http-01 www.example.com
	t_expect 0 p11e check pebble
	t_contains "$WORK/out" "no ACME account"
	enroll_ok www.example.com
	t_expect 0 p11e check pebble
	t_contains "$WORK/out" "account https://127.0.0.1:$ACME_PORT/"
	t_expect 2 p11e products pebble
	t_contains "$WORK/err" "ACME has no product list"
	t_expect 0 p11e orders pebble
	t_contains "$WORK/out" "$(t_journal 'j["order"]["order_id"]')"
	t_contains "$WORK/out" "valid"
}

case_renew() {
	setup dns-01 www.example.com
	enroll_ok www.example.com
	local first
	first=$(t_journal 'j["cert"]["serial"]')
	t_expect 0 p11e renew --force --all
	assert_installed www.example.com
	[ "$(orders_placed)" = 2 ] || t_fail "renewal: pebble saw $(orders_placed) orders"
	[ "$(t_journal 'j["cert"]["serial"]')" != "$first" ] || t_fail "the renewal installed the old certificate"
	[ "$(accounts_made)" = 1 ] || t_fail "the renewal made another account"
}

case_revoke() {
	setup http-01 www.example.com
	enroll_ok www.example.com
	local serial
	serial=$(openssl x509 -in "$WORK/tls/cert.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')
	t_expect 0 p11e revoke web --reason keyCompromise
	curl -sf --cacert "$WORK/pki/ca.pem" "https://127.0.0.1:$MGMT_PORT/cert-status-by-serial/$serial" \
		>"$WORK/status.json" || t_fail "pebble does not know serial $serial"
	t_contains "$WORK/status.json" '"Revoked"'
	grep -q '"Reason": 1' "$WORK/status.json" || { cat "$WORK/status.json"; t_fail "not revoked for keyCompromise"; }
	# Again: already revoked is no failure.
	t_expect 0 p11e revoke web --reason keyCompromise
}

case_bad_nonce() {
	# pebble refuses 40% of good nonces: every request must survive that.
	setup dns-01 www.example.com ec-p256 yes yes 40
	t_expect 0 p11e -v enroll web
	t_contains "$WORK/err" "badNonce, retrying with the new nonce"
	assert_installed www.example.com
	[ "$(orders_placed)" = 1 ] || t_fail "pebble saw $(orders_placed) orders"
}

case_no_secret_leaks() {
	setup http-01 www.example.com
	t_expect 0 p11e -v enroll web
	t_not_contains "$WORK/err" "$EAB_KEY"
	t_not_contains "$WORK/out" "$EAB_KEY"
	t_not_contains "$WORK/err" "$PIN"
	! grep -rqF "$EAB_KEY" "$WORK/state" || t_fail "the EAB key reached the state folder"
}

# Crash at a named step (SIGKILL through the fault hook), then rerun: one
# order, one account, the certificate installed.
crash_at() {
	local step=$1 challenge=${2:-dns-01}
	setup "$challenge" www.example.com
	P11ENROLL_FAULT=$step t_expect 137 p11e enroll web
	t_contains "$WORK/err" "P11ENROLL_FAULT=$step"
	t_expect 0 p11e enroll web
	assert_installed www.example.com
	[ "$(orders_placed)" = 1 ] || t_fail "after a crash at $step pebble saw $(orders_placed) orders"
	[ "$(accounts_made)" = 1 ] || t_fail "after a crash at $step pebble made $(accounts_made) accounts"
	[ "$(t_token_objects edge | grep -c '^Private')" = 2 ] || t_fail "after a crash at $step the token holds another key count"
}
case_crash_key_generated() { crash_at key-generated; }
case_crash_csr_ready() { crash_at csr-ready; }
case_crash_order_placing() { crash_at order-placing; }
case_crash_order_placed() { crash_at order-placed; }
case_crash_order_pending() { crash_at order-pending; }
case_crash_challenge_published() { crash_at acme-challenge-published; }
case_crash_challenge_published_http() { crash_at acme-challenge-published http-01; }
case_crash_finalizing() { crash_at acme-finalizing; }
case_crash_finalized() { crash_at acme-finalized; }
case_crash_cert_issued() { crash_at cert-issued; }
case_crash_installing() { crash_at installing; }
case_crash_installed() { crash_at installed; }

t_run "$@"
