#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The life of an enrolled certificate: status (text, JSON, exit codes,
# Prometheus), revoke, check, and the agent (renewal while it runs,
# signals, failures). SoftHSM2 + a CA simulator on loopback + the CLI.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273

# setup CA-KIND [SCENARIO-JSON] — token, simulator, $WORK/p.conf with [cert:web]
# (the same pattern as tests/e2e/e2e.sh).
setup() {
	local kind=$1 scenario=${2:-}
	t_token_and_sim "$kind" "$PIN" "$scenario"
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo "wait = 60s"
		echo
		t_ca_section "$kind"
		cert_section web
	} >"$WORK/p.conf"
}

# cert_section NAME [OBJECT] — a [cert:NAME] on the test token.
cert_section() {
	local name=$1 object=${2:-$1}
	echo "[cert:$name]"
	echo "ca = sim"
	echo "key = pkcs11:token=edge;object=$object?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
	echo "key_type = ec-p256"
	echo "subject = CN=$name.example.com"
	echo "dns = $name.example.com"
	echo "cert_file = $WORK/tls/$name/cert.pem"
	echo "fullchain_file = $WORK/tls/$name/fullchain.pem"
	echo
}

p11e() { "$P11ENROLL" -c "$WORK/p.conf" "$@"; }




# py FILE EXPR… — asserts over the JSON in FILE (bound to `d`); the
# expressions are Python asserts, run in order.
py_assert() {
	local file=$1
	shift
	"$PYTHON" - "$file" "$@" <<'PY' || { echo "--- $file"; cat "$file"; t_fail "JSON assertion failed"; }
import json, sys
d = json.load(open(sys.argv[1]))
for expr in sys.argv[2:]:
    try:
        ok = eval(expr)
    except Exception as e:  # a missing key is a failure, said as such
        print("assertion raised %r: %s" % (e, expr), file=sys.stderr)
        sys.exit(1)
    if not ok:
        print("assertion failed: " + expr, file=sys.stderr)
        sys.exit(1)
PY
}

# ---- revoke -------------------------------------------------------------------

case_revoke_certinext_twice() {
	setup certinext
	# A renewal at CERTInext needs a new key (EMS-1099 for the same one).
	echo "rotate_key = yes" >>"$WORK/p.conf"
	t_expect 0 p11e enroll web
	local serial
	serial=$(t_journal 'j["cert"]["serial"]')
	# CERTInext refuses these locally: a configuration-type error, nothing sent.
	t_expect 2 p11e revoke web --reason unspecified
	t_contains "$WORK/err" "cannot revoke with reason unspecified"
	t_expect 2 p11e revoke web --reason nonsense
	t_contains "$WORK/err" "not a reason"
	[ "$(t_sim_stat 's["calls"].get("RevokeOrder", 0)')" = 0 ] || t_fail "a refused reason reached the CA"
	t_expect 0 p11e revoke web
	t_contains "$WORK/out" "revoked (revokeReasonId 4, superseded)"
	[ "$(t_journal 'j["state"]')" = monitoring ] || t_fail "revoke moved the state to $(t_journal 'j["state"]')"
	[ "$(t_journal 'j["revocation"]["reason"]')" = superseded ] || t_fail "no revocation.reason"
	[ "$(t_journal 'j["revocation"]["serial"]')" = "$serial" ] || t_fail "revocation.serial"
	[ "$(t_journal 'type(j["revocation"]["at"]).__name__')" = int ] || t_fail "revocation.at"
	[ "$(t_journal '[h.get("note") for h in j["history"]][-1]')" = revoked ] || t_fail "no history line for the revocation"
	# Again: harmless, success, and no second RevokeOrder.
	t_expect 0 p11e revoke web --reason keyCompromise
	t_contains "$WORK/out" "already revoked"
	[ "$(t_sim_stat 's["calls"].get("RevokeOrder", 0)')" = 1 ] || t_fail "RevokeOrder was sent again"
	# A revoked certificate needs attention until renew replaces it, which it does at once.
	t_expect 1 p11e status
	t_contains "$WORK/out" "revoked"
	t_expect 0 p11e renew web
	[ "$(t_journal 'j["cert"]["serial"]')" != "$serial" ] || t_fail "renew did not replace the revoked certificate"
	[ "$(t_journal '"revocation" in j')" = False ] || t_fail "the revocation section outlived the renewal"
	t_expect 0 p11e status
}

case_revoke_sslstore_twice() {
	setup sslstore
	t_expect 0 p11e enroll web
	t_expect 0 p11e revoke web --reason cessationOfOperation
	t_contains "$WORK/out" "refund request"
	t_contains "$WORK/out" "not an immediate revocation"
	[ "$(t_journal 'j["revocation"]["reason"]')" = cessationOfOperation ] || t_fail "reason not journalled"
	t_contains "$WORK/state/web.json" "refund request"
	t_expect 0 p11e revoke web --reason cessationOfOperation
	t_contains "$WORK/out" "refund request"
	t_contains "$WORK/out" "nothing more to do"
	[ "$(t_journal 'j["state"]')" = monitoring ] || t_fail "state $(t_journal 'j["state"]')"
}

case_revoke_nothing() {
	setup certinext
	t_expect 1 p11e revoke web
	t_contains "$WORK/err" "has no order to revoke"
	t_expect 2 p11e revoke
	t_expect 2 p11e revoke nosuch
	t_contains "$WORK/err" "no [cert:nosuch]"
}

