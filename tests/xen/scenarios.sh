# SPDX-License-Identifier: MIT
# Scenarios of the real-Xen tier, run in dom0 by /init (tests/xen/dom0-init).
# Sourced by busybox sh.  Each scenario s_NAME collects failures with fail()
# and figures with note(); run_scenario prints the XENTEST line.  Every wait
# is bounded.  Guests are driven through their xenstore data/ directory (see
# tests/xen/guest-init).

# Not in this set: libvirt and apparmor, which need libvirtd in dom0 (the
# default run's second boot, tests/xen/run); on request (-s): throughput,
# logs.
ALL_SCENARIOS="hotplug unplug pty restart qga names destroy qemu saverestore dm default driverdomain"

now() { cut -d' ' -f1 /proc/uptime; }
since() { awk "BEGIN{printf \"%.2f\", $(now) - $1}"; }
diff_s() { awk "BEGIN{printf \"%.2f\", $2 - $1}"; }
log() { echo "xt: $*"; }
fail() { FAILS="${FAILS:+$FAILS; }$*"; log "FAIL: $*"; }
note() { NOTES="${NOTES:+$NOTES; }$*"; log "$*"; }
sha_of() { sha256sum < "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

run_scenario() {
	FAILS=
	NOTES=
	SCEN=$1
	st0=$(now)
	log "---- scenario $1 at $st0 s"
	if type "s_$1" >/dev/null 2>&1; then
		"s_$1"
	else
		fail "no such scenario"
	fi
	secs=$(since "$st0")
	if [ -z "$FAILS" ]; then
		echo "XENTEST $1 PASS $secs $NOTES"
	else
		echo "XENTEST $1 FAIL $secs $FAILS | $NOTES"
		dump_logs
	fi
}

dump_logs() {
	for f in /tmp/p.*.log /var/log/xen/console/guest-*.log /tmp/xtio.*; do
		[ -s "$f" ] || continue
		echo "xt-log: ==== $f"
		case $f in
		*guest-*) n=150 ;;
		*) n=25 ;;
		esac
		tail -n $n "$f" | sed 's/^/xt-log: /'
	done
	xenstore-ls -f /local/domain 2>/dev/null | grep -E 'console|data/(out|rc)' | tail -n 40 | sed 's/^/xt-log: xs: /'
	# A proxy its filter killed (SIGSYS): the kernel's audit line names the call.
	dmesg 2>/dev/null | grep 'type=1326' | tail -n 5 | sed 's/^/xt-log: seccomp: /'
}

# ---- xenstore -----------------------------------------------------------------
# Wait until PATH exists (and reads VALUE, if one is given).
xs_wait() { # PATH VALUE SECS
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		if v=$(xenstore-read "$1" 2>/dev/null); then
			[ -z "$2" ] || [ "$v" = "$2" ] && return 0
		fi
		usleep 100000
		i=$((i + 1))
	done
	return 1
}

xs_wait_gone() { # PATH SECS
	i=0
	while [ $i -lt $(($2 * 20)) ]; do
		xenstore-exists "$1" 2>/dev/null || return 0
		usleep 50000
		i=$((i + 1))
	done
	return 1
}

# Nothing of domain D's channel DEVID may be left in xenstore.
xs_clean() { # D DEVID
	for p in /local/domain/$1/device/console/$2 /local/domain/0/backend/console/$1/$2 \
		/libxl/$1/device/console/$2; do
		xenstore-exists "$p" 2>/dev/null && fail "$p left in xenstore"
	done
}

# ---- guests -------------------------------------------------------------------
# A channel= line with these entries, as this profile's xl needs it: xl
# before 4.18.5, 4.19.2 and 4.20.1 (XT_XL_DROPS_FIRST=1, Debian 12's 4.17)
# gives the first entry devid 0, which libxl does not create, so a
# placeholder goes first; later xl numbers entries from 1, where a
# placeholder would be a real channel.  Either way the entries given are
# devices 1, 2...  CH_PLACEHOLDER: another placeholder entry.
channel_cfg() { # ENTRY...
	list=
	[ "$XT_XL_DROPS_FIRST" = 1 ] && list="\"${CH_PLACEHOLDER:-name=unused, connection=pty}\""
	for e; do
		list="${list:+$list, }\"$e\""
	done
	echo "channel = [ $list ]"
}

guest_cfg() { # NAME [EXTRA-CONFIG-LINES]
	cat > /tmp/$1.cfg <<EOF
name = "$1"
type = "pv"
kernel = "/xt/guest/vmlinux"
ramdisk = "${GUEST_INITRD:-/xt/guest/initrd}"
extra = "console=hvc0 loglevel=7"
memory = ${GUEST_MEM:-192}
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
$2
EOF
}

# Start guest NAME unless it runs; wait until its /init answers.  xl's
# output in /tmp/xl-create.NAME (XL_V=-vvv: libxl's debug log too).
need_guest() { # NAME [EXTRA-CONFIG-LINES]
	xl domid "$1" >/dev/null 2>&1 && return 0
	guest_cfg "$1" "$2"
	t=$(now)
	if ! timeout 90 xl $XL_V create /tmp/$1.cfg > /tmp/xl-create.$1 2>&1; then
		fail "xl create $1: $(tail -n 6 /tmp/xl-create.$1 | tr "\n" " ")"
		return 1
	fi
	echo "XENTIME xl-create-$1 $(since $t)"
	d=$(xl domid "$1")
	if ! xs_wait /local/domain/$d/data/ready 1 90; then
		fail "guest $1 never came up"
		return 1
	fi
	echo "XENTIME guest-up-$1 $(since $t)"
}

# Queue a command for the guest; print its sequence number.
gcmd() { # D "NAME ARGS"
	f=/tmp/gseq.$1
	s=$(($(cat $f 2>/dev/null || echo 0) + 1))
	echo $s > $f
	xenstore-write /local/domain/$1/data/cmd$s "$2"
	echo $s
}

gready() { xs_wait /local/domain/$1/data/ready$2 "" "$3"; }

# Wait for command SEQ to end: its output in GOUT, its status returned.
gwait() { # D SEQ SECS
	if xs_wait /local/domain/$1/data/rc$2 "" "$3"; then
		GOUT=$(xenstore-read -R /local/domain/$1/data/out$2)
		return "$(xenstore-read /local/domain/$1/data/rc$2)"
	fi
	GOUT="(no answer in $3 s)"
	return 124
}

guest_log() { echo /var/log/xen/console/guest-$1.log; }

# Wait until the backend serving Unix socket SOCK has accepted N clients that
# it has not closed: its end of each connection bears SOCK's path in
# /proc/net/unix, in state 03 once accepted (02 while still in the backlog).
unix_wait() { # SOCK N SECS
	i=0
	while [ "$(awk -v p="$1" '$8 == p && $6 == "03"' /proc/net/unix | wc -l)" != "$2" ]; do
		i=$((i + 1))
		[ $i -gt $(($3 * 20)) ] && return 1
		usleep 50000
	done
}

# ---- proxies ------------------------------------------------------------------
# Run xenchan-proxy ARGS in the background as TAG: its pid in /tmp/p.TAG.pid,
# its log in /tmp/p.TAG.log, "STATUS UPTIME" in /tmp/p.TAG.exit when it ends.
proxy_start() { # TAG ARGS...
	tag=$1
	shift
	rm -f /tmp/p.$tag.exit /tmp/p.$tag.pid
	echo "== $(now) xenchan-proxy $*" >> /tmp/p.$tag.log
	(
		sh -c 'echo $$ > "$0"; exec xenchan-proxy "$@"' /tmp/p.$tag.pid "$@" >> /tmp/p.$tag.log 2>&1
		echo "$? $(now)" > /tmp/p.$tag.exit
	) &
	i=0
	while [ ! -s /tmp/p.$tag.pid ] && [ $i -lt 100 ]; do
		usleep 20000
		i=$((i + 1))
	done
}

proxy_pid() { cat /tmp/p.$1.pid 2>/dev/null; }

# A proxy after setup: it runs as UID, with no capability, under its own
# system-call filter (issue 15).  Noted and checked from /proc/PID/status.
uid_of_user() { awk -F: -v u="$1" '$1 == u { print $3 }' /etc/passwd; }
priv_check() { priv_check_status "/proc/$1/status" "$2" "$3"; } # PID UID WHAT
# The same from a copy of a status file (a process in another domain).
priv_check_status() { # STATUS-FILE UID WHAT
	st=$1
	u=$(awk '/^Uid:/ { print $2 "," $3 "," $4 "," $5 }' "$st" 2>/dev/null)
	ce=$(awk '/^CapEff:/ { print $2 }' "$st" 2>/dev/null)
	sc=$(awk '/^Seccomp:/ { print $2 }' "$st" 2>/dev/null)
	note "$3: Uid $u CapEff $ce Seccomp $sc"
	[ "$u" = "$2,$2,$2,$2" ] || fail "$3 runs as uid $u, not $2"
	[ "$ce" = 0000000000000000 ] || fail "$3 has capabilities: CapEff $ce"
	[ "$sc" = 2 ] || fail "$3: Seccomp $sc, not 2 (no system-call filter)"
}
proxy_running() { [ -s /tmp/p.$1.pid ] && [ ! -s /tmp/p.$1.exit ]; }

# Wait until proxy TAG has exited: PRC its status, PEXIT its uptime then.
proxy_wait() { # TAG SECS
	i=0
	while [ ! -s /tmp/p.$1.exit ] && [ $i -lt $(($2 * 20)) ]; do
		usleep 50000
		i=$((i + 1))
	done
	[ -s /tmp/p.$1.exit ] || return 1
	read -r PRC PEXIT < /tmp/p.$1.exit
}

proxy_stop() { # TAG
	proxy_running "$1" || return 0
	kill -TERM "$(proxy_pid "$1")" 2>/dev/null
	proxy_wait "$1" 15 && return 0
	kill -KILL "$(proxy_pid "$1")" 2>/dev/null
	proxy_wait "$1" 5
}

# Proxy TAG must exit 0 within 10 s, and within a second of uptime T0,
# when WHAT happened.
proxy_exits_soon() { # TAG T0 WHAT
	if proxy_wait "$1" 10; then
		note "proxy exited $PRC, $(diff_s "$2" "$PEXIT") s after $3"
		[ "$PRC" = 0 ] || fail "proxy exit status $PRC"
		awk "BEGIN{exit !($PEXIT - $2 > 1.0)}" && fail "proxy took more than a second"
	else
		fail "proxy still running 10 s after $3"
		proxy_stop "$1"
	fi
}

# The devid of guest D's channel NAME, from the frontend name nodes.
devid_of() { # D NAME
	for n in $(xenstore-list /local/domain/$1/device/console 2>/dev/null); do
		[ "$(xenstore-read /local/domain/$1/device/console/$n/name 2>/dev/null)" = "$2" ] &&
			{ echo "$n"; return 0; }
	done
	return 1
}

# Start a hot-plugging proxy TAG for NAME on guest G and wait until both ends
# are Connected; DEVID is set.
plug() { # TAG G NAME ENDPOINT-ARGS...
	tag=$1 g=$2 name=$3
	shift 3
	proxy_start "$tag" -v "$g" "$name" --create "$@"
	d=$(xl domid "$g")
	i=0
	DEVID=
	while [ -z "$DEVID" ] && [ $i -lt 100 ]; do
		DEVID=$(devid_of "$d" "$name")
		[ -n "$DEVID" ] || usleep 100000
		i=$((i + 1))
	done
	[ -n "$DEVID" ] || { fail "$name never appeared in xenstore"; return 1; }
}

