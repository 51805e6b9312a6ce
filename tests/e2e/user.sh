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
	local kind=$1
	shift
	"$PREFIX_DIR/bin/p11enroll-sim" "$kind" --dir "$WORK/sandbox" "$@" \
		>"$WORK/sandbox.out" 2>"$WORK/sandbox.err" &
	SANDBOX_PID=$!
	T_PIDS+=("$SANDBOX_PID")
	for _ in $(seq 1 300); do
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
	# Killed hard, it takes the simulator with it.
	local sim_pid
	sim_pid=$(cat "$WORK/sandbox/sim/pid")
	kill -9 "$SANDBOX_PID"
	for _ in $(seq 1 100); do
		kill -0 "$sim_pid" 2>/dev/null || break
		sleep 0.05
	done
	! kill -0 "$sim_pid" 2>/dev/null || { kill "$sim_pid"; t_fail "the simulator outlived p11enroll-sim"; }
}

# ---- the example configuration, help and option messages ----------------------

# The installed example parses: with its paths moved under $WORK and its
# secret files present, every key of every section is accepted.
case_example_config() {
	install_here
	local ex
	ex=$(find "$WORK/inst" -name p11enroll.conf.example | head -1)
	[ -s "$ex" ] || t_fail "the example configuration was not installed"
	for s in '^\[agent\]' '^\[ca:certinext\]' '^\[ca:sslstore\]' '^\[cert:web\]' '^type *= *certinext' \
		'^type *= *sslstore' '^key_type *=' '^subject *=' '^dns *=' '^cert_file *=' '^fullchain_file *=' \
		'^post_install *=' '^renew_before *=' '^prometheus_file *=' '^; '; do
		grep -qE -- "$s" "$ex" || t_fail "the example lacks $s"
	done
	mkdir -p "$WORK/etc/secrets" "$WORK/state"
	sed -e "s|/etc/p11enroll|$WORK/etc|g; s|/var/lib/p11enroll|$WORK/state|; s|/var/lib/prometheus/node-exporter|$WORK|" \
		"$ex" >"$WORK/p.conf"
	(umask 077; echo key >"$WORK/etc/secrets/certinext.key"; echo token >"$WORK/etc/secrets/sslstore.token")
	# Nothing is enrolled yet: status says so and exits 1 (needs attention).
	t_expect 1 "$PREFIX_DIR/bin/p11enroll" -c "$WORK/p.conf" status
	t_contains "$WORK/out" "web: new"
	t_contains "$WORK/out" "api: new"
	# (No `check`: it would call the real CAs' addresses in the example.)
	t_expect 1 "$PREFIX_DIR/bin/p11enroll" -c "$WORK/p.conf" --json status
	"$PYTHON" -c "import json; d=json.load(open('$WORK/out')); assert {c['name'] for c in d['certificates']} == {'web', 'api'}, d" ||
		t_fail "status --json of the example"
}

case_help_and_options() {
	t_expect 0 "$P11ENROLL" help
	t_contains "$WORK/out" "help      [COMMAND]"
	t_expect 0 "$P11ENROLL" help status
	t_contains "$WORK/out" "usage: p11enroll status [NAME…] [--json] [--prometheus FILE]"
	# What a CA adds to a command's help comes from its provider, before the exit statuses.
	t_expect 0 "$P11ENROLL" help revoke
	t_contains "$WORK/out" "CERTInext refuses the reasons unspecified and caCompromise."
	[ "$(grep -n 'CERTInext refuses' "$WORK/out" | cut -d: -f1)" -lt "$(grep -n '^Exit:' "$WORK/out" | cut -d: -f1)" ] ||
		t_fail "the CA notes come after the exit statuses"
	t_expect 2 "$P11ENROLL" help nosuch
	t_contains "$WORK/err" "help: unknown command 'nosuch'"
	# A mistyped option is named, before any configuration is read.
	t_expect 2 "$P11ENROLL" -c /nonexistent status --jsn
	t_contains "$WORK/err" "status: unknown option '--jsn'; did you mean --json?"
	t_not_contains "$WORK/err" "no configuration"
	t_expect 2 "$P11ENROLL" -c /nonexistent renew --dryrun
	t_contains "$WORK/err" "did you mean --dry-run?"
	t_expect 2 "$P11ENROLL" -c /nonexistent check --all
	t_contains "$WORK/err" "check: unknown option '--all'; it takes no options"
	t_expect 2 "$P11ENROLL" -c /nonexistent check --json
	t_contains "$WORK/err" "check: '--json' goes before the command: p11enroll --json check"
	t_expect 2 "$P11ENROLL" -c /nonexistent enroll web --wait=5s
	t_contains "$WORK/err" "write '--wait 5s'"
	# An option's value may look like an option: "-o -" is standard output.
	t_expect 2 "$P11ENROLL" -c /nonexistent csr web -o -
	t_not_contains "$WORK/err" "unknown option"
}

