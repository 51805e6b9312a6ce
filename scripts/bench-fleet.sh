#!/usr/bin/env bash
# Fleet figures, each against its floor (printed as a ratio):
#  - N tracked certificates (default 10,000), nothing due: status (text,
#    --json, --prometheus), renew --all and the agent's first round, each
#    against `cat` of the journals; the agent's memory per certificate.
#  - M new certificates at once (default 100) against the CERTInext
#    simulator, against M×3 requests sent all in parallel by curl.
#  - B certificates (default 40) with the simulator's burst limit on
#    (16 in 10 s) and the default order_rate: orders placed and rate-limit
#    answers, and the time against the limit's own floor.
#   scripts/bench-fleet.sh [N] [M] [B]      (P11ENROLL=path to pick a build;
#   BASE=1 for a build before `enroll --all`: no [agent] parallel, the M
#   certificates enrolled one `enroll NAME` after the other)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
N=${1:-10000}
M=${2:-100}
B=${3:-40}
P11ENROLL=${P11ENROLL:-$top/build/agent/p11enroll}
softhsm=/usr/lib/softhsm/libsofthsm2.so
work=$(mktemp -d)
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$work"' EXIT
py=/usr/bin/python3

mkdir -p "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm2.conf
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null
(umask 077; echo 1234 >"$work/pin")

start_sim() {
	{ [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null; } || true
	rm -rf "$work/sim"
	printf '%s\n' "$1" >"$work/scenario.json"
	$py tests/sim/certinext_sim.py --dir "$work/sim" --scenario "$work/scenario.json" >"$work/sim.log" 2>&1 &
	sim_pid=$!
	for _ in $(seq 1 200); do [ -f "$work/sim/ready" ] && break; sleep 0.05; done
}

# conf FILE STATE COUNT PARALLEL [EXTRA-CA-LINE]
conf() {
	$py - "$@" "$(cat "$work/sim/url")" "$work" "$softhsm" <<'PY'
import sys
f, state, n, par, extra, url, work, module = sys.argv[1:9]
out = [f"[agent]\nstate_dir = {state}\n" + ("" if par == "0" else f"parallel = {par}\n") + "wait = 120s\n",
       f"[ca:sim]\ntype = certinext\napi_url = {url}\naccount_number = 5550001234\n"
       f"access_key_file = {work}/sim/access.key\nca_bundle = {work}/sim/ca/root.pem\n"
       f"requestor_name = Bench\nrequestor_email = bench@example.com\nsigner_place = Austin\n"
       f"signer_ip = 93.184.216.34\ndefault_product = 842\npoll_interval = 1s\n{extra}\n"]
for i in range(int(n)):
    out.append(f"[cert:c{i}]\nca = sim\nkey = pkcs11:token=bench;object={state.rsplit('/',1)[1]}-c{i}?"
               f"module-path={module}&pin-source=file:{work}/pin\nkey_type = ec-p256\n"
               f"subject = CN=c{i}.example.com\ndns = c{i}.example.com\ncert_file = {state}/tls/c{i}.pem\n")
open(f, "w").write("\n".join(out))
PY
}

# med CMD… — median wall seconds of 3 runs
med() {
	local t0 t1 i
	for i in 1 2 3; do
		t0=$(date +%s.%N)
		"$@" >/dev/null 2>&1 || true
		t1=$(date +%s.%N)
		awk "BEGIN { print $t1 - $t0 }"
	done | sort -n | sed -n 2p
}

ratio() { awk "BEGIN { printf \"%-44s %8.1f ms   %5.2f× its floor\n\", \"$1\", $2 * 1000, $2 / $3 }"; }

start_sim '{"rate_limit_burst": 0}'
base=${BASE:-}
P() { [ -n "$base" ] && echo 0 || echo "$1"; }

echo "== $N tracked certificates, nothing due (median of 3)"
conf "$work/many.conf" "$work/many" "$N" "$(P 8)" ""
mkdir -p "$work/many"; chmod 700 "$work/many"
$py - "$work/many" "$N" <<'PY'
import datetime, json, sys, time
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
state, n = sys.argv[1], int(sys.argv[2])
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
na = now + datetime.timedelta(days=80)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(na).sign(key, hashes.SHA256()))
pem = cert.public_bytes(serialization.Encoding.PEM).decode()
for i in range(n):
    j = {"version": 1, "name": f"c{i}", "state": "monitoring",
         "key": {"id": "%032x" % i, "uri": f"pkcs11:token=bench;object=c{i}", "label": f"c{i}", "type": "ec-p256"},
         "order": {"ca": "sim", "ca_type": "certinext", "order_id": str(4000000000 + i),
                   "request_id": str(7000000000 + i), "status": "Certificate Generated",
                   "idempotency_id": "p11e-%024x" % i, "placed_after": time.time() - 400,
                   "recorded_at": time.time() - 100, "issued_at": time.time() - 90},
         "cert": {"chain": pem + pem, "serial": "01", "not_after": na.timestamp(),
                  "installed_at": time.time() - 80},
         "history": [{"at": time.time() - 100 + k, "state": s} for k, s in
                     enumerate(["key-ready", "csr-ready", "order-placing", "order-pending",
                                "cert-issued", "installing", "installed", "monitoring"])]}
    with open(f"{state}/c{i}.json", "w") as f:
        json.dump(j, f, indent=1)