# BYTES random bytes each way between the guest's /dev/hvcHVC and socket
# SOCK, SHA-256 checked at both ends; failures prefixed WHAT.
xfer_both() { # WHAT D DEVID HVC SOCK BYTES
	xfer_via unix "$@"
}

# The same through xtio KIND (unix: a socket, tty: a pty) at PATH.
xfer_via() { # KIND WHAT D DEVID HVC PATH BYTES
	head -c "$7" /tmp/d2g.1m > /tmp/d2g.x
	seq=$(gcmd "$3" "xfer $4 $5 $7 60")
	gready "$3" "$seq" 30 || { fail "$2: guest never opened hvc$5"; return 1; }
	timeout 70 xtio "$1" "$6" -i /tmp/d2g.x -n "$7" -o /tmp/g2d.x -t 60 2>/tmp/xtio.x ||
		fail "$2: $(cat /tmp/xtio.x)"
	gwait "$3" "$seq" 30 || fail "$2: guest rc $?: $GOUT"
	echo "$GOUT" | grep -q "recv_sha $(sha_of /tmp/d2g.x)" || fail "$2: dom0->guest SHA-256 differs"
	echo "$GOUT" | grep -q "sent_sha $(sha_of /tmp/g2d.x)" || fail "$2: guest->dom0 SHA-256 differs"
}

# ---- 1. hotplug ---------------------------------------------------------------
s_hotplug() {
	need_guest g1 || return
	d=$(xl domid g1)
	t=$(now)
	plug a g1 org.example.a --listen /run/a.sock || return
	note "devid $DEVID"
	seq=$(gcmd "$d" "xfer $DEVID 1 1048576 300")
	if ! gready "$d" "$seq" 40; then
		gwait "$d" "$seq" 1
		fail "guest never opened hvc1: $GOUT"
		return
	fi
	f=/local/domain/$d/device/console/$DEVID
	k=/local/domain/0/backend/console/$d/$DEVID
	xs_wait $k/state 4 10 || fail "K/state $(xenstore-read $k/state) not 4"
	priv_check "$(proxy_pid a)" 0 "proxy (root, no --user)"
	note "console-$DEVID in guest $(since $t) s after the proxy started"
	note "F/state $(xenstore-read $f/state) K/state $(xenstore-read $k/state) F/type $(xenstore-read $f/type)"
	t=$(now)
	timeout 330 xtio unix /run/a.sock -i /tmp/d2g.1m -n 1048576 -o /tmp/g2d.a -t 300 2>/tmp/xtio.a ||
		fail "dom0 client: $(cat /tmp/xtio.a)"
	note "1 MiB each way in $(since $t) s ($(cat /tmp/xtio.a))"
	gwait "$d" "$seq" 60 || fail "guest side rc $?: $GOUT"
	gsent=$(echo "$GOUT" | sed -n 's/^sent_sha //p')
	grecv=$(echo "$GOUT" | sed -n 's/^recv_sha //p')
	[ "$gsent" = "$(sha_of /tmp/g2d.a)" ] || fail "guest->dom0 SHA-256 differs ($(size_of /tmp/g2d.a) bytes arrived)"
	[ "$grecv" = "$(sha_of /tmp/d2g.1m)" ] || fail "dom0->guest SHA-256 differs: $GOUT"
	[ -z "$FAILS" ] && note "SHA-256 equal both ways"
	rm -f /tmp/g2d.a
}

# ---- 2. unplug ----------------------------------------------------------------
s_unplug() {
	need_guest g1 || return
	d=$(xl domid g1)
	if ! proxy_running a; then
		plug a g1 org.example.a --listen /run/a.sock || return
	fi
	DEVID=$(devid_of "$d" org.example.a)
	seq=$(gcmd "$d" "unplugwatch $DEVID 1 30")
	gready "$d" "$seq" 40 || { fail "guest never opened hvc1"; return; }
	t=$(now)
	kill -TERM "$(proxy_pid a)"
	if proxy_wait a 15; then
		note "proxy exited $PRC $(diff_s "$t" "$PEXIT") s after SIGTERM"
		[ "$PRC" = 0 ] || fail "proxy exit status $PRC"
	else
		fail "proxy still running 15 s after SIGTERM"
		proxy_stop a
	fi
	gwait "$d" "$seq" 40 || fail "guest side rc $?: $GOUT"
	note "guest: $(echo "$GOUT" | tr '\n' ',')"
	echo "$GOUT" | grep -q "console-$DEVID gone" || fail "console-$DEVID did not leave the guest's sysfs"
	# Linux 6.1: a fresh open fails ENODEV; one while an old descriptor is
	# still open fails EINVAL (hvc_open: request_irq); the old one, EIO.
	echo "$GOUT" | grep -qE "^fresh_write (open )?ENODEV" || fail "a fresh write to /dev/hvc1 did not fail with ENODEV"
	echo "$GOUT" | grep -q "_write ok" && fail "a write to /dev/hvc1 succeeded"
	xs_clean "$d" "$DEVID"
	[ -e /run/a.sock ] && fail "socket /run/a.sock left"
}

# ---- 3. pty and xl console ------------------------------------------------------
s_pty() {
	need_guest g1 || return
	d=$(xl domid g1)
	plug p g1 org.example.p --pty=/run/p.pty || return
	seq=$(gcmd "$d" "ptyside $DEVID 1 40")
	gready "$d" "$seq" 40 || { fail "guest never opened hvc1"; proxy_stop p; return; }
	note "devid $DEVID F/tty $(xenstore-read /local/domain/$d/device/console/$DEVID/tty)"
	timeout 45 xtio pty -t 30 -d 2 -i /tmp/typed -u 'guest-says-hello' -o /tmp/xlc.out -- \
		xl console -t pv -n "$DEVID" g1 2>/tmp/xtio.p || fail "xl console: $(cat /tmp/xtio.p)"
	grep -q guest-says-hello /tmp/xlc.out || fail "xl console showed nothing of the guest"
	gwait "$d" "$seq" 30 || fail "guest side rc $?: $GOUT"
	echo "$GOUT" | grep -q 'typed: typed-by-dom0' || fail "the guest did not read what was typed: $GOUT"
	t=$(now)
	proxy_stop p
	[ "$PRC" = 0 ] || fail "proxy exit status $PRC"
	xs_clean "$d" "$DEVID"
	note "unplugged in $(since "$t") s"
}

# ---- 7. restart and reattach, then a clean shutdown with a client connected -------
s_restart() {
	need_guest g1 || return
	d=$(xl domid g1)
	# The first proxy has no buffer of its own (--buffer 0, keep): bytes
	# leave the ring only into the client's socket, so a kill -9 can lose
	# none and the records must run on without a gap.  With a buffer, a
	# kill loses what it held (protocol.md, Reattach; the hermetic tests
	# cover that and SIGTERM, which hands held bytes over first).  The
	# second proxy has no --buffer: its bound is F/limit, which the first
	# one's --create wrote as libxl does (1 MiB), not as its own 0.
	plug r g1 org.example.r --listen /run/r.sock --buffer 0 --overflow-data keep || return
	devid=$DEVID
	lim=$(xenstore-read /local/domain/$d/device/console/$devid/limit)
	[ "$lim" = 1048576 ] || fail "F/limit is '$lim', not libxl's 1048576"
	seq=$(gcmd "$d" "restartside $devid 1 1048576 65536 240")
	gready "$d" "$seq" 40 || { fail "guest never opened hvc1"; proxy_stop r; return; }
	rm -f /tmp/part1 /tmp/part2 /tmp/xtio.r1.rc
	(
		xtio unix /run/r.sock -u 'ZZZZZZZ\n' -o /tmp/part1 -t 240 2>/tmp/xtio.r1
		echo $? > /tmp/xtio.r1.rc
	) &
	i=0
	while [ "$(size_of /tmp/part1)" -lt 262144 ] && [ $i -lt 1200 ]; do
		usleep 50000
		i=$((i + 1))
	done
	s1=$(size_of /tmp/part1)
	[ "$s1" -ge 262144 ] || fail "only $s1 bytes arrived in 60 s"
	kill -KILL "$(proxy_pid r)"
	proxy_wait r 5
	note "proxy killed at $s1 bytes"
	i=0
	while [ ! -s /tmp/xtio.r1.rc ] && [ $i -lt 100 ]; do
		usleep 100000
		i=$((i + 1))
	done
	[ -s /tmp/xtio.r1.rc ] || fail "first client did not see the proxy die"
	t=$(now)
	proxy_start r2 -v g1 org.example.r --create --listen /run/r.sock
	timeout 260 xtio unix /run/r.sock -i /tmp/d2g.64k -u 'ZZZZZZZ\n' -o /tmp/part2 -t 240 2>/tmp/xtio.r2 ||
		fail "second client: $(cat /tmp/xtio.r2)"
	note "rest arrived $(since "$t") s after the restart ($(cat /tmp/xtio.r2))"
	chk=$(xtio check /tmp/part1 /tmp/part2) || fail "records garbled: $chk"
	note "records: $(echo "$chk" | tr '\n' ' ')"
	a=$(echo "$chk" | sed -n 's,^/tmp/part1: 0-\([0-9]*\)$,\1,p')
	b=$(echo "$chk" | sed -n 's,^/tmp/part2: \([0-9]*\)-131071 end$,\1,p')
	if [ -z "$a" ] || [ -z "$b" ]; then
		fail "not one run of records on each side of the restart"
	elif [ "$b" -gt $((a + 1)) ]; then
		fail "$(((b - a - 1) * 8)) bytes lost across the restart"
	else
		note "$(((a + 1 - b) * 8)) bytes sent again, none lost"
	fi
	gwait "$d" "$seq" 60 || fail "guest side rc $?: $GOUT"
	echo "$GOUT" | grep -q "recv_sha $(sha_of /tmp/d2g.64k)" || fail "dom0->guest after restart: SHA-256 differs: $GOUT"
	echo "$GOUT" | grep -q "console-$devid still there" || fail "the guest lost console-$devid"

	# A clean shutdown with a client connected: hvc_xen closes the channel
	# (Closing answered with Closing), libxl removes the nodes, the proxy
	# gives the client what it holds and exits 0.
	(
		xtio unix /run/r.sock -o /tmp/c3 -t 60 2>/tmp/xtio.r3
		echo $? > /tmp/xtio.r3.rc
	) &
	unix_wait /run/r.sock 1 10 || fail "the proxy never accepted the client"
	t=$(now)
	timeout 60 xl shutdown g1 || fail "xl shutdown failed"
	if xs_wait_gone /local/domain/$d 60; then
		tg=$(now)
		note "guest gone $(diff_s "$t" "$tg") s after xl shutdown"
	else
		fail "guest still there 60 s after xl shutdown"
		tg=$(now)
	fi
	proxy_exits_soon r2 "$tg" "the domain's nodes went"
	[ -e /run/r.sock ] && fail "socket /run/r.sock left"
	xs_clean "$d" "$devid"
	xenstore-exists /local/domain/0/backend/console/$d && fail "/local/domain/0/backend/console/$d left"
	xenstore-exists /libxl/$d && fail "/libxl/$d left"
	grep -q "timeout closing device" "$(guest_log g1)" && fail "guest log: timeout closing device"
	grep -q "poweroff requested" "$(guest_log g1)" || fail "the guest's /sbin/poweroff did not run"
	grep -qE "reboot: (System halted|Power down)" "$(guest_log g1)" || fail "the guest did not halt by itself"
}

