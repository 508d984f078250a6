#!/usr/bin/env bash
# The fault suite (docs/reliability.md): builds the release binary, then
# runs every fault scenario against it in temporary data roots (in RAM,
# /dev/shm, where usable) and prints one line of figures per scenario.
#
#   tests/faults/run.sh            # the full run (well under 30 minutes on 2 cores)
#   tests/faults/run.sh --quick    # fewer rounds and files (a few minutes)
#   tests/faults/run.sh --only crash-loop,env   # some scenarios (name prefixes)
#
# STOCKDROP_FAULTS_SEED=N replays the random kills and mutations of a run
# (each line prints its seed). Exit status 0 when every scenario held.
# Needs root for the inotify queue limit, the tmpfs of the disk-full case
# and the device node; without it those cases say SKIPPED.
set -euo pipefail
cd "$(dirname "$0")/../.."

scale=full
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) scale=quick ;;
        --full) scale=full ;;
        --only) only="$2"; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

# The burst scenario lowers the kernel's inotify queue for the daemon it
# starts and restores it at once; restore it here too, whatever happens.
queue=/proc/sys/fs/inotify/max_queued_events
old_queue=$(cat "$queue" 2>/dev/null || true)
restore() {
    if [ -n "$old_queue" ] && [ -w "$queue" ]; then
        echo "$old_queue" > "$queue" || true
    fi
}
trap restore EXIT

target=${CARGO_TARGET_DIR:-target}
echo "building the release binary and the suite…" >&2
cargo build --release --locked --quiet
cargo test --locked --test faults --no-run --quiet 2>/dev/null ||
    cargo test --locked --test faults --no-run
bin=$(realpath "$target/release/stockdrop")

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); binary: $("$bin" --version)"
echo "scale: $scale; started $(date -u +%FT%TZ)"
start=$(date +%s)
status=0
STOCKDROP_FAULTS_BIN="$bin" STOCKDROP_FAULTS_SCALE="$scale" STOCKDROP_FAULTS_ONLY="$only" \
    cargo test --locked --quiet --test faults -- --ignored --exact suite --nocapture --test-threads=1 \
    2>&1 | sed -un 's/^FAULTS //p' || status=$?   # pipefail: the suite's status
echo "finished in $(( $(date +%s) - start )) s; $([ "$status" = 0 ] && echo 'every scenario held' || echo 'some scenarios FAILED')"
exit "$status"
