#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every kind of PKCS#11 token a user may hold, each set up here in a
# temporary folder from Debian packages, through the p11enroll command line
# against the CERTInext simulator on loopback: SoftHSM2 (file store), NSS
# softokn (a p11-kit module registry, module-name=), opencryptoki's soft
# token (pkcsslotd in a private mount namespace) and a network HSM stand-in
# (p11-kit server over a UNIX socket, p11-kit-client.so). Also the server
# restarted in the middle of an enrolment and twenty processes on one
# token. What each implementation does differently: docs/tokens.md.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=246813
CLIENT_MODULE=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
PROXY_MODULE=/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so
NSS_MODULE=/usr/lib/x86_64-linux-gnu/libsoftokn3.so
OCK_MODULE=/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so

# What the implementation under test needs, set by its setup:
RUN=()          # command prefix (user, namespace, environment)
KEY_QUERY=""    # the module part of the key URI
TOKEN=""        # token= of the key URI (URI-escaped)
LABEL=""        # the same, plain
TOOL_MODULE=""  # the module pkcs11-tool uses to look at the token
PINFILE=""
STATE=""        # state_dir (and where the configuration goes)

p11e() { "${RUN[@]}" "$P11ENROLL" -c "$STATE/p.conf" "$@"; }

# objects CLASS — "label id" of the token's objects of that class
# (privkey, pubkey, cert), seen by pkcs11-tool from outside p11enroll.
objects() {
	"${RUN[@]}" pkcs11-tool --module "$TOOL_MODULE" --token-label "$LABEL" --login \
		--pin "$(cat "$PINFILE")" --list-objects --type "$1" 2>/dev/null | awk '
		/Object;/ { lbl="" }
		/label:/ { sub(/^[ \t]*label:[ \t]*/, ""); lbl=$0 }
		/ID:/ { print lbl, $2 }'
}

orders_placed() { t_sim_stat 's["orders_placed"]'; }

# NSS softokn and opencryptoki are unloaded (dlclose) when p11enroll closes
# the token, so LeakSanitizer, reporting at exit, can neither name their own
# unfreed memory nor suppress it by library. Leak checks stay off for those
# two; p11enroll's code goes through the same paths, leak-checked, with
# SoftHSM2 and the p11-kit client (other errors stay fatal everywhere).
no_module_leak_check() { export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"; }

# cert_section NAME TYPE [extra lines…]
cert_section() {
	local name=$1 type=$2
	shift 2
	echo "[cert:$name]"
	echo "ca = sim"
	echo "key = pkcs11:token=$TOKEN;object=$name?$KEY_QUERY&pin-source=file:$PINFILE"
	echo "key_type = $type"
	echo "subject = CN=$name.example.com"
	echo "dns = $name.example.com"
	echo "cert_file = $STATE/tls/$name/cert.pem"
	echo "chain_file = $STATE/tls/$name/chain.pem"
	local line
	for line in "$@"; do echo "$line"; done
	echo
}

# write_conf ACCESS-KEY-FILE CERT-SECTIONS… — $STATE/p.conf
write_conf() {
	local key=$1
	shift
	{
		echo "[agent]"
		echo "state_dir = $STATE/state"
		echo "wait = 60s"
		echo
		t_ca_section certinext | sed "s|^access_key_file = .*|access_key_file = $key|"
		printf '%s\n' "$@"
	} >"$STATE/p.conf"
}

# matrix "SUPPORTED TYPES" "REFUSED TYPES" ENROL-TYPE — the checks every
# implementation goes through.
matrix() {
	local ok=$1 refused=$2 etype=$3 t sections=() old new
	for t in $ok $refused; do
		sections+=("$(cert_section "k-$t" "$t")")
	done
	sections+=("$(cert_section web "$etype" "store_in_token = yes" "rotate_key = yes")")
	write_conf "$ACCESS_KEY" "${sections[@]}"
	for t in $ok; do
		t_expect 0 p11e keygen "k-$t"
		t_contains "$WORK/err" "generated $t key 'k-$t'"
		t_expect 0 p11e csr "k-$t" -o "$STATE/k-$t.csr"
		openssl req -in "$STATE/k-$t.csr" -verify -noout 2>/dev/null || t_fail "the $t CSR does not verify"
		case $t in
		ec-p256) openssl req -in "$STATE/k-$t.csr" -noout -text | grep -q 'NIST CURVE: P-256' ;;
		ec-p384) openssl req -in "$STATE/k-$t.csr" -noout -text | grep -q 'NIST CURVE: P-384' ;;
		rsa-*) openssl req -in "$STATE/k-$t.csr" -noout -text | grep -q "Public-Key: (${t#rsa-} bit)" ;;
		esac || t_fail "the $t CSR holds another key type"
	done
	for t in $refused; do
		t_expect 5 p11e keygen "k-$t"
		t_contains "$WORK/err" "cannot make $t keys"
		t_contains "$WORK/err" "of the allowed types it can make: ${ok// /, }"
	done
	# Enrol, with the certificate objects beside the key.
	t_expect 0 p11e enroll web
	openssl verify -CAfile "$SIM_ROOT" -untrusted "$STATE/tls/web/chain.pem" \
		"$STATE/tls/web/cert.pem" >/dev/null || t_fail "the installed certificate does not verify"
	old=$(t_state_journal 'j["key"]["id"]')
	objects cert >"$WORK/certs.txt"
	grep -qx "web $old" "$WORK/certs.txt" || { cat "$WORK/certs.txt"; t_fail "no certificate object beside key $old"; }
	[ "$(grep -vc "^web " "$WORK/certs.txt")" -ge 1 ] ||
		{ cat "$WORK/certs.txt"; t_fail "no CA certificate object"; }
	[ "$(orders_placed)" = 1 ] || t_fail "the CA saw $(orders_placed) orders"
	# Renew with a new key: the old key and its certificate object go.
	echo "renew_before = 365d" >>"$STATE/p.conf"
	t_expect 0 p11e renew web
	new=$(t_state_journal 'j["key"]["id"]')
	[ "$new" != "$old" ] || t_fail "rotate_key made no new key"
	[ "$(orders_placed)" = 2 ] || t_fail "the CA saw $(orders_placed) orders"
	[ "$(objects privkey | grep '^web ')" = "web $new" ] ||
		{ objects privkey; t_fail "the old key was not removed (or the new one is missing)"; }
	[ "$(objects cert | grep '^web ')" = "web $new" ] ||
		{ objects cert; t_fail "the certificate object is not beside the new key alone"; }
	openssl x509 -in "$STATE/tls/web/cert.pem" -noout -pubkey >"$WORK/leaf.pub"
	"${RUN[@]}" pkcs11-tool --module "$TOOL_MODULE" --token-label "$LABEL" --read-object \
		--type pubkey --id "$new" -o "$STATE/new.der" >/dev/null 2>&1
	openssl pkey -pubin -inform DER -in "$STATE/new.der" | cmp -s - "$WORK/leaf.pub" ||
		t_fail "the renewed certificate is not for the new key"
}