# ---- 5. domain death: xl destroy with a client connected --------------------------
s_destroy() {
	need_guest g2 || return
	d=$(xl domid g2)
	plug dd g2 org.example.d --listen /run/d.sock || return
	devid=$DEVID
	rm -f /tmp/dd.out /tmp/xtio.dd.rc
	(
		xtio unix /run/d.sock -o /tmp/dd.out -t 120 2>/tmp/xtio.dd
		echo $? > /tmp/xtio.dd.rc
	) &
	seq=$(gcmd "$d" "send $devid 1 65536")
	gwait "$d" "$seq" 60 || fail "guest side rc $?: $GOUT"
	i=0
	while [ "$(size_of /tmp/dd.out)" -lt 65544 ] && [ $i -lt 200 ]; do
		usleep 100000
		i=$((i + 1))
	done
	t=$(now)
	timeout 60 xl destroy g2 || fail "xl destroy failed"
	td=$(now)
	note "xl destroy took $(diff_s "$t" "$td") s"
	proxy_exits_soon dd "$td" "xl destroy returned"
	i=0
	while [ ! -s /tmp/xtio.dd.rc ] && [ $i -lt 100 ]; do
		usleep 100000
		i=$((i + 1))
	done
	chk=$(xtio check /tmp/dd.out)
	[ "$chk" = "/tmp/dd.out: 0-8191 end" ] || fail "client got: $chk"
	grep -q "end eof" /tmp/xtio.dd || fail "client not closed: $(cat /tmp/xtio.dd)"
	[ -e /run/d.sock ] && fail "socket /run/d.sock left"
	xs_clean "$d" "$devid"
	xenstore-exists /local/domain/0/backend/console/$d && fail "/local/domain/0/backend/console/$d left"
	xenstore-exists /libxl/$d && fail "/libxl/$d left"
}

# ---- 6. a real agent: qemu-ga in the guest, reached through our socket ----------
s_qga() {
	need_guest g2 || return
	d=$(xl domid g2)
	# As xenchan, the package's user: it cannot remove its socket from
	# /run at the end (left, replaced as stale by a next start).
	plug qga g2 org.qemu.guest_agent.0 --listen /run/qga.sock --user xenchan || return
	devid=$DEVID
	xs_wait /local/domain/0/backend/console/$d/$devid/state 4 20 || fail "never Connected"
	priv_check "$(proxy_pid qga)" "$(uid_of_user xenchan)" "proxy --user xenchan"
	seq=$(gcmd "$d" "qga $devid 1 60")
	gready "$d" "$seq" 40 || { fail "guest never started qemu-ga"; proxy_stop qga; return; }
	# qemu-ga flushes its input when it opens the port, so a client first
	# repeats guest-sync until one is answered, as agent clients do.
	t=$(now)
	n=1
	while [ $n -le 15 ]; do
		echo '{"execute":"guest-sync","arguments":{"id":'$((5000 + n))'}}' > /tmp/qga.sync
		timeout 5 xtio unix /run/qga.sock -i /tmp/qga.sync -u '"return": '$((5000 + n))'}' -o /tmp/qga.out \
			-t 2 2>/tmp/xtio.qga && break
		n=$((n + 1))
	done
	[ $n -le 15 ] || fail "no guest-sync answered in 15 tries"
	note "first guest-sync answered after $(since "$t") s, try $n"
	printf '%s\n' '{"execute":"guest-sync","arguments":{"id":1234}}' '{"execute":"guest-ping"}' \
		'{"execute":"guest-info"}' '{"execute":"guest-sync","arguments":{"id":99}}' > /tmp/qga.in
	t=$(now)
	timeout 40 xtio unix /run/qga.sock -i /tmp/qga.in -u '"return": 99}' -o /tmp/qga.out -t 30 2>/tmp/xtio.qga ||
		fail "no answer to the last guest-sync: $(cat /tmp/xtio.qga)"
	note "4 commands answered in $(since "$t") s"
	grep -q '"return": 1234}' /tmp/qga.out || fail "guest-sync: no answer"
	grep -q '"return": {}}' /tmp/qga.out || fail "guest-ping: no answer"
	v=$(sed -n 's/.*"version": "\([^"]*\)".*/\1/p' /tmp/qga.out | head -n 1)
	[ -n "$v" ] && note "guest-info: qemu-ga $v, $(grep -o '"name"' /tmp/qga.out | wc -l) commands" ||
		fail "guest-info: no version in the answer"
	xenstore-write /local/domain/$d/data/stop$seq 1
	gwait "$d" "$seq" 20 || fail "guest side rc $?: $GOUT"
	echo "$GOUT" | grep -q "ran until stopped" || fail "qemu-ga: $GOUT"
	proxy_stop qga
	[ "$PRC" = 0 ] || fail "proxy exit status $PRC"
	xs_clean "$d" "$devid"
	rm -f /run/qga.sock
}

# ---- 4. a configured channel served by QEMU, then by us ---------------------------
# Throughput each way, resident memory, and what happens to a guest writing
# 2 MiB while no client is connected.
TP_BYTES=524288         # throughput and CPU sample, each way
NC_BYTES=1179648        # written with no client: the 1 MiB limit and 128 KiB more
LAT_N=300               # echo round trips timed (after xtio ping's 10 of warm-up)

# CPU time of process PID and all its threads (utime + stime of
# /proc/PID/stat), in USER_HZ ticks: 100 a second on x86.
cpu_ticks() { sed 's/^.*) //' /proc/$1/stat | awk '{print $12 + $13}'; }
# Seconds of CPU per MiB: TICKS used to move BYTES.
cpu_per_mib() { awk "BEGIN{printf \"%.3f\", $1 / 100 / ($2 / 1048576)}"; }

# Echo latency through backend WHO: an agent in the guest answers each byte
# at once (xtio echo on /dev/hvc1), xtio ping times LAT_N round trips from
# dom0 on the channel's socket.  Sets LAT_P50 and LAT_P99 (microseconds).
measure_latency() { # WHO D DEVID
	LAT_P50=n/a LAT_P99=n/a LAT_MAX=n/a
	seq=$(gcmd "$2" "echo $3 1 $((LAT_N + 10)) 120")
	gready "$2" "$seq" 30 || { fail "$1: guest echo never ready"; return; }
	r=$(timeout 130 xtio ping /run/q.sock $LAT_N 120 2>/tmp/xtio.lat) || fail "$1: ping: $(cat /tmp/xtio.lat)"
	gwait "$2" "$seq" 30 || fail "$1: guest echo rc $?: $GOUT"
	unix_wait /run/q.sock 0 10 || fail "$1 never closed the ping client"
	# "round_trips N p50_us P p99_us Q max_us M"
	set -- $r
	if [ "$1" = round_trips ]; then
		LAT_P50=$4
		LAT_P99=$6
		LAT_MAX=$8
	fi
}

measure_backend() { # WHO D DEVID PID
	who=$1 d=$2 devid=$3 pid=$4
	# guest -> dom0, the client connected first
	rm -f /tmp/qm.out /tmp/qm.rc
	( xtio unix /run/q.sock -u 'ZZZZZZZ\n' -o /tmp/qm.out -t 120 2>/tmp/xtio.qm1; echo $? > /tmp/qm.rc ) &
	unix_wait /run/q.sock 1 10 || fail "$who never accepted the client"
	t=$(now)
	seq=$(gcmd "$d" "send $devid 1 $TP_BYTES 0 120")
	gready "$d" "$seq" 30 || fail "$who: guest send never ready"
	c0=$(cpu_ticks "$pid")
	i=0
	while [ ! -s /tmp/qm.rc ] && [ $i -lt 1300 ]; do usleep 100000; i=$((i + 1)); done
	c1=$(cpu_ticks "$pid")
	out_s=$(since "$t")
	gwait "$d" "$seq" 30 || fail "$who: guest send rc $?: $GOUT"
	chk=$(xtio check /tmp/qm.out)
	[ "$chk" = "/tmp/qm.out: 0-$((TP_BYTES / 8 - 1)) end" ] || fail "$who: guest->dom0 got $chk"
	CPU_OUT=$(cpu_per_mib $((c1 - c0)) $TP_BYTES)
	# dom0 -> guest
	head -c $TP_BYTES /tmp/d2g.1m > /tmp/d2g.tp
	seq=$(gcmd "$d" "recv $devid 1 $TP_BYTES 120")
	gready "$d" "$seq" 30 || fail "$who: guest recv never ready"
	t=$(now)
	c0=$(cpu_ticks "$pid")
	( xtio unix /run/q.sock -i /tmp/d2g.tp -t 130 2>/tmp/xtio.qm2 ) &
	cpid=$!
	gwait "$d" "$seq" 130 || fail "$who: guest recv rc $?: $GOUT"
	c1=$(cpu_ticks "$pid")
	in_s=$(since "$t")
	kill $cpid 2>/dev/null
	wait $cpid 2>/dev/null
	echo "$GOUT" | grep -q "recv_sha $(sha_of /tmp/d2g.tp)" || fail "$who: dom0->guest SHA-256 differs"
	CPU_IN=$(cpu_per_mib $((c1 - c0)) $TP_BYTES)
	rss=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' /proc/$pid/status)
	unix_wait /run/q.sock 0 10 || fail "$who never closed its client"
	measure_latency "$who" "$d" "$devid"
	note "$who: dom0 CPU per MiB guest->dom0 $CPU_OUT s, dom0->guest $CPU_IN s; echo p50 $LAT_P50 us, p99 $LAT_P99 us, max $LAT_MAX us ($LAT_N round trips)"
	# no client (the backend has closed the last one): the guest writes
	# more than the limit
	t=$(now)
	seq=$(gcmd "$d" "send $devid 1 $NC_BYTES 100000 150")
	gwait "$d" "$seq" 170
	nc_s=$(since "$t")
	w=$(echo "$GOUT" | grep '^xtio:')
	rss2=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' /proc/$pid/status)
	hwm=$(sed -n 's/^VmHWM:[^0-9]*\([0-9]*\).*/\1/p' /proc/$pid/status)
	xtio unix /run/q.sock -o /tmp/qm.nc -t 4 2>/tmp/xtio.qm3
	got=$(size_of /tmp/qm.nc)
	chk=$(xtio check /tmp/qm.nc | cut -d: -f2)
	# then the guest writes 64 KiB more, with a client connected
	( xtio unix /run/q.sock -u 'ZZZZZZZ\n' -o /tmp/qm.poke -t 20 2>/tmp/xtio.qm4 ) &
	cpid=$!
	unix_wait /run/q.sock 1 10 || fail "$who never accepted the poke client"
	seq=$(gcmd "$d" "send $devid 1 65536 200000 20")
	gwait "$d" "$seq" 30
	i=0
	while kill -0 $cpid 2>/dev/null && [ $i -lt 200 ]; do usleep 100000; i=$((i + 1)); done
	kill $cpid 2>/dev/null
	wait $cpid 2>/dev/null
	chk2=$(xtio check /tmp/qm.poke | cut -d: -f2)
	note "$who: guest->dom0 $((TP_BYTES / 1024)) KiB in $out_s s, dom0->guest in $in_s s; RSS ${rss} KiB (${rss2} KiB after $((NC_BYTES / 1024)) KiB unread, peak ${hwm} KiB); $((NC_BYTES / 1024)) KiB with no client: guest writer [${w#xtio: }] ($nc_s s), a client then got $got bytes in 4 s [$chk]; 64 KiB more with a client: got [$chk2]"
}

