#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# keygen and csr on a software TPM (swtpm), through tpm2-pkcs11 (pkcs11:)
# and through the tpm2 OpenSSL provider (provider:tpm2:). Each case starts
# its own swtpm on a UNIX socket in its work folder; no resource manager, so
# cases run serially and check that no transient TPM object is left behind.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273  # distinctive, so a leak is easy to grep for
TPM_MODULE=${TPM_MODULE:-$(find /usr/lib -mindepth 3 -maxdepth 3 -path '/usr/lib/*/pkcs11/libtpm2_pkcs11.so' 2>/dev/null | head -n1)}
KEYS_DRIVER="$P11E_BUILDDIR/tests/tpm/tpm-keys-driver"
# Under ASan: libcrypto has no frame pointers, so the fast unwinder stops
# there and a leak inside libtpm2_pkcs11 (1.9.0 leaks an ASN1_STRING when
# it signs with EC) could not be matched by tests/lsan.supp; the slow one
# sees the module's frames. Harmless without ASan.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:fast_unwind_on_malloc=0"
SWTPM_PID=""

tpm_need() {
	t_need swtpm tpm2_flushcontext tpm2_getcap openssl od
}

# tpm_start — swtpm on $WORK/tpm.sock (control: tpm.sock.ctrl, where the
# swtpm TCTI looks for it) with its state in $WORK/tpmstate
# (kept across a stop/start: the same TPM after a restart).
tpm_start() {
	mkdir -p "$WORK/tpmstate"
	rm -f "$WORK/tpm.sock" "$WORK/tpm.sock.ctrl"
	swtpm socket --tpm2 --tpmstate dir="$WORK/tpmstate" \
		--server type=unixio,path="$WORK/tpm.sock" --ctrl type=unixio,path="$WORK/tpm.sock.ctrl" \
		--flags not-need-init,startup-clear --log file="$WORK/swtpm.log" &
	SWTPM_PID=$!
	T_PIDS+=("$SWTPM_PID")
	for _ in $(seq 1 250); do
		[ -S "$WORK/tpm.sock" ] && break
		kill -0 "$SWTPM_PID" 2>/dev/null || { cat "$WORK/swtpm.log" >&2; t_fail "swtpm died"; }
		sleep 0.02
	done
	[ -S "$WORK/tpm.sock" ] || t_fail "swtpm did not start"
	TCTI="swtpm:path=$WORK/tpm.sock"
	export TPM2TOOLS_TCTI=$TCTI TPM2_PKCS11_TCTI=$TCTI TPM2_PKCS11_STORE="$WORK/p11store"
	# p11enroll must take the provider's TCTI from the key URI alone.
	unset TPM2OPENSSL_TCTI
}

# tpm_stop — by PID, and waits for it to be gone.
tpm_stop() {
	kill "$SWTPM_PID" 2>/dev/null
	wait "$SWTPM_PID" 2>/dev/null
	SWTPM_PID=""
}

# Without a resource manager a leaked transient object is a full TPM after
# three; whatever p11enroll did, none may remain.
no_transient_objects() {
	local left
	left=$(tpm2_getcap handles-transient) || t_fail "tpm2_getcap failed"
	[ -z "$left" ] || t_fail "transient TPM objects left behind: $left"
}

no_pin_leak() {
	! grep -q "$PIN" "$WORK/out" "$WORK/err" || t_fail "the PIN appears in the output"
}

p11e() { "$P11ENROLL" -c "$WORK/p.conf" "$@"; }

# conf KEY-URI KEY_TYPE [extra lines…] — [cert:web]; the key is line 5.
conf() {
	local key=$1 type=$2 line
	shift 2
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo
		echo "[cert:web]"
		echo "key = $key"
		echo "key_type = $type"
		echo "subject = CN=www.example.com,O=Example\\, Corp,C=US"
		echo "dns = www.example.com, example.com"
		for line in "$@"; do echo "$line"; done
	} >"$WORK/p.conf"
}

sigalg_of() {
	case "$1" in
	rsa-*) echo sha256WithRSAEncryption ;;
	ec-p256) echo ecdsa-with-SHA256 ;;
	ec-p384) echo ecdsa-with-SHA384 ;;
	esac
}