# ---- status -------------------------------------------------------------------

case_status_json() {
	setup certinext
	cert_section spare >>"$WORK/p.conf"
	t_expect 0 p11e enroll web
	# spare was never enrolled: it needs attention, and status says so.
	t_expect 1 p11e status --json
	local now
	now=$(date +%s)
	py_assert "$WORK/out" \
		'sorted(d) == ["certificates", "ok", "time", "version"]' \
		'd["version"] == 1 and d["ok"] is False and isinstance(d["time"], int)' \
		'[c["name"] for c in d["certificates"]] == ["web", "spare"]' \
		'all(sorted(c) == sorted(["name", "ca", "ca_type", "journal", "state", "ok", "issued_by", "on_fallback", "problem", "problem_code", "key_type", "order", "serial", "not_after", "seconds_left", "days_left", "installed_at", "next_action", "next_action_at", "last_error", "revocation"]) for c in d["certificates"])' \
		'd["certificates"][0]["state"] == "monitoring" and d["certificates"][0]["ok"] is True and d["certificates"][0]["problem"] is None and d["certificates"][0]["problem_code"] is None' \
		'd["certificates"][0]["ca"] == "sim" and d["certificates"][0]["ca_type"] == "certinext" and d["certificates"][0]["key_type"] == "ec-p256"' \
		'isinstance(d["certificates"][0]["order"]["order_id"], str) and d["certificates"][0]["order"]["order_id"]' \
		'set(d["certificates"][0]["order"]) == {"order_id", "request_id", "status"}' \
		"abs(d['certificates'][0]['not_after'] - $now - 90*86400) < 2*86400" \
		'd["certificates"][0]["days_left"] in (88, 89, 90) and isinstance(d["certificates"][0]["seconds_left"], int)' \
		'isinstance(d["certificates"][0]["installed_at"], int)' \
		'd["certificates"][0]["next_action"] == "renew"' \
		'd["certificates"][0]["not_after"] - 40*86400 <= d["certificates"][0]["next_action_at"] <= d["certificates"][0]["not_after"] - 30*86400' \
		'd["certificates"][0]["last_error"] is None and d["certificates"][0]["revocation"] is None' \
		'd["certificates"][1]["journal"] is False and d["certificates"][1]["state"] == "new"' \
		'd["certificates"][1]["next_action"] == "enroll" and d["certificates"][1]["serial"] is None and d["certificates"][1]["order"] is None' \
		'd["certificates"][1]["ok"] is False and d["certificates"][1]["problem_code"] == "not-enrolled"' \
		'd["certificates"][1]["problem"] == "no certificate yet: never enrolled"'
	[ "$(t_journal 'j["cert"]["serial"]')" = "$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["certificates"][0]["serial"])' "$WORK/out")" ] ||
		t_fail "status serial differs from the journal"
	t_contains "$WORK/err" "1 certificate(s) need attention: spare (not-enrolled)"
	# The global --json and one name.
	t_expect 0 p11e --json status web
	py_assert "$WORK/out" 'len(d["certificates"]) == 1 and d["certificates"][0]["name"] == "web"' 'd["ok"] is True'
	# Text for people.
	t_expect 1 p11e status
	t_contains "$WORK/out" "web: monitoring"
	t_contains "$WORK/out" "days left"
	t_contains "$WORK/out" "next        renew"
	t_contains "$WORK/out" "spare: new — NEEDS ATTENTION: no certificate yet: never enrolled"
	t_expect 0 p11e status web
	t_not_contains "$WORK/out" "NEEDS ATTENTION"
	t_expect 2 p11e status nosuch
	t_expect 2 p11e status --bogus
	# Status never waits for the lock of a running enroll.
	exec 9>"$WORK/state/web.lock"
	flock 9
	t_expect 0 timeout 5 "$P11ENROLL" -c "$WORK/p.conf" status web
	exec 9>&-
}

case_status_rejected() {
	setup certinext '{"reject": {"code": "EMS-1234", "message": "Order refused by policy"}}'
	t_expect 4 p11e enroll web
	t_expect 1 p11e status --json
	py_assert "$WORK/out" 'd["ok"] is False' \
		'd["certificates"][0]["state"] == "rejected" and d["certificates"][0]["ok"] is False' \
		'd["certificates"][0]["problem"] == "the CA refused the order"' \
		'd["certificates"][0]["last_error"]["ca_code"] == "EMS-1234"' \
		'"Order refused by policy" in d["certificates"][0]["last_error"]["message"]' \
		'isinstance(d["certificates"][0]["last_error"]["at"], int)' \
		'd["certificates"][0]["next_action"] == "operator"'
	t_contains "$WORK/err" "1 certificate(s) need attention: web"
	t_expect 1 p11e status
	t_contains "$WORK/out" "NEEDS ATTENTION: the CA refused the order"
	t_contains "$WORK/out" "last error"
	t_contains "$WORK/out" "EMS-1234"
}

