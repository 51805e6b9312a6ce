#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs inside `unshare -m --propagation private`: opencryptoki's paths are
# compiled in (/etc/opencryptoki, /var/lib/opencryptoki, /run, /var/log,
# /dev/shm), so private copies are mounted over them here, pkcsslotd is
# started, and this process holds the namespace until it is killed.
# Clients join with `nsenter --mount=/proc/PID/ns/mnt`.
set -eu
dir=$1
mount --bind "$dir/etc" /etc/opencryptoki
mount --bind "$dir/lib" /var/lib/opencryptoki
mount -t tmpfs tmpfs /run
mkdir -p /run/opencryptoki /run/lock/opencryptoki
chgrp pkcs11 /run/opencryptoki /run/lock/opencryptoki
chmod 770 /run/opencryptoki /run/lock/opencryptoki
mount -t tmpfs tmpfs /var/log
mkdir -p /var/log/opencryptoki
mount -t tmpfs tmpfs /dev/shm
pkcsslotd
# It daemonises: the pid file comes a moment later.
for _ in $(seq 1 100); do
	[ -s /run/pkcsslotd.pid ] && break
	sleep 0.05
done
cp /run/pkcsslotd.pid "$dir/pkcsslotd.pid"
touch "$dir/ready"
trap 'exit 0' TERM
while :; do sleep 1; done
