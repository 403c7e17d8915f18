# bench/run's `desktop` section, sourced by bench/run (which provides
# as_user, run_benchrun, log, die, $WORK, $HUTCH, $BENCHRUN, $BENCH_USER,
# $IS_ROOT, $RUNS, $WARMUP, FAILED_ROWS). With --save, bench/run keeps
# desktop.json (the launch rows, in benchrun's JSON).
#
# 1. launch: hutch start to the payload's exit (/bin/true) for desktop app
#    profiles (X11 on the host display with audio; Wayland with audio),
#    interleaved with `hutch cli` and the unshare floor. Goal: <= 25 ms
#    median (Flatpak's launch overhead was ~250 ms, firejail's Firefox
#    profile ~73 ms to initialise).
# 2. window: time from starting xcalc to its window being mapped on the
#    display (MapNotify on the root, seen by xev), bare, under hutch's X11
#    host profile and under firejail with its shipped xcalc profile,
#    interleaved. Goal: hutch's time over bare <= 0.5x firejail's.
#
# The servers (Xvfb with cookie authentication, PulseAudio, a headless
# weston) run as the measuring user for the section and are stopped at
# its end.

# as_user for processes started in the background: as_user is a function,
# and `as_user CMD &` would give $! of a subshell, not of CMD, which then
# could not be stopped by its pid. These run CMD itself in the background.
if [[ $IS_ROOT -eq 1 ]]; then
    USER_PREFIX=(setpriv --reuid="$BENCH_USER" --regid="$(id -g "$BENCH_USER")" --init-groups --
        env -i HOME="$BENCH_HOME" USER="$BENCH_USER" LOGNAME="$BENCH_USER"
        PATH=/usr/local/bin:/usr/bin:/bin LC_ALL=C)
else
    USER_PREFIX=(env -i HOME="$BENCH_HOME" USER="$BENCH_USER" LOGNAME="$BENCH_USER"
        PATH=/usr/local/bin:/usr/bin:/bin LC_ALL=C)
fi

DESKTOP_PIDS=()
stop_desktop_servers() {
    local p
    for p in "${DESKTOP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${DESKTOP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    DESKTOP_PIDS=()
}

# wait_socket PATH: up to 10 s for a server's socket.
wait_socket() {
    local _
    for _ in $(seq 200); do [[ -S $1 ]] && return 0; sleep 0.05; done
    return 1
}

start_desktop_servers() {
    DRUN=$WORK/run
    mkdir -p "$DRUN"
    chmod 700 "$DRUN"
    [[ $IS_ROOT -eq 1 ]] && chown "$BENCH_USER" "$DRUN"
    DXA=$WORK/Xauthority
    local n
    for n in $(seq 90 299); do [[ -e /tmp/.X11-unix/X$n ]] || break; done
    as_user xauth -f "$DXA" add "$(hostname)/unix:$n" MIT-MAGIC-COOKIE-1 \
        "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" 2>/dev/null
    # Xvfb says its number on fd 3 once it accepts clients.
    mkfifo "$WORK/xready"
    "${USER_PREFIX[@]}" Xvfb ":$n" -displayfd 3 -auth "$DXA" -nolisten tcp -screen 0 1024x768x24 \
        3>"$WORK/xready" >/dev/null 2>&1 &
    DESKTOP_PIDS+=($!)
    local said=""
    read -r said <"$WORK/xready" || true
    [[ $said == "$n" ]] || { stop_desktop_servers; die "Xvfb did not start on :$n"; }
    DDISPLAY=:$n
    "${USER_PREFIX[@]}" env XDG_RUNTIME_DIR="$DRUN" pulseaudio -n --daemonize=no --exit-idle-time=-1 \
        --load=module-native-protocol-unix --load=module-null-sink >/dev/null 2>&1 &
    DESKTOP_PIDS+=($!)
    "${USER_PREFIX[@]}" env XDG_RUNTIME_DIR="$DRUN" weston --backend=headless-backend.so \
        --socket=bench-wl --idle-time=0 >/dev/null 2>&1 &
    DESKTOP_PIDS+=($!)
    wait_socket "$DRUN/pulse/native" || { stop_desktop_servers; die "pulseaudio did not start"; }
    wait_socket "$DRUN/bench-wl" || { stop_desktop_servers; die "weston did not start"; }
    DENV=(env XDG_RUNTIME_DIR="$DRUN" DISPLAY="$DDISPLAY" XAUTHORITY="$DXA" WAYLAND_DISPLAY=bench-wl)
}

# desktop_row GROUP LABEL RUNS WARMUP CMD...: a spec line, or a FAILED one
# when CMD cannot run `sh -c true` in its place.
desktop_row() {
    local group=$1 label=$2 runs=$3 warm=$4 IFS=$'\t' err
    shift 4
    if ! err=$(as_user "$@" sh -c true 2>&1 >/dev/null); then
        err=$(grep -m1 -v '^[[:space:]]*$' <<<"$err" || true)
        printf '%s\t%s\t%s\t%s\t!%s\n' "$group" "$label" "$runs" "$warm" "${err:-failed}"
        return
    fi
    printf '%s\n' "$group"$'\t'"$label"$'\t'"$runs"$'\t'"$warm"$'\t'"$*"$'\t'/bin/true
}