case_status_expiring() {
	# A leaf of 2 hours: inside a day, and renew_before (30d) covers it.
	setup certinext '{"leaf_seconds": 7200}'
	echo "rotate_key = yes" >>"$WORK/p.conf"
	t_expect 0 p11e enroll web
	t_expect 1 p11e status --json
	py_assert "$WORK/out" 'd["ok"] is False' \
		'd["certificates"][0]["state"] == "monitoring"' \
		'd["certificates"][0]["problem"] == "the certificate expires in less than a day"' \
		'd["certificates"][0]["days_left"] == 0 and 0 < d["certificates"][0]["seconds_left"] <= 7200'
	# With a healthy certificate again, the check passes.
	t_sim_scenario '{"leaf_seconds": null}'
	t_expect 0 p11e renew web
	t_expect 0 p11e status
}

# A first enrolment still pending needs attention (nothing is installed),
# and so does a journal that cannot be read.
case_status_pending_damaged() {
	setup certinext '{"pending_polls": 100}'
	t_expect 3 p11e enroll web --wait 1s
	t_expect 1 p11e status --json
	py_assert "$WORK/out" 'd["ok"] is False' \
		'd["certificates"][0]["state"] == "order-pending" and d["certificates"][0]["next_action"] == "poll"' \
		'd["certificates"][0]["problem_code"] == "pending"' \
		'd["certificates"][0]["problem"] == "no certificate yet: the order is pending at the CA"' \
		'd["certificates"][0]["order"]["order_id"] and d["certificates"][0]["not_after"] is None' \
		'd["certificates"][0]["ca_type"] == "certinext"'
	t_contains "$WORK/err" "need attention: web (pending)"
	echo '{"state": "' >"$WORK/state/web.json"
	t_expect 1 p11e status --json
	py_assert "$WORK/out" 'd["certificates"][0]["state"] == "damaged"' \
		'd["certificates"][0]["problem"].startswith("journal damaged: it is not valid JSON")' \
		'd["certificates"][0]["problem_code"] == "damaged" and d["certificates"][0]["next_action"] == "operator"'
}

# post_install failed: the certificate is installed but the service may not use it.
case_status_post_install_failed() {
	setup certinext
	echo "post_install = exit 3" >>"$WORK/p.conf"
	t_expect 1 p11e enroll web
	t_expect 1 p11e status --json
	py_assert "$WORK/out" 'd["certificates"][0]["problem"] == "post_install failed"' \
		'"post_install" in d["certificates"][0]["last_error"]["message"]'
}

case_prometheus() {
	setup certinext '{"reject": {"code": "EMS-1234", "message": "no", "count": 1}}'
	cert_section spare >>"$WORK/p.conf"
	sed -i "/^state_dir/a prometheus_file = $WORK/metrics/p11enroll.prom" "$WORK/p.conf"
	mkdir -p "$WORK/metrics"
	t_expect 4 p11e enroll spare
	t_expect 0 p11e enroll web
	# Without names, status writes the configured file too.
	t_expect 1 p11e status
	local f=$WORK/metrics/p11enroll.prom
	[ -f "$f" ] || t_fail "no metrics file"
	[ "$(stat -c %a "$f")" = 644 ] || t_fail "metrics file mode $(stat -c %a "$f")"
	[ "$(cd "$WORK/metrics" && echo *)" = p11enroll.prom ] || t_fail "temporary files left beside the metrics"
	local not_after installed
	not_after=$(t_journal 'int(j["cert"]["not_after"])')
	installed=$(t_journal 'int(j["cert"]["installed_at"])')
	t_contains "$f" "# TYPE p11enroll_certificate_not_after_seconds gauge"
	t_contains "$f" "p11enroll_certificate_not_after_seconds{name=\"web\",ca=\"sim\"} $not_after"
	t_contains "$f" "p11enroll_last_success_timestamp_seconds{name=\"web\",ca=\"sim\"} $installed"
	t_contains "$f" "p11enroll_last_failure_timestamp_seconds{name=\"web\",ca=\"sim\"} 0"
	t_contains "$f" "p11enroll_last_success_timestamp_seconds{name=\"spare\",ca=\"sim\"} 0"
	t_contains "$f" "p11enroll_state{name=\"web\",ca=\"sim\",state=\"monitoring\"} 1"
	t_contains "$f" "p11enroll_state{name=\"web\",ca=\"sim\",state=\"rejected\"} 0"
	t_contains "$f" "p11enroll_state{name=\"spare\",ca=\"sim\",state=\"rejected\"} 1"
	t_contains "$f" "p11enroll_certificate_ok{name=\"web\",ca=\"sim\"} 1"
	t_contains "$f" "p11enroll_certificate_ok{name=\"spare\",ca=\"sim\"} 0"
	t_contains "$f" "p11enroll_certificate_problem{name=\"spare\",ca=\"sim\",problem=\"rejected\"} 1"
	t_not_contains "$f" "p11enroll_certificate_problem{name=\"web\""
	t_contains "$f" "p11enroll_state{name=\"web\",ca=\"sim\",state=\"damaged\"} 0"
	# due between renew_before (30d) and a third more before notAfter (the fleet spread)
	local next
	next=$(sed -n 's/^p11enroll_certificate_next_action_timestamp_seconds{name="web",ca="sim",action="renew"} //p' "$f")
	{ [ -n "$next" ] && [ "$next" -le $((not_after - 30 * 86400)) ] && [ "$next" -ge $((not_after - 40 * 86400)) ]; } ||
		t_fail "next action at '$next', not between $((not_after - 40 * 86400)) and $((not_after - 30 * 86400))"
	grep -q 'p11enroll_certificate_not_after_seconds{name="spare"' "$f" && t_fail "a not_after for a certificate that has none"
	grep -Eq "^p11enroll_last_failure_timestamp_seconds\{name=\"spare\",ca=\"sim\"\} [1-9][0-9]+$" "$f" ||
		t_fail "no failure time for spare"
	# Every line is a comment or `name{labels} number`; every metric has HELP and TYPE.
	"$PYTHON" - "$f" <<'PY' || t_fail "not the exposition format"
import re, sys
seen, typed = set(), set()
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    m = re.match(r"# (HELP|TYPE) (\w+) (.+)$", line)
    if m:
        (typed if m.group(1) == "TYPE" else seen).add(m.group(2))
        continue
    m = re.match(r'([a-z0-9_]+)(\{([a-z_]+="[^"\\]*",?)*\})? -?[0-9]+$', line)
    assert m, line
    assert m.group(1) in seen and m.group(1) in typed, line
PY
	# status --prometheus FILE for a named certificate; "-" prints.
	t_expect 0 p11e status web --prometheus "$WORK/web.prom"
	t_contains "$WORK/web.prom" 'name="web"'
	t_not_contains "$WORK/web.prom" 'name="spare"'
	t_expect 0 p11e status web --prometheus -
	t_contains "$WORK/out" "# HELP p11enroll_state"
	t_not_contains "$WORK/out" "web: monitoring"
}

