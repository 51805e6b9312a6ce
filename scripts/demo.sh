#!/usr/bin/env bash
# The main job on an embedded default, end to end on this machine:
#   a SoftHSM2 token in a local folder, the CERTInext simulator on loopback,
#   `p11enroll enroll` and `status`, then the installed certificate served
#   with its token key by `openssl s_server` (pkcs11 engine, RFC 7512 URI)
#   and checked by `openssl s_client -verify_return_error` against the
#   simulator's root.
# Installs what is missing and builds first. DEMO_DIR (default ./demo) holds
# everything it makes; it is made anew on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
# Under meson test: inside that build folder, so builds never share it.
demo=${DEMO_DIR:-${P11E_BUILDDIR:+$P11E_BUILDDIR/demo}}
demo=${demo:-$top/demo}
softhsm=/usr/lib/softhsm/libsofthsm2.so

if [ -z "${P11ENROLL:-}" ]; then
	scripts/install-deps.sh
	[ -f build/build.ninja ] || meson setup build >/dev/null
	ninja -C build >/dev/null
	P11ENROLL=$top/build/agent/p11enroll
fi

step() { printf '\n== %s\n' "$*"; }
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
	return 0
}
trap cleanup EXIT

rm -rf "$demo"
mkdir -p "$demo/tokens" "$demo/sim"
chmod 700 "$demo"

step "a SoftHSM2 token in $demo/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$demo/tokens" >"$demo/softhsm2.conf"
export SOFTHSM2_CONF=$demo/softhsm2.conf
pin=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
softhsm2-util --init-token --free --label demo --pin "$pin" --so-pin "$pin$pin" >/dev/null
# No newline: the pkcs11 engine of libp11 0.4.12 would take it as part of the PIN.
(umask 077; printf '%s' "$pin" >"$demo/pin")

step "the CERTInext simulator on 127.0.0.1"
/usr/bin/python3 tests/sim/certinext_sim.py --dir "$demo/sim" >"$demo/sim.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 200); do [ -f "$demo/sim/ready" ] && break; sleep 0.05; done
[ -f "$demo/sim/ready" ] || { cat "$demo/sim.log"; exit 1; }
echo "listening at $(cat "$demo/sim/url")"

cat >"$demo/p11enroll.conf" <<CONF
[agent]
state_dir = $demo/state

[ca:demo]
type            = certinext
api_url         = $(cat "$demo/sim/url")
account_number  = 5550001234
access_key_file = $demo/sim/access.key
ca_bundle       = $demo/sim/ca/root.pem
requestor_name  = PKI Automation
requestor_email = pki@example.com
signer_place    = Austin
signer_ip       = 93.184.216.34
default_product = 842
poll_interval   = 1s

[cert:web]
ca             = demo
key            = pkcs11:token=demo;object=web?module-path=$softhsm&pin-source=file:$demo/pin
key_type       = ec-p256
subject        = CN=www.example.com
dns            = www.example.com
cert_file      = $demo/tls/cert.pem
chain_file     = $demo/tls/chain.pem
fullchain_file = $demo/tls/fullchain.pem
store_in_token = yes
CONF
echo "configuration: $demo/p11enroll.conf"

step "p11enroll enroll web"
"$P11ENROLL" -c "$demo/p11enroll.conf" enroll web

step "p11enroll status"
"$P11ENROLL" -c "$demo/p11enroll.conf" status

step "openssl s_server with the token key, s_client verifying against the simulator's root"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PKCS11_MODULE_PATH=$softhsm openssl s_server -engine pkcs11 -keyform engine \
	-key "pkcs11:token=demo;object=web;type=private?pin-source=file:$demo/pin" \
	-cert "$demo/tls/cert.pem" -cert_chain "$demo/tls/chain.pem" \
	-accept "127.0.0.1:$port" -naccept 1 -www >"$demo/s_server.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 100); do grep -q ACCEPT "$demo/s_server.log" 2>/dev/null && break; sleep 0.05; done
if echo | openssl s_client -connect "127.0.0.1:$port" -servername www.example.com \
	-verify_hostname www.example.com -verify_return_error -CAfile "$demo/sim/ca/root.pem" \
	>"$demo/s_client.log" 2>&1; then
	grep -E "^(subject|issuer)=|Verify return code" "$demo/s_client.log" | sed 's/^/  /'
	echo
	echo "demo: TLS handshake with the token key verified"
else
	cat "$demo/s_server.log" "$demo/s_client.log"
	echo "demo: TLS check FAILED" >&2
	exit 1
fi
