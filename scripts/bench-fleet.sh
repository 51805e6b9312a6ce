#!/usr/bin/env bash
# Fleet figures, each against its floor (printed as a ratio):
#  - N tracked certificates (default 10,000), nothing due: status (text,
#    --json, --prometheus), renew --all and the agent's first round, each
#    against `cat` of the journals; the agent's memory per certificate.
#  - M new certificates (default 100) against the CERTInext simulator, at
#    parallel 8 and M, against the same M×3 requests (placement with a real
#    CSR, TrackOrder, GetCertificate) sent all at once by curl; R runs each
#    (default 3), min/median/max; and at parallel 8 with the keys spread
#    over 8 tokens of one store (they share the module's token lock).
#  - B certificates (default 100) with the simulator's burst limit on
#    (16 in 10 s) and the default order_rate: orders placed and rate-limit
#    answers, and the time against the limit's own floor.
#   scripts/bench-fleet.sh [N] [M] [B]      (N=0 skips the first part; P11ENROLL=path to pick a build;
#   BASE=1 for a build before `enroll --all`: no [agent] parallel, the M
#   certificates enrolled one `enroll NAME` after the other)
#   TMPDIR=/dev/shm: state_dir and token store on tmpfs, where fsync and file
#   writes cost nothing (the work dir's filesystem is printed)
#   BACKEND=db: SoftHSM2's sqlite object store instead of its file store
#   (needs a softhsm2 built with it; Debian's is not)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
N=${1:-10000}
M=${2:-100}
B=${3:-100}
R=${R:-3}
P11ENROLL=${P11ENROLL:-$top/build/agent/p11enroll}
softhsm=/usr/lib/softhsm/libsofthsm2.so
work=$(mktemp -d)
sim_pid=""
trap '[ -n "$sim_pid" ] && kill $sim_pid 2>/dev/null; rm -rf "$work"' EXIT
py=/usr/bin/python3

mkdir -p "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = %s\nlog.level = ERROR\n' "$work/tokens" \
	"${BACKEND:-file}" >"$work/softhsm2.conf"
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
tokens = int(__import__("os").environ.get("TOKENS", "1"))   # keys over tokens bench, bench1, ...
out = [f"[agent]\nstate_dir = {state}\n" + ("" if par == "0" else f"parallel = {par}\n") + "wait = 120s\n",
       f"[ca:sim]\ntype = certinext\napi_url = {url}\naccount_number = 5550001234\n"
       f"access_key_file = {work}/sim/access.key\nca_bundle = {work}/sim/ca/root.pem\n"
       f"requestor_name = Bench\nrequestor_email = bench@example.com\nsigner_place = Austin\n"
       f"signer_ip = 93.184.216.34\ndefault_product = 842\npoll_interval = 1s\n{extra}\n"]