# A first enrolment stuck at csr-ready after a CA error is not "ok": text,
# JSON, Prometheus and the exit status agree, with the reason.
case_status_first_enrolment_failed() {
	setup certinext
	cert_section spare >>"$WORK/p.conf"
	sed -i "/^state_dir/a prometheus_file = $WORK/p11enroll.prom" "$WORK/p.conf"
	# The CA is down: the order cannot be placed.
	kill "${T_PIDS[0]}" && wait "${T_PIDS[0]}" 2>/dev/null
	T_PIDS=()
	t_expect 1 p11e enroll web
	[ "$(t_journal 'j["state"]')" = csr-ready ] || t_fail "state $(t_journal 'j["state"]')"
	t_expect 1 p11e status --json
	py_assert "$WORK/out" 'd["ok"] is False' \
		'd["certificates"][0]["state"] == "csr-ready" and d["certificates"][0]["ok"] is False' \
		'd["certificates"][0]["problem_code"] == "failed"' \
		'd["certificates"][0]["problem"] == "no certificate yet: the last attempt failed (csr-ready)"' \
		'"not placed" in d["certificates"][0]["last_error"]["message"]' \
		'd["certificates"][1]["problem_code"] == "not-enrolled"'
	t_contains "$WORK/err" "2 certificate(s) need attention: web (failed), spare (not-enrolled)"
	t_expect 1 p11e status
	t_contains "$WORK/out" "web: csr-ready — NEEDS ATTENTION: no certificate yet: the last attempt failed"
	t_contains "$WORK/out" "last error"
	t_contains "$WORK/p11enroll.prom" 'p11enroll_certificate_ok{name="web",ca="sim"} 0'
	t_contains "$WORK/p11enroll.prom" 'p11enroll_certificate_problem{name="web",ca="sim",problem="failed"} 1'
	t_contains "$WORK/p11enroll.prom" 'p11enroll_certificate_problem{name="spare",ca="sim",problem="not-enrolled"} 1'
	t_expect 1 p11e status web --prometheus -
	t_contains "$WORK/out" 'p11enroll_certificate_ok{name="web",ca="sim"} 0'
}

# An installed certificate past its notAfter, and an order in flight at a
# CA the configuration no longer names for it.
case_status_expired_untracked() {
	setup certinext
	t_expect 0 p11e enroll web
	"$PYTHON" - "$WORK/state/web.json" <<'PY'
import json, sys, time
j = json.load(open(sys.argv[1]))
j["cert"]["not_after"] = int(time.time()) - 3600
json.dump(j, open(sys.argv[1], "w"))
PY
	t_expect 1 p11e status --json
	py_assert "$WORK/out" 'd["certificates"][0]["problem_code"] == "expired"' \
		'd["certificates"][0]["problem"] == "the certificate has expired"'
	t_expect 1 p11e status
	t_contains "$WORK/out" "NEEDS ATTENTION: the certificate has expired"
	# A pending order at [ca:sim] while [cert:pend] now names [ca:other].
	cert_section pend >>"$WORK/p.conf"
	t_sim_scenario '{"pending_polls": 100}'
	t_expect 3 p11e enroll pend --wait 1s
	sed -e 's/^\[ca:sim\]$/[ca:other]/' -e 's/^ca = sim$/ca = other/' "$WORK/p.conf" >"$WORK/moved.conf"
	t_expect 1 "$P11ENROLL" -c "$WORK/moved.conf" status pend --json
	py_assert "$WORK/out" 'd["certificates"][0]["problem_code"] == "untracked"' \
		'"which the configuration no longer names" in d["certificates"][0]["problem"]'
	t_expect 2 "$P11ENROLL" -c "$WORK/moved.conf" enroll pend
	t_contains "$WORK/err" "in progress at [ca:sim]"
}

