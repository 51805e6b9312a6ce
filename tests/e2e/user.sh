#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a user installs and meets: p11enroll installed into a temporary
# DESTDIR and used from there (the CA sandbox, the example configuration,
# bash completion), the Prometheus rules, nginx with a token key.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273

# install_here — `meson install` of this build into $WORK/inst; sets PREFIX_DIR.
install_here() {
	: "${P11E_BUILDDIR:?run through meson test}"
	meson install -C "$P11E_BUILDDIR" --no-rebuild --quiet --destdir "$WORK/inst" \
		>"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; t_fail "meson install failed"; }
	PREFIX_DIR=$(dirname "$(dirname "$(find "$WORK/inst" -path '*/bin/p11enroll-sim' | head -1)")")
	[ -x "$PREFIX_DIR/bin/p11enroll-sim" ] || t_fail "p11enroll-sim was not installed"
	[ -x "$PREFIX_DIR/bin/p11enroll" ] || t_fail "p11enroll was not installed"
}

# sandbox_start KIND [ARGS…] — the installed p11enroll-sim in $WORK/sandbox.
sandbox_start() {
	local kind=$1 i
	shift
	"$PREFIX_DIR/bin/p11enroll-sim" "$kind" --dir "$WORK/sandbox" "$@" \
		>"$WORK/sandbox.out" 2>"$WORK/sandbox.err" &
	SANDBOX_PID=$!
	T_PIDS+=("$SANDBOX_PID")
	for i in $(seq 1 300); do
		[ -f "$WORK/sandbox/ready" ] && break
		kill -0 "$SANDBOX_PID" 2>/dev/null || { cat "$WORK/sandbox.err"; t_fail "p11enroll-sim died"; }
		sleep 0.05
	done
	[ -f "$WORK/sandbox/ready" ] || t_fail "p11enroll-sim did not get ready"
}

# The README's sequence, from the installed files only: start the sandbox,
# cat its ca.conf into the configuration, add a [cert:], enroll.
sandbox_enroll() {
	local kind=$1 f
	install_here
	t_need openssl pkcs11-tool
	t_softhsm_token ci "$PIN"
	# The installed copy must not reach back into the source tree.
	cp -r "$PREFIX_DIR" "$WORK/moved"
	PREFIX_DIR=$WORK/moved
	rm -rf "$WORK/inst"
	sandbox_start "$kind"
	for f in url ready api-ca.pem root.pem ca.conf; do
		[ -s "$WORK/sandbox/$f" ] || t_fail "the sandbox did not write $f"
	done
	t_contains "$WORK/sandbox/ca.conf" "[ca:sandbox]"
	t_contains "$WORK/sandbox/ca.conf" "ca_bundle = $WORK/sandbox/api-ca.pem"
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo
		cat "$WORK/sandbox/ca.conf"
		echo
		echo "[cert:web]"
		echo "ca = sandbox"
		echo "key = pkcs11:token=ci;object=web?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "key_type = ec-p256"
		echo "subject = CN=www.example.com"
		echo "dns = www.example.com"
		echo "cert_file = $WORK/tls/cert.pem"
		echo "chain_file = $WORK/tls/chain.pem"
		echo "fullchain_file = $WORK/tls/fullchain.pem"
	} >"$WORK/p.conf"
	t_expect 0 "$PREFIX_DIR/bin/p11enroll" -c "$WORK/p.conf" check
	t_expect 0 "$PREFIX_DIR/bin/p11enroll" -c "$WORK/p.conf" enroll web
	openssl verify -CAfile "$WORK/sandbox/root.pem" -untrusted "$WORK/tls/chain.pem" "$WORK/tls/cert.pem" \
		>/dev/null || t_fail "the certificate does not verify against the sandbox's root.pem"
	t_contains "$WORK/sandbox.err" "p11enroll-sim: $kind sandbox at"
	# SIGTERM stops it with status 0 and it takes its ready flag with it.
	kill "$SANDBOX_PID"
	wait "$SANDBOX_PID" || t_fail "p11enroll-sim exited $? on SIGTERM"
	[ ! -e "$WORK/sandbox/ready" ] || t_fail "ready left behind"
}
case_sandbox_certinext() { sandbox_enroll certinext; }
case_sandbox_sslstore() { sandbox_enroll sslstore; }

# A scenario file from the command line: pending, then a refusal.
case_sandbox_scenario() {
	install_here
	t_softhsm_token ci "$PIN"
	echo '{"reject": {"code": "EMS-1234", "message": "Refused by the sandbox"}}' >"$WORK/sc.json"
	sandbox_start certinext --scenario "$WORK/sc.json"
	{
		echo "[agent]"; echo "state_dir = $WORK/state"; cat "$WORK/sandbox/ca.conf"
		echo "[cert:web]"; echo "ca = sandbox"
		echo "key = pkcs11:token=ci;object=web?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "key_type = ec-p256"; echo "subject = CN=www.example.com"; echo "dns = www.example.com"
		echo "cert_file = $WORK/tls/cert.pem"
	} >"$WORK/p.conf"
	t_expect 4 "$PREFIX_DIR/bin/p11enroll" -c "$WORK/p.conf" enroll web
	t_contains "$WORK/err" "Refused by the sandbox"
	t_expect 2 "$PREFIX_DIR/bin/p11enroll-sim" nosuchca --dir "$WORK/x"
}

t_run "$@"