# ---- bash completion ---------------------------------------------------------------

# complete WORDS… — what the installed completion offers for the last word
# (one per line, sorted), loaded the way bash-completion loads it.
complete_words() {
	local words=("$@")
	XDG_DATA_DIRS="$PREFIX_DIR/share" bash --norc --noprofile -c '
		. /usr/share/bash-completion/bash_completion
		__load_completion p11enroll || { echo "completion not found" >&2; exit 1; }
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_p11enroll p11enroll "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}" | sort' complete "${words[@]}"
}

case_completion() {
	install_here
	[ -r /usr/share/bash-completion/bash_completion ] || t_skip "bash-completion is not installed"
	mkdir -p "$WORK/conf.d"
	printf '[agent]\nstate_dir = %s\ninclude_dir = %s/conf.d\n[ca:prod]\ntype = certinext\n[cert:web]\nca = prod\n[cert:mail]\nca = prod\n' \
		"$WORK/state" "$WORK" >"$WORK/p.conf"
	printf '[ca:lab]\ntype = sslstore\n[cert:vpn]\nca = lab\n' >"$WORK/conf.d/10-lab.conf"
	[ "$(complete_words p11enroll "")" = "$(printf '%s\n' agent cancel check csr enroll help keygen orders products reconcile renew revoke status)" ] ||
		t_fail "commands: $(complete_words p11enroll "")"
	[ "$(complete_words p11enroll ren)" = renew ] || t_fail "ren -> $(complete_words p11enroll ren)"
	[ "$(complete_words p11enroll --v)" = "$(printf '%s\n' --verbose --version)" ] || t_fail "--v"
	[ "$(complete_words p11enroll -c "$WORK/p.conf" enroll "")" = "$(printf '%s\n' mail vpn web)" ] ||
		t_fail "certificate names: $(complete_words p11enroll -c "$WORK/p.conf" enroll "")"
	[ "$(complete_words p11enroll -c "$WORK/p.conf" products "")" = "$(printf '%s\n' lab prod)" ] ||
		t_fail "CA names: $(complete_words p11enroll -c "$WORK/p.conf" products "")"
	[ "$(P11ENROLL_CONFIG=$WORK/p.conf complete_words p11enroll renew w)" = web ] ||
		t_fail "P11ENROLL_CONFIG is not read"
	[ "$(complete_words p11enroll renew --)" = "$(printf '%s\n' --all --dry-run --force --help --wait)" ] ||
		t_fail "renew options: $(complete_words p11enroll renew --)"
	[ "$(complete_words p11enroll revoke web --reason key)" = keyCompromise ] || t_fail "--reason"
	[ "$(complete_words p11enroll help st)" = status ] || t_fail "help st"
	# Every option the binary takes is offered, and none it refuses.
	local c o
	for c in enroll renew csr orders status revoke agent; do
		for o in $("$P11ENROLL" help "$c" | head -1 | grep -o -- '--*[a-z][-a-z]*'); do
			complete_words p11enroll "$c" - | grep -qx -- "$o" || t_fail "completion lacks $c $o"
		done
		for o in $(complete_words p11enroll "$c" -); do
			"$P11ENROLL" -c /nonexistent "$c" "$o" x >/dev/null 2>"$WORK/opt.err"
			t_not_contains "$WORK/opt.err" "unknown option"
		done
	done
}

# ---- Prometheus --------------------------------------------------------------------

