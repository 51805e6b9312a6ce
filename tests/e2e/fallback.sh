#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fallback CA (p11enroll.conf(5) fallback_ca, docs/orders.md): two CA
# simulators, CERTInext as the primary and The SSL Store as the fallback.
. "$P11E_SRCDIR/tests/lib.sh"

PIN=918273

# Both simulators; P_* and F_* keep the primary's and the fallback's
# SIM_DIR/SIM_ROOT/SIM_BASE. $WORK/p.conf names [ca:primary] and [ca:backup].
setup() {
	local scenario=${1:-}
	t_token_and_sim certinext "$PIN" "$scenario"
	P_DIR=$SIM_DIR P_ROOT=$SIM_ROOT P_BASE=$SIM_BASE P_PID=${T_PIDS[-1]}
	{
		echo "[agent]"
		echo "state_dir = $WORK/state"
		echo "wait = 60s"
		echo
		t_ca_section certinext | sed 's/^\[ca:sim\]/[ca:primary]/; s/^max_retries = .*/max_retries = 1/'
	} >"$WORK/p.conf"
	t_sim_start sslstore backup
	F_DIR=$SIM_DIR F_ROOT=$SIM_ROOT F_BASE=$SIM_BASE
	{
		t_ca_section sslstore | sed 's/^\[ca:sim\]/[ca:backup]/'
		echo "[cert:web]"
		echo "ca = primary"
		echo "fallback_ca = backup"
		echo "fallback_after = 2s"
		echo "key = pkcs11:token=edge;object=web?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "key_type = ec-p256"
		echo "subject = CN=www.example.com"
		echo "dns = www.example.com"
		echo "cert_file = $WORK/tls/cert.pem"
		echo "chain_file = $WORK/tls/chain.pem"
	} >>"$WORK/p.conf"
}

p11e() { "$P11ENROLL" -c "$WORK/p.conf" "$@"; }
use_primary() { SIM_DIR=$P_DIR SIM_ROOT=$P_ROOT SIM_BASE=$P_BASE; }
use_backup() { SIM_DIR=$F_DIR SIM_ROOT=$F_ROOT SIM_BASE=$F_BASE; }
placed_at_primary() { use_primary; t_sim_stat 's["orders_placed"]'; }
placed_at_backup() { use_backup; t_sim_stat 's["orders_placed"]'; }
# Down for certain: nothing listens any more (connection refused), so no
# order can have been placed there.
primary_down() { kill "$P_PID"; wait "$P_PID" 2>/dev/null; }

issued_by() {
	openssl verify -CAfile "$1" -untrusted "$WORK/tls/chain.pem" "$WORK/tls/cert.pem" >/dev/null 2>&1
}

# Primary unreachable: no fallback before fallback_after, then the order
# goes to the fallback; one order there, none at the primary.
case_fallback_unreachable() {
	setup
	[ "$(placed_at_primary)" = 0 ] || t_fail "the primary has orders already"
	primary_down
	t_expect 1 p11e enroll web
	t_contains "$WORK/err" "could not be reached"
	t_contains "$WORK/err" "once that lasts 2s (fallback_after)"
	[ "$(t_journal 'j["fallback"]["primary_failing_since"] > 0')" = True ] || t_fail "first failure not journalled"
	[ "$(placed_at_backup)" = 0 ] || t_fail "fallback used before fallback_after"
	sleep 2.5
	t_expect 0 p11e enroll web
	t_contains "$WORK/err" "ordering from the fallback [ca:backup]"
	[ "$(t_journal 'j["state"]')" = monitoring ] || t_fail "state $(t_journal 'j["state"]')"
	[ "$(t_journal 'j["order"]["ca"]')" = backup ] || t_fail "order.ca is $(t_journal 'j["order"]["ca"]')"
	issued_by "$F_ROOT" || t_fail "cert.pem is not from the fallback CA"
	[ "$(placed_at_backup)" = 1 ] || t_fail "the fallback saw $(placed_at_backup) orders"
	t_expect 0 p11e status web --json
	"$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1]))["certificates"][0]; assert c["issued_by"]=="backup" and c["on_fallback"] is True, c' \
		"$WORK/out" || t_fail "status --json does not show the fallback"
	t_expect 0 p11e status web
	t_contains "$WORK/out" "issued by   backup (the fallback of [ca:primary]"
}

# Primary refuses outright: the fallback at once; the renewal tries the
# primary again and comes back to it.
case_fallback_refused() {
	setup '{"credits": 0}'
	t_expect 0 p11e enroll web
	t_contains "$WORK/err" "refused the order"
	t_contains "$WORK/err" "Insufficient Credits"
	t_contains "$WORK/err" "ordering from the fallback [ca:backup]"
	issued_by "$F_ROOT" || t_fail "cert.pem is not from the fallback CA"
	[ "$(placed_at_backup)" = 1 ] || t_fail "the fallback saw $(placed_at_backup) orders"
	[ "$(placed_at_primary)" = 0 ] || t_fail "the primary saw $(placed_at_primary) orders"
	use_primary
	t_sim_scenario '{"credits": null}'
	t_expect 0 p11e renew web --force
	[ "$(t_journal 'j["order"]["ca"]')" = primary ] || t_fail "the renewal did not go to the primary"
	issued_by "$P_ROOT" || t_fail "cert.pem is not from the primary CA after the renewal"
	[ "$(placed_at_primary)" = 1 ] || t_fail "the primary saw $(placed_at_primary) orders"
	[ "$(placed_at_backup)" = 1 ] || t_fail "the fallback saw $(placed_at_backup) orders"
	t_expect 0 p11e status web --json
	"$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1]))["certificates"][0]; assert c["issued_by"]=="primary" and c["on_fallback"] is False, c' \
		"$WORK/out" || t_fail "status --json still shows the fallback"
}

# An order pending at the primary stays there when the primary goes down:
# exit 3, no order at the fallback, one order in all.
case_fallback_not_in_flight() {
	setup '{"pending_polls": 1000}'
	t_expect 3 p11e enroll web --wait 0s
	[ "$(placed_at_primary)" = 1 ] || t_fail "the primary saw $(placed_at_primary) orders"
	primary_down
	sleep 2.5
	t_expect 3 p11e enroll web --wait 3s
	t_not_contains "$WORK/err" "fallback"
	[ "$(t_journal 'j["order"]["ca"]')" = primary ] || t_fail "order.ca is $(t_journal 'j["order"]["ca"]')"
	t_contains "$WORK/err" "is still pending at the CA"
	[ "$(placed_at_backup)" = 0 ] || t_fail "the fallback saw $(placed_at_backup) orders"
}

# fallback_ca must name another [ca:] section.
case_fallback_config() {
	setup
	sed -i 's/^fallback_ca = backup$/fallback_ca = nowhere/' "$WORK/p.conf"
	t_expect 2 p11e status
	t_contains "$WORK/err" "fallback_ca = nowhere: there is no such [ca:] section"
	sed -i 's/^fallback_ca = nowhere$/fallback_ca = primary/' "$WORK/p.conf"
	t_expect 2 p11e status
	t_contains "$WORK/err" "names the same CA as ca ="
}

t_run "$@"
