#!/usr/bin/env bash
# The dashboard's cost to training: steps/s of the live dashboard (in a detached tmux
# session, as a user sees it) against a headless run of the same preset without live
# analyses, taken in turn on this machine.
#
# usage: scripts/dashboard-overhead.sh [SECONDS] [PRESET...]   (default 15 s; plain-deep
#        residual-deep highway-deep). Needs tmux and a release build (cargo build --release).
# Each preset is measured REPS times (default 3), dashboard and headless in turn, and the
# median of the pairs' overheads is printed: a shared machine's speed drifts by 10 % from
# one minute to the next, more than the overhead being measured.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
reps=${REPS:-3}
shift || true
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(plain-deep residual-deep highway-deep)
bin=target/release/gradlab
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v tmux >/dev/null || { echo "tmux is needed" >&2; exit 2; }
session="gradlab-overhead-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true' EXIT

# The step counter in the dashboard's header.
step_on_screen() {
    tmux capture-pane -p -t "$session" | head -1 | sed -n 's/.*step \([0-9]*\).*/\1/p'
}

printf '%-16s %12s %12s %9s   %s\n' preset "dashboard/s" "headless/s" overhead "(each pair)"
for preset in "${presets[@]}"; do
    pairs=()
    for _ in $(seq "$reps"); do
        tmux new -d -s "$session" -x 120 -y 40 "$bin --preset $preset"
        sleep 3 # start-up and the first analyses are not the steady state
        first=$(step_on_screen)
        t0=$(date +%s.%N)
        sleep "$seconds"
        last=$(step_on_screen)
        t1=$(date +%s.%N)
        tmux kill-session -t "$session"
        steps=$((last - first))
        dashboard=$(echo "$steps / ($t1 - $t0)" | bc -l)
        # The headless rate between its first and last progress lines (every 10 % of the
        # steps), so neither start-up nor the final report counts, as on the dashboard.
        read -r headless < <("$bin" run --preset "$preset" --steps "$steps" --no-paths 2>&1 >/dev/null |
            while read -r _ progress _; do
                echo "${progress%%/*} $(date +%s.%N)"
            done | awk 'NR == 1 {s0 = $1; t0 = $2} {s1 = $1; t1 = $2} END {print (s1 - s0) / (t1 - t0)}')
        overhead=$(echo "100 * (1 - $dashboard / $headless)" | bc -l)
        pairs+=("$(printf '%.1f %.1f %.1f' "$dashboard" "$headless" "$overhead")")
    done
    median=$(printf '%s\n' "${pairs[@]}" | sort -g -k3 | sed -n "$(((reps + 1) / 2))p")
    read -r d h o <<<"$median"
    each=$(printf '%s\n' "${pairs[@]}" | awk '{printf "%s%% ", $3}')
    printf '%-16s %12s %12s %8s%%   %s\n' "$preset" "$d" "$h" "$o" "$each"
done
