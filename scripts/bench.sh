#!/usr/bin/env bash
# Benchmarks that print figures (no assertions): keygen and CSR per key type
# on SoftHSM2, one EC P-256 enrolment against the CERTInext simulator split
# by phase, and `renew --all` over many tracked certificates with nothing due.
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
scripts/bench-fleet.sh