# damage_journal KIND — rewrites web.json in one of the ways a journal can be damaged.
damage_journal() {
	"$PYTHON" - "$WORK/state/web.json" "$1" <<'PY'
import json, sys
path, kind = sys.argv[1], sys.argv[2]
text = open(path).read()
if kind == "truncated":
    open(path, "w").write(text[: len(text) // 2])
    sys.exit(0)
j = json.loads(text)
if kind == "order-type":
    j["order"] = "1234"
elif kind == "member-type":
    j["order"]["order_id"] = 1234
elif kind == "state":
    j["state"] = "teleporting"
elif kind == "version":
    j["version"] = 2
elif kind == "untrackable":
    del j["order"]["order_id"]
open(path, "w").write(json.dumps(j))
PY
}

# A damaged journal is refused by every command, naming the file and what is
# wrong, and nothing reaches the CA from it.
case_journal_damaged() {
	setup certinext '{"pending_polls": 100}'
	t_expect 3 p11e enroll web --wait 1s
	cp "$WORK/state/web.json" "$WORK/good.json"
	local calls kind want
	calls=$(t_sim_stat 'sum(s["calls"].values())')
	for kind in truncated order-type member-type state version untrackable; do
		cp "$WORK/good.json" "$WORK/state/web.json"
		damage_journal "$kind"
		case $kind in
		truncated) want="it is not valid JSON (truncated or cut at byte" ;;
		order-type) want='"order" is a string, expected an object' ;;
		member-type) want='"order.order_id" is a number, expected a string' ;;
		state) want='"state" is "teleporting", which this p11enroll does not know' ;;
		version) want="it has version 2, written by a newer p11enroll (this one reads version 1)" ;;
		untrackable) want='state order-pending needs "order.order_id", which is missing or empty' ;;
		esac
		cp "$WORK/state/web.json" "$WORK/damaged.json"
		t_expect 1 p11e enroll web --wait 1s
		t_contains "$WORK/err" "journal $WORK/state/web.json is damaged: $want"
		t_contains "$WORK/err" "Nothing was sent to the CA"
		t_expect 1 p11e renew web --force
		t_contains "$WORK/err" "journal $WORK/state/web.json is damaged: $want"
		t_expect 1 p11e renew --all
		t_contains "$WORK/err" "is damaged: $want"
		t_expect 1 p11e revoke web
		t_contains "$WORK/err" "is damaged: $want"
		t_expect 1 p11e status --json
		WANT=$want py_assert "$WORK/out" 'd["ok"] is False and d["certificates"][0]["state"] == "damaged"' \
			'd["certificates"][0]["problem_code"] == "damaged"' \
			'd["certificates"][0]["problem"].startswith("journal damaged: " + __import__("os").environ["WANT"])'
		t_expect 1 p11e status
		t_contains "$WORK/out" "web: damaged — NEEDS ATTENTION: journal damaged: $want"
		# The file is left as it was, for the operator.
		cmp -s "$WORK/state/web.json" "$WORK/damaged.json" || t_fail "$kind: the damaged journal was changed"
		[ "$(t_sim_stat 'sum(s["calls"].values())')" = "$calls" ] || t_fail "$kind: a damaged journal reached the CA"
	done
	# Repaired, the order goes on: still one order.
	cp "$WORK/good.json" "$WORK/state/web.json"
	t_sim_scenario '{"pending_polls": 0}'
	t_expect 0 p11e enroll web
	[ "$(t_sim_stat 's["orders_placed"]')" = 1 ] || t_fail "a second order"
}

# ---- hooks: a time limit, the whole process group, the next certificate goes on

# running PID — it exists and is not a zombie (an orphan's zombie may wait
# for a PID 1 that does not reap).
running() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	case $st in Z*) return 1 ;; esac
	return 0
}

case_hook_timeout_post_install() {
	setup certinext
	sed -i "/^state_dir/a hook_timeout = 2s" "$WORK/p.conf"
	# web's hook hangs (with a child of its own); spare's is fine.
	{
		echo "post_install = sleep 300 & echo \$! >$WORK/child.pid; wait"
		cert_section spare
		echo "post_install = touch $WORK/spare.done"
	} >>"$WORK/p.conf"
	local start ms
	start=$(date +%s%N)
	t_expect 1 p11e renew --all
	ms=$((($(date +%s%N) - start) / 1000000))
	echo "renew --all with a hung post_install: $ms ms"
	[ "$ms" -lt 30000 ] || t_fail "took $ms ms"
	t_contains "$WORK/err" "[cert:web] post_install (sleep 300 & echo"
	t_contains "$WORK/err" "; wait) did not finish within 2s (hook_timeout); killed it and its process group"
	[ -f "$WORK/spare.done" ] || t_fail "the next certificate did not go on"
	[ "$(t_journal 'j["state"]' spare)" = monitoring ] || t_fail "spare: $(t_journal 'j["state"]' spare)"
	[ -s "$WORK/child.pid" ] || t_fail "the hook did not start its child"
	sleep 0.2
	running "$(cat "$WORK/child.pid")" && t_fail "the hook's child survived"
	t_expect 1 p11e status --json
	py_assert "$WORK/out" 'd["certificates"][0]["problem_code"] == "post-install-failed"' \
		'"did not finish within 2s" in d["certificates"][0]["last_error"]["message"]' \
		'd["certificates"][1]["ok"] is True'
	# Out of range at load.
	sed -i "s/^hook_timeout = 2s/hook_timeout = 0s/" "$WORK/p.conf"
	t_expect 2 p11e status
	t_contains "$WORK/err" "hook_timeout = 0s: between 1s and 1d"
}