PY
floor=$(med sh -c "cat $work/many/*.json")
echo "journals: $(du -sh "$work/many" | cut -f1), cat $(awk "BEGIN{printf \"%.1f\", $floor*1000}") ms"
ratio "status" "$(med "$P11ENROLL" -c "$work/many.conf" status)" "$floor"
ratio "status --json" "$(med "$P11ENROLL" -c "$work/many.conf" status --json)" "$floor"
ratio "status --prometheus" "$(med "$P11ENROLL" -c "$work/many.conf" status --prometheus "$work/m.prom")" "$floor"
ratio "renew --all" "$(med "$P11ENROLL" -c "$work/many.conf" renew --all)" "$floor"
# The agent: time to its first "next round" line, and its resident memory
# then, against the same agent with one certificate.
agent_round() {
	$py - "$P11ENROLL" "$1" <<'PY'
import subprocess, sys, time, signal
t0 = time.monotonic()
p = subprocess.Popen([sys.argv[1], "-c", sys.argv[2], "agent"], stderr=subprocess.PIPE, text=True)
for line in p.stderr:
    if "next round at" in line:
        break
t = time.monotonic() - t0
rss = [l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")][0].split()[1]
p.send_signal(signal.SIGTERM); p.wait()
print(t, rss)
PY
}
read -r t_agent rss_n < <(agent_round "$work/many.conf")
conf "$work/one.conf" "$work/many" 1 "$(P 8)" ""
read -r _ rss_1 < <(agent_round "$work/one.conf")
ratio "agent first round" "$t_agent" "$floor"
awk "BEGIN { printf \"agent memory: %d kB with $N, %d kB with 1: %.2f kB per certificate\n\", $rss_n, $rss_1, ($rss_n - $rss_1) / ($N - 1) }"

echo
echo "== $M new certificates at once (parallel = $M) vs $((M * 3)) requests in parallel by curl"
# The floor: 3 authenticated calls per certificate, all at once.
$py - "$work" "$M" "$(cat "$work/sim/url")" <<'PY' >"$work/curl.cfg"
import datetime, hashlib, json, random, sys
work, m, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
key = open(f"{work}/sim/access.key").read().strip()
ts = datetime.datetime.now().astimezone().replace(microsecond=0).isoformat()
for i in range(m * 3):
    txn = str(random.randrange(10**15, 10**16))
    meta = {"ver": "1.0", "ts": ts, "txn": txn, "accountNumber": "5550001234",
            "authKey": hashlib.sha256((key + ts + txn).encode()).hexdigest()}
    print(f'url = "{url}/ValidateCredentials"\nheader = "Content-Type: application/json"\n'
          f"data = {json.dumps(json.dumps({'meta': meta}))}\noutput = /dev/null\n" + ("next\n" if i < m * 3 - 1 else ""))
PY
t0=$(date +%s.%N)
curl -s --no-progress-meter --cacert "$work/sim/ca/root.pem" --parallel --parallel-max $((M * 3)) -K "$work/curl.cfg" >/dev/null 2>&1 || true
curl_t=$(awk "BEGIN { print $(date +%s.%N) - $t0 }")
echo "curl, $((M * 3)) requests in parallel: $(awk "BEGIN{printf \"%.0f\", $curl_t*1000}") ms"
if [ -n "$base" ]; then
	conf "$work/new.conf" "$work/new" "$M" 0 ""
	t0=$(date +%s.%N)
	for i in $(seq 0 $((M - 1))); do "$P11ENROLL" -c "$work/new.conf" enroll "c$i" >/dev/null 2>&1 || true; done
	ratio "enroll NAME one after the other, $M new" "$(awk "BEGIN { print $(date +%s.%N) - $t0 }")" "$curl_t"
	exit 0
fi
conf "$work/new.conf" "$work/new" "$M" "$M" "order_rate = off"
t0=$(date +%s.%N)
"$P11ENROLL" -c "$work/new.conf" enroll --all >/dev/null 2>"$work/new.log" || true
ratio "enroll --all, $M new" "$(awk "BEGIN { print $(date +%s.%N) - $t0 }")" "$curl_t"
grep -o 'enroll --all: .*' "$work/new.log" | head -1
conf "$work/new8.conf" "$work/new8" "$M" 8 "order_rate = off"
t0=$(date +%s.%N)
"$P11ENROLL" -c "$work/new8.conf" enroll --all >/dev/null 2>"$work/new8.log" || true
ratio "enroll --all, $M new, parallel = 8" "$(awk "BEGIN { print $(date +%s.%N) - $t0 }")" "$curl_t"

echo
echo "== $B new certificates, the simulator's burst limit on (16 in 10 s), default order_rate"
start_sim '{}'
conf "$work/burst.conf" "$work/burst" "$B" 16 ""
t0=$(date +%s.%N)
"$P11ENROLL" -c "$work/burst.conf" enroll --all --wait 600s >/dev/null 2>"$work/burst.log" || true
t=$(awk "BEGIN { print $(date +%s.%N) - $t0 }")
# The floor: 15 placements per 10 s window, the first window free.
ratio "enroll --all, $B, burst-limited" "$t" "$(awk "BEGIN { w = int(($B - 1) / 15); print (w > 0 ? w * 10 : 1) }")"
grep -o 'enroll --all: .*' "$work/burst.log" | head -1
curl -s --cacert "$work/sim/ca/root.pem" "${sim_url:-$(sed 's,/emSignHub-API$,,' "$work/sim/url")}/_sim/stats" |
	$py -c "import json,sys; s=json.load(sys.stdin); print(f\"orders placed: {s['orders_placed']}, rate-limit answers: {s['rate_limited']}\")"
