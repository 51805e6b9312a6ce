#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# keygen and csr on a real SoftHSM2 token, made per test in its own folder.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273  # distinctive, so a leak is easy to grep for

# conf NAME KEY_TYPE [extra lines…] — writes $WORK/p.conf for [cert:NAME].
conf() {
	local name=$1 type=$2
	shift 2
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo
		echo "[cert:$name]"
		echo "key = pkcs11:token=edge;object=$name?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "key_type = $type"
		echo "subject = CN=www.example.com,O=Example\\, Corp,C=US"
		echo "dns = www.example.com, example.com"
		local line
		for line in "$@"; do echo "$line"; done
	} >"$WORK/p.conf"
}

p11e() { "$P11ENROLL" -c "$WORK/p.conf" "$@"; }

no_objects_left() {
	local objs
	objs=$(t_token_objects edge)
	[ -z "$objs" ] || t_fail "objects left on the token: $objs"
}

no_pin_leak() {
	! grep -q "$PIN" "$WORK/out" "$WORK/err" || t_fail "the PIN appears in the output"
}

# keygen + csr for one type, with every check of the issue.
keygen_and_csr() {
	local type=$1 sigalg=$2 uri1 uri2
	t_softhsm_token edge "$PIN"
	conf web "$type" "ip = 192.0.2.10"
	t_expect 0 p11e -v keygen web
	no_pin_leak
	uri1=$(cat "$WORK/out")
	case "$uri1" in pkcs11:*token=edge*id=*object=web*) ;; *) t_fail "keygen printed '$uri1'" ;; esac
	t_contains "$WORK/err" "generated $type key 'web'"
	# The token's own view of the new key.
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label edge --login --pin "$PIN" \
		--list-objects --type privkey >"$WORK/priv.txt" 2>/dev/null
	t_contains "$WORK/priv.txt" "Access:     sensitive, always sensitive, never extractable, local"
	t_contains "$WORK/priv.txt" "Usage:      sign"
	t_not_contains "$WORK/priv.txt" "decrypt"
	t_not_contains "$WORK/priv.txt" "derive"
	# A second keygen finds and reuses it.
	t_expect 0 p11e keygen web
	uri2=$(cat "$WORK/out")
	[ "$uri1" = "$uri2" ] || t_fail "second keygen made another key: $uri2"
	t_contains "$WORK/err" "reusing $type key 'web'"
	[ "$(t_token_objects edge | wc -l)" = 2 ] || t_fail "expected one key pair on the token"
	# The CSR: verified, signed with the right algorithm, for the token's key.
	t_expect 0 p11e csr web -o "$WORK/web.csr"
	openssl req -in "$WORK/web.csr" -noout -verify >/dev/null 2>&1 || t_fail "openssl req -verify failed"
	openssl req -in "$WORK/web.csr" -noout -text >"$WORK/csr.txt"
	t_contains "$WORK/csr.txt" "Signature Algorithm: $sigalg"
	t_contains "$WORK/csr.txt" "DNS:www.example.com, DNS:example.com, IP Address:192.0.2.10"
	t_contains "$WORK/csr.txt" 'Subject: C = US, O = "Example, Corp", CN = www.example.com'
	openssl req -in "$WORK/web.csr" -noout -pubkey >"$WORK/csr-pub.pem"
	# The token's public key object equals the CSR's key (OpenSC 0.23 cannot
	# export P-384 public keys, so that one is proven by the signature below).
	if [ "$type" != ec-p384 ]; then
		pkcs11-tool --module "$SOFTHSM_MODULE" --token-label edge --read-object --type pubkey \
			--label web -o "$WORK/pub.der" >/dev/null 2>&1 || t_fail "cannot read the public key object"
		openssl pkey -pubin -inform DER -in "$WORK/pub.der" -outform PEM >"$WORK/token-pub.pem"
		cmp -s "$WORK/token-pub.pem" "$WORK/csr-pub.pem" || t_fail "the CSR's key is not the token's key"
	fi
	# And the token's private key signs what the CSR's public key verifies.
	printf 'proof of possession' >"$WORK/data"
	openssl dgst -sha256 -binary "$WORK/data" >"$WORK/digest"
	case "$type" in
	rsa-*) pkcs11-tool --module "$SOFTHSM_MODULE" --token-label edge --login --pin "$PIN" \
		--sign --label web -m SHA256-RSA-PKCS -i "$WORK/data" -o "$WORK/sig" >/dev/null 2>&1 ;;
	*) pkcs11-tool --module "$SOFTHSM_MODULE" --token-label edge --login --pin "$PIN" \
		--sign --label web -m ECDSA --signature-format openssl -i "$WORK/digest" -o "$WORK/sig" >/dev/null 2>&1 ;;
	esac || t_fail "the token did not sign"
	openssl dgst -sha256 -verify "$WORK/csr-pub.pem" -signature "$WORK/sig" "$WORK/data" >/dev/null ||
		t_fail "a signature by the token key does not verify with the CSR's key"
	# To standard output as well.
	t_expect 0 p11e csr web
	t_contains "$WORK/out" "-----BEGIN CERTIFICATE REQUEST-----"
}