case_hook_timeout_dcv() {
	setup certinext '{"dcv_required": true}'
	sed -i "/^state_dir/a hook_timeout = 2s" "$WORK/p.conf"
	cat >"$WORK/hook.sh" <<HOOK
#!/bin/sh
echo "\$P11ENROLL_DCV_ACTION \$P11ENROLL_DCV_DOMAIN" >>"$WORK/hook.log"
if [ "\$P11ENROLL_DCV_DOMAIN" = web.example.com ] && [ "\$P11ENROLL_DCV_ACTION" = publish ]; then
	sleep 300 & echo \$! >"$WORK/child.pid"
	wait
fi
exit 0
HOOK
	chmod 755 "$WORK/hook.sh"
	sed -i "/^\[ca:sim\]/a dcv_hook = $WORK/hook.sh\ndcv_propagation_wait = 0\ndcv_poll_interval = 1s\ndcv_timeout = 60s" "$WORK/p.conf"
	cert_section spare >>"$WORK/p.conf"
	local start ms rc
	start=$(date +%s%N)
	p11e renew --all >"$WORK/out" 2>"$WORK/err"
	rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	echo "renew --all with a hung dcv_hook: exit $rc after $ms ms"
	[ "$rc" != 0 ] || t_fail "a hung dcv_hook was a success"
	t_contains "$WORK/err" "dcv_hook did not finish within 2s (hook_timeout); killed it and its process group"
	[ "$(t_journal 'j["state"]' spare)" = monitoring ] || { cat "$WORK/err"; t_fail "spare: $(t_journal 'j["state"]' spare)"; }
	[ -s "$WORK/child.pid" ] || t_fail "the hook did not start its child"
	sleep 0.2
	running "$(cat "$WORK/child.pid")" && t_fail "the hook's child survived"
	[ "$ms" -lt 60000 ] || t_fail "took $ms ms"
}

# ---- signals: enroll, renew and agent stop within 2 s, the journal resumes

# stop_within PID SIGNAL — sends it and waits; sets STOP_MS and STOP_RC.
stop_within() {
	local pid=$1 sig=$2 start
	start=$(date +%s%N)
	kill -"$sig" "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; t_fail "no exit within 5 s of SIG$sig"; }
	wait "$pid"
	STOP_RC=$?
	STOP_MS=$((($(date +%s%N) - start) / 1000000))
	echo "SIG$sig: exit $STOP_RC after $STOP_MS ms"
	[ "$STOP_MS" -lt 2000 ] || t_fail "SIG$sig took $STOP_MS ms (limit 2 s)"
}

state_is() { [ -f "$WORK/state/web.json" ] && [ "$(t_journal 'j["state"]')" = "$1" ]; }

# wait_state SECONDS STATE PID — until the journal says STATE (PID must live).
wait_state() {
	for _ in $(seq 1 $(($1 * 20))); do
		state_is "$2" && return 0
		kill -0 "$3" 2>/dev/null || { cat "$WORK/bg.err"; t_fail "exited before $2"; }
		sleep 0.05
	done
	cat "$WORK/bg.err"
	t_fail "no state $2"
}

case_sigterm_enroll_pending() {
	setup certinext '{"pending_polls": 1000}'
	"$P11ENROLL" -c "$WORK/p.conf" enroll web --wait 600s >"$WORK/bg.out" 2>"$WORK/bg.err" &
	local pid=$!
	wait_state 20 order-pending "$pid"
	sleep 3 # into the sleep between polls (2 s, then 4 s)
	stop_within "$pid" TERM
	[ "$STOP_RC" = 143 ] || { cat "$WORK/bg.err"; t_fail "exit $STOP_RC, want 143"; }
	t_contains "$WORK/bg.err" "stopped by SIGTERM; the next run resumes from the journal"
	[ "$(t_journal 'j["state"]')" = order-pending ] || t_fail "state $(t_journal 'j["state"]')"
	t_sim_scenario '{"pending_polls": 0}'
	t_expect 0 p11e enroll web
	[ "$(t_sim_stat 's["orders_placed"]')" = 1 ] || t_fail "$(t_sim_stat 's["orders_placed"]') orders"
	t_expect 0 p11e status
}

# SIGINT while an HTTP call is in flight (the CA answers slowly): the
# transfer is aborted, the placement counts as unknown and is reconciled.
case_sigint_enroll_in_flight() {
	setup certinext '{"slow_ms": {"ms": 8000, "endpoints": ["GenerateOrderSSL"], "count": 1}}'
	"$P11ENROLL" -c "$WORK/p.conf" enroll web --wait 60s >"$WORK/bg.out" 2>"$WORK/bg.err" &
	local pid=$!
	wait_state 20 order-placing "$pid"
	sleep 0.5
	stop_within "$pid" INT
	[ "$STOP_RC" = 130 ] || { cat "$WORK/bg.err"; t_fail "exit $STOP_RC, want 130"; }
	t_contains "$WORK/bg.err" "stopped by SIGINT"
	sleep 8 # the simulator finishes the slow placement
	t_expect 0 p11e enroll web
	[ "$(t_sim_stat 's["orders_placed"]')" = 1 ] || t_fail "$(t_sim_stat 's["orders_placed"]') orders"
}