# Issue 14's table, QEMU beside the proxy on the same guest, channel and
# boot: lines "XENTABLE ..." that tests/xen/run prints as they come.
ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"n/a\" }"; }
cost_table() { # QOUT POUT QIN PIN QP50 PP50 QP99 PP99
	echo "XENTABLE | qemu scenario: $((TP_BYTES / 1024)) KiB each way, $LAT_N echo round trips | QEMU | xenchan-proxy | proxy / QEMU | goal |"
	echo "XENTABLE |---|---|---|---|---|"
	echo "XENTABLE | dom0 CPU s per MiB, guest to dom0 | $1 | $2 | $(ratio "$2" "$1") | <= 0.5 |"
	echo "XENTABLE | dom0 CPU s per MiB, dom0 to guest | $3 | $4 | $(ratio "$4" "$3") | <= 0.5 |"
	echo "XENTABLE | echo latency p50, us | $5 | $6 | $(ratio "$6" "$5") | |"
	echo "XENTABLE | echo latency p99, us | $7 | $8 | $(ratio "$8" "$7") | <= 1 |"
}

s_qemu() {
	[ -x /usr/libexec/xen-qemu-system-i386 ] || { fail "no qemu-system-xen in dom0"; return; }
	need_guest g3 "$(channel_cfg "name=org.example.q, connection=socket, path=/run/q.sock")" || return
	d=$(xl domid g3)
	devid=$(devid_of "$d" org.example.q)
	[ -n "$devid" ] || { fail "xl made no org.example.q channel"; return; }
	[ "$XT_XL_DROPS_FIRST" = 1 ] && devid_of "$d" unused > /dev/null &&
		fail "xl $XT_XEN did not drop the first channel= entry"
	qpid=$(pidof xen-qemu-system-i386)
	[ -n "$qpid" ] || { fail "xl started no QEMU"; return; }
	f=/local/domain/$d/device/console/$devid
	k=/local/domain/0/backend/console/$d/$devid
	xs_wait $k/state 4 20 || fail "QEMU never connected (K/state $(xenstore-read $k/state))"
	note "devid $devid, F/type $(xenstore-read $f/type), QEMU pid $qpid"
	measure_backend qemu "$d" "$devid" "$qpid"
	q_out=$CPU_OUT q_in=$CPU_IN q_p50=$LAT_P50 q_p99=$LAT_P99
	# Hand over: QEMU killed (it writes nothing on SIGKILL), we reattach.
	kill -KILL "$qpid"
	i=0
	while kill -0 "$qpid" 2>/dev/null && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
	note "after QEMU died: F/state $(xenstore-read $f/state) K/state $(xenstore-read $k/state)"
	t=$(now)
	proxy_start q -v g3 org.example.q
	xs_wait $k/state 4 20 || fail "we never connected (K/state $(xenstore-read $k/state))"
	note "we served it $(since "$t") s after starting"
	measure_backend ours "$d" "$devid" "$(proxy_pid q)"
	cost_table "$q_out" "$CPU_OUT" "$q_in" "$CPU_IN" "$q_p50" "$LAT_P50" "$q_p99" "$LAT_P99"
	timeout 60 xl destroy g3 || fail "xl destroy g3 failed"
	proxy_wait q 10 || { fail "proxy still running 10 s after xl destroy"; proxy_stop q; }
	[ "$PRC" = 0 ] || fail "proxy exit status $PRC"
}

# ---- 9. save and restore ----------------------------------------------------------
# xl save destroys the domain (libxl removes its devices, so the proxy exits
# as on death); xl restore starts it again under a new domid from the saved
# configuration, which knows nothing of hot-plugged channels, and the guest's
# hvc_xen resumes each device it had: it re-grants its ring and writes
# ring-ref and port, but not its state, and a device whose directory is
# missing at that moment stays stale (docs/protocol.md, "The guest", Resume).  So, as libxl
# does for its own devices: restore paused, re-create the channel at the
# devid it had (--create --devid), unpause.  Asserted: the old proxy exits 0
# leaving nothing; the new one serves the resumed device (frontend 1 -> 4)
# with bytes both ways; its unplug leaves nothing either.
s_saverestore() {
	GUEST_MEM=128 need_guest g4 || return
	d=$(xl domid g4)
	plug s g4 org.example.s --listen /run/s.sock || return
	devid=$DEVID
	xfer_both "before save" "$d" "$devid" 1 /run/s.sock 65536 || { proxy_stop s; return; }
	t=$(now)
	if ! timeout 120 xl save g4 /save/g4.save > /tmp/xl-save.log 2>&1; then
		fail "xl save: $(tail -n 3 /tmp/xl-save.log | tr '\n' ' ')"
		proxy_stop s
		return
	fi
	note "xl save $(since "$t") s, $(($(size_of /save/g4.save) / 1048576)) MiB"
	if proxy_wait s 10; then
		note "old proxy exited $PRC"
		[ "$PRC" = 0 ] || fail "old proxy exit status $PRC"
	else
		fail "old proxy still running 10 s after xl save"
		proxy_stop s
	fi
	xs_clean "$d" "$devid"
	xenstore-exists /local/domain/$d && fail "/local/domain/$d left after save"
	[ -e /run/s.sock ] && fail "socket left after save"
	t=$(now)
	if ! timeout 120 xl restore -p /save/g4.save > /tmp/xl-restore.log 2>&1; then
		fail "xl restore -p: $(tail -n 3 /tmp/xl-restore.log | tr '\n' ' ')"
		rm -f /save/g4.save
		return
	fi
	rm -f /save/g4.save
	d1=$d d2=$(xl domid g4)    # (plug sets d)
	note "xl restore -p $(since "$t") s, domid $d1 -> $d2"
	cp /tmp/gseq.$d1 /tmp/gseq.$d2
	plug s2 g4 org.example.s --devid "$devid" --listen /run/s.sock || { timeout 60 xl destroy g4; return; }
	k=/local/domain/0/backend/console/$d2/$devid
	f=/local/domain/$d2/device/console/$devid
	[ "$DEVID" = "$devid" ] || fail "re-created at devid $DEVID, not $devid"
	xs_wait "$k/state" 2 15 || fail "the new proxy never reached InitWait: K/state $(xenstore-read $k/state)"
	t=$(now)
	xl unpause g4 || fail "xl unpause"
	if xs_wait "$k/state" 4 20 && xs_wait "$f/state" 4 10; then
		note "served $(since "$t") s after xl unpause (devid $devid)"
		seq=$(gcmd "$d2" "consoles")
		if gwait "$d2" "$seq" 30; then
			note "guest after restore: $(echo "$GOUT" | tr '\n' ',')"
		else
			fail "the restored guest does not answer: $GOUT"
		fi
		xfer_both "after restore" "$d2" "$devid" 1 /run/s.sock 65536 &&
			note "after restore: 64 KiB each way, SHA-256 equal"
	else
		fail "the resumed channel never connected: F/state $(xenstore-read $f/state) K/state $(xenstore-read $k/state)"
	fi
	proxy_stop s2
	[ "$PRC" = 0 ] || fail "new proxy exit status $PRC"
	xs_wait_gone "$f" 10 || fail "$f left after the unplug"
	xs_wait_gone "$k" 5 || fail "$k left after the unplug"
	timeout 60 xl destroy g4
}