t_state_journal() { "$PYTHON" -c "import json; j=json.load(open('$STATE/state/web.json')); print($1)"; }

# ---- SoftHSM2 ---------------------------------------------------------------------

softhsm_setup() {
	t_need openssl curl pkcs11-tool
	t_softhsm_token edge "$PIN"
	t_sim_start certinext sim
	STATE=$WORK
	ACCESS_KEY=$SIM_DIR/access.key
	RUN=()
	KEY_QUERY="module-path=$SOFTHSM_MODULE"
	TOKEN=edge
	LABEL=edge
	TOOL_MODULE=$SOFTHSM_MODULE
	PINFILE=$WORK/pin
}

case_softhsm() {
	softhsm_setup
	# rsa-3072 and rsa-4096 on SoftHSM2: the softhsm suite (keygen_rsa_*).
	matrix "rsa-2048 ec-p256 ec-p384" "" ec-p256
}

# ---- NSS softokn ------------------------------------------------------------------

# NSS needs its database in C_Initialize's reserved argument, which p11-kit
# passes from a module file (x-init-reserved). p11-kit reads a user's
# module files only when not running as root, so the NSS side runs as
# nobody, with its own configuration home.
case_nss() {
	t_need openssl curl pkcs11-tool certutil setpriv
	[ -e "$NSS_MODULE" ] || t_skip "NSS softokn ($NSS_MODULE) is not installed (libnss3)"
	[ -e "$PROXY_MODULE" ] || t_skip "$PROXY_MODULE is not installed (p11-kit-modules)"
	no_module_leak_check
	t_sim_start certinext sim
	chmod 755 "$WORK"
	STATE=$WORK/nss
	mkdir -p "$STATE/db" "$STATE/cfg/pkcs11/modules"
	printf 'user-config: only\n' >"$STATE/cfg/pkcs11/pkcs11.conf"
	printf "module: %s\nx-init-reserved: configdir='sql:%s/db' certPrefix='' keyPrefix='' secmod='secmod.db'\n" \
		"$NSS_MODULE" "$STATE" >"$STATE/cfg/pkcs11/modules/p11e-nss.module"
	(umask 077; echo "$PIN" >"$STATE/pin"; cp "$SIM_DIR/access.key" "$STATE/access.key")
	# nobody may not reach the build tree (a clone under /root): a copy.
	cp "$P11ENROLL" "$STATE/p11enroll"
	P11ENROLL=$STATE/p11enroll
	if [ -n "${LSAN_OPTIONS:-}" ]; then
		cp "$P11E_SRCDIR/tests/lsan.supp" "$STATE/lsan.supp"
		export LSAN_OPTIONS="suppressions=$STATE/lsan.supp:print_suppressions=0"
	fi
	chown -R nobody:nogroup "$STATE"
	RUN=(setpriv --reuid=nobody --regid=nogroup --clear-groups env "HOME=$STATE"
		"XDG_CONFIG_HOME=$STATE/cfg")
	"${RUN[@]}" certutil -N -d "sql:$STATE/db" -f "$STATE/pin" || t_fail "certutil -N failed"
	ACCESS_KEY=$STATE/access.key
	KEY_QUERY="module-name=p11e-nss"
	TOKEN="NSS%20Certificate%20DB"
	LABEL="NSS Certificate DB"
	TOOL_MODULE=$PROXY_MODULE
	PINFILE=$STATE/pin
	matrix "rsa-2048 rsa-3072 rsa-4096 ec-p256 ec-p384" "" ec-p256
	# The quirk this depends on: NSS reports CKA_LOCAL false for its own keys.
	"${RUN[@]}" pkcs11-tool --module "$PROXY_MODULE" --token-label "$LABEL" --login \
		--pin "$PIN" --list-objects --type privkey 2>/dev/null | grep -q 'Access:.*never extractable' ||
		t_fail "NSS does not show the key as never extractable"
}