case_prometheus() {
	t_need promtool
	t_token_and_sim certinext "$PIN"
	{
		echo "[agent]"; echo "state_dir = $WORK/state"; echo
		t_ca_section certinext
		echo "[cert:web]"; echo "ca = sim"
		echo "key = pkcs11:token=edge;object=web?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "subject = CN=www.example.com"; echo "dns = www.example.com"
		echo "cert_file = $WORK/tls/cert.pem"
		echo "[cert:new]"; echo "ca = sim"
		echo "key = pkcs11:token=edge;object=new?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "dns = new.example.com"; echo "cert_file = $WORK/tls/new.pem"
	} >"$WORK/p.conf"
	t_expect 0 "$P11ENROLL" -c "$WORK/p.conf" enroll web
	# [cert:new] was never enrolled: status says so with exit 1 and still writes the file.
	t_expect 1 "$P11ENROLL" -c "$WORK/p.conf" status --prometheus "$WORK/p11enroll.prom"
	t_contains "$WORK/p11enroll.prom" 'p11enroll_certificate_problem{name="new",ca="sim",problem="not-enrolled"} 1'
	t_contains "$WORK/p11enroll.prom" 'p11enroll_certificate_not_after_seconds{name="web",ca="sim"}'
	promtool check metrics <"$WORK/p11enroll.prom" >"$WORK/promtool.out" 2>&1 ||
		{ cat "$WORK/promtool.out"; t_fail "promtool check metrics"; }
	promtool check rules "$P11E_SRCDIR/docs/prometheus/p11enroll.rules.yml" >"$WORK/promtool.out" 2>&1 ||
		{ cat "$WORK/promtool.out"; t_fail "promtool check rules"; }
	promtool test rules "$P11E_SRCDIR/tests/e2e/p11enroll.rules.test.yml" >"$WORK/promtool.out" 2>&1 ||
		{ cat "$WORK/promtool.out"; t_fail "promtool test rules"; }
	# Every metric the rules use is one p11enroll writes.
	local m
	while read -r m; do
		grep -q "^# TYPE $m " "$WORK/p11enroll.prom" || t_fail "the rules use $m, which p11enroll does not write"
	done < <(grep -o 'p11enroll_[a-z_]*' "$P11E_SRCDIR/docs/prometheus/p11enroll.rules.yml" | sort -u)
}

# ---- nginx with the installed chain and the key in the token ------------------------

# handshake_serial — the serial nginx presents, after a verified handshake.
handshake_serial() {
	echo | openssl s_client -connect "127.0.0.1:$NGINX_PORT" -servername www.example.com \
		-verify_return_error -verify_hostname www.example.com -CAfile "$SIM_ROOT" \
		>"$WORK/s_client.log" 2>&1 || return 1
	grep -q "Verify return code: 0 (ok)" "$WORK/s_client.log" || return 1
	openssl x509 -in "$WORK/s_client.log" -noout -serial | cut -d= -f2
}