# ---- 10. xenchan-dm: channel= lines served with no QEMU (issue #9) ---------------
# libxl runs xenchan-dm in QEMU's place (device_model_override); QEMU is moved
# aside while the guest is created, so nothing could have fallen back to it.
# Asserted: the channel= entries are devices 1 and 2 (after a placeholder
# only where xl drops the first entry); one proxy per channel; bytes both
# ways on the socket channel; xl console on the pty one (libxl learnt the
# pty from our QMP); libxl 4.20's probe answered at create and restore (and
# no probe before 4.20); no error of libxl's; after xl destroy, no process
# and no node of it.  Noted: the memory of xenchan-dm and its proxies
# (scenario 4 gives QEMU's).
pids_of_parent() { # PPID: the pids of its children
	for st in /proc/[0-9]*/stat; do
		awk -v pp="$1" '$4 == pp { print $1 }' "$st" 2>/dev/null
	done
}
rss_of() { sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' /proc/$1/status 2>/dev/null; }

# libxl 4.20 and later run the device model as a command-line probe first
# (XT_PROBE=1): it must have been answered (its one line in
# qemu-probe-NAME.log) and still been there for libxl's SIGHUP (libxl's
# debug line "... probe signaled"; "already exited" is an error).  Before
# 4.20 there is no probe.  In every case, no error line of libxl's in xl's
# output (XL_V=-vvv) but, where xl drops the first channel= entry, the one
# that says so (libxl refuses it as console 0).
DROPPED_ENTRY="libxl__device_console_add: Domain [0-9]*:Primary console has invalid configuration"
dm_probe_check() { # WHAT XL-OUTPUT
	if [ "$XT_XL_DROPS_FIRST" = 1 ]; then
		grep -q "libxl: error: .*$DROPPED_ENTRY" "$2" || fail "$1: libxl did not refuse the first entry"
		grep "libxl: error" "$2" | grep -v "$DROPPED_ENTRY" > /tmp/xl-errors.dm
	else
		grep "libxl: error" "$2" > /tmp/xl-errors.dm
	fi
	[ -s /tmp/xl-errors.dm ] && fail "$1: libxl: $(head -n 3 /tmp/xl-errors.dm | tr '\n' ' ')"
	plog=/var/log/xen/qemu-probe-g5.log
	if [ "$XT_PROBE" = 1 ]; then
		grep -q "qemu command-line probe signaled" "$2" ||
			fail "$1: libxl did not find its probe alive to signal it: $(grep -i probe "$2" | tail -n 2 | tr '\n' ' ')"
		want="xenchan-dm: info: libxl's command-line probe: 3 QMP commands answered, quit included; exiting with status 0 on SIGHUP"
		[ "$(cat $plog 2>/dev/null)" = "$want" ] || fail "$1: $plog: $(cat $plog 2>&1 | tr '\n' ' ')"
		note "$1: probe answered ($(sed 's/.*probe: //' $plog 2>/dev/null))"
	elif [ -e $plog ]; then
		fail "$1: libxl ran a probe on Xen $XT_XEN: $(cat $plog)"
	fi
}

s_dm() {
	dm=$(command -v xenchan-dm) || { fail "no xenchan-dm in dom0"; return; }
	q=/usr/libexec/xen-qemu-system-i386
	[ -e $q ] && mv $q $q.aside
	XL_V=-vvv GUEST_MEM=128 need_guest g5 "device_model_override = \"$dm\"
$(channel_cfg "name=org.example.ds, connection=socket, path=/run/ds.sock" "name=org.example.dp, connection=pty")"
	rc=$?
	[ -e $q.aside ] && mv $q.aside $q
	[ $rc = 0 ] || return
	d=$(xl domid g5)
	ds=$(devid_of "$d" org.example.ds) dp=$(devid_of "$d" org.example.dp)
	[ -n "$ds" ] && [ -n "$dp" ] || { fail "channels: ds '$ds' dp '$dp'"; timeout 60 xl destroy g5; return; }
	[ "$ds" = 1 ] && [ "$dp" = 2 ] || fail "the channel= entries are devices $ds and $dp, not 1 and 2"
	devid_of "$d" unused > /dev/null && fail "xl $XT_XEN made a channel of the placeholder"
	dmlog=/var/log/xen/qemu-dm-g5.log
	if [ "$XT_XL_DROPS_FIRST" = 1 ]; then
		grep -q "libxl-channel0: no channel device 0" $dmlog || fail "xenchan-dm saw no dropped entry 0"
	else
		grep -q "libxl-channel0" $dmlog && fail "xl $XT_XEN gave xenchan-dm a libxl-channel0"
	fi
	dm_probe_check "create" /tmp/xl-create.g5
	dmpid=$(pidof xenchan-dm)
	[ -n "$dmpid" ] || { fail "xl started no xenchan-dm"; timeout 60 xl destroy g5; return; }
	pidof xen-qemu-system-i386 > /dev/null && fail "a QEMU runs"
	kids=$(pids_of_parent "$dmpid" | tr '\n' ' ')
	n=$(echo $kids | wc -w)
	[ "$n" = 2 ] || fail "xenchan-dm runs $n children, not 2: $kids"
	for dv in $ds $dp; do
		xs_wait /local/domain/0/backend/console/$d/$dv/state 4 20 ||
			fail "channel $dv never connected (K/state $(xenstore-read /local/domain/0/backend/console/$d/$dv/state))"
	done
	tty=$(xenstore-read /local/domain/$d/device/console/$dp/tty 2>/dev/null)
	note "devids ds $ds dp $dp; dm pid $dmpid, proxies $kids; dp tty $tty; F/type $(xenstore-read /local/domain/$d/device/console/$ds/type)"
	xc=$(uid_of_user xenchan)
	[ -n "$xc" ] || fail "no xenchan user in dom0"
	for k in $kids; do priv_check "$k" "$xc" "dm proxy $k"; done
	xfer_both "socket channel" "$d" "$ds" "$ds" /run/ds.sock 262144
	# pty channel, through xl console
	seq=$(gcmd "$d" "ptyside $dp $dp 40")
	gready "$d" "$seq" 40 || fail "guest never opened hvc$dp"
	timeout 45 xtio pty -t 30 -d 2 -i /tmp/typed -u 'guest-says-hello' -o /tmp/xlc.dm -- \
		xl console -t pv -n "$dp" g5 2>/tmp/xtio.dmp || fail "xl console: $(cat /tmp/xtio.dmp)"
	grep -q guest-says-hello /tmp/xlc.dm || fail "xl console showed nothing of the guest"
	gwait "$d" "$seq" 30 || fail "pty channel: guest rc $?: $GOUT"
	echo "$GOUT" | grep -q 'typed: typed-by-dom0' || fail "pty channel: the guest did not read what was typed: $GOUT"
	total=$(rss_of "$dmpid")
	each="xenchan-dm $(rss_of "$dmpid")"
	for k in $kids; do
		r=$(rss_of "$k")
		total=$((total + ${r:-0}))
		each="$each + proxy ${r:-?}"
	done
	note "RSS: $each = $total KiB"
	# Save and restore: libxl starts the device model again for the new
	# domid, before the guest resumes.
	t=$(now)
	if timeout 120 xl save g5 /save/g5.save > /tmp/xl-save.g5 2>&1 &&
		timeout 120 xl -vvv restore /save/g5.save > /tmp/xl-restore.g5 2>&1; then
		d1=$d d=$(xl domid g5)
		cp /tmp/gseq.$d1 /tmp/gseq.$d
		note "xl save + restore $(since "$t") s, domid $d1 -> $d"
		dm_probe_check "restore" /tmp/xl-restore.g5
		kill -0 "$dmpid" 2>/dev/null && fail "the old xenchan-dm still runs"
		dmpid=$(pidof xenchan-dm)
		kids=$(pids_of_parent "$dmpid" | tr '\n' ' ')
		xs_wait /local/domain/0/backend/console/$d/$ds/state 4 20 ||
			fail "after restore: channel $ds never connected"
		xfer_both "after restore" "$d" "$ds" "$ds" /run/ds.sock 65536
		note "after restore: xenchan-dm $dmpid, proxies $kids; 64 KiB each way on the socket channel"
	else
		fail "xl save/restore with xenchan-dm: $(tail -n 3 /tmp/xl-save.g5 /tmp/xl-restore.g5 | tr '\n' ' ')"
	fi
	rm -f /save/g5.save
	t=$(now)
	timeout 60 xl destroy g5 || fail "xl destroy g5 failed"
	i=0
	while [ $i -lt 100 ]; do
		left=
		for p in $dmpid $kids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
		[ -z "$left" ] && break
		usleep 100000
		i=$((i + 1))
	done
	[ -z "$left" ] && note "xenchan-dm and its proxies gone $(since "$t") s after xl destroy began" ||
		fail "still running 10 s after xl destroy:$left"
	for n in /local/domain/$d /local/domain/0/backend/console/$d /local/domain/0/device-model/$d /libxl/$d; do
		xenstore-exists "$n" && fail "$n left after xl destroy"
	done
	for f in /run/ds.sock /var/run/xen/qmp-libxl-$d /var/run/xen/qmp-libxenstat-$d; do
		[ -e "$f" ] && fail "$f left after xl destroy"
	done
}

# ---- throughput, on request: where the time goes on one hot-plugged channel ------
s_throughput() {
	need_guest g1 || return
	d=$(xl domid g1)
	plug tp g1 org.example.tp --listen /run/tp.sock || return
	devid=$DEVID
	# 1. guest -> dom0 with a client reading
	( xtio unix /run/tp.sock -u 'ZZZZZZZ\n' -o /tmp/tp.out -t 120 2>/tmp/xtio.tp1 ) &
	cpid=$!
	unix_wait /run/tp.sock 1 10 || fail "the proxy never accepted the client"
	t=$(now)
	seq=$(gcmd "$d" "send $devid 1 1048576 0 120")
	wait $cpid
	note "g2d, client reading: $(since "$t") s [$(cat /tmp/xtio.tp1)]"
	gwait "$d" "$seq" 30; note "guest: $(echo "$GOUT" | grep xtio)"
	# 2. guest -> dom0 with no client: the proxy holds it
	t=$(now)
	seq=$(gcmd "$d" "send $devid 1 1048000 0 120")
	gwait "$d" "$seq" 130
	note "g2d, no client: guest done in $(since "$t") s [$(echo "$GOUT" | grep xtio)]"
	t=$(now)
	xtio unix /run/tp.sock -u 'ZZZZZZZ\n' -o /tmp/tp.out -t 60 2>/tmp/xtio.tp2
	note "then a client took it in $(since "$t") s"
	# 3. dom0 -> guest alone
	head -c $TP_BYTES /tmp/d2g.1m > /tmp/d2g.tp
	seq=$(gcmd "$d" "recv $devid 1 $TP_BYTES 120")
	gready "$d" "$seq" 30
	t=$(now)
	( xtio unix /run/tp.sock -i /tmp/d2g.1m -t 130 2>/tmp/xtio.tp3 ) &
	cpid=$!
	gwait "$d" "$seq" 130
	note "d2g alone: $(since "$t") s [$(echo "$GOUT" | grep xtio)]"
	kill $cpid 2>/dev/null; wait $cpid 2>/dev/null
	# 4. both ways at once
	seq=$(gcmd "$d" "xfer $devid 1 1048576 300")
	gready "$d" "$seq" 30
	t=$(now)
	timeout 200 xtio unix /run/tp.sock -i /tmp/d2g.1m -n 1048576 -o /tmp/tp.out -t 180 2>/tmp/xtio.tp4
	gwait "$d" "$seq" 60
	note "both ways: $(since "$t") s [$(cat /tmp/xtio.tp4)] guest [$(echo "$GOUT" | grep xtio)]"
	proxy_stop tp
}

# ---- 8. guest names ---------------------------------------------------------------
# contrib/guest/xen-channel-name, run in the guest on each xenbus console event
# as udev would (tests/xen/uevent), must give /dev/xen-channel/NAME for each
# channel.  Devid 1 is taken first by a frontend directory the guest cannot
# probe (no backend), so devids and hvc numbers disagree from the start; then
# the middle of three channels is unplugged and a fourth plugged.  Bytes
# written through each link must arrive on that channel's socket only.
s_names() {
	need_guest g2 || return
	d=$(xl domid g2)
	xenstore-write /local/domain/$d/device/console/1/name held-by-nobody
	for t in na nb nc; do
		plug $t g2 org.example.$t --listen /run/$t.sock || return
		eval "dev_$t=$DEVID"
	done
	seq=$(gcmd "$d" "names 30 org.example.na org.example.nb org.example.nc")
	gwait "$d" "$seq" 40 || fail "three channels: $GOUT"
	note "three: $(echo "$GOUT" | grep -- '->' | tr '\n' ' ')"
	t=$(now)
	proxy_stop nb
	[ "$PRC" = 0 ] || fail "proxy nb exit status $PRC"
	plug nd g2 org.example.nd --listen /run/nd.sock || return
	dev_nd=$DEVID
	seq=$(gcmd "$d" "names 30 org.example.na org.example.nc org.example.nd -- org.example.nb")
	if gwait "$d" "$seq" 40; then
		note "after nb out, nd in: $(echo "$GOUT" | grep -- '->' | tr '\n' ' ') (devids na $dev_na nc $dev_nc nd $dev_nd; $(echo "$GOUT" | sed -n 's/^hvc of each console: //p'))"
	else
		fail "after the unplug and a new plug: $GOUT"
	fi
	for t in na nc nd; do
		timeout 20 xtio unix /run/$t.sock -u "hello-org.example.$t" -o /tmp/names.$t -t 15 2>/tmp/xtio.names ||
			fail "nothing arrived on $t's socket: $(cat /tmp/xtio.names)"
		other=$(grep -o 'hello-org.example.n[a-d]' /tmp/names.$t | grep -v "hello-org.example.$t" | head -n 1)
		[ -z "$other" ] || fail "$other arrived on $t's socket"
	done
	for t in na nc nd; do
		proxy_stop $t
	done
	xenstore-rm /local/domain/$d/device/console/1
}

# ---- logs, on request: print every log dump_logs would print on a failure -------
s_logs() {
	dump_logs
	xl dmesg 2>/dev/null | tail -n 40 | sed 's/^/xt-log: xl dmesg: /'
}

# ---- 11. a driver domain serves the channels backed by it (issue 19) -------------
# A PV guest dd with driver_domain=1 runs the xenchan-proxy package and its
# watcher, xenchan-devd, started by dd's /init as its systemd unit would
# (tests/xen/dd-init).  A guest's channel= entry with backend=dd then puts
# the backend directory K in dd's tree (/local/domain/B/backend/console/D/N),
# and nothing in dom0 serves it: no QEMU, no xenchan-dm, no dom0 backend but
# the primary console's.  Where xl drops the first entry (4.17), the dropped
# placeholder must say backend=dd too, or libxl starts QEMU in dom0 for it.
# Asserted: the watcher starts one proxy for the channel, which Connects and
# runs in dd as xenchan with no capability and its filter; bytes both ways
# between the guest's /dev/hvc1 and a client of the socket inside dd, SHA-256
# equal; a proxy killed with SIGKILL is restarted by the watcher and the new
# one reattaches (bytes both ways again); xl destroy of the guest ends the
# proxy (exit 0), its socket and every node of the channel; and with another
# guest served, xl destroy of dd first: dom0 and the guest run on (the guest
# answers, its channel simply dead), dd's tree goes, and the guest's later
# destroy leaves nothing.  dd is driven like any guest (gcmd); what happens in
# dd is seen through its commands' output.
DD_CH=org.example.dd
DD_SOCK=/run/xenchan-proxy/dd.sock    # in dd: under the unit's RuntimeDirectory

# The xl configuration of a guest whose channel DD_CH is backed by dd.
dd_channel_cfg() {
	CH_PLACEHOLDER="name=unused, connection=pty, backend=dd"
	channel_cfg "name=$DD_CH, connection=socket, path=$DD_SOCK, backend=dd"
}

# Run command CMD in domain D and wait SECS: GOUT its output, its status.
grun() { # D SECS CMD
	_s=$(gcmd "$1" "$3")
	gwait "$1" "$_s" "$2"
}

# The watcher's log in dd, on a failure.
dd_logs() { # B
	grun "$1" 20 "devdlog 40" || return
	echo "$GOUT" | sed 's/^/xt-log: dd xenchan-devd.log: /'
}

# BYTES random bytes each way between guest D's /dev/hvc1 (channel DEVID)
# and a client in dd (B) of DD_SOCK; SHA-256 compared end to end.
dd_xfer() { # WHAT D DEVID B BYTES
	seq=$(gcmd "$2" "xfer $3 1 $5 120")
	gready "$2" "$seq" 30 || { gwait "$2" "$seq" 1; fail "$1: guest never opened hvc1: $GOUT"; return 1; }
	t=$(now)
	grun "$4" 150 "sockxfer $DD_SOCK $5 120" || fail "$1: client in dd rc $?: $GOUT"
	dd_sent=$(echo "$GOUT" | sed -n 's/^sent_sha //p')
	dd_recv=$(echo "$GOUT" | sed -n 's/^recv_sha //p')
	gwait "$2" "$seq" 60 || fail "$1: guest rc $?: $GOUT"
	[ -n "$dd_sent" ] && echo "$GOUT" | grep -q "recv_sha $dd_sent" || fail "$1: dd->guest SHA-256 differs"
	[ -n "$dd_recv" ] && echo "$GOUT" | grep -q "sent_sha $dd_recv" || fail "$1: guest->dd SHA-256 differs"
	note "$1: $(($5 / 1024)) KiB each way in $(since "$t") s"
}

# The proxy serving K: its pid in dd, as it wrote it in K.
dd_proxy_pid() { xenstore-read "$1/xenchan-pid" 2>/dev/null; } # K

# Uptime in whole seconds in UP, starting no process: under emulation a
# fork and exec (xenstore-read) can take a second, so a wait that counts
# its turns can last ten times longer than it says.
up_s() { read -r UP _ < /proc/uptime; UP=${UP%.*}; }

# Wait until K names a serving proxy other than OLD (and K/state is 4).
dd_wait_served() { # K OLD SECS
	up_s
	end=$((UP + $3))
	while :; do
		p=$(dd_proxy_pid "$1")
		[ -n "$p" ] && [ "$p" != "$2" ] && [ "$(xenstore-read "$1/state" 2>/dev/null)" = 4 ] && return 0
		up_s
		[ "$UP" -ge "$end" ] && return 1
		usleep 100000
	done
}

# Nothing of guest D's channel DEVID backed by B may be left in xenstore.
dd_clean() { # D DEVID B
	for n in /local/domain/$1 /local/domain/$3/backend/console/$1 /libxl/$1; do
		xenstore-exists "$n" 2>/dev/null && fail "$n left in xenstore"
	done
}

dd_cleanup() {
	for g in ddg ddg2 dd; do
		xl domid $g > /dev/null 2>&1 && timeout 60 xl destroy $g
	done
}

s_driverdomain() {
	GUEST_INITRD=/xt/dd/initrd GUEST_MEM=128 need_guest dd 'driver_domain = 1' || return
	b=$(xl domid dd)
	grun "$b" 30 ddstate || { fail "dd does not answer: $GOUT"; dd_cleanup; return; }
	note "dd is domain $b: $(echo "$GOUT" | grep -E '^(modules|devd)' | tr '\n' ',')"
	echo "$GOUT" | grep -q "^domid $b$" || fail "dd reads its domid as: $(echo "$GOUT" | head -n 1)"
	for dev in evtchn gntdev xenbus; do
		echo "$GOUT" | grep "^devices" | grep -qw $dev || fail "dd has no /dev/xen/$dev"
	done
	dd_xc=$(echo "$GOUT" | sed -n 's/^xenchan uid //p')
	if echo "$GOUT" | grep -q "^devd none"; then
		fail "no xenchan-devd runs in dd"
		dd_logs "$b"
		dd_cleanup
		return
	fi

	# 1. A guest with a channel backed by dd, served by the watcher's proxy.
	need_guest ddg "$(dd_channel_cfg)" || { dd_logs "$b"; dd_cleanup; return; }
	d=$(xl domid ddg)
	devid=$(devid_of "$d" $DD_CH)
	[ "$devid" = 1 ] || fail "channel $DD_CH is device '$devid', not 1"
	devid=${devid:-1}
	f=/local/domain/$d/device/console/$devid
	k=/local/domain/$b/backend/console/$d/$devid
	[ "$(xenstore-read $f/backend 2>/dev/null)" = "$k" ] || fail "F/backend is '$(xenstore-read $f/backend 2>&1)', not $k"
	[ "$(xenstore-read $f/backend-id 2>/dev/null)" = "$b" ] || fail "F/backend-id is not $b"
	pidof xen-qemu-system-i386 > /dev/null && fail "xl started QEMU in dom0 for ddg"
	pidof xenchan-dm > /dev/null && fail "xl started xenchan-dm in dom0 for ddg"
	xenstore-exists /local/domain/0/device-model/$d && fail "dom0 has device-model/$d"
	dom0be=$(xenstore-list /local/domain/0/backend/console/$d 2>/dev/null | tr '\n' ' ')
	[ "$dom0be" = "0 " ] || fail "dom0 backs consoles '$dom0be' of ddg, not only 0"
	if ! dd_wait_served "$k" "" 60; then
		fail "never Connected from dd: K/state $(xenstore-read $k/state 2>&1), F/state $(xenstore-read $f/state 2>&1), xenchan-pid $(dd_proxy_pid $k)"
		dd_logs "$b"
		dd_cleanup
		return
	fi
	pid1=$(dd_proxy_pid "$k")
	grun "$b" 30 "procstatus $pid1" || fail "dd: proxy $pid1: $GOUT"
	echo "$GOUT" > /tmp/dd.status
	priv_check_status /tmp/dd.status "$dd_xc" "proxy in dd"
	grep -q '^parent xenchan-devd$' /tmp/dd.status || fail "the proxy in dd is not xenchan-devd's child: $(grep parent /tmp/dd.status)"
	dd_xfer "served from dd" "$d" "$devid" "$b" 262144

	# 2. A crash: the watcher restarts the proxy, which reattaches.
	grun "$b" 20 "kill KILL $pid1" || fail "dd: kill $pid1: $GOUT"
	if dd_wait_served "$k" "$pid1" 30; then
		pid2=$(dd_proxy_pid "$k")
		note "proxy $pid1 killed, $pid2 serves"
		dd_xfer "after a restart" "$d" "$devid" "$b" 65536
	else
		fail "no new proxy served after $pid1 was killed: xenchan-pid $(dd_proxy_pid $k), K/state $(xenstore-read $k/state 2>&1)"
		pid2=
	fi

	# 3. The guest destroyed: the proxy ends (0), its socket and every node go.
	t=$(now)
	timeout 60 xl destroy ddg || fail "xl destroy ddg failed"
	note "xl destroy ddg took $(since "$t") s"
	if [ -n "$pid2" ]; then
		grun "$b" 30 "gone $pid2 10 $DD_SOCK" || fail "dd: $GOUT"
		note "dd: $(echo "$GOUT" | tr '\n' ',')"
		echo "$GOUT" | grep -q "socket $DD_SOCK gone" || fail "dd: socket $DD_SOCK left"
		grun "$b" 20 "devdlog 40"
		echo "$GOUT" | grep "pid $pid2" | grep -q "exited with status 0" ||
			fail "the watcher did not see proxy $pid2 exit 0: $(echo "$GOUT" | grep "pid $pid2" | tail -n 2 | tr '\n' ' ')"
	fi
	dd_clean "$d" "$devid" "$b"

	# 4. dd destroyed first, while it serves another guest.
	need_guest ddg2 "$(dd_channel_cfg)" || { dd_logs "$b"; dd_cleanup; return; }
	d2=$(xl domid ddg2)
	f2=/local/domain/$d2/device/console/$devid
	k2=/local/domain/$b/backend/console/$d2/$devid
	dd_wait_served "$k2" "" 60 || fail "ddg2 never Connected from dd: K/state $(xenstore-read $k2/state 2>&1)"
	[ -n "$FAILS" ] && dd_logs "$b"
	t=$(now)
	timeout 60 xl destroy dd || fail "xl destroy dd failed"
	note "xl destroy dd took $(since "$t") s"
	xl domid ddg2 > /dev/null 2>&1 || fail "ddg2 did not survive dd"
	xs_wait_gone /local/domain/$b 10 || fail "/local/domain/$b left after xl destroy dd"
	if grun "$d2" 30 consoles; then
		note "ddg2 after dd went: $(echo "$GOUT" | tr '\n' ',')"
	else
		fail "ddg2 does not answer after dd went: $GOUT"
	fi
	# What the guest wrote stays; what dd owned went with it.
	left=$(xenstore-list "$f2" 2>/dev/null | sort | tr '\n' ' ')
	[ "$left" = "backend backend-id port protocol ring-ref state " ] || fail "ddg2's F after dd went: '$left'"
	timeout 60 xl destroy ddg2 || fail "xl destroy ddg2 failed"
	dd_clean "$d2" "$devid" "$b"
	timeout 10 xl list > /dev/null || fail "xl list does not answer at the end"
}

# ---- 12. every guest on a host: the xenchan-dm-default package (issue #18) ------
# The package installed by dpkg in dom0, as on a real host: its preinst
# diverts QEMU (qemu-system-xen's /usr/libexec/xen-qemu-system-i386) to
# .distrib and dpkg puts the dispatcher at the path, which libxl runs for
# every device model it starts by default.  dpkg -r puts QEMU back.
QPATH=/usr/libexec/xen-qemu-system-i386
# By path: dom0's busybox sh runs its own dpkg applet for a bare "dpkg".
DPKG=/usr/bin/dpkg

# dpkg's database, empty at first: nothing of the image is registered.
dpkg_db() {
	[ -e /var/lib/dpkg/status ] && return 0
	mkdir -p /var/lib/dpkg/info /var/lib/dpkg/updates /var/lib/dpkg/triggers /var/log
	: > /var/lib/dpkg/status
	: > /var/lib/dpkg/available
}

# dpkg -i the package (--force-depends: xenchan-proxy is unpacked in the
# image, not registered with dpkg).  QSHA: QEMU's SHA-256 before, empty
# where there is no QEMU (the 4.20 tier).
default_install() {
	dpkg_db
	QSHA=
	[ -e $QPATH ] && QSHA=$(sha_of $QPATH)
	t=$(now)
	if ! $DPKG --force-depends -i /xt/debs/xenchan-dm-default.deb > /tmp/dpkg.log 2>&1; then
		fail "dpkg -i: $(tail -n 4 /tmp/dpkg.log | tr '\n' ' ')"
		return 1
	fi
	echo "XENTIME dpkg-i $(since $t)"
	dv=$(dpkg-divert --list "$QPATH")
	[ "$dv" = "diversion of $QPATH to $QPATH.distrib by xenchan-dm-default" ] ||
		fail "after dpkg -i, dpkg-divert --list says '$dv'"
	$DPKG --verify xenchan-dm-default > /tmp/dpkg.verify 2>&1 ||
		fail "dpkg --verify: $(head -n 3 /tmp/dpkg.verify | tr '\n' ' ')"
	if [ -n "$QSHA" ]; then
		[ "$(sha_of $QPATH.distrib 2>/dev/null)" = "$QSHA" ] || fail "QEMU is not at $QPATH.distrib after dpkg -i"
	else
		[ -e $QPATH.distrib ] && fail "$QPATH.distrib with no QEMU installed"
	fi
	return 0
}

# dpkg -r: QEMU back at its path, byte for byte; no diversion, no .distrib.
default_remove() {
	$DPKG -r xenchan-dm-default > /tmp/dpkg.log 2>&1 || fail "dpkg -r: $(tail -n 4 /tmp/dpkg.log | tr '\n' ' ')"
	dv=$(dpkg-divert --list "$QPATH")
	[ -z "$dv" ] || fail "after dpkg -r: $dv"
	[ -e $QPATH.distrib ] && fail "$QPATH.distrib left after dpkg -r"
	if [ -n "$QSHA" ]; then
		[ "$(sha_of $QPATH 2>/dev/null)" = "$QSHA" ] || fail "QEMU is not back at $QPATH after dpkg -r"
	else
		[ -e $QPATH ] && fail "$QPATH left after dpkg -r"
	fi
}

# After a failed xl -vvv create: libxl's errors and the device model's log.
xl_errors() { # NAME
	note "$1: $(grep -E 'libxl: error|rror' /tmp/xl-create.$1 | tail -n 4 | cut -c1-240 | tr '\n' ' ')"
	note "$1: qemu-dm log: $(tail -n 4 /var/log/xen/qemu-dm-$1.log 2>/dev/null | tr '\n' ' ')"
}

dm_pid_of() { xenstore-read /local/domain/$1/image/device-model-pid 2>/dev/null; }
argv0_of() { tr '\0' '\n' < /proc/$1/cmdline 2>/dev/null | head -n 1; }

# Every process running QEMU's program, whatever its argv[0].
qemu_pids() {
	for e in /proc/[0-9]*/exe; do
		case $(readlink "$e" 2>/dev/null) in
		$QPATH | $QPATH.distrib) p=${e#/proc/}; echo "${p%/exe}" ;;
		esac
	done
}

# The device model of domain D (DM its pid, KIDS its children) must be
# PROGRAM, run as libxl ran the dispatcher (argv[0] the default path), and
# the first line of LOG the dispatcher's decision for D naming WHO.
dm_is() { # WHAT D PROGRAM WHO LOG
	DM=$(dm_pid_of "$2")
	KIDS=$(pids_of_parent "$DM" | tr '\n' ' ')
	exe=$(readlink /proc/$DM/exe 2>/dev/null)
	[ "$exe" = "$3" ] || fail "$1: the device model ($DM) is '$exe', not $3"
	a0=$(argv0_of "$DM")
	[ "$a0" = $QPATH ] || fail "$1: the device model's argv[0] is '$a0', not libxl's $QPATH"
	line=$(head -n 1 "$5" 2>/dev/null)
	case $line in
	"xenchan-dm-dispatch: domain $2: $4"*) note "$1: $line" ;;
	*) fail "$1: the first line of $5 is '$line', not the dispatcher's choice of $4" ;;
	esac
}

