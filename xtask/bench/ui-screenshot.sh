#!/usr/bin/env bash
# Regenerates docs/ui.png, the screenshot of `cargo xtask ui`: runs the view on the running
# stack (start it with `cargo xtask up`) in a tmux server of its own, 100x30, selects the
# healthcheck, captures the pane with its colours (capture-pane -e -p) and renders it with
# ui_png.py. Needs tmux, python3-pyte, python3-pil and fonts-dejavu-core (Debian).
set -euo pipefail
cd "$(dirname "$0")/../.."
xtask="${XTASK:-target/debug/xtask}"
socket="$(mktemp -u /tmp/amtp-ui-shot.XXXXXX)"
capture="$(mktemp /tmp/amtp-ui-shot.XXXXXX.ansi)"
trap 'tmux -S "$socket" kill-server 2>/dev/null || true; rm -f "$socket" "$capture"' EXIT
tmux -S "$socket" -f /dev/null new-session -d -s shot -x 100 -y 30 "$xtask" ui
for _ in $(seq 50); do
    tmux -S "$socket" capture-pane -p -t shot | grep -q '^healthcheck .* healthy' && break
    sleep 0.2
done
for _ in $(seq 12); do
    tmux -S "$socket" capture-pane -p -t shot | grep -q 'log: healthcheck' && break
    tmux -S "$socket" send-keys -t shot j
    sleep 0.3
done
sleep 1
tmux -S "$socket" capture-pane -e -p -t shot >"$capture"
# Debian's python3, where apt puts python3-pyte and python3-pil.
/usr/bin/python3 xtask/bench/ui_png.py "$capture" 100 30 docs/ui.png
echo "wrote docs/ui.png"