case_nginx() {
	t_need nginx openssl
	t_token_and_sim certinext "$PIN" '{"duplicate_csr_scope": "csr"}'
	{
		echo "[agent]"; echo "state_dir = $WORK/state"; echo
		t_ca_section certinext
		echo "[cert:web]"; echo "ca = sim"
		echo "key = pkcs11:token=edge;object=web?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "subject = CN=www.example.com"; echo "dns = www.example.com"
		echo "cert_file = $WORK/tls/cert.pem"; echo "fullchain_file = $WORK/tls/fullchain.pem"
	} >"$WORK/p.conf"
	t_expect 0 "$P11ENROLL" -c "$WORK/p.conf" enroll web
	NGINX_PORT=$(t_free_ports 1)
	mkdir -p "$WORK/nginx/logs"
	# libp11 reads the PIN file whole: no trailing newline.
	(umask 077; printf '%s' "$PIN" >"$WORK/nginx/pin")
	{
		# Workers re-open the token after the fork: they must be able to read it.
		[ "$(id -u)" = 0 ] && echo "user root;"
		echo "worker_processes 1;"
		echo "pid $WORK/nginx/nginx.pid;"
		echo "error_log $WORK/nginx/logs/error.log info;"
		echo "events { worker_connections 16; }"
		echo "http {"
		echo "  access_log off;"
		for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $WORK/nginx/$t;"; done
		echo "  server {"
		echo "    listen 127.0.0.1:$NGINX_PORT ssl;"
		echo "    server_name www.example.com;"
		echo "    ssl_certificate $WORK/tls/fullchain.pem;"
		echo "    ssl_certificate_key \"engine:pkcs11:pkcs11:token=edge;object=web;type=private?pin-source=file:$WORK/nginx/pin\";"
		printf '%s\n' '    location / { return 200 "ok\n"; }'
		echo "  }"
		echo "}"
	} >"$WORK/nginx/nginx.conf"
	# nginx uses the engine as OpenSSL's configuration sets it up (init = 1).
	local enginesdir
	enginesdir=$(openssl version -e | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
	[ -e "$enginesdir/pkcs11.so" ] || t_skip "libp11's pkcs11 engine is not installed (libengine-pkcs11-openssl)"
	cat >"$WORK/nginx/openssl.cnf" <<-EOF
		openssl_conf = openssl_init
		[openssl_init]
		engines = engine_section
		[engine_section]
		pkcs11 = pkcs11_section
		[pkcs11_section]
		engine_id = pkcs11
		dynamic_path = $enginesdir/pkcs11.so
		MODULE_PATH = $SOFTHSM_MODULE
		init = 1
	EOF
	OPENSSL_CONF=$WORK/nginx/openssl.cnf nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' \
		>"$WORK/nginx/stdout.log" 2>&1 &
	local nginx_pid=$! serial new=""
	T_PIDS+=("$nginx_pid")
	for _ in $(seq 1 100); do
		[ -s "$WORK/nginx/nginx.pid" ] && handshake_serial >/dev/null && break
		kill -0 "$nginx_pid" 2>/dev/null || break
		sleep 0.1
	done
	serial=$(handshake_serial) ||
		{ cat "$WORK/nginx/stdout.log" "$WORK/nginx/logs/error.log" "$WORK/s_client.log"; t_fail "no verified handshake with nginx"; }
	[ "$serial" = "$(openssl x509 -in "$WORK/tls/cert.pem" -noout -serial | cut -d= -f2)" ] ||
		t_fail "nginx serves another certificate than cert.pem"
	# Renewal: post_install reloads this nginx (by its PID), and the next
	# handshake shows the new certificate.
	echo "post_install = kill -HUP $nginx_pid" >>"$WORK/p.conf"
	t_expect 0 "$P11ENROLL" -c "$WORK/p.conf" renew web --force
	for _ in $(seq 1 100); do
		new=$(handshake_serial) && [ "$new" != "$serial" ] && break
		sleep 0.1
	done
	{ [ -n "$new" ] && [ "$new" != "$serial" ]; } || t_fail "after renew, nginx still serves serial $serial"
	[ "$new" = "$(openssl x509 -in "$WORK/tls/cert.pem" -noout -serial | cut -d= -f2)" ] ||
		t_fail "nginx serves $new, cert.pem has another serial"
	kill "$nginx_pid"
	wait "$nginx_pid" 2>/dev/null
	return 0
}

# ---- messages ------------------------------------------------------------------------

# sim_conf KIND — [agent], the simulator's [ca:sim] and [cert:web] in $WORK/p.conf.
sim_conf() {
	t_token_and_sim "$1" "$PIN"
	{
		echo "[agent]"; echo "state_dir = $WORK/state"; echo
		t_ca_section "$1"
		echo "[cert:web]"; echo "ca = sim"
		echo "key = pkcs11:token=edge;object=web?module-path=$SOFTHSM_MODULE&pin-source=file:$WORK/pin"
		echo "subject = CN=www.example.com"; echo "dns = www.example.com"
		echo "cert_file = $WORK/tls/cert.pem"
	} >"$WORK/p.conf"
}

# check asks the CA whether the configured product codes exist.
check_products() {
	local kind=$1 good=$2 bad=$3
	sim_conf "$kind"
	t_expect 0 "$P11ENROLL" -c "$WORK/p.conf" check
	t_contains "$WORK/out" "ok   ca:sim         product            $good (default_product) is offered"
	sed -i "s|^default_product = .*|default_product = $bad|" "$WORK/p.conf"
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" check
	t_contains "$WORK/out" "FAIL ca:sim         product"
	t_contains "$WORK/out" "default_product = $bad is not among the"
	t_contains "$WORK/out" "p11enroll products sim"
	# A [cert:] that overrides the product is checked too.
	sed -i "s|^default_product = .*|default_product = $good|" "$WORK/p.conf"
	echo "product = $bad" >>"$WORK/p.conf"
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" check
	t_contains "$WORK/out" "FAIL cert:web       product"
	[ "$(t_sim_stat 's["orders_placed"]')" = 0 ] || t_fail "check placed an order"
}
case_check_products_certinext() { check_products certinext 842 100; }
case_check_products_sslstore() { check_products sslstore positivessl nosuchproduct; }

# A PIN file problem is reported once, by check and by enroll.
case_pin_file_once() {
	sim_conf certinext
	chmod 0644 "$WORK/pin"
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" check web
	[ "$(grep -c "$WORK/pin" "$WORK/out")" = 1 ] || t_fail "check reports the PIN file $(grep -c "$WORK/pin" "$WORK/out") times"
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" enroll web
	[ "$(cat "$WORK/out" "$WORK/err" | grep -c "$WORK/pin")" = 1 ] ||
		t_fail "enroll reports the PIN file $(cat "$WORK/out" "$WORK/err" | grep -c "$WORK/pin") times"
}

# A hint never names the command that just failed.
case_no_self_hint() {
	sim_conf certinext
	echo "wrong-key" >"$WORK/sim/access.key.bad"
	chmod 0600 "$WORK/sim/access.key.bad"
	sed -i "s|^access_key_file = .*|access_key_file = $WORK/sim/access.key.bad|" "$WORK/p.conf"
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" check sim
	t_contains "$WORK/out" "FAIL ca:sim         credentials"
	t_not_contains "$WORK/out" "p11enroll check"
	t_expect 2 "$P11ENROLL" -c "$WORK/p.conf" products sim
	t_not_contains "$WORK/err" "p11enroll products"
}

# ---- progress of a long wait ------------------------------------------------------

# On a terminal the line is redrawn in place and counts down; without one,
# one line per change of the CA's status.
case_progress() {
	sim_conf certinext
	sed -i 's|^poll_interval = .*|poll_interval = 3s|' "$WORK/p.conf"
	t_sim_scenario '{"pending_polls": 2}'
	"$PYTHON" - "$P11ENROLL" "$WORK/p.conf" >"$WORK/tty.out" <<'PY' || t_fail "enroll on a terminal failed"
import os, pty, subprocess, sys
master, slave = pty.openpty()
p = subprocess.Popen([sys.argv[1], "-c", sys.argv[2], "enroll", "web"], stdin=slave, stdout=slave, stderr=slave)
os.close(slave)
out = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(p.wait())
PY
	local order
	order=$(t_journal 'j["order"]["order_id"]')
	grep -aqF $'\r\033[K[cert:web] order '"$order"': ' "$WORK/tty.out" || { cat -v "$WORK/tty.out"; t_fail "no in-place progress line"; }
	grep -aqE "elapsed, next poll in [0-9]+s" "$WORK/tty.out" || { cat -v "$WORK/tty.out"; t_fail "no elapsed time / next poll"; }
	# Each wait is 3 s (poll_interval): "2s" only appears if the line counts down.
	grep -aqF "next poll in 3s" "$WORK/tty.out" || { cat -v "$WORK/tty.out"; t_fail "no 'next poll in 3s'"; }
	grep -aqF "next poll in 2s" "$WORK/tty.out" || { cat -v "$WORK/tty.out"; t_fail "the wait does not count down"; }
	# Without a terminal: the status did not change, so one line.
	rm -rf "$WORK/state" "$WORK/tls"
	sed -i 's|^poll_interval = .*|poll_interval = 1s|' "$WORK/p.conf"
	t_sim_scenario '{"pending_polls": 3, "duplicate_csr_scope": "csr"}'
	t_expect 0 "$P11ENROLL" -c "$WORK/p.conf" enroll web
	[ "$(grep -c "next poll in" "$WORK/err")" = 1 ] || { cat "$WORK/err"; t_fail "not one line per change"; }
	t_not_contains "$WORK/err" $'\033'
}

t_run "$@"