case_sigterm_renew_pending() {
	setup certinext '{"pending_polls": 1000}'
	cert_section spare >>"$WORK/p.conf"
	# one after the other (with parallel > 1 both start at once: fleet suite)
	sed -i 's/^\[agent\]$/[agent]\nparallel = 1/' "$WORK/p.conf"
	"$P11ENROLL" -c "$WORK/p.conf" renew --all --wait 600s >"$WORK/bg.out" 2>"$WORK/bg.err" &
	local pid=$!
	wait_state 20 order-pending "$pid"
	sleep 2.5
	stop_within "$pid" TERM
	[ "$STOP_RC" = 143 ] || { cat "$WORK/bg.err"; t_fail "exit $STOP_RC, want 143"; }
	t_contains "$WORK/bg.err" "stopped by SIGTERM; the next run resumes from the journal"
	# The next certificate is not started after the stop.
	[ -f "$WORK/state/spare.json" ] && t_fail "renew went on with spare after SIGTERM"
	t_sim_scenario '{"pending_polls": 0}'
	t_expect 0 p11e renew --all
	[ "$(t_sim_stat 's["orders_placed"]')" = 2 ] || t_fail "$(t_sim_stat 's["orders_placed"]') orders for two certificates"
}

case_sigterm_agent_pending() {
	setup certinext '{"pending_polls": 1000}'
	"$P11ENROLL" -c "$WORK/p.conf" agent --interval-min 1s --wait 600s >"$WORK/bg.out" 2>"$WORK/bg.err" &
	local pid=$!
	T_PIDS+=("$pid")
	wait_state 20 order-pending "$pid"
	sleep 2.5
	stop_within "$pid" TERM
	[ "$STOP_RC" = 0 ] || { cat "$WORK/bg.err"; t_fail "agent exit $STOP_RC, want 0"; }
	t_contains "$WORK/bg.err" "agent: stopping (SIGTERM)"
	t_sim_scenario '{"pending_polls": 0}'
	t_expect 0 p11e enroll web
	[ "$(t_sim_stat 's["orders_placed"]')" = 1 ] || t_fail "a second order"
}

# A stop inside a wait that does not look at the stop flag (the CERTInext
# client's DNS propagation wait): the watchdog ends the process in time, and
# the next run finishes with the same order.
case_sigterm_watchdog() {
	setup certinext '{"dcv_required": true}'
	printf '#!/bin/sh\nexit 0\n' >"$WORK/hook.sh"
	chmod 755 "$WORK/hook.sh"
	sed -i "/^\[ca:sim\]/a dcv_hook = $WORK/hook.sh\ndcv_propagation_wait = 60s\ndcv_poll_interval = 1s\ndcv_timeout = 120s" "$WORK/p.conf"
	"$P11ENROLL" -c "$WORK/p.conf" enroll web --wait 600s >"$WORK/bg.out" 2>"$WORK/bg.err" &
	local pid=$!
	for _ in $(seq 1 400); do
		grep -q "DCV for web.example.com: publishing" "$WORK/bg.err" && break
		kill -0 "$pid" 2>/dev/null || { cat "$WORK/bg.err"; t_fail "enroll ended early"; }
		sleep 0.05
	done
	sleep 0.5
	stop_within "$pid" TERM
	[ "$STOP_RC" = 143 ] || { cat "$WORK/bg.err"; t_fail "exit $STOP_RC, want 143"; }
	[ "$STOP_MS" -ge 1000 ] || t_fail "stopped in $STOP_MS ms: not the watchdog this test is about"
	sed -i "s/^dcv_propagation_wait = 60s/dcv_propagation_wait = 0/" "$WORK/p.conf"
	t_expect 0 p11e enroll web
	[ "$(t_sim_stat 's["orders_placed"]')" = 1 ] || t_fail "$(t_sim_stat 's["orders_placed"]') orders"
}

# ---- systemd units: a pending order (exit 3) is not a failed unit

case_systemd_units() {
	local d=$P11E_BUILDDIR/agent/systemd u
	for u in p11enroll-renew.service p11enroll@.service; do
		[ -f "$d/$u" ] || t_fail "no $d/$u"
		grep -qx 'Type=oneshot' "$d/$u" || t_fail "$u is not a oneshot"
		grep -qx 'SuccessExitStatus=3' "$d/$u" || t_fail "$u: no SuccessExitStatus=3"
	done
	return 0
}

# ---- check --------------------------------------------------------------------

case_check_bad_key_mode() {
	setup certinext
	t_expect 0 p11e check
	t_contains "$WORK/out" "ok   ca:sim"
	chmod 0644 "$SIM_DIR/access.key"
	"$P11ENROLL" -c "$WORK/p.conf" check >"$WORK/out" 2>"$WORK/err" && t_fail "check passed with a world-readable access key"
	grep -E '^FAIL +ca:sim +configuration' "$WORK/out" >/dev/null || { cat "$WORK/out"; t_fail "no FAIL line for the access key"; }
	t_contains "$WORK/out" "access_key_file"
	t_not_contains "$WORK/out" "sim-access-key"
	t_not_contains "$WORK/err" "sim-access-key"
}

# ---- agent --------------------------------------------------------------------