# csr_ok TYPE FILE — the CSR verifies, is signed as the key policy says, names what
# the configuration asks, and its key goes to $FILE.pub.
csr_ok() {
	local type=$1 csr=$2
	openssl req -in "$csr" -noout -verify >/dev/null 2>&1 || t_fail "openssl req -verify failed for $csr"
	openssl req -in "$csr" -noout -text >"$csr.txt"
	t_contains "$csr.txt" "Signature Algorithm: $(sigalg_of "$type")"
	# As RFC 5758 writes it: ECDSA without parameters (the tpm2 provider
	# itself would add a NULL).
	openssl asn1parse -in "$csr" >"$csr.asn1" || t_fail "cannot parse $csr"
	case "$type" in
	ec-*) ! grep -A1 ':ecdsa-with-' "$csr.asn1" | grep -q 'prim: NULL' ||
		t_fail "the ECDSA signature algorithm of $csr has parameters" ;;
	esac
	t_contains "$csr.txt" "DNS:www.example.com, DNS:example.com"
	t_contains "$csr.txt" 'Subject: C = US, O = "Example, Corp", CN = www.example.com'
	case "$type" in
	rsa-2048) t_contains "$csr.txt" "Public-Key: (2048 bit)" ;;
	rsa-3072) t_contains "$csr.txt" "Public-Key: (3072 bit)" ;;
	ec-p256) t_contains "$csr.txt" "NIST CURVE: P-256" ;;
	ec-p384) t_contains "$csr.txt" "NIST CURVE: P-384" ;;
	esac
	openssl req -in "$csr" -noout -pubkey >"$csr.pub"
}

# ---- through tpm2-pkcs11 ------------------------------------------------------

p11_token() {
	{ [ -n "$TPM_MODULE" ] && [ -e "$TPM_MODULE" ]; } || t_skip "tpm2-pkcs11 (libtpm2_pkcs11.so) is not installed"
	t_need pkcs11-tool
	mkdir -p "$WORK/p11store"
	pkcs11-tool --module "$TPM_MODULE" --init-token --slot-index 0 --label tpmtok --so-pin 5678 \
		>"$WORK/init.log" 2>&1 || { cat "$WORK/init.log"; t_fail "cannot make the TPM token"; }
	# --init-token leaves one transient object loaded (no resource manager).
	tpm2_flushcontext -t || t_fail "tpm2_flushcontext failed"
	pkcs11-tool --module "$TPM_MODULE" --token-label tpmtok --login --login-type so --so-pin 5678 \
		--init-pin --new-pin "$PIN" >>"$WORK/init.log" 2>&1 || t_fail "cannot set the user PIN"
	(umask 077; printf '%s\n' "$PIN" >"$WORK/pin")
	no_transient_objects
}

p11_conf() {
	conf "pkcs11:token=tpmtok;object=web?module-path=$TPM_MODULE&pin-source=file:$WORK/pin" "$@"
}

p11_tool() { pkcs11-tool --module "$TPM_MODULE" --token-label tpmtok "$@"; }

