#!/usr/bin/env bash
# Benchmarks that print figures (no assertions): keygen and CSR per key type
# on SoftHSM2, one EC P-256 enrolment against the CERTInext simulator split
# by phase, `renew --all` over many tracked certificates with nothing due, and
# one ACME enrolment against pebble next to certbot's (when it is installed).
#   scripts/bench.sh [RUNS]        (default 5 runs per figure)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
runs=${1:-5}
P11ENROLL=${P11ENROLL:-$top/build/agent/p11enroll}
[ -x "$P11ENROLL" ] || { scripts/install-deps.sh; meson setup build >/dev/null 2>&1 || true; ninja -C build >/dev/null; }
softhsm=/usr/lib/softhsm/libsofthsm2.so
work=$(mktemp -d)
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$work"' EXIT

mkdir -p "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm2.conf
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null
(umask 077; echo 1234 >"$work/pin")

# stats LABEL FILE — min/median/max of the seconds in FILE, one per line
stats() {
	/usr/bin/python3 - "$1" "$2" <<'PY'
import statistics, sys
v = sorted(float(x) for x in open(sys.argv[2]) if x.strip())
print(f"{sys.argv[1]:<34} min {v[0]*1000:8.1f} ms   median {statistics.median(v)*1000:8.1f} ms   max {v[-1]*1000:8.1f} ms   (n={len(v)})")
PY
}

# seconds CMD… — wall time of one run
seconds() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	t1=$(date +%s.%N)
	awk "BEGIN { print $t1 - $t0 }"
}

echo "== keygen and CSR on SoftHSM2 (whole p11enroll process, $runs runs each)"
for type in rsa-2048 rsa-3072 rsa-4096 ec-p256 ec-p384; do
	: >"$work/keygen.$type"
	: >"$work/csr.$type"
	for i in $(seq 1 "$runs"); do
		cat >"$work/k.conf" <<CONF
[cert:k]
key = pkcs11:token=bench;object=$type-$i?module-path=$softhsm&pin-source=file:$work/pin
key_type = $type
dns = www.example.com
CONF
		seconds "$P11ENROLL" -c "$work/k.conf" keygen k >>"$work/keygen.$type"
		seconds "$P11ENROLL" -c "$work/k.conf" csr k -o "$work/k.csr" >>"$work/csr.$type"
	done
	stats "keygen $type" "$work/keygen.$type"
	stats "csr $type" "$work/csr.$type"
done

echo
echo "== one EC P-256 enrolment against the CERTInext simulator"
/usr/bin/python3 tests/sim/certinext_sim.py --dir "$work/sim" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 200); do [ -f "$work/sim/ready" ] && break; sleep 0.05; done
: >"$work/enroll"
for i in $(seq 1 "$runs"); do
	cat >"$work/e.conf" <<CONF
[agent]
state_dir = $work/state-$i
[ca:sim]
type = certinext
api_url = $(cat "$work/sim/url")
account_number = 5550001234
access_key_file = $work/sim/access.key
ca_bundle = $work/sim/ca/root.pem
requestor_name = Bench
requestor_email = bench@example.com
signer_place = Austin
signer_ip = 93.184.216.34
default_product = 842
poll_interval = 1s
[cert:web]
ca = sim
key = pkcs11:token=bench;object=web-$i?module-path=$softhsm&pin-source=file:$work/pin
key_type = ec-p256
dns = www$i.example.com
cert_file = $work/tls-$i/cert.pem
fullchain_file = $work/tls-$i/fullchain.pem
store_in_token = yes
CONF
	t0=$(date +%s.%N)
	"$P11ENROLL" -v -c "$work/e.conf" enroll web >/dev/null 2>"$work/enroll.log"
	t1=$(date +%s.%N)
	awk "BEGIN { print $t1 - $t0 }" >>"$work/enroll"
	grep -o 'time: .*' "$work/enroll.log" | sed 's/^/  in-process /'
done
stats "enroll (wall, whole process)" "$work/enroll"

echo
echo "== renew --all over 1000 tracked certificates, nothing due"
{
	echo "[agent]"
	echo "state_dir = $work/many"
	echo "[ca:sim]"
	sed -n '/^\[ca:sim\]/,/^\[cert:web\]/p' "$work/e.conf" | sed '1d;$d'
} >"$work/many.conf"
mkdir -p "$work/many"
/usr/bin/python3 - "$work/many.conf" "$work/many" "$softhsm" "$work/pin" <<'PY'
import json, sys, time
conf, state, module, pin = sys.argv[1:]
with open(conf, "a") as f:
    for i in range(1000):
        f.write(f"[cert:c{i}]\nca = sim\nkey = pkcs11:token=bench;object=c{i}?module-path={module}&pin-source=file:{pin}\n"
                f"dns = c{i}.example.com\ncert_file = {state}/c{i}.pem\n")
        j = {"version": 1, "name": f"c{i}", "state": "monitoring",
             "cert": {"serial": "01", "not_after": time.time() + 80 * 86400}}
        json.dump(j, open(f"{state}/c{i}.json", "w"))