case_keygen_rsa_2048() { keygen_and_csr rsa-2048 sha256WithRSAEncryption; }
case_keygen_rsa_3072() { keygen_and_csr rsa-3072 sha256WithRSAEncryption; }
case_keygen_rsa_4096() { keygen_and_csr rsa-4096 sha256WithRSAEncryption; }
case_keygen_ec_p256() { keygen_and_csr ec-p256 ecdsa-with-SHA256; }
case_keygen_ec_p384() { keygen_and_csr ec-p384 ecdsa-with-SHA384; }

refuse_type() {
	t_softhsm_token edge "$PIN"
	conf web "$1"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:6: key type '$1' is not allowed; allowed: rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384"
	no_objects_left
}
case_refuse_rsa_1024() { refuse_type rsa-1024; }
case_refuse_rsa_8192() { refuse_type rsa-8192; }
case_refuse_ec_p521() { refuse_type ec-p521; }
case_refuse_ed25519() { refuse_type ed25519; }

case_wrong_pin() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	(umask 077; echo 000000 >"$WORK/pin")
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "wrong PIN for token 'edge'"
	t_contains "$WORK/err" "not retried"
	t_not_contains "$WORK/err" "000000"
	# One attempt only: the right PIN still works afterwards.
	(umask 077; echo "$PIN" >"$WORK/pin")
	no_objects_left
	t_expect 0 p11e keygen web
}

case_missing_token() {
	t_softhsm_token other "$PIN"
	conf web ec-p256
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "no token matches the key URI; tokens found: 'other' (SoftHSM project"
}

case_two_matching_tokens() {
	t_softhsm_token edge "$PIN"
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "2 tokens match the key URI"
	t_contains "$WORK/err" "add serial= to pick one"
	# serial= picks one of them.
	local serial
	serial=$(softhsm2-util --show-slots | awk '/Serial number:/ { s=$3 } /Label: *edge/ { print s; exit }')
	sed -i "s|token=edge;|token=edge;serial=$serial;|" "$WORK/p.conf"
	t_expect 0 p11e keygen web
}

# module-name: the module comes from p11-kit's registry (softhsm2.module).
case_module_name() {
	[ -e /usr/share/p11-kit/modules/softhsm2.module ] || t_skip "softhsm2 is not in the p11-kit registry"
	# p11-kit loads every registered module to find the named one; another
	# registered module keeps an allocation that LSan reports once it is
	# unloaded, where no suppression can name it. Leak checks stay on for
	# every other case; ASan's other checks stay on here.
	export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	sed -i "s|module-path=[^&]*|module-name=softhsm2|" "$WORK/p.conf"
	t_expect 0 p11e keygen web
	t_contains "$WORK/out" "module-name=softhsm2"
	sed -i "s|module-name=softhsm2|module-name=nosuchmodule|" "$WORK/p.conf"
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "no p11-kit module named 'nosuchmodule' (module-name in the key URI); registered:"
	t_contains "$WORK/err" "softhsm2"
}

case_missing_module() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	sed -i "s|module-path=[^&]*|module-path=/nonexistent/libpkcs11.so|" "$WORK/p.conf"
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "PKCS#11 module /nonexistent/libpkcs11.so (module-path in the key URI): No such file or directory"
}

case_bad_uri_attribute() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	sed -i "s|object=web|objekt=web|" "$WORK/p.conf"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:5: key URI: unknown path attribute 'objekt'"
	no_objects_left
}

case_malformed_subject() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	sed -i 's|^subject = .*|subject = CN=www.example.com,O=Bad;Corp|' "$WORK/p.conf"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:7: subject: character ';' at position 25 must be escaped"
	no_objects_left
}

