#!/usr/bin/env bash
# Installs ecs-agent as a systemd service.
#
#   packaging/install.sh [BINARY]
#
# BINARY defaults to target/release/ecs-agent (or $CARGO_TARGET_DIR/release/ecs-agent).
# DESTDIR installs into a staging root instead of / (for packaging and tests); with DESTDIR
# nothing is started. Existing /etc/ecs/ecs.config is never overwritten.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
bin=${1:-$target/release/ecs-agent}
root=${DESTDIR:-}

[ -x "$bin" ] || { echo "install.sh: no executable at $bin (cargo build --release first)" >&2; exit 1; }

install -D -m 0755 "$bin" "$root/usr/bin/ecs-agent"
install -D -m 0644 "$here/systemd/ecs-agent.service" "$root/etc/systemd/system/ecs-agent.service"
install -d -m 0755 "$root/etc/ecs" "$root/var/log/ecs" "$root/var/lib/ecs"
install -d -m 0700 "$root/var/lib/ecs/data"
if [ ! -e "$root/etc/ecs/ecs.config" ]; then
    install -m 0644 "$here/packaging/ecs.config.example" "$root/etc/ecs/ecs.config"
fi

if [ -z "$root" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable ecs-agent.service
    echo "installed; start it with: systemctl start ecs-agent"
else
    echo "installed under ${root:-/}"
fi