for i in range(int(n)):
    out.append(f"[cert:c{i}]\nca = sim\nkey = pkcs11:token=bench{i % tokens or ''};object={state.rsplit('/',1)[1]}-c{i}?"
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

if [ "$N" -gt 1 ]; then
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
fi

echo
echo "== $M new certificates vs the same $((M * 3)) requests sent by curl (min/median/max of $R runs)"
# Durable writes (the journal's fsyncs, SoftHSM2's object files) cost what
# the storage makes them cost: say where they went (TMPDIR picks it).
echo "state_dir and token store in $work ($(stat -f -c %T "$work"))"
# The floor (scripts/bench-fleet-floor.py): M placements with real CSRs, M
# TrackOrder that issue, M GetCertificate, all at once ("all"); "waves" sends
# the M of each kind at once, one kind after the other, as the calls of one
# certificate depend on each other. Each run gets a fresh simulator, token
# and state directory.
# fresh_token [T]: token "bench" (and bench1 … bench{T-1})
fresh_token() {
	local t
	rm -rf "$work/tokens"; mkdir -p "$work/tokens"
	for t in $(seq 0 $((${1:-1} - 1))); do
		softhsm2-util --init-token --free --label "bench${t#0}" --pin 1234 --so-pin 5678 >/dev/null
	done
}
floor() {
	$py scripts/bench-fleet-floor.py "$work" "$M" "$(cat "$work/sim/url")" "$work/sim/ca/root.pem" \
		"$work/sim/access.key" "$1" "$sim_pid"
}
simcpu() { awk '{ print ($14 + $15) / 100 }' "/proc/$sim_pid/stat"; }
# enroll_all TAG PARALLEL [TOKENS]: one `enroll --all` of M new
# certificates: wall seconds, CPU seconds of p11enroll and its workers, of
# the simulator
enroll_all() {
	local s0 times
	fresh_token "${3:-1}"
	rm -rf "${work:?}/$1"
	TOKENS=${3:-1} conf "$work/$1.conf" "$work/$1" "$M" "$2" "order_rate = off"
	s0=$(simcpu)
	times=$( { TIMEFORMAT='%R %U %S'; time "$P11ENROLL" -c "$work/$1.conf" enroll --all \
		>/dev/null 2>"$work/$1.log" || true; } 2>&1)
	echo "$times" | awk -v s="$(awk "BEGIN { print $(simcpu) - $s0 }")" '{ print $1, $2 + $3, s }'
	grep -q "enroll --all: $M issued" "$work/$1.log" ||
		grep -E 'error|enroll --all: ' "$work/$1.log" | sed "s/^/enroll --all ($1): /" | head -5 >&2
}
: >"$work/m.all"; : >"$work/m.waves"; : >"$work/m.p8"; : >"$work/m.pm"; : >"$work/m.base"; : >"$work/m.p8t"
for _ in $(seq 1 "$R"); do
	start_sim '{"rate_limit_burst": 0}'
	floor all >>"$work/m.all"
	floor waves >>"$work/m.waves"
	if [ -n "$base" ]; then
		fresh_token; rm -rf "$work/new"
		conf "$work/new.conf" "$work/new" "$M" 0 ""
		t0=$(date +%s.%N)
		for i in $(seq 0 $((M - 1))); do "$P11ENROLL" -c "$work/new.conf" enroll "c$i" >/dev/null 2>&1 || true; done
		awk "BEGIN { print $(date +%s.%N) - $t0, 0, 0 }" >>"$work/m.base"
		continue
	fi
	start_sim '{"rate_limit_burst": 0}'
	enroll_all new8 8 >>"$work/m.p8"
	start_sim '{"rate_limit_burst": 0}'
	enroll_all newm "$M" >>"$work/m.pm"
	# the token lock is per token: the same with the keys over 8 tokens
	start_sim '{"rate_limit_burst": 0}'
	enroll_all new8t 8 8 >>"$work/m.p8t"
done
# Files hold "wall client-CPU sim-CPU" per run. mmm FILE: the wall time's
# min/median/max in ms; mid FILE COLUMN: a column's median
mmm() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%6.0f / %6.0f / %6.0f ms", v[1] * 1000, v[int((NR + 1) / 2)] * 1000, v[NR] * 1000 }'; }
mid() { awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
floor_all=$(mid "$work/m.all" 1)
printf '%-40s %-32s %-16s %s\n' "" "wall min / median / max" "× the floor" "CPU s: client, sim (median)"
for f in all:"curl, $((M * 3)) requests at once (floor)" waves:"curl, $M at once × 3 kinds (waves)" \
	base:"enroll NAME one after the other" p8:"enroll --all, parallel = 8 (default)" \
	pm:"enroll --all, parallel = $M" p8t:"enroll --all, parallel = 8, 8 tokens"; do
	[ -s "$work/m.${f%%:*}" ] || continue
	printf '%-40s %-32s %5.2f×           %5.2f, %5.2f\n' "${f#*:}" "$(mmm "$work/m.${f%%:*}")" \
		"$(awk "BEGIN { print $(mid "$work/m.${f%%:*}" 1) / $floor_all }")" \
		"$(mid "$work/m.${f%%:*}" 2)" "$(mid "$work/m.${f%%:*}" 3)"
done
[ -n "$base" ] && exit 0

[ "$B" -gt 0 ] || exit 0
echo
echo "== $B new certificates, the simulator's burst limit on (16 in 10 s), default order_rate"
start_sim '{}'
fresh_token
conf "$work/burst.conf" "$work/burst" "$B" 16 ""
t0=$(date +%s.%N)
"$P11ENROLL" -c "$work/burst.conf" enroll --all --wait 600s >/dev/null 2>"$work/burst.log" || true
t=$(awk "BEGIN { print $(date +%s.%N) - $t0 }")
# The floor: 15 placements per 10 s window, the first window free.
ratio "enroll --all, $B, burst-limited" "$t" "$(awk "BEGIN { w = int(($B - 1) / 15); print (w > 0 ? w * 10 : 1) }")"
grep -o 'enroll --all: .*' "$work/burst.log" | head -1
curl -s --cacert "$work/sim/ca/root.pem" "${sim_url:-$(sed 's,/emSignHub-API$,,' "$work/sim/url")}/_sim/stats" |
	$py -c "import json,sys; s=json.load(sys.stdin); print(f\"orders placed: {s['orders_placed']}, rate-limit answers: {s['rate_limited']}\")"