case_bad_san() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	sed -i 's|^dns = .*|dns = www.example.com, bad_name.example.com|' "$WORK/p.conf"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:8: dns: 'bad_name.example.com' is not a valid DNS name"
	conf web ec-p256 "email = not-an-address"
	t_expect 2 p11e csr web
	t_contains "$WORK/err" "p.conf:9: email: 'not-an-address'"
	no_objects_left
}

case_unknown_key() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256 "colour = blue"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:9: unknown key 'colour' in [cert:web]"
	no_objects_left
}

case_pin_file_readable_by_others() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	chmod 0644 "$WORK/pin"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "pin-source: $WORK/pin is accessible by group or others (mode 0644); fix: chmod 600 $WORK/pin"
	no_pin_leak
	no_objects_left
}

case_inline_pin_refused() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	sed -i "s|pin-source=file:[^ ]*|pin-value=$PIN|" "$WORK/p.conf"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "the key URI carries pin-value"
	no_pin_leak
	printf '[agent]\nallow_inline_secrets = yes\n' >"$WORK/head.conf"
	sed -i '1,2d' "$WORK/p.conf"
	cat "$WORK/head.conf" "$WORK/p.conf" >"$WORK/q.conf" && mv "$WORK/q.conf" "$WORK/p.conf"
	t_expect 0 p11e -v keygen web
	no_pin_leak
}

case_existing_key_of_another_type() {
	t_softhsm_token edge "$PIN"
	conf web ec-p384
	t_expect 0 p11e keygen web
	conf web ec-p256
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "the key 'web' on token 'edge'"
	t_contains "$WORK/err" "is ec-p384, but [cert:web] asks for ec-p256 (" 
	t_contains "$WORK/err" "p.conf:6); it is not replaced"
	[ "$(t_token_objects edge | wc -l)" = 2 ] || t_fail "the existing key was touched"
}

case_existing_key_outside_policy() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label edge --login --pin "$PIN" \
		--keypairgen --key-type EC:secp521r1 --label web --id 99 >/dev/null 2>&1 || t_fail "pkcs11-tool keygen"
	t_expect 5 p11e keygen web
	t_contains "$WORK/err" "the key on the token is EC on curve"
	t_contains "$WORK/err" "allowed: rsa-2048"
}

case_extractable_key_refused() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label edge --login --pin "$PIN" \
		--keypairgen --key-type EC:prime256v1 --label web --id 98 --extractable >/dev/null 2>&1 ||
		t_fail "pkcs11-tool keygen"
	t_expect 5 p11e csr web
	t_contains "$WORK/err" "can be exported"
}

case_csr_without_key() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	t_expect 5 p11e csr web
	t_contains "$WORK/err" "has no key 'web' for [cert:web]; make it with \`p11enroll keygen web\`"
	no_objects_left
}

case_usage() {
	t_expect 2 "$P11ENROLL"
	t_contains "$WORK/err" "usage: p11enroll"
	t_expect 2 "$P11ENROLL" frobnicate
	t_contains "$WORK/err" "unknown command 'frobnicate'"
	t_expect 0 "$P11ENROLL" --help
	t_contains "$WORK/out" "keygen"
	t_expect 0 "$P11ENROLL" csr --help
	t_contains "$WORK/out" "usage: p11enroll csr NAME [-o FILE]"
	t_expect 0 "$P11ENROLL" --version
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	t_expect 2 p11e keygen
	t_expect 2 p11e keygen nosuch
	t_contains "$WORK/err" "has no [cert:nosuch] (certificates there: web)"
	t_expect 2 "$P11ENROLL" -c "$WORK/absent.conf" keygen web
	t_contains "$WORK/err" "no configuration at $WORK/absent.conf; give -c FILE or set P11ENROLL_CONFIG"
	P11ENROLL_CONFIG="$WORK/p.conf" t_expect 0 "$P11ENROLL" keygen web
}

# ca_section SIGNER_IP [extra lines…] — appends a CERTInext [ca:prod] to
# $WORK/p.conf. Its API is a closed loopback port: a test that reaches it
# has already failed.
ca_section() {
	local ip=$1
	shift
	(umask 077; echo "not-a-real-access-key" >"$WORK/access.key")
	{
		echo
		echo "[ca:prod]"
		echo "type = certinext"
		echo "api_url = https://127.0.0.1:9/emSignHub-API"
		echo "account_number = 5550001234"
		echo "access_key_file = $WORK/access.key"
		echo "requestor_name = PKI Automation"
		echo "requestor_email = pki@example.com"
		echo "signer_place = Austin"
		echo "signer_ip = $ip"
		echo "default_product = 842"
		echo "max_retries = 0"
		echo "connect_timeout = 1s"
		local line
		for line in "$@"; do echo "$line"; done
	} >>"$WORK/p.conf"
}