p11_keygen_and_csr() {
	local type=$1 uri1
	tpm_need
	tpm_start
	p11_token
	p11_conf "$type"
	t_expect 0 p11e keygen web
	no_pin_leak
	uri1=$(cat "$WORK/out")
	case "$uri1" in pkcs11:*token=tpmtok*id=*object=web*) ;; *) t_fail "keygen printed '$uri1'" ;; esac
	t_contains "$WORK/err" "generated $type key 'web' on token 'tpmtok'"
	# The token's own view: made inside, cannot leave, signs only.
	p11_tool --login --pin "$PIN" --list-objects --type privkey >"$WORK/priv.txt" 2>/dev/null
	t_contains "$WORK/priv.txt" "label:      web"
	t_contains "$WORK/priv.txt" "Access:     sensitive, always sensitive, never extractable, local"
	t_contains "$WORK/priv.txt" "Usage:      sign"
	t_not_contains "$WORK/priv.txt" "decrypt"
	t_not_contains "$WORK/priv.txt" "derive"
	t_expect 0 p11e keygen web
	[ "$(cat "$WORK/out")" = "$uri1" ] || t_fail "a second keygen made another key: $(cat "$WORK/out")"
	t_contains "$WORK/err" "reusing $type key 'web'"
	[ "$(grep -c 'label:' "$WORK/priv.txt")" = 1 ] || t_fail "expected one private key on the token"
	t_expect 0 p11e csr web -o "$WORK/web.csr"
	no_pin_leak
	csr_ok "$type" "$WORK/web.csr"
	# The token's public key object is the CSR's key (OpenSC 0.23 cannot
	# read P-384 public keys; the verified signature covers that one).
	if [ "$type" != ec-p384 ]; then
		p11_tool --read-object --type pubkey --label web -o "$WORK/pub.der" >/dev/null 2>&1 ||
			t_fail "cannot read the public key object"
		openssl pkey -pubin -inform DER -in "$WORK/pub.der" -outform PEM >"$WORK/token-pub.pem"
		cmp -s "$WORK/token-pub.pem" "$WORK/web.csr.pub" || t_fail "the CSR's key is not the token's key"
	fi
	no_transient_objects
}

case_p11_rsa_2048() { p11_keygen_and_csr rsa-2048; }
case_p11_rsa_3072() { p11_keygen_and_csr rsa-3072; }
case_p11_ec_p256() { p11_keygen_and_csr ec-p256; }
case_p11_ec_p384() { p11_keygen_and_csr ec-p384; }

case_p11_refuse_rsa_4096() {
	tpm_need
	tpm_start
	p11_token
	p11_conf rsa-4096
	t_expect 5 p11e keygen web
	no_pin_leak
	# Learned from the token (C_GetMechanismInfo), not assumed.
	t_contains "$WORK/err" "token 'tpmtok'"
	t_contains "$WORK/err" "cannot make rsa-4096 keys; it reports RSA key sizes 1024–3072 bits"
	t_contains "$WORK/err" "of the allowed types it can make: rsa-2048, rsa-3072, ec-p256, ec-p384"
	p11_tool --login --pin "$PIN" --list-objects >"$WORK/objs.txt" 2>/dev/null
	t_not_contains "$WORK/objs.txt" "label:"
	no_transient_objects
}

case_p11_restart() {
	tpm_need
	tpm_start
	p11_token
	p11_conf ec-p256
	t_expect 0 p11e keygen web
	t_expect 0 p11e csr web -o "$WORK/before.csr"
	csr_ok ec-p256 "$WORK/before.csr"
	tpm_stop
	tpm_start
	t_expect 0 p11e csr web -o "$WORK/after.csr"
	csr_ok ec-p256 "$WORK/after.csr"
	cmp -s "$WORK/before.csr.pub" "$WORK/after.csr.pub" || t_fail "another key after the restart"
	t_expect 0 p11e keygen web
	t_contains "$WORK/err" "reusing ec-p256 key 'web'"
	no_transient_objects
}

# ---- through the tpm2 OpenSSL provider ----------------------------------------

prov_need() {
	local dir
	dir=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
	[ -e "$dir/tpm2.so" ] || t_skip "tpm2-openssl ($dir/tpm2.so) is not installed"
}

prov_conf() {
	KEY="$WORK/keys/web.tss2.pem"
	conf "provider:tpm2:$KEY?tcti=$TCTI" "$@"
}

# The provider's own reading of the key file (a second opinion).
prov_pub() {
	TPM2OPENSSL_TCTI=$TCTI openssl pkey -provider tpm2 -provider default -in "$1" -pubout
}

