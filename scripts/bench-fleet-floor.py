#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The floor of `enroll --all` with M new certificates: the same 3×M CERTInext
requests (M GenerateOrderSSL with a real CSR, M TrackOrder, M GetCertificate)
sent by curl, all at once, against the same simulator.

A certificate's three calls depend on each other (TrackOrder needs the order
number, and issues; GetCertificate needs an issued order), so to send all
3×M at once the TrackOrder and GetCertificate calls go to orders placed (and,
for the downloads, tracked) beforehand, outside the timed part: the timed
requests do the same work as M enrolments — M placements with their CSR
checks, M issuances, M downloads. "waves" times the dependent order
instead: M placements at once, then their M TrackOrder at once, then their M
GetCertificate at once (the sum of the three).

Everything but the curl runs is prepared beforehand: CSRs with openssl, the
bodies (fresh meta.txn and authKey per request) here. Every answer must be
meta.status "1", or the figure is not printed.

  bench-fleet-floor.py WORK M API_URL CA_PEM ACCESS_KEY_FILE all|waves SIM_PID
Prints the seconds of the timed part, the CPU seconds curl used in it, and
the CPU seconds the simulator used in it.
"""
import datetime
import hashlib
import json
import os
import resource
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "sim"))
import test_certinext_sim as sim_test  # noqa: E402  (order_body, EMAIL)

work, m, url, ca_pem, key_file, how, sim_pid = sys.argv[1:8]
email = sim_test.EMAIL
m = int(m)
key = open(key_file).read().strip()
d = os.path.join(work, f"floor-{how}-{secrets.token_hex(4)}")
os.makedirs(d)


def csrs(tag, n):
    """n CSRs for fresh P-256 keys (the simulator refuses a key twice)."""
    out = []
    for i in range(n):
        name = f"{tag}{i}-{secrets.token_hex(3)}.example.com"
        pem = subprocess.run(
            ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "/dev/null", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
             "-sha256"], check=True, capture_output=True, text=True).stdout
        out.append((name, pem))
    return out


def meta():
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    txn = str(secrets.randbelow(9 * 10 ** 17) + 10 ** 17)
    return {"ver": "1.0", "ts": ts, "txn": txn, "accountNumber": "5550001234",
            "authKey": hashlib.sha256((key + ts + txn).encode()).hexdigest()}


def place_body(name, csr):
    # The order the simulator's self-test places (docs/protocol-certinext.md
    # "Placing an order"), as large as p11enroll's, with the remarks and tag
    # p11enroll adds.
    body = sim_test.order_body(name, csr, additionalInformation={
        "remarks": "bench [p11enroll:%s]" % secrets.token_hex(12), "tags": ["p11enroll:bench"]})
    return body


def requests(kind, items):
    """(endpoint, body) per item: items are (name, csr) for placing, order numbers otherwise."""
    for it in items:
        if kind == "GenerateOrderSSL":
            yield kind, place_body(*it)
        elif kind == "TrackOrder":
            yield kind, {"orderDetails": {"orderNumber": it}}
        else:
            yield kind, {"orderDetails": {"orderNumber": it, "requestorEmail": email}}


def prepare(reqs, tag):
    """Bodies and a curl config; returns (config path, answer paths)."""
    cfg, outs = [], []
    for i, (endpoint, body) in enumerate(reqs):
        body["meta"] = meta()
        bpath, opath = os.path.join(d, f"{tag}{i}.req"), os.path.join(d, f"{tag}{i}.ans")
        with open(bpath, "w") as f:
            json.dump(body, f)
        # `next` resets every option: each request names the CA again
        cfg.append(f'url = "{url}/{endpoint}"\ncacert = "{ca_pem}"\nheader = "Content-Type: application/json"\n'
                   f'data-binary = "@{bpath}"\noutput = "{opath}"\n')
        outs.append(opath)
    path = os.path.join(d, f"{tag}.cfg")
    with open(path, "w") as f:
        f.write("next\n".join(cfg))
    return path, outs


def sim_cpu():
    with open(f"/proc/{sim_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


cpu = {"curl": 0.0, "sim": 0.0}


def curl(cfg, n):
    r0, s0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), sim_cpu(), time.monotonic()
    subprocess.run(["curl", "-s", "--no-progress-meter", "--parallel",
                    "--parallel-immediate", "--parallel-max", str(n), "-K", cfg], check=False)
    t, r1 = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu["curl"] += r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    cpu["sim"] += sim_cpu() - s0
    return t


def answers(outs, what):
    got = []
    for p in outs:
        try:
            a = json.load(open(p))
        except (OSError, ValueError):
            sys.exit(f"floor: {what}: no answer in {p}")
        if a.get("meta", {}).get("status") != "1":
            sys.exit(f"floor: {what} failed: {a.get('meta')}")
        got.append(a)
    return got


def run(kind, items, tag):
    cfg, outs = prepare(list(requests(kind, items)), tag)
    t = curl(cfg, len(outs))
    return t, answers(outs, kind)


def numbers(ans):
    return [a["orderDetails"]["orderNumber"] for a in ans]


if how == "waves":
    fresh = csrs("w", m)
    t1, placed = run("GenerateOrderSSL", fresh, "p")
    t2, _ = run("TrackOrder", numbers(placed), "t")
    t3, _ = run("GetCertificate", numbers(placed), "g")
    print(f"{t1 + t2 + t3:.3f} {cpu['curl']:.3f} {cpu['sim']:.3f}")
    sys.exit(0)

# Untimed: orders to track (B) and issued orders to download (C).
_, b = run("GenerateOrderSSL", csrs("b", m), "b")
_, c = run("GenerateOrderSSL", csrs("c", m), "c")
run("TrackOrder", numbers(c), "ct")
cpu = {"curl": 0.0, "sim": 0.0}
reqs = list(requests("GenerateOrderSSL", csrs("a", m)))
reqs += list(requests("TrackOrder", numbers(b))) + list(requests("GetCertificate", numbers(c)))
cfg, outs = prepare(reqs, "x")
t = curl(cfg, len(outs))
ans = answers(outs, "timed requests")
if any(a["orderDetails"]["certificateStatusId"] != "20" for a in ans[m:2 * m]):
    sys.exit("floor: a TrackOrder did not issue")
print(f"{t:.3f} {cpu['curl']:.3f} {cpu['sim']:.3f}")