# The CA's secret files are read before a key is made: a missing or exposed
# access key stops enroll with exit 2 and nothing on the token.
case_ca_secrets_checked_before_token() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256 "ca = prod"
	ca_section 93.184.216.34
	rm -f "$WORK/access.key"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "access.key"
	no_objects_left
	(umask 077; echo "not-a-real-access-key" >"$WORK/access.key")
	chmod 0644 "$WORK/access.key"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "access.key"
	t_contains "$WORK/err" "chmod"
	no_objects_left
}

# Every [ca:] value and what an order needs are checked when the file loads:
# nothing is made on the token first.
case_ca_values_checked_before_token() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256 "ca = prod"
	ca_section 93.184.216.34 "page_size = 0"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "p.conf:23: page_size = '0' is not 1..500"
	no_objects_left
	conf web ec-p256 "ca = prod"
	ca_section 93.184.216.34 "max_response_size = 12"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "p.conf:23"
	t_contains "$WORK/err" "max_response_size"
	no_objects_left
	conf web ec-p256 "ca = prod"
	ca_section 93.184.216.34 "dcv_timeout = forever"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "p.conf:23: dcv_timeout = 'forever' is not a duration"
	no_objects_left
	# an order field a [cert:] overrides, and one that no section sets
	conf web ec-p256 "ca = prod" "renew_criteria = 45"
	ca_section 93.184.216.34
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "p.conf:10: [cert:web] renew_criteria = '45' is not 30 or 60"
	no_objects_left
	conf web ec-p256 "ca = prod"
	ca_section 93.184.216.34
	sed -i '/^signer_place/d' "$WORK/p.conf"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "p.conf:4: [cert:web] with [ca:prod]: signer_place is not set"
	no_objects_left
	# The SSL Store: a duration, and a product family's needs
	conf web ec-p256 "ca = store"
	(umask 077; echo "not-a-real-token" >"$WORK/auth.token")
	printf '\n[ca:store]\ntype = sslstore\napi_url = https://127.0.0.1:9\npartner_code = 12345678\nauth_token_file = %s\ndefault_product = positivessl\napprover_email = admin@example.com\nrenewal_window = soon\n' \
		"$WORK/auth.token" >>"$WORK/p.conf"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "p.conf:18: [ca:store] renewal_window = 'soon' is not a duration"
	sed -i '/^renewal_window/d' "$WORK/p.conf"
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "p.conf:4: [cert:web] product positivessl"
	t_contains "$WORK/err" "needs admin_email"
	no_objects_left
}

# signer_ip is this host's public IPv4 address (p11enroll.conf(5)).
case_signer_ip_public() {
	t_softhsm_token edge "$PIN"
	local ip
	for ip in 10.1.2.3 172.20.0.5 192.168.7.7 100.64.1.1 127.0.0.1 169.254.1.1 0.0.0.0 \
		224.0.0.5 255.255.255.255 192.0.2.10 198.51.100.23 203.0.113.10 198.18.0.1; do
		conf web ec-p256 "ca = prod"
		ca_section "$ip"
		t_expect 2 p11e enroll web
		t_contains "$WORK/err" "p.conf:19: signer_ip = '$ip' is a"
		t_contains "$WORK/err" "not a public address"
	done
	conf web ec-p256 "ca = prod" "signer_ip = 2001:db8::1"
	ca_section 93.184.216.34
	t_expect 2 p11e enroll web
	t_contains "$WORK/err" "p.conf:10: [cert:web] signer_ip = '2001:db8::1' is not an IPv4 address"
	no_objects_left
	# a public address loads: keygen works with the same configuration
	conf web ec-p256 "ca = prod" "signer_ip = 8.8.4.4"
	ca_section 93.184.216.34
	t_expect 0 p11e keygen web
}

