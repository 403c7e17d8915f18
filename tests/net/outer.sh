#!/bin/sh
# The outer namespace of tests/network.rs, run as root of a fresh user,
# network and mount namespace that the unprivileged test user made
# (`unshare -Urnm`): hutch runs here as if this were the host.
#
#   "host" (this namespace)                 "internet" (a namespace of its own)
#   lo 127.0.0.1: tcp 9090, udp 9091        veth1 198.51.100.1/24, 2001:db8:1::1/64
#   abstract @hutch-test-x11                      203.0.113.10 (public: tcp 8080, udp 8081, dns 53)
#   veth0 198.51.100.2/24, 2001:db8:1::2/64       10.77.0.10   (private "LAN": tcp 8080)
#   default routes via the "internet"             2001:db8:2::10 (tcp 8080)
#   /etc/resolv.conf: nameserver 203.0.113.10
#
# Nothing leaves these namespaces. $1: the directory of probe.py, where
# this script also writes its resolv.conf. Prints "ready", then runs the
# test's jobs.
set -eu
dir=$1
probe="/usr/bin/python3 $dir/probe.py"
ip link set lo up

# The "internet": a process in a network namespace of its own, which says
# once it is there.
mkfifo "$dir/inet-ready"
unshare -n sh -c "echo > '$dir/inet-ready'; exec sleep infinity" &
inet=$!
read -r _ < "$dir/inet-ready"
# Jobs start servers of their own there: nsenter -t "$(cat inet.pid)" -n ...
echo "$inet" > "$dir/inet.pid"
ip link add veth0 type veth peer name veth1 netns "/proc/$inet/ns/net"
ip addr add 198.51.100.2/24 dev veth0
ip -6 addr add 2001:db8:1::2/64 dev veth0 nodad
ip link set veth0 up
nsenter -t "$inet" -n sh -eu -c '
  ip link set lo up
  ip addr add 198.51.100.1/24 dev veth1
  ip addr add 203.0.113.10/32 dev veth1
  ip addr add 10.77.0.10/32 dev veth1
  ip -6 addr add 2001:db8:1::1/64 dev veth1 nodad
  ip -6 addr add 2001:db8:2::10/128 dev veth1 nodad
  ip link set veth1 up'
ip route add default via 198.51.100.1
ip -6 route add default via 2001:db8:1::1

echo "nameserver 203.0.113.10" > "$dir/resolv.conf"
mount --bind "$dir/resolv.conf" /etc/resolv.conf

# Servers; each says "listening" once it is.
start() {
  mkfifo "$dir/server-ready"
  "$@" > "$dir/server-ready" &
  read -r _ < "$dir/server-ready"
  rm "$dir/server-ready"
}
inet_probe="nsenter -t $inet -n $probe"
start $inet_probe serve-tcp 203.0.113.10 8080 hello-internet
start $inet_probe serve-tcp 10.77.0.10 8080 hello-lan
start $inet_probe serve-tcp 2001:db8:2::10 8080 hello-internet-v6
start $inet_probe serve-udp 203.0.113.10 8081 udp-internet
start $inet_probe serve-dns 203.0.113.10
start $probe serve-tcp 127.0.0.1 9090 hello-host-loopback
start $probe serve-udp 127.0.0.1 9091 udp-host-loopback
start $probe serve-abstract hutch-test-x11
# Jobs: the test writes a job's NAME on the `jobs` fifo; NAME.sh runs
# here (as this namespace's root), its output in NAME.out and NAME.err,
# and "done NAME STATUS" is printed. (nsenter cannot join as root: the
# user namespace forbids setgroups.)
mkfifo "$dir/jobs"
exec 3<> "$dir/jobs"
echo ready
while read -r job <&3; do
  status=0
  sh "$dir/$job.sh" > "$dir/$job.out" 2> "$dir/$job.err" < /dev/null || status=$?
  echo "done $job $status"
done