# agent_start [ARGS…] — the agent in the background, its log in $WORK/agent.log.
# shellcheck disable=SC2120 # ARGS are part of the helper; today's cases pass none
agent_start() {
	"$P11ENROLL" -c "$WORK/p.conf" agent --interval-min 1s "$@" >"$WORK/agent.out" 2>"$WORK/agent.log" &
	AGENT=$!
	T_PIDS+=("$AGENT")
}

# wait_for SECONDS CMD… — until CMD succeeds.
wait_for() {
	local limit=$1
	shift
	for _ in $(seq 1 $((limit * 10))); do
		"$@" && return 0
		kill -0 "$AGENT" 2>/dev/null || { cat "$WORK/agent.log"; t_fail "the agent died"; }
		sleep 0.1
	done
	return 1
}

# agent_stop — SIGTERM; it must exit 0 within 2 s.
agent_stop() {
	local start rc
	start=$(date +%s%N)
	kill -TERM "$AGENT"
	for _ in $(seq 1 20); do
		kill -0 "$AGENT" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$AGENT" 2>/dev/null && { cat "$WORK/agent.log"; t_fail "the agent did not stop within 2 s of SIGTERM"; }
	wait "$AGENT"
	rc=$?
	[ "$rc" = 0 ] || { cat "$WORK/agent.log"; t_fail "the agent exited $rc after SIGTERM"; }
	echo "agent stopped in $((($(date +%s%N) - start) / 1000000)) ms"
}

serial_is_not() { [ -f "$WORK/state/web.json" ] && [ "$(t_journal 'j["state"]+j.get("cert",{}).get("serial","")')" != "monitoring$1" ] && [ "$(t_journal 'j["state"]')" = monitoring ]; }
has_line() { grep -qF -- "$2" "$1"; }

case_agent_renews() {
	# 40 s leaves, renewal window 30 s: due 10 s after each issuance.
	setup certinext '{"leaf_seconds": 40}'
	sed -i "/^state_dir/a renew_before = 30s\nprometheus_file = $WORK/agent.prom" "$WORK/p.conf"
	echo "rotate_key = yes" >>"$WORK/p.conf"
	t_expect 0 p11e enroll web
	local serial
	serial=$(t_journal 'j["cert"]["serial"]')
	agent_start
	wait_for 5 has_line "$WORK/agent.log" "next round at" || t_fail "the agent did not plan a round"
	# Not due yet: nothing happened at once.
	[ "$(t_journal 'j["cert"]["serial"]')" = "$serial" ] || t_fail "renewed before the window opened"
	wait_for 20 serial_is_not "$serial" || { cat "$WORK/agent.log"; t_fail "the agent did not renew when the window opened"; }
	t_contains "$WORK/agent.log" "renewing"
	[ "$(t_sim_stat 's["orders_placed"]')" -ge 2 ] || t_fail "no renewal order"
	[ -s "$WORK/agent.prom" ] || t_fail "the agent wrote no metrics"
	t_contains "$WORK/agent.prom" 'p11enroll_state{name="web",ca="sim",state="monitoring"}'
	# SIGHUP: reload, keep running.
	kill -HUP "$AGENT"
	wait_for 5 has_line "$WORK/agent.log" "agent: reloaded" || t_fail "no reload on SIGHUP"
	sleep 0.5
	kill -0 "$AGENT" || t_fail "the agent died on SIGHUP"
	agent_stop
	t_contains "$WORK/agent.log" "agent: stopping (SIGTERM)"
}

# An invalid configuration on SIGHUP is logged and the old one kept; the
# agent enrols a certificate that has none and keeps going past one that fails.
case_agent_failures() {
	setup certinext
	# [cert:broken] names a token that does not exist: a token error every time.
	{
		echo "[cert:broken]"
		echo "ca = sim"
		echo "key = pkcs11:token=absent;object=x?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "dns = broken.example.com"
	} >>"$WORK/p.conf"
	cp "$WORK/p.conf" "$WORK/good.conf"
	agent_start
	wait_for 30 serial_is_not "none" || { cat "$WORK/agent.log"; t_fail "the agent did not enrol web"; }
	wait_for 10 has_line "$WORK/agent.log" "[cert:broken] renewal failed (exit status 5); next try at" ||
		t_fail "no backoff line for the failing certificate"
	t_contains "$WORK/agent.log" "backoff 60s"
	echo "colour = blue" >>"$WORK/p.conf"
	kill -HUP "$AGENT"
	wait_for 5 has_line "$WORK/agent.log" "the configuration was not reloaded" || t_fail "no error for the bad configuration"
	t_contains "$WORK/agent.log" "unknown key 'colour'"
	sleep 0.3
	kill -0 "$AGENT" || t_fail "the agent died on a bad configuration"
	# The old configuration is still in use: web stays monitored, the agent keeps running.
	cp "$WORK/good.conf" "$WORK/p.conf"
	kill -HUP "$AGENT"
	wait_for 5 has_line "$WORK/agent.log" "agent: reloaded" || t_fail "no reload after the fix"
	agent_stop
	[ "$(t_journal 'j["state"]')" = monitoring ] || t_fail "web state $(t_journal 'j["state"]')"
}

case_agent_usage() {
	setup certinext
	t_expect 2 p11e agent --interval-min 0s
	t_expect 2 p11e agent --bogus
	echo "colour = blue" >>"$WORK/p.conf"
	t_expect 2 p11e agent
	t_contains "$WORK/err" "unknown key 'colour'"
}

t_run "$@"