# Values are UTF-8 text without control characters, or the file is refused.
case_values_utf8_text() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	sed -i "s|^subject = .*|subject = CN=www.example.com,O=Tab$(printf '\t')Corp|" "$WORK/p.conf"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:7: the value of 'subject' holds a control character"
	conf web ec-p256
	sed -i "s|^subject = .*|subject = CN=www.example.com,O=M$(printf '\374')nchen|" "$WORK/p.conf"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:7: the value of 'subject' holds bytes that are not UTF-8"
	# a NUL would cut the line: dns would lose its second name
	conf web ec-p256
	sed -i '/^dns = /d' "$WORK/p.conf"
	printf 'dns = www.example.com\000, evil.example.com\n' >>"$WORK/p.conf"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:8: the line holds a NUL byte"
	no_objects_left
	# UTF-8 text is fine
	conf web ec-p256
	sed -i "s|^subject = .*|subject = CN=www.example.com,O=M$(printf '\303\274')nchen|" "$WORK/p.conf"
	t_expect 0 p11e keygen web
}

# [cert:NAME] and [ca:NAME] name files in state_dir: no path tricks.
case_section_names_safe() {
	t_softhsm_token edge "$PIN"
	conf ../escape ec-p256
	t_expect 2 p11e enroll ../escape
	t_contains "$WORK/err" "p.conf:4: [cert:../escape]: a certificate name has 1 to 40 letters"
	{ [ ! -e "$WORK/escape.json" ] && [ ! -e "$WORK/escape.lock" ]; } || t_fail "a journal outside state_dir"
	conf .hidden ec-p256
	t_expect 2 p11e keygen .hidden
	t_contains "$WORK/err" "does not start with '.'"
	conf web ec-p256
	printf '\n[ca:a/b]\ntype = certinext\n' >>"$WORK/p.conf"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:10: [ca:a/b]: a CA name has 1 to 40 letters"
	no_objects_left
	conf web-1.example_com ec-p256
	t_expect 0 p11e keygen web-1.example_com
}

# A CA override written before ca = is refused, as the manual says.
case_override_before_ca() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256 "product = 842" "ca = prod"
	ca_section 93.184.216.34
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:9: 'product' overrides a setting of the CA, so it comes after ca = prod (line 10)"
	no_objects_left
	conf web ec-p256 "ca = prod" "product = 842"
	ca_section 93.184.216.34
	t_expect 0 p11e keygen web
}

# state_dir holds the journals that say which orders exist: others must not
# be able to write it.
case_state_dir_private() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	mkdir -m 0777 "$WORK/state"
	chmod 0777 "$WORK/state"
	t_expect 2 p11e keygen web
	t_contains "$WORK/err" "p.conf:2: state_dir $WORK/state may be written by others (mode 0777); fix: chmod 700 $WORK/state"
	chmod 0770 "$WORK/state"
	t_expect 2 p11e status
	t_contains "$WORK/err" "may be written by its group (mode 0770)"
	no_objects_left
	chmod 0700 "$WORK/state"
	t_expect 0 p11e keygen web
}

# A PIN file mounted the Kubernetes way (a chain of links into ..data/) is
# read, and `check` says what the read does.
case_secret_symlink_chain() {
	t_softhsm_token edge "$PIN"
	conf web ec-p256
	local v=..2026_12_03_12_00_00.000000001
	mkdir -p "$WORK/secret/$v"
	(umask 077; echo "$PIN" >"$WORK/secret/$v/pin")
	chmod 0400 "$WORK/secret/$v/pin"
	ln -s "$v" "$WORK/secret/..data"
	ln -s ..data/pin "$WORK/secret/pin"
	sed -i "s|pin-source=file:[^ ]*|pin-source=file:$WORK/secret/pin|" "$WORK/p.conf"
	"$P11ENROLL" -c "$WORK/p.conf" check web >"$WORK/out" 2>"$WORK/err"
	grep -Eq '^ok +cert:web +PIN file' "$WORK/out" || { cat "$WORK/out"; t_fail "check did not accept the PIN file"; }
	t_expect 0 p11e keygen web
	no_pin_leak
	# a link to a file others may read: both refuse, saying the same
	chmod 0644 "$WORK/secret/$v/pin"
	"$P11ENROLL" -c "$WORK/p.conf" check web >"$WORK/out" 2>"$WORK/err"
	grep -Eq '^FAIL +cert:web +PIN file .*accessible by group or others' "$WORK/out" ||
		{ cat "$WORK/out"; t_fail "check accepted a PIN file others may read"; }
	t_expect 2 p11e csr web
	t_contains "$WORK/err" "pin-source: $WORK/secret/pin is accessible by group or others (mode 0644)"
	no_pin_leak
}

t_run "$@"