desktop_launch() {
    local spec=$WORK/desktop.tsv json=$WORK/desktop.json
    local L_X11="hutch x11 host + audio" L_WL="hutch wayland + audio"
    echo
    echo "== desktop launch: start to exit of /bin/true for desktop app profiles (runs $RUNS, interleaved) =="
    {
        desktop_row /bin/true "unshare -Urmpf" "$RUNS" "$WARMUP" unshare -Urmpf --mount-proc
        desktop_row /bin/true "hutch cli" "$RUNS" "$WARMUP" "$HUTCH" run --profile cli --
        desktop_row /bin/true "$L_X11" "$RUNS" "$WARMUP" "${DENV[@]}" "$HUTCH" run \
            --profile bench/hutch-desktop-x11.toml --
        desktop_row /bin/true "$L_WL" "$RUNS" "$WARMUP" "${DENV[@]}" "$HUTCH" run \
            --profile bench/hutch-desktop-wayland.toml --
    } >"$spec"
    run_benchrun launch --spec "$spec" --json "$json" --ref "hutch cli" \
        --ref-column "x hutch cli" --floor "unshare -Urmpf"
    local l m
    for l in "$L_X11" "$L_WL"; do
        m=$(median_ms "$json" "$l")
        [[ -n $m ]] || continue
        echo "  target: $l median $m ms (goal <= 25 ms: $(awk -v m="$m" 'BEGIN { print (m <= 25) ? "met" : "NOT met" }'))"
    done
    echo "  (the X11 row binds the display's socket, writes a private Xauthority and copies the"
    echo "   PulseAudio cookie; the Wayland row asks weston for its globals at planning: weston 10"
    echo "   offers no security context, so no registration is measured)"
}

# median_ms JSON LABEL: a row's median from benchrun's JSON, in ms.
median_ms() {
    perl -MJSON::PP -e '
        my ($file, $label) = @ARGV;
        local $/; open my $f, "<", $file or exit;
        for my $r (@{ decode_json(<$f>)->{results} }) {
            next if $r->{failed};
            printf "%.2f\n", $r->{median} * 1000 if $r->{parameters}{launcher} eq $label;
        }' "$1" "$2"
}

# One launch of an xcalc row: ms from its start to the MapNotify of its
# window, read from xev's output on fd $XEV.
map_once() {
    local line t0 t1 pid
    while read -r -t 0.05 -u "$XEV" line; do :; done
    t0=$EPOCHREALTIME
    "${USER_PREFIX[@]}" "$@" >/dev/null 2>&1 &
    pid=$!
    t1=""
    while read -r -t 20 -u "$XEV" line; do
        if [[ $line == "MapNotify event"* ]]; then t1=$EPOCHREALTIME; break; fi
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ -n $t1 ]] || return 1
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'
}

desktop_window() {
    local rounds=${BENCH_WINDOW_RUNS:-15} r i t
    local labels=("bare xcalc" "hutch x11 host + audio" "firejail, shipped xcalc profile")
    local -a cmds
    cmds[0]="env DISPLAY=$DDISPLAY XAUTHORITY=$DXA xcalc"
    cmds[1]="${DENV[*]} $HUTCH run --profile bench/hutch-desktop-x11.toml -- xcalc"
    cmds[2]="env DISPLAY=$DDISPLAY XAUTHORITY=$DXA firejail --quiet xcalc"
    echo
    echo "== desktop window: start of xcalc to its window mapped on an Xvfb display ($rounds rounds, interleaved) =="
    mkfifo "$WORK/xev"
    "${USER_PREFIX[@]}" env DISPLAY="$DDISPLAY" XAUTHORITY="$DXA" xev -root -event substructure >"$WORK/xev" 2>/dev/null &
    DESKTOP_PIDS+=($!)
    exec {XEV}<"$WORK/xev"
    declare -A times=()
    for ((r = 0; r < rounds; r++)); do
        for i in 0 1 2; do
            # shellcheck disable=SC2086 # the command line is split on purpose
            if t=$(map_once ${cmds[$i]}); then
                times[$i]+="$t "
            fi
        done
    done
    exec {XEV}<&-
    local med=()
    for i in 0 1 2; do
        if [[ -z ${times[$i]:-} ]]; then
            echo "  ${labels[$i]}: FAILED: no window was mapped"
            FAILED_ROWS=$((FAILED_ROWS + 1))
            med[$i]=""
            continue
        fi
        # shellcheck disable=SC2086
        med[$i]=$(printf '%s\n' ${times[$i]} | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
        # shellcheck disable=SC2086
        printf '  %-34s median %8.1f ms  (n=%d)\n' "${labels[$i]}" "${med[$i]}" "$(wc -w <<<"${times[$i]}")"
    done
    if [[ -n ${med[0]} && -n ${med[1]} && -n ${med[2]} ]]; then
        awk -v b="${med[0]}" -v h="${med[1]}" -v f="${med[2]}" 'BEGIN {
            printf "  target: hutch over bare %.1f ms, firejail over bare %.1f ms: %.2fx (goal <= 0.50: %s); totals %.2fx\n",
                h - b, f - b, (h - b) / (f - b), ((h - b) / (f - b) <= 0.5) ? "met" : "NOT met", h / f }'
    fi
    echo "  (firejail's xcalc profile: private-bin, private-lib, private-dev, seccomp, net none, ...; hutch's:"
    echo "   the read-only system, a private home, fonts and themes, the display's socket and a private cookie)"
}

start_desktop_servers
desktop_launch
desktop_window
stop_desktop_servers
