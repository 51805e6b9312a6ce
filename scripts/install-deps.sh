#!/usr/bin/env bash
# Installs the Debian packages p11enroll needs to build and test, only those
# that are missing (apt-get; run as root, as on the CI machine).
set -euo pipefail

packages=(
	# build
	meson ninja-build pkg-config gcc libc6-dev
	libssl-dev libp11-kit-dev p11-kit libcurl4-openssl-dev libcjson-dev libinih-dev
	libcriterion-dev
	# house style (meson suite style): scripts/format.sh, scripts/shellcheck.sh
	clang-format shellcheck
	# tokens and tests
	softhsm2 opensc openssl curl libengine-pkcs11-openssl
	python3 python3-cryptography
	# what a user meets (tests/e2e/user.sh): nginx serving a token key,
	# promtool (Debian ships it in prometheus), bash completion
	nginx prometheus bash-completion
	# scripts/fleet-sim draws its plot
	python3-matplotlib python3-numpy
	# TPM 2.0 tests (tests/tpm): software TPM, tpm2_flushcontext/getcap, the
	# swtpm TCTI, tpm2-pkcs11 and the tpm2 OpenSSL provider
	swtpm tpm2-tools libtss2-tcti-swtpm0 libtpm2-pkcs11-1 tpm2-openssl
	# other tokens (tests/tokens): NSS softokn and certutil, opencryptoki's
	# soft token, p11-kit server/client and proxy; setpriv/unshare/nsenter
	libnss3 libnss3-tools opencryptoki p11-kit-modules util-linux
	pebble # ACME test server and its DNS/challenge companion (tests/acme)
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "installing: ${missing[*]}" >&2
if [ "$(id -u)" != 0 ]; then
	echo "missing packages (${missing[*]}); run this script as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