# ---- opencryptoki -----------------------------------------------------------------

ock() { nsenter --mount="/proc/$OCK_NS/ns/mnt" "$@"; }

case_opencryptoki() {
	t_need openssl curl pkcs11-tool pkcsslotd pkcsconf unshare nsenter
	[ -e "$OCK_MODULE" ] || t_skip "opencryptoki ($OCK_MODULE) is not installed"
	getent group pkcs11 >/dev/null || t_skip "opencryptoki's pkcs11 group is missing"
	no_module_leak_check
	t_sim_start certinext sim
	STATE=$WORK/ock
	mkdir -p "$STATE/etc" "$STATE/lib/swtok/TOK_OBJ" "$STATE/state"
	printf 'version opencryptoki-3.1\nslot 3\n{\nstdll = libpkcs11_sw.so\n}\n' >"$STATE/etc/opencryptoki.conf"
	chgrp -R pkcs11 "$STATE/lib"
	chmod -R 770 "$STATE/lib"
	unshare -m --propagation private bash "$P11E_SRCDIR/tests/tokens/ock_ns.sh" "$STATE" \
		>"$STATE/ns.log" 2>&1 &
	OCK_NS=$!
	for _ in $(seq 1 100); do
		[ -f "$STATE/ready" ] && break
		kill -0 "$OCK_NS" 2>/dev/null || break
		sleep 0.05
	done
	if [ ! -f "$STATE/ready" ]; then
		cat "$STATE/ns.log" >&2
		# A daemon that started all the same is stopped by its PID.
		[ -s "$STATE/pkcsslotd.pid" ] && kill "$(cat "$STATE/pkcsslotd.pid")"
		t_skip "opencryptoki's pkcsslotd could not be started in a private mount namespace (its paths are compiled in, so it needs one; unshare -m needs CAP_SYS_ADMIN): $(tail -1 "$STATE/ns.log")"
	fi
	# Stopped by PID: the daemon first, then the namespace holder.
	T_PIDS+=("$(cat "$STATE/pkcsslotd.pid")" "$OCK_NS")
	echo p11e | ock pkcsconf -I -c 3 -S 87654321 >/dev/null || t_fail "pkcsconf -I failed"
	ock pkcsconf -P -c 3 -S 87654321 -n 56785678 >/dev/null || t_fail "pkcsconf -P failed"
	ock pkcsconf -u -c 3 -S 56785678 -n 11112222 >/dev/null || t_fail "pkcsconf -u failed"
	ock pkcsconf -p -c 3 -U 11112222 -n "$PIN" >/dev/null || t_fail "pkcsconf -p failed"
	(umask 077; echo "$PIN" >"$STATE/pin")
	RUN=(nsenter --mount="/proc/$OCK_NS/ns/mnt")
	ACCESS_KEY=$SIM_DIR/access.key
	KEY_QUERY="module-path=$OCK_MODULE"
	TOKEN=p11e
	LABEL=p11e
	TOOL_MODULE=$OCK_MODULE
	PINFILE=$STATE/pin
	# Its soft token has no EC at all.
	matrix "rsa-2048 rsa-3072 rsa-4096" "ec-p256 ec-p384" rsa-2048
}

# ---- p11-kit server (a network HSM stand-in) ----------------------------------------

