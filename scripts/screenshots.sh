#!/usr/bin/env bash
# Regenerates screenshots/*.png from the real program in a real terminal:
# tmux (capture-pane -e keeps colours) → scripts/ansi2html.py → headless Chromium → PNG.
# Needs tmux, python3 and chromium (Debian: apt-get install -y tmux chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=target}"
export CARGO_TARGET_DIR
cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/gradlab"
OUT=screenshots
WORK=$(mktemp -d)
# One session name per run, so two checkouts making screenshots never share (or kill) a session.
SESSION="gradlab-shot-$$"
trap 'rm -rf "$WORK"; tmux kill-session -t "$SESSION" 2>/dev/null || true' EXIT
mkdir -p "$OUT"
for tool in tmux python3 chromium; do
  command -v "$tool" >/dev/null || { echo "screenshots.sh: $tool is not installed" >&2; exit 1; }
done

# shot NAME COLS ROWS PRESET SECONDS [KEYS SECONDS]...
shot() {
  local name=$1 cols=$2 rows=$3 preset=$4 wait=$5
  shift 5
  tmux kill-session -t "$SESSION" 2>/dev/null || true
  tmux new-session -d -s "$SESSION" -x "$cols" -y "$rows" "$BIN --preset $preset; sleep 30"
  sleep "$wait"
  while [ $# -ge 2 ]; do
    tmux send-keys -t "$SESSION" "$1"
    sleep "$2"
    shift 2
  done
  tmux capture-pane -e -p -t "$SESSION" > "$WORK/$name.ans"
  tmux kill-session -t "$SESSION"
  python3 scripts/ansi2html.py "gradlab $name" < "$WORK/$name.ans" > "$WORK/$name.html"
  # DejaVu Sans Mono at 14px: about 8.43 px per column and 17 px per row, plus padding.
  local width height
  width=$(python3 -c "print(int($cols * 8.43 + 20))")
  height=$(python3 -c "print(int($rows * 17 + 20))")
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --screenshot="$OUT/$name.png" --window-size="$width,$height" \
    "file://$WORK/$name.html" 2>/dev/null
  echo "wrote $OUT/$name.png"
}

shot plain-deep 120 40 plain-deep 8
shot plain-deep-residual 120 40 plain-deep 8 r 6
shot highway-deep 120 40 highway-deep 10
shot help 120 40 plain-deep 4 '?' 1
shot compact-80x24 80 24 plain-deep 8 r 4
shot rnn-lstm-adding 120 40 rnn-lstm-adding 12
shot paths-residual-deep 120 40 residual-deep 6 l 8 L 8
shot sources-dense-aux 120 40 dense-deep 6 a 2 l 6
shot compare-fork 120 40 plain-deep 8 f 1 r 8
shot compare-overlay 120 40 plain-deep 8 f 1 r 8 o 2
