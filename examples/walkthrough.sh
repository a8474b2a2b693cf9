#!/usr/bin/env bash
# A short session with the ctrledger CLI on a throw-away store.
#
#   pip install . && bash examples/walkthrough.sh
#
# Every command is echoed with a "$ " before its output.
set -euo pipefail

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
export CTRLEDGER_DATABASE_URL="$workdir/ctrledger.db"   # instead of --db on every command

# Echo a command (quoting arguments that need it), then run it.
run() {
    local arg shown=()
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@+-][A-Za-z0-9_./:=,@+~-]*$ ]]; then
            shown+=("$arg")
        else
            shown+=("'${arg//\'/\'\\\'\'}'")
        fi
    done
    printf '\n$ %s\n' "${shown[*]}"
    "$@"
}

echo "# A store in $CTRLEDGER_DATABASE_URL"

echo
echo "# Create three containers"
run ctrledger create web-1 --image docker.io/library/nginx:1.27 --label env=prod --label tier=web --reason "first web server"
run ctrledger create web-2 --image docker.io/library/nginx:1.27 --label env=staging --label tier=web
run ctrledger create db-1 --image docker.io/library/postgres:16 --label env=prod --label tier=db \
    --snapshotter overlayfs --snapshot-key db-1-rootfs

echo
echo "# List them, then only production, then production web servers (IDs only)"
run ctrledger ls
run ctrledger ls labels.env==prod
run ctrledger ls -q 'labels.env==prod,labels.tier==web'

echo
echo "# Label: promote web-2 to production, drop its tier label"
run ctrledger label web-2 env=prod tier- --actor alice --reason "promoted after testing"

echo
echo "# Update: a new image for web-1"
run ctrledger update web-1 --image docker.io/library/nginx:1.28 --actor alice --reason "security patch"

echo
echo "# One container as JSON, and the list as newline-delimited JSON"
run ctrledger get web-1
run ctrledger ls --nl 'image~=nginx'

echo
echo "# Delete web-2, and see what is left"
run ctrledger rm web-2
run ctrledger ls

echo
echo "# Errors are one line on stderr with exit status 1 (2 for usage errors)"
run ctrledger get missing 2>&1 || echo "(exit status $?)"
run ctrledger create web-1 --image docker.io/library/nginx:1.27 2>&1 || echo "(exit status $?)"
run ctrledger ls 'labels.env=prod' 2>&1 || echo "(exit status $?)"
run ctrledger label db-1 oops 2>&1 || echo "(exit status $?)"

echo
echo "# Failed commands left the store unchanged"
run ctrledger ls

echo
echo "# Nothing is forgotten: web-1's history, the store as it was after its third event (@3),"
echo "# and everything alice did"
run ctrledger history web-1
run ctrledger ls --as-of @3
run ctrledger audit --actor alice

echo
echo "# Tamper evidence: save a checkpoint of the log, keep it elsewhere, verify against it later"
cd "$workdir"
printf '\n$ ctrledger checkpoint > cp.json\n'
ctrledger checkpoint > cp.json
run ctrledger verify --checkpoint cp.json

echo
echo "# Replay: export the log, import it into a new store; the same log gives the same digest"
run ctrledger export backup.ctrlarchive
run ctrledger import backup.ctrlarchive --db copy.db
run ctrledger digest
run ctrledger digest --db copy.db