# xl's output (-vvv): no error of libxl's but, where xl drops the first
# channel= entry, the one saying so; on libxl 4.20 its probe went to
# xenchan-dm (the tier's 4.20 dom0 has no QEMU) and was answered.
default_xl_check() { # WHAT NAME XL-OUTPUT
	grep "libxl: error" "$3" | grep -v "$DROPPED_ENTRY" > /tmp/xl-errors.default
	[ -s /tmp/xl-errors.default ] && fail "$1: libxl: $(head -n 3 /tmp/xl-errors.default | tr '\n' ' ')"
	plog=/var/log/xen/qemu-probe-$2.log
	if [ "$XT_PROBE" != 1 ]; then
		[ -e $plog ] && fail "$1: libxl ran a probe on Xen $XT_XEN"
		return
	fi
	grep -q "qemu command-line probe signaled" "$3" || fail "$1: libxl's probe was not there for its SIGHUP"
	l1=$(sed -n 1p $plog) l2=$(sed -n 2p $plog)
	case $l1 in
	"xenchan-dm-dispatch: libxl's command-line probe: xenchan-dm"*) ;;
	*) fail "$1: $plog: the dispatcher said '$l1'" ;;
	esac
	case $l2 in
	"xenchan-dm: info: libxl's command-line probe: 3 QMP commands answered"*) note "$1: probe: $l1 / $l2" ;;
	*) fail "$1: $plog: xenchan-dm said '$l2'" ;;
	esac
}