server_start() {
	rm -f "$WORK/p11kit.sock"
	p11-kit server -f -n "$WORK/p11kit.sock" --provider "$SOFTHSM_MODULE" "pkcs11:token=net" \
		>"$WORK/server.log" 2>&1 &
	SERVER_PID=$!
	T_PIDS+=("$SERVER_PID")
	for _ in $(seq 1 100); do
		[ -S "$WORK/p11kit.sock" ] && return
		sleep 0.05
	done
	cat "$WORK/server.log" >&2
	t_fail "p11-kit server did not start"
}

server_setup() {
	t_need openssl curl pkcs11-tool p11-kit
	[ -e "$CLIENT_MODULE" ] || t_skip "$CLIENT_MODULE is not installed (p11-kit-modules)"
	t_softhsm_token net "$PIN"
	server_start
	export P11_KIT_SERVER_ADDRESS="unix:path=$WORK/p11kit.sock"
	STATE=$WORK
	RUN=()
	ACCESS_KEY=""
	KEY_QUERY="module-path=$CLIENT_MODULE"
	TOKEN=net
	LABEL=net
	TOOL_MODULE=$CLIENT_MODULE
	PINFILE=$WORK/pin
}

case_p11kit_server() {
	server_setup
	t_sim_start certinext sim
	ACCESS_KEY=$SIM_DIR/access.key
	# The token behind the server is SoftHSM2 (all types: the softhsm suite).
	matrix "rsa-2048 ec-p256 ec-p384" "" ec-p256
}

# The server goes away and comes back while the CA is working on the order:
# no session is held meanwhile, so the run completes, with one order.
case_p11kit_server_restart() {
	local pid rc children
	server_setup
	echo '{"pending_polls": 4}' >"$WORK/scenario.json"
	t_sim_start certinext sim --scenario "$WORK/scenario.json"
	ACCESS_KEY=$SIM_DIR/access.key
	write_conf "$ACCESS_KEY" "$(cert_section web ec-p256 "store_in_token = yes")"
	p11e enroll web >"$WORK/out" 2>"$WORK/err" &
	pid=$!
	for _ in $(seq 1 200); do
		[ -f "$STATE/state/web.json" ] && [ "$(t_state_journal 'j["state"]')" = order-pending ] && break
		sleep 0.05
	done
	[ "$(t_state_journal 'j["state"]')" = order-pending ] || t_fail "the order never went pending"
	# Nothing of the token is held while the CA works: not the lock…
	flock -n "$(ls "$STATE"/state/token-*.lock)" true || t_fail "the token lock is held during the CA wait"
	# The server serves each connection from a child (p11-kit-remote): a
	# restarted HSM loses those too.
	children=$(ps -o pid= --ppid "$SERVER_PID")
	# …nor a connection to the server (each has its own child).
	[ -z "$children" ] || t_fail "a session to the server is held during the CA wait"
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null
	sleep 1
	server_start
	wait "$pid"
	rc=$?
	[ "$rc" = 0 ] || { cat "$WORK/err"; t_fail "the enrolment exited $rc after the server restart"; }
	[ "$(orders_placed)" = 1 ] || t_fail "the CA saw $(orders_placed) orders"
	[ "$(objects cert | grep -c '^web ')" = 1 ] || t_fail "no certificate object after the restart"
}

# ---- many processes on one token ------------------------------------------------------

case_parallel_20() {
	local sections=() pids=() i failed=0 n
	softhsm_setup
	# The real CERTInext refuses a 16th order within 10 s; not what is tested here.
	t_sim_scenario '{"rate_limit_burst": 0}'
	for i in $(seq -w 1 20); do
		sections+=("$(cert_section "w$i" ec-p256)")
	done
	write_conf "$ACCESS_KEY" "${sections[@]}"
	for i in $(seq -w 1 20); do
		p11e enroll "w$i" >"$WORK/out.$i" 2>"$WORK/err.$i" &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || { failed=$((failed + 1)); cat "$WORK/err.$(printf %02d $((i + 1)))" >&2; }
	done
	[ "$failed" = 0 ] || t_fail "$failed of 20 enrolments failed"
	n=$(orders_placed)
	[ "$n" = 20 ] || t_fail "the CA saw $n orders, not 20"
	[ "$(objects privkey | wc -l)" = 20 ] || t_fail "not 20 keys on the token"
	ls "$WORK"/state/token-*.lock >/dev/null || t_fail "no token lock in state_dir"
}

# A token that is really absent is still said plainly, after the short retry.
case_absent_token() {
	softhsm_setup
	TOKEN=nosuch
	write_conf "$ACCESS_KEY" "$(cert_section web ec-p256)"
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "no token matches the key URI; tokens found: 'edge' (SoftHSM project SoftHSM v2"
}

t_run "$@"