prov_keygen_and_csr() {
	local type=$1 target id
	tpm_need
	prov_need
	tpm_start
	prov_conf "$type"
	t_expect 0 p11e keygen web
	[ "$(cat "$WORK/out")" = "provider:tpm2:$KEY?tcti=$TCTI" ] || t_fail "keygen printed '$(cat "$WORK/out")'"
	t_contains "$WORK/err" "generated $type key 'web' on the TPM via OpenSSL provider tpm2 (TCTI $TCTI)"
	# PATH names PATH.<ID>, a wrapped key only this TPM can use, mode 0600.
	[ -L "$KEY" ] || t_fail "$KEY is not a link"
	target=$(readlink "$KEY")
	case "$target" in web.tss2.pem.[0-9a-f]*) ;; *) t_fail "$KEY points at '$target'" ;; esac
	[ ${#target} = $((13 + 32)) ] || t_fail "key file name '$target' does not end in a 32-digit id"
	[ "$(stat -c %a "$WORK/keys/$target")" = 600 ] || t_fail "key file mode is $(stat -c %a "$WORK/keys/$target")"
	[ "$(head -n1 "$KEY")" = "-----BEGIN TSS2 PRIVATE KEY-----" ] || t_fail "not a TSS2 PRIVATE KEY: $(head -n1 "$KEY")"
	t_not_contains "$KEY" "BEGIN PRIVATE KEY"
	if openssl pkey -in "$KEY" -noout >"$WORK/clear.txt" 2>&1; then
		t_fail "openssl read a private key from $KEY without the TPM"
	fi
	t_expect 0 p11e keygen web
	t_contains "$WORK/err" "reusing $type key 'web'"
	[ "$(find "$WORK/keys" -mindepth 1 -maxdepth 1 ! -name '.*' | wc -l)" = 2 ] ||
		t_fail "a second keygen left more files: $(cd "$WORK/keys" && echo *)"
	t_expect 0 p11e csr web -o "$WORK/web.csr"
	csr_ok "$type" "$WORK/web.csr"
	prov_pub "$KEY" >"$WORK/prov-pub.pem" 2>"$WORK/prov.err" || { cat "$WORK/prov.err"; t_fail "the provider cannot read $KEY"; }
	cmp -s "$WORK/prov-pub.pem" "$WORK/web.csr.pub" || t_fail "the CSR's key is not the key in $KEY"
	# The id in the file name: SHA-256 of the public key, first 16 bytes.
	id=$(openssl pkey -pubin -in "$WORK/web.csr.pub" -outform DER | openssl dgst -sha256 -binary |
		head -c 16 | od -An -tx1 | tr -d ' \n')
	[ "$target" = "web.tss2.pem.$id" ] || t_fail "key file $target, expected web.tss2.pem.$id"
	no_transient_objects
}

case_prov_rsa_2048() { prov_keygen_and_csr rsa-2048; }
case_prov_rsa_3072() { prov_keygen_and_csr rsa-3072; }
case_prov_ec_p256() { prov_keygen_and_csr ec-p256; }
case_prov_ec_p384() { prov_keygen_and_csr ec-p384; }

case_prov_refuse_rsa_4096() {
	tpm_need
	prov_need
	tpm_start
	prov_conf rsa-4096
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "the TPM via OpenSSL provider tpm2 (TCTI $TCTI) cannot make rsa-4096 keys"
	t_contains "$WORK/err" "of the allowed types it can make: rsa-2048, rsa-3072 (if the TPM has it), ec-p256, ec-p384"
	[ ! -e "$WORK/keys" ] || [ -z "$(ls -A "$WORK/keys")" ] || t_fail "files left: $(ls "$WORK/keys")"
	# Refused before the TPM was asked: a failed keygen would leak its primary.
	no_transient_objects
}

case_prov_restart() {
	tpm_need
	prov_need
	tpm_start
	prov_conf rsa-2048
	t_expect 0 p11e keygen web
	t_expect 0 p11e csr web -o "$WORK/before.csr"
	csr_ok rsa-2048 "$WORK/before.csr"
	tpm_stop
	tpm_start
	t_expect 0 p11e csr web -o "$WORK/after.csr"
	csr_ok rsa-2048 "$WORK/after.csr"
	cmp -s "$WORK/before.csr.pub" "$WORK/after.csr.pub" || t_fail "another key after the restart"
	no_transient_objects
}

case_prov_rotate() {
	local id1 id2
	tpm_need
	prov_need
	[ -x "$KEYS_DRIVER" ] || t_fail "$KEYS_DRIVER was not built"
	tpm_start
	prov_conf ec-p256
	t_expect 0 "$KEYS_DRIVER" "$WORK/p.conf" web rotate
	id1=$(sed -n 's/^id1 //p' "$WORK/out")
	id2=$(sed -n 's/^id2 //p' "$WORK/out")
	{ [ ${#id1} = 32 ] && [ ${#id2} = 32 ]; } || t_fail "bad key ids '$id1' '$id2'"
	t_contains "$WORK/out" "before commit PATH -> web.tss2.pem.$id1"
	t_contains "$WORK/out" "csr with key2 ok"
	t_contains "$WORK/out" "by nonce: $id2 found"
	t_contains "$WORK/out" "reopened key2 by id"
	t_contains "$WORK/out" "nonce link removed"
	t_contains "$WORK/out" "after commit PATH -> web.tss2.pem.$id2"
	t_contains "$WORK/out" "refused: refusing to remove the key in use"
	t_contains "$WORK/out" "key1 file removed"
	t_contains "$WORK/out" "PATH opens key2"
	[ "$(cd "$WORK/keys" && echo *)" = "web.tss2.pem web.tss2.pem.$id2" ] ||
		t_fail "key folder holds: $(cd "$WORK/keys" && echo *)"
	t_expect 0 p11e csr web -o "$WORK/web.csr"
	csr_ok ec-p256 "$WORK/web.csr"
	prov_pub "$WORK/keys/web.tss2.pem.$id2" >"$WORK/key2.pem"
	cmp -s "$WORK/key2.pem" "$WORK/web.csr.pub" || t_fail "the CSR is not made with the rotated key"
	no_transient_objects
}

case_prov_clear_key_refused() {
	tpm_need
	prov_need
	tpm_start
	prov_conf ec-p256
	mkdir -p "$WORK/keys"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEY" 2>/dev/null
	cp "$KEY" "$WORK/clear.pem"
	t_expect 5 p11e csr web
	t_contains "$WORK/err" "holds a 'PRIVATE KEY', not a TSS2 PRIVATE KEY"
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "only certifies keys that stay in the TPM"
	cmp -s "$KEY" "$WORK/clear.pem" || t_fail "keygen replaced the file"
	[ "$(ls "$WORK/keys")" = web.tss2.pem ] || t_fail "files left: $(ls "$WORK/keys")"
	no_transient_objects
}

case_prov_other_tpm() {
	tpm_need
	prov_need
	tpm_start
	prov_conf ec-p256
	t_expect 0 p11e keygen web
	tpm_stop
	# A new TPM (new seeds): the wrapped key is worthless there.
	mv "$WORK/tpmstate" "$WORK/tpmstate.old"
	tpm_start
	t_expect 5 p11e csr web
	t_contains "$WORK/err" "cannot load the key in $KEY"
	t_expect 5 p11e keygen web
	no_transient_objects
}

case_prov_tpm_unreachable() {
	prov_need
	TCTI="swtpm:path=$WORK/no-such.sock"
	prov_conf ec-p256
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "cannot load OpenSSL provider 'tpm2' to reach the TPM (TCTI $TCTI)"
	[ ! -e "$WORK/keys" ] || t_fail "a key folder was made"
}

# bad_key LINE-TEXT URI MESSAGE — the configuration is refused at p.conf:5.
bad_key() {
	conf "$1" ec-p256
	t_expect 2 p11e csr web
	t_contains "$WORK/err" "p.conf:5: key = $1"
	t_contains "$WORK/err" "$2"
}

case_prov_config_errors() {
	TCTI="swtpm:path=$WORK/tpm.sock"
	bad_key "provider:tpm2:keys/web.pem" "must be an absolute path"
	bad_key "provider:tpm2:/var/lib/p11enroll/keys/" "must be an absolute path"
	bad_key "provider:tpm2:/k.pem?pin=1234" "unknown parameter 'pin' in the provider key URI (known: tcti=)"
	bad_key "provider:tpm2:/k.pem?tcti=" "tcti= in the provider key URI takes one TCTI string"
	bad_key "provider:tpm2:/k.pem?tcti=a&b=c" "tcti= in the provider key URI takes one TCTI string"
	bad_key "provider:pkcs11:/k.pem" "provider 'pkcs11' is not supported for keys; supported: tpm2"
	bad_key "provider:tpm2" "needs a provider name and a path"
	bad_key "provider::/k.pem" "needs a provider name and a path"
	# No token, so no certificate objects: said at the line that asks.
	prov_conf ec-p256 "store_in_token = yes"
	t_expect 2 p11e csr web
	t_contains "$WORK/err" "p.conf:9: store_in_token = yes needs a PKCS#11 token"
	prov_conf ec-p256 "store_in_token = no"
	t_expect 5 p11e csr web
	t_not_contains "$WORK/err" "store_in_token"
}

# ---- enrolment end to end against the CERTInext simulator ------------------------

# ca_lines — a [ca:sim] for the simulator started here (appended to p.conf).
ca_lines() {
	t_need curl
	t_sim_start certinext sim --scenario "$WORK/scenario.json"
	echo
	t_ca_section certinext | sed 's/^default_product = .*/default_product = 844/'
}

# enrol_checks — files verify against the simulator's root and carry the key.
enrol_checks() {
	openssl verify -CAfile "$SIM_ROOT" -untrusted "$WORK/tls/chain.pem" "$WORK/tls/cert.pem" >/dev/null ||
		t_fail "openssl verify failed"
	openssl x509 -in "$WORK/tls/cert.pem" -noout -pubkey >"$WORK/leaf.pub"
	openssl req -in "$WORK/web.csr" -noout -pubkey | cmp -s - "$WORK/leaf.pub" ||
		t_fail "the certificate is not for the TPM key"
	grep -q '"state":[[:space:]]*"monitoring"' "$WORK/state/web.json" || t_fail "journal not in monitoring"
	no_transient_objects
}

sim_orders() { t_sim_stat 's["orders_placed"]'; }

# UCC product 844: the configuration's two DNS names; the simulator takes a
# renewal with the same key (EMS-1099 scope: CSR bytes).
enrol_scenario() { echo '{"duplicate_csr_scope": "csr"}' >"$WORK/scenario.json"; }

case_p11_enroll() {
	tpm_need
	tpm_start
	p11_token
	enrol_scenario
	p11_conf ec-p256 "ca = sim" "cert_file = $WORK/tls/cert.pem" "chain_file = $WORK/tls/chain.pem" \
		"store_in_token = yes"
	ca_lines >>"$WORK/p.conf"
	t_expect 0 p11e enroll web
	no_pin_leak
	t_expect 0 p11e csr web -o "$WORK/web.csr"
	enrol_checks
	# The certificate object sits beside the key on the TPM token.
	p11_tool --list-objects --type cert >"$WORK/certs.txt" 2>/dev/null
	t_contains "$WORK/certs.txt" "label:      web"
	# A reboot (swtpm restart, same state): the renewal still signs with the key.
	tpm_stop
	tpm_start
	t_expect 0 p11e renew web --force
	enrol_checks
	[ "$(sim_orders)" = 2 ] || t_fail "the CA saw $(sim_orders) orders"
}

case_prov_enroll() {
	tpm_need
	prov_need
	tpm_start
	enrol_scenario
	prov_conf ec-p256 "ca = sim" "cert_file = $WORK/tls/cert.pem" "chain_file = $WORK/tls/chain.pem" \
		"rotate_key = yes"
	ca_lines >>"$WORK/p.conf"
	t_expect 0 p11e enroll web
	t_expect 0 p11e csr web -o "$WORK/web.csr"
	enrol_checks
	local first
	first=$(readlink "$KEY")
	# After a reboot, a renewal with a new key: PATH moves to it once installed.
	tpm_stop
	tpm_start
	t_expect 0 p11e renew web --force
	t_expect 0 p11e csr web -o "$WORK/web.csr"
	enrol_checks
	[ "$(readlink "$KEY")" != "$first" ] || t_fail "the key link did not move to the new key"
	[ ! -e "$WORK/keys/$first" ] || t_fail "the replaced key file is still there"
	[ "$(sim_orders)" = 2 ] || t_fail "the CA saw $(sim_orders) orders"
}

t_run "$@"