# After the domain is gone: none of PIDS runs, no node of D, none of FILES.
left_after() { # WHAT D "PIDS" FILES...
	what=$1 dd=$2 pids=$3
	shift 3
	i=0
	while [ $i -lt 100 ]; do
		left=
		for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
		[ -z "$left" ] && break
		usleep 100000
		i=$((i + 1))
	done
	[ -z "$left" ] || fail "$what: still running 10 s later:$left"
	for n in /local/domain/$dd /local/domain/0/backend/console/$dd /local/domain/0/backend/qdisk/$dd \
		/local/domain/0/device-model/$dd /libxl/$dd; do
		xenstore-exists "$n" && fail "$what: $n left"
	done
	for f in /run/xen/qmp-libxl-$dd /run/xen/qmp-libxenstat-$dd "$@"; do
		[ -e "$f" ] && fail "$what: $f left"
	done
}

# BYTES each way through pty PTY, the guest at /dev/hvcHVC.
pty_xfer() { # WHAT D DEVID HVC PTY BYTES
	xfer_via tty "$@"
}

# g6: two channels, no device_model_override: xenchan-dm, no QEMU.
default_channels_only() {
	XL_V=-vvv GUEST_MEM=128 need_guest g6 "$(channel_cfg "name=org.example.es, connection=socket, path=/run/es.sock" \
		"name=org.example.ep, connection=pty")" || { xl_errors g6; return 1; }
	d6=$(xl domid g6)
	default_xl_check g6 g6 /tmp/xl-create.g6
	dm_is g6 "$d6" /usr/bin/xenchan-dm xenchan-dm: /var/log/xen/qemu-dm-g6.log
	dm6=$DM kids6=$KIDS
	[ "$(echo $kids6 | wc -w)" = 2 ] || fail "g6: xenchan-dm runs '$kids6', not two proxies"
	q=$(qemu_pids | tr '\n' ' ')
	[ -z "$q" ] || fail "g6: a QEMU runs: $q"
	es=$(devid_of "$d6" org.example.es) ep=$(devid_of "$d6" org.example.ep)
	for dv in $es $ep; do
		xs_wait /local/domain/0/backend/console/$d6/$dv/state 4 20 || fail "g6: channel $dv never connected"
	done
	tty=$(xenstore-read /local/domain/$d6/device/console/$ep/tty 2>/dev/null)
	xfer_both "g6 socket channel" "$d6" "$es" "$es" /run/es.sock 65536
	pty_xfer "g6 pty channel $tty" "$d6" "$ep" "$ep" "$tty" 65536
	note "g6: xenchan-dm $dm6, proxies $kids6; 64 KiB each way on the socket and on $tty"
}

# g7 (where there is QEMU): a disk QEMU serves (backendtype=qdisk, a file
# in dom0) and a channel.  libxl's argv is a channel-only guest's: only the
# qdisk backend in xenstore tells.  QEMU, run from .distrib with libxl's
# argv[0], serves both: the guest reads the file's bytes from /dev/xvdb,
# and the channel carries bytes both ways.
DISK_BYTES=4194304

# BYTES each way between the guest's /dev/hvcDEVID and QEMU's socket SOCK.
# QEMU's socket chardev drops what it has not yet put in the ring when its
# client hangs up (xtio would, once it has sent all and received BYTES), so
# the client stays until the guest has everything (as measure_backend does).
qemu_xfer() { # WHAT D DEVID SOCK BYTES
	head -c "$5" /tmp/d2g.1m > /tmp/d2g.q
	rm -f /tmp/g2d.q
	seq=$(gcmd "$2" "xfer $3 $3 $5 60")
	gready "$2" "$seq" 30 || { fail "$1: guest never opened hvc$3"; return 1; }
	( xtio unix "$4" -i /tmp/d2g.q -o /tmp/g2d.q -t 70 2>/tmp/xtio.q ) &
	cpid=$!
	gwait "$2" "$seq" 70 || fail "$1: guest rc $?: $GOUT"
	i=0
	while [ "$(stat -c %s /tmp/g2d.q 2>/dev/null || echo 0)" -lt "$5" ] && [ $i -lt 100 ]; do
		usleep 100000
		i=$((i + 1))
	done
	kill $cpid 2>/dev/null
	wait $cpid 2>/dev/null
	echo "$GOUT" | grep -q "recv_sha $(sha_of /tmp/d2g.q)" || fail "$1: dom0->guest SHA-256 differs"
	echo "$GOUT" | grep -q "sent_sha $(sha_of /tmp/g2d.q)" || fail "$1: guest->dom0 SHA-256 differs"
}
default_qdisk() {
	head -c $DISK_BYTES /dev/urandom > /save/g7.img
	XL_V=-vvv GUEST_MEM=128 need_guest g7 "disk = [ 'format=raw, vdev=xvdb, access=rw, backendtype=qdisk, target=/save/g7.img' ]
$(channel_cfg "name=org.example.qs, connection=socket, path=/run/qs.sock")" || { xl_errors g7; return 1; }
	d7=$(xl domid g7)
	default_xl_check g7 g7 /tmp/xl-create.g7
	dm_is g7 "$d7" $QPATH.distrib QEMU /var/log/xen/qemu-dm-g7.log
	dm7=$DM
	xenstore-exists /local/domain/0/backend/qdisk/$d7 || fail "g7: no qdisk backend in xenstore"
	seq=$(gcmd "$d7" "disk xvdb $DISK_BYTES 60")
	gwait "$d7" "$seq" 90 || fail "g7: reading /dev/xvdb: rc $?: $GOUT"
	echo "$GOUT" | grep -q "disk_sha $(sha_of /save/g7.img)" || fail "g7: the guest read other bytes from /dev/xvdb: $GOUT"
	qs=$(devid_of "$d7" org.example.qs)
	xs_wait /local/domain/0/backend/console/$d7/$qs/state 4 20 || fail "g7: QEMU never connected the channel"
	qemu_xfer "g7 channel (QEMU)" "$d7" "$qs" /run/qs.sock 65536
	[ "$(readlink /proc/$dm6/exe)" = /usr/bin/xenchan-dm ] || fail "g6's xenchan-dm is gone"
	note "g7: QEMU $dm7 beside g6's xenchan-dm $dm6; the guest read the $((DISK_BYTES / 1048576)) MiB disk, SHA-256 equal; 64 KiB each way on its channel"
	t=$(now)
	timeout 60 xl destroy g7 || fail "xl destroy g7"
	left_after "g7, xl destroy" "$d7" "$dm7" /run/qs.sock
	note "g7: QEMU gone $(since $t) s after xl destroy began"
}