PY
: >"$work/many.t"
for i in $(seq 1 "$runs"); do seconds "$P11ENROLL" -c "$work/many.conf" renew --all >>"$work/many.t"; done
stats "renew --all, 1000 certs, none due" "$work/many.t"
/usr/bin/time -f "peak memory of one such run: %M KiB" "$P11ENROLL" -c "$work/many.conf" renew --all

echo
echo "== one EC P-256 ACME enrolment against pebble: p11enroll (keys in SoftHSM2) next to certbot (file key)"
if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null; then
	echo "pebble is not installed (scripts/install-deps.sh installs it); skipped"
	exit 0
fi
acme_pids=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; [ -n "$acme_pids" ] && kill $acme_pids 2>/dev/null; rm -rf "$work"' EXIT
read -r a_port m_port h_port t_port d_port dm_port <<<"$(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(6)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"
mkdir -p "$work/pki" "$work/webroot"
(
	cd "$work/pki"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
		-days 2 -subj /CN=bench-ca 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr \
		-subj /CN=localhost 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext
	openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.pem -days 2 \
		-extfile ext 2>/dev/null
)
eab_key=$(head -c 48 /dev/urandom | basenc --base64url | tr -d '=\n')
(umask 077; echo "$eab_key" >"$work/eab.key")
cat >"$work/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$a_port", "managementListenAddress": "127.0.0.1:$m_port",
 "certificate": "$work/pki/tls.pem", "privateKey": "$work/pki/tls.key", "httpPort": $h_port,
 "tlsPort": $t_port, "ocspResponderURL": "", "externalAccountBindingRequired": true,
 "externalAccountMACKeys": {"kid-1": "$eab_key"}}}
JSON
pebble-challtestsrv -defaultIPv6 "" -dns01 "127.0.0.1:$d_port" -http01 "" -https01 "" -tlsalpn01 "" \
	-management "127.0.0.1:$dm_port" >"$work/challtestsrv.log" 2>&1 &
acme_pids="$acme_pids $!"
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
	pebble -config "$work/pebble.json" -dnsserver "127.0.0.1:$d_port" >"$work/pebble.log" 2>&1 &
acme_pids="$acme_pids $!"
(cd "$work/webroot" && exec /usr/bin/python3 -m http.server "$h_port" --bind 127.0.0.1) >"$work/http.log" 2>&1 &
acme_pids="$acme_pids $!"
for _ in $(seq 1 200); do
	curl -sf --cacert "$work/pki/ca.pem" "https://127.0.0.1:$a_port/dir" >/dev/null && break
	sleep 0.05
done
# acme_conf N — a configuration whose [cert:a] is new (new key, new order).
acme_conf() {
	cat <<CONF
[agent]
state_dir = $work/acme-state
[ca:pebble]
type = acme
directory_url = https://127.0.0.1:$a_port/dir
ca_bundle = $work/pki/ca.pem
terms_agreed = yes
account_key = pkcs11:token=bench;object=acme-account?module-path=$softhsm&pin-source=file:$work/pin
eab_kid = kid-1
eab_hmac_key_file = $work/eab.key
challenge = http-01
webroot = $work/webroot
[cert:a$1]
ca = pebble
key = pkcs11:token=bench;object=acme-$1?module-path=$softhsm&pin-source=file:$work/pin
key_type = ec-p256
dns = acme$1.example.com
cert_file = $work/acme-tls-$1/cert.pem
fullchain_file = $work/acme-tls-$1/fullchain.pem
CONF
}
# The account is made once, outside the figures (as certbot's below).
acme_conf 0 >"$work/a.conf"
"$P11ENROLL" -c "$work/a.conf" enroll a0 >/dev/null 2>&1 || echo "p11enroll warm-up failed"
: >"$work/acme.t"
for i in $(seq 1 "$runs"); do
	acme_conf "$i" >"$work/a.conf"
	seconds "$P11ENROLL" -c "$work/a.conf" enroll "a$i" >>"$work/acme.t"
done
[ -s "$work/acme-tls-1/cert.pem" ] || echo "p11enroll did not get its certificate"
stats "p11enroll enroll (ACME, http-01)" "$work/acme.t"
if command -v certbot >/dev/null; then
	cb() {
		REQUESTS_CA_BUNDLE=$work/pki/ca.pem certbot --non-interactive --config-dir "$work/cb/etc" \
			--work-dir "$work/cb/work" --logs-dir "$work/cb/logs" \
			--server "https://127.0.0.1:$a_port/dir" "$@"
	}
	cb register --agree-tos --register-unsafely-without-email --eab-kid kid-1 \
		--eab-hmac-key "$eab_key" >/dev/null 2>&1 || echo "certbot register failed"
	: >"$work/certbot.t"
	for i in $(seq 1 "$runs"); do
		seconds cb certonly --webroot -w "$work/webroot" --key-type ecdsa --elliptic-curve secp256r1 \
			--cert-name "cb$i" -d "cb$i.example.com" >>"$work/certbot.t"
	done
	[ -s "$work/cb/etc/live/cb1/fullchain.pem" ] || echo "certbot did not get its certificate"
	stats "certbot certonly (file key, http-01)" "$work/certbot.t"
else
	echo "certbot is not installed (apt-get install certbot) — no side-by-side figure"
fi
scripts/bench-fleet.sh