s_default() {
	default_install || { default_remove; return; }
	if default_channels_only; then
		if [ "$XT_QEMU" = 1 ]; then
			default_qdisk
		else
			note "no QEMU in this dom0 (Xen $XT_XEN): the qdisk guest is not run"
		fi
		t=$(now)
		timeout 60 xl destroy g6 || fail "xl destroy g6"
		left_after "g6, xl destroy" "$d6" "$dm6 $kids6" /run/es.sock
		note "g6: xenchan-dm and its proxies gone $(since $t) s after xl destroy began"
	fi
	xl domid g7 > /dev/null 2>&1 && timeout 60 xl destroy g7
	xl domid g6 > /dev/null 2>&1 && timeout 60 xl destroy g6
	rm -f /save/g7.img
	default_remove
}

# ---- 13. libvirt: a libvirt-managed PV guest's channels (issue #18) --------------
# libvirtd with only its libxl driver.  libvirt never passes <emulator> for
# PV guests: libxl runs its default device model, the package's dispatcher,
# which runs xenchan-dm.  libvirt reads the pty channel's path once, after
# libxl returns, from the frontend's tty node.  libvirtd is started once
# for the scenario (and once more for the restart).
LV="virsh -q -c xen:///system"
LVSOCK=/var/lib/libvirt/libxl/channel/target/lv1-org.example.lvu

lv_up() { # start libvirtd as its unit would, less systemd; wait until virsh answers
	mkdir -p /var/log/libvirt /var/lib/libvirt /run/libvirt
	t=$(now)
	LIBVIRT_LOG_OUTPUTS="3:file:/var/log/libvirt/libvirtd.log" \
		libvirtd > /var/log/libvirt/libvirtd.stderr 2>&1 &
	echo $! > /tmp/libvirtd.pid
	i=0
	until timeout 10 $LV version > /tmp/lv.version 2>&1; do
		i=$((i + 1))
		if [ $i -gt 240 ] || ! kill -0 "$(cat /tmp/libvirtd.pid)" 2>/dev/null; then
			fail "libvirtd: $(tail -n 3 /var/log/libvirt/libvirtd.stderr /var/log/libvirt/libvirtd.log | tr '\n' ' ')"
			return 1
		fi
		usleep 250000
	done
	echo "XENTIME libvirtd-up $(since $t)"
}

# What `systemctl restart libvirtd` does to the daemon under its unit's
# KillMode=process: SIGTERM to libvirtd alone; the device models libxl
# started (setsid, reparented to init by libxl's double fork) run on.
lv_down() {
	p=$(cat /tmp/libvirtd.pid 2>/dev/null) || return 0
	kill -TERM "$p" 2>/dev/null
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 200 ]; do usleep 50000; i=$((i + 1)); done
	kill -0 "$p" 2>/dev/null && { fail "libvirtd $p ignored SIGTERM for 10 s"; kill -KILL "$p"; }
	rm -f /tmp/libvirtd.pid
}

# The domain XML of README.md's "Every guest on a host", as written there:
# a PV guest, a unix channel (libvirt's default path) and a pty channel, no
# <emulator>.
lv_xml() { # NAME
	cat > /tmp/$1.xml <<XML
<domain type='xen'>
  <name>$1</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='xenpv'>linux</type>
    <kernel>/xt/guest/vmlinux</kernel>
    <initrd>/xt/guest/initrd</initrd>
    <cmdline>console=hvc0 loglevel=7</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <channel type='unix'>
      <target type='xen' name='org.example.lvu'/>
    </channel>
    <channel type='pty'>
      <target type='xen' name='org.example.lvp'/>
    </channel>
  </devices>
</domain>
XML
}

# The pty channel's path in `virsh dumpxml`.
lv_pty() { # NAME
	$LV dumpxml "$1" | awk '/<channel type=.pty.>/ { p = 1 } p && /<source path=/ {
		sub(/.*path=./, ""); sub(/.\/>.*/, ""); print; exit }'
}

# virsh start NAME: the dispatcher ran xenchan-dm (dm_is), two proxies, no
# QEMU; dumpxml shows the pty channel's /dev/pts/N, the frontend's tty.
# Sets d, DM, KIDS, DU, DP, PTY.
lv_start() { # NAME WHAT
	t=$(now)
	if ! timeout 120 $LV start "$1" > /tmp/lv.start 2>&1; then
		fail "$2: virsh start: $(tr '\n' ' ' < /tmp/lv.start)"
		return 1
	fi
	echo "XENTIME virsh-start-$2 $(since $t)"
	d=$(xl domid "$1")
	dm_is "$2" "$d" /usr/bin/xenchan-dm xenchan-dm: /var/log/xen/qemu-dm-$1.log
	[ "$(echo $KIDS | wc -w)" = 2 ] || fail "$2: xenchan-dm runs '$KIDS', not two proxies"
	q=$(qemu_pids | tr '\n' ' ')
	[ -z "$q" ] || fail "$2: a QEMU runs: $q"
	xs_wait /local/domain/$d/data/ready 1 90 || { fail "$2: guest $1 never came up"; return 1; }
	echo "XENTIME guest-up-$2 $(since $t)"
	DU=$(devid_of "$d" org.example.lvu) DP=$(devid_of "$d" org.example.lvp)
	tty=$(xenstore-read /local/domain/$d/device/console/$DP/tty 2>/dev/null)
	PTY=$(lv_pty "$1")
	case $PTY in /dev/pts/[0-9]*) ;; *) fail "$2: dumpxml shows the pty channel at '$PTY'" ;; esac
	[ "$PTY" = "$tty" ] || fail "$2: dumpxml's pty '$PTY', the frontend's tty '$tty'"
}

lv_bytes() { # WHAT BYTES: both channels, both ways
	xfer_both "$1, unix channel" "$d" "$DU" "$DU" "$LVSOCK" "$2"
	pty_xfer "$1, pty channel" "$d" "$DP" "$DP" "$PTY" "$2"
}

# virsh destroy: no process, socket or node of the domain left.
lv_destroy() { # NAME WHAT
	t=$(now)
	timeout 60 $LV destroy "$1" > /tmp/lv.destroy 2>&1 || fail "$2: virsh destroy: $(cat /tmp/lv.destroy)"
	left_after "$2, virsh destroy" "$d" "$DM $KIDS" "$LVSOCK"
	echo "XENTIME virsh-destroy-$2 $(since $t)"
}

s_libvirt() {
	command -v libvirtd > /dev/null || { fail "no libvirtd in dom0"; return; }
	default_install || { default_remove; return; }
	if lv_up; then
		lv_xml lv1
		if $LV define /tmp/lv1.xml > /tmp/lv.define 2>&1; then
			s_libvirt_guest
			$LV undefine lv1 > /dev/null 2>&1 || fail "virsh undefine lv1"
		else
			fail "virsh define: $(cat /tmp/lv.define)"
		fi
		lv_down
	fi
	default_remove
}

s_libvirt_guest() {
	lv_start lv1 first || return
	note "xenchan-dm $DM, proxies $KIDS, pty $PTY"
	lv_bytes "first start" 65536
	# libvirtd restarted: it reads its state file, not the channels
	lv_down
	lv_up || return
	st=$($LV domstate lv1)
	[ "$st" = running ] || fail "after the restart: lv1 is '$st'"
	[ "$(lv_pty lv1)" = "$PTY" ] || fail "after the restart: dumpxml's pty '$(lv_pty lv1)', was $PTY"
	[ "$(dm_pid_of "$d")" = "$DM" ] && kill -0 "$DM" || fail "after the restart: xenchan-dm $DM gone"
	[ "$(pids_of_parent "$DM" | tr '\n' ' ')" = "$KIDS" ] || fail "after the restart: proxies $(pids_of_parent "$DM")"
	lv_bytes "after libvirtd's restart" 65536
	lv_destroy lv1 first
	lv_start lv1 again || return
	lv_bytes "started again" 65536
	lv_destroy lv1 again
	note "restart, destroy and start again: channels served throughout, nothing left"
}

# ---- apparmor, the libvirt boot: libvirtd's profile as Debian 12 enforces it ---------
# README.Debian's claim, checked: with Debian 12's profile for libvirtd
# loaded, libvirt cannot start a guest that needs a device model, whether
# QEMU or the dispatcher is at libxl's default path; the one local rule
# README.Debian gives makes both work.  The profile is unloaded afterwards.
AA_LOCAL=/etc/apparmor.d/local/usr.sbin.libvirtd
aa_load() {
	apparmor_parser -r /etc/apparmor.d/usr.sbin.libvirtd 2> /tmp/aa.err || fail "apparmor_parser: $(cat /tmp/aa.err)"
}

# virsh start lv1 must succeed with device model PROGRAM, or fail with
# libxl's EACCES when PROGRAM is "denied".
aa_case() { # WHAT PROGRAM
	dmesg -c > /dev/null
	if timeout 120 $LV start lv1 > /tmp/lv.start 2>&1; then
		d=$(xl domid lv1)
		exe=$(readlink /proc/$(dm_pid_of "$d")/exe)
		note "$1: started, device model $exe"
		[ "$exe" = "$2" ] || fail "$1: the device model is '$exe', not $2"
		timeout 60 $LV destroy lv1 > /dev/null 2>&1
	else
		why=$(grep -o 'cannot execute.*' /var/log/xen/qemu-dm-lv1.log | tail -n 1)
		note "$1: virsh start failed: $why; $(dmesg | grep -c 'apparmor="DENIED"') AppArmor denial(s)"
		[ "$2" = denied ] || fail "$1: virsh start: $(tr '\n' ' ' < /tmp/lv.start | cut -c1-200)"
		case $why in *"Permission denied"*) ;; *) fail "$1: not libxl's EACCES: '$why'" ;; esac
	fi
}

s_apparmor() {
	command -v apparmor_parser > /dev/null || { fail "no apparmor_parser in dom0"; return; }
	mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security
	[ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] || { fail "AppArmor is not enabled in dom0's kernel"; return; }
	: > $AA_LOCAL
	aa_load
	lv_down
	lv_up || return
	note "libvirtd runs as: $(cat /proc/$(cat /tmp/libvirtd.pid)/attr/current)"
	lv_xml lv1
	$LV define /tmp/lv1.xml > /dev/null 2>&1 || fail "virsh define"
	aa_case "QEMU, profile as shipped" denied
	default_install
	aa_case "dispatcher, profile as shipped" denied
	echo "$QPATH PUx," > $AA_LOCAL
	aa_load
	aa_case "dispatcher, local rule" /usr/bin/xenchan-dm
	default_remove
	aa_case "QEMU, local rule" $QPATH
	$LV undefine lv1 > /dev/null 2>&1
	lv_down
	apparmor_parser -R /etc/apparmor.d/usr.sbin.libvirtd 2> /dev/null
	: > $AA_LOCAL
}
