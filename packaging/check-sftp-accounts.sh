#!/usr/bin/env bash
# Checks the README's warehouse install with two SFTP accounts for real, as
# root on a scratch machine: creates the daemon user `stockdrop`, the
# accounts `boston` and `vendor-acme` with their groups `sd-boston` and
# `sd-vendor-acme` exactly as the README does, lays out a data root with a
# root-owned chroot per account, runs a private sshd (127.0.0.1, a spare
# port, the README's Match blocks, UsePAM no) and stockdrop as the
# `stockdrop` user, and checks over sftp what each account can and cannot
# do. Prints each check; exits non-zero at the first that fails. Removes the
# users, groups, processes and files it created on exit.
#
#   sudo packaging/check-sftp-accounts.sh [path/to/stockdrop]
#
# The binary defaults to target/debug/stockdrop (then target/release). With
# a stockdrop that knows [[inbox]] both accounts get an inbox of their own;
# with one that does not, the one default inbox is pointed at boston's
# folders and vendor-acme's are checked by hand as the daemon user.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "check-sftp-accounts: run as root (it creates users)" >&2; exit 2; }
bin=${1:-}
if [ -z "$bin" ]; then
  for b in target/debug/stockdrop target/release/stockdrop; do
    [ -x "$b" ] && bin=$b && break
  done
fi
[ -x "${bin:-}" ] || { echo "check-sftp-accounts: no stockdrop binary (cargo build first)" >&2; exit 2; }
for tool in /usr/sbin/sshd sftp ssh-keygen adduser addgroup usermod runuser; do
  command -v "$tool" >/dev/null || { echo "check-sftp-accounts: $tool is missing" >&2; exit 2; }
done
for name in stockdrop boston vendor-acme; do
  if getent passwd "$name" >/dev/null; then
    echo "check-sftp-accounts: user $name exists already; run this on a scratch machine" >&2
    exit 2
  fi
done
for name in stockdrop sd-boston sd-vendor-acme; do
  if getent group "$name" >/dev/null; then
    echo "check-sftp-accounts: group $name exists already; run this on a scratch machine" >&2
    exit 2
  fi
done

# Everything under one root-owned folder outside /tmp: sshd's chroot and
# StrictModes checks refuse a path through a world-writable /tmp.
base=$(mktemp -d /var/lib/stockdrop-check.XXXXXX)
chmod 0755 "$base"
data=$base/data            # stands for /var/lib/stockdrop
sshd_pid="" daemon_pid="" created_users=() created_groups=()
cleanup() {
  local rc=$?
  # Every step of the clean-up runs, whatever fails.
  set +e
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null && wait "$sshd_pid" 2>/dev/null
  for u in "${created_users[@]}"; do userdel "$u" 2>/dev/null || true; done
  for g in "${created_groups[@]}"; do groupdel "$g" 2>/dev/null || true; done
  if [ "$rc" != 0 ]; then
    echo "--- sshd log ---"; tail -n 30 "$base/sshd.log" 2>/dev/null || true
    echo "--- stockdrop log ---"; tail -n 30 "$base/daemon.log" 2>/dev/null || true
  fi
  rm -rf "$base"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n=0
pass() { n=$((n + 1)); printf 'ok %2d  %s\n' "$n" "$*"; }
fail() { printf 'FAIL    %s\n' "$*" >&2; exit 1; }

# --- Users and groups, as the README creates them -------------------------
# (adduser warns that the homes do not exist yet: they are made below.)
addgroup --system stockdrop >/dev/null; created_groups+=(stockdrop)
adduser --system --ingroup stockdrop --home /var/lib/stockdrop --no-create-home \
  --shell /usr/sbin/nologin --gecos "stockdrop import daemon" stockdrop >/dev/null 2>&1
created_users+=(stockdrop)
for account in boston vendor-acme; do
  addgroup "sd-$account" >/dev/null; created_groups+=("sd-$account")
  adduser --disabled-password --gecos "$account upload" --ingroup "sd-$account" \
    --home "/var/lib/stockdrop/sftp/$account" --no-create-home \
    --shell /usr/sbin/nologin "$account" >/dev/null 2>&1
  created_users+=("$account")
  adduser stockdrop "sd-$account" >/dev/null
done
pass "users stockdrop, boston, vendor-acme; stockdrop in $(id -nG stockdrop | tr ' ' ',')"

# --- The data root --------------------------------------------------------
install -d -o root -g stockdrop -m 0750 "$data"
install -d -o root -g root -m 0755 "$data/sftp"
for account in boston vendor-acme; do
  install -d -o root -g root -m 0755 "$data/sftp/$account"
  install -d -o stockdrop -g "sd-$account" -m 3770 "$data/sftp/$account/upload"
  install -d -o stockdrop -g "sd-$account" -m 2750 "$data/sftp/$account/reports"
done
for d in work archive failed db; do
  install -d -o stockdrop -g stockdrop -m 0700 "$data/$d"
done
install -d -m 0755 "$base/bin" "$base/etc" "$base/ssh" "$base/ssh/authorized_keys" "$base/client"
install -m 0755 "$bin" "$base/bin/stockdrop"
pass "data root laid out: sftp/<account> root:root 0755, upload 3770 and reports 2750 stockdrop:sd-<account>"

# --- sshd ------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ssh-keygen -q -t ed25519 -N '' -f "$base/ssh/host_key"
for account in boston vendor-acme; do
  ssh-keygen -q -t ed25519 -N '' -f "$base/client/$account"
  install -m 0644 "$base/client/$account.pub" "$base/ssh/authorized_keys/$account"
done
mkdir -p /run/sshd
cat >"$base/ssh/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $base/ssh/host_key
PidFile $base/ssh/sshd.pid
# Without PAM, as on many minimal and container hosts: sshd itself refuses
# accounts whose password field starts with "!".
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
Subsystem sftp internal-sftp
LogLevel VERBOSE

Match User boston
    ChrootDirectory $data/sftp/boston
    ForceCommand internal-sftp -u 0007 -d /upload
    AuthorizedKeysFile $base/ssh/authorized_keys/%u
    AllowTcpForwarding no
    X11Forwarding no
    PermitTTY no

Match User vendor-acme
    ChrootDirectory $data/sftp/vendor-acme
    ForceCommand internal-sftp -u 0007 -d /upload
    AuthorizedKeysFile $base/ssh/authorized_keys/%u
    AllowTcpForwarding no
    X11Forwarding no
    PermitTTY no
EOF
/usr/sbin/sshd -t -f "$base/ssh/sshd_config"
/usr/sbin/sshd -f "$base/ssh/sshd_config" -D -E "$base/sshd.log" </dev/null >/dev/null 2>&1 &
sshd_pid=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
pass "private sshd (pid $sshd_pid) on 127.0.0.1:$port with the two Match blocks"

# sftp AS BATCH...: runs the batch (one command a line) as that account;
# its exit code is sftp's (non-zero when any command fails).
sftp_as() {
  local account=$1; shift
  printf '%s\n' "$@" >"$base/client/batch"
  sftp -q -b "$base/client/batch" -i "$base/client/$account" -P "$port" \
    -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile="$base/client/known_hosts" \
    -o LogLevel=ERROR "$account@127.0.0.1" 2>&1
}

# --- The locked account, and unlocking it ---------------------------------
shadow=$(getent shadow boston | cut -d: -f2)
case "$shadow" in
  '!'*) pass "adduser --disabled-password left boston's password field as '$shadow' (locked)";;
  *) fail "expected a locked password field for boston, found '$shadow'";;
esac
if sftp_as boston "ls" >/dev/null; then
  fail "sshd without PAM let a locked account in"
fi
grep -q "User boston not allowed because account is locked" "$base/sshd.log" \
  || fail "sshd did not say why it refused boston"
pass "sshd (UsePAM no) refuses boston's key: \"User boston not allowed because account is locked\""
for account in boston vendor-acme; do usermod -p '*' "$account"; done
[ "$(getent shadow boston | cut -d: -f2)" = '*' ] || fail "usermod -p '*' did not set '*'"
out=$(sftp_as boston "pwd") || fail "boston cannot log in after usermod -p '*': $out"
pass "after usermod -p '*' (no password can match, not locked) boston logs in: $(grep -o 'Remote working directory: .*' <<<"$out")"

# --- The daemon, as the stockdrop user -------------------------------------
# A stockdrop with [[inbox]] takes `import --inbox NAME`.
if "$base/bin/stockdrop" import --help 2>/dev/null | grep -q -- '--inbox'; then
  mode=inboxes
else
  mode=single
fi
cat >"$base/etc/stockdrop.toml" <<EOF
[paths]
work = "$data/work"
archive = "$data/archive"
failed = "$data/failed"
database = "$data/db/stockdrop.db"
EOF
if [ "$mode" = inboxes ]; then
  cat >>"$base/etc/stockdrop.toml" <<EOF
inbox = "$data/sftp/boston/upload"
outbox = "$data/sftp/boston/reports"

[[inbox]]
name = "boston"
path = "$data/sftp/boston/upload"
outbox = "$data/sftp/boston/reports"
[inbox.import]
default_location = "Store Boston 001"

[[inbox]]
name = "vendor-acme"
path = "$data/sftp/vendor-acme/upload"
outbox = "$data/sftp/vendor-acme/reports"
[inbox.import]
default_location = "ACME DC"
EOF
  if ! runuser -u stockdrop -- "$base/bin/stockdrop" --config "$base/etc/stockdrop.toml" check-config >/dev/null 2>&1; then
    mode=single
  fi
fi
if [ "$mode" = single ]; then
  cat >"$base/etc/stockdrop.toml" <<EOF
[paths]
inbox = "$data/sftp/boston/upload"
outbox = "$data/sftp/boston/reports"
work = "$data/work"
archive = "$data/archive"
failed = "$data/failed"
database = "$data/db/stockdrop.db"
[import]
default_location = "Store Boston 001"
EOF
fi
cat >>"$base/etc/stockdrop.toml" <<EOF

[watch]
settle_ms = 300
rescan_interval_s = 1
EOF
chmod 0644 "$base/etc/stockdrop.toml"
runuser -u stockdrop -- "$base/bin/stockdrop" --config "$base/etc/stockdrop.toml" check-config >/dev/null
# As the unit runs it: user stockdrop with its supplementary groups,
# UMask=0027 and, where setpriv can give it, the ambient CAP_LEASE of
# AmbientCapabilities= (the open-for-writing probe on the accounts' files).
run_daemon="umask 0027; exec '$base/bin/stockdrop' --config '$base/etc/stockdrop.toml' run"
if command -v setpriv >/dev/null && setpriv --reuid=stockdrop --regid=stockdrop --init-groups \
     --inh-caps=+lease --ambient-caps=+lease true 2>/dev/null; then
  caps="CAP_LEASE"
  setpriv --reuid=stockdrop --regid=stockdrop --init-groups --inh-caps=+lease --ambient-caps=+lease \
    sh -c "$run_daemon" </dev/null >"$base/daemon.log" 2>&1 &
else
  caps="no CAP_LEASE"
  runuser -u stockdrop -- sh -c "$run_daemon" </dev/null >"$base/daemon.log" 2>&1 &
fi
daemon_pid=$!
for _ in $(seq 100); do grep -q "watching" "$base/daemon.log" && break; sleep 0.1; done
grep -q "watching" "$base/daemon.log" || fail "the daemon did not start"
pass "stockdrop run as user stockdrop (pid $daemon_pid, umask 0027, $caps; inboxes: $mode)"
grep "upload checks in force" "$base/daemon.log" | sed 's/^/        /' || true

# --- boston uploads; the daemon claims it and reports ----------------------
printf 'sku,quantity\nB-1,5\nB-2,7\n' >"$base/client/boston-stock.csv"
printf 'sku,quantity\nA-1,3\n' >"$base/client/acme-stock.csv"
out=$(sftp_as boston "put $base/client/boston-stock.csv /upload/.boston-stock.csv.filepart" \
  "rename /upload/.boston-stock.csv.filepart /upload/boston-stock.csv") \
  || fail "boston cannot upload: $out"
pass "boston uploads /upload/boston-stock.csv (temporary name, then rename)"
for _ in $(seq 150); do [ -f "$data/sftp/boston/reports/index.html" ] && break; sleep 0.1; done
[ -f "$data/sftp/boston/reports/boston-stock.1.json" ] || fail "no report for boston's file: $(ls -la "$data/sftp/boston/reports")"
[ -z "$(ls -A "$data/sftp/boston/upload")" ] || fail "boston's upload was not claimed: $(ls -A "$data/sftp/boston/upload")"
archived=$(find "$data/archive" -type f -name '*boston-stock.csv' | head -n 1)
[ -n "$archived" ] || fail "the original is not in the archive"
grep -q '"status": "applied"' "$data/sftp/boston/reports/boston-stock.1.json" || fail "not applied: $(cat "$data/sftp/boston/reports/boston-stock.1.json")"
pass "the daemon renamed it out of upload/ (through work/ to ${archived#"$data/"}) and applied it"
report_mode=$(stat -c '%U:%G %a' "$data/sftp/boston/reports/boston-stock.1.json")
[ "$report_mode" = "stockdrop:sd-boston 640" ] || fail "report is $report_mode, expected stockdrop:sd-boston 640"
pass "its reports are stockdrop:sd-boston 0640 (setgid reports/, umask 0027)"

out=$(sftp_as boston "ls -1 /reports") || fail "boston cannot list /reports: $out"
grep -q 'boston-stock.1.html' <<<"$out" && grep -q 'index.html' <<<"$out" || fail "listing: $out"
out=$(sftp_as boston "get /reports/index.html $base/client/boston-index.html" \
  "get /reports/boston-stock.1.json $base/client/boston-report.json") || fail "boston cannot read reports: $out"
grep -q 'boston-stock.csv' "$base/client/boston-index.html" || fail "index.html does not list the file"
pass "boston lists /reports and fetches index.html and boston-stock.1.json"

sftp_as boston "put $base/client/boston-stock.csv /reports/forged.json" >/dev/null \
  && fail "boston could write into /reports"
sftp_as boston "rm /reports/boston-stock.1.json" >/dev/null && fail "boston could delete a report"
sftp_as boston "rename /reports/boston-stock.1.json /reports/x.json" >/dev/null && fail "boston could rename a report"
sftp_as boston "put $base/client/boston-stock.csv /reports/index.html" >/dev/null && fail "boston could overwrite index.html"
sftp_as boston "chmod 666 /reports/index.html" >/dev/null && fail "boston could chmod a report"
[ -f "$data/sftp/boston/reports/boston-stock.1.json" ] || fail "the report is gone"
pass "boston cannot write, overwrite, rename, delete or chmod anything in /reports"
sftp_as boston "put $base/client/boston-stock.csv /stray.csv" >/dev/null && fail "boston could write into its chroot's root"
pass "boston cannot write into its chroot's root (root's, 0755)"

out=$(sftp_as boston "ls -1 /") || fail "ls / failed: $out"
[ "$(grep -cv '^sftp>' <<<"$out")" = 2 ] || fail "boston sees more than upload and reports: $out"
sftp_as boston "ls /../vendor-acme" >/dev/null && fail "boston can reach vendor-acme's folder"
sftp_as boston "get $data/sftp/vendor-acme/reports/index.html $base/client/stolen" >/dev/null \
  && fail "boston can read vendor-acme's reports by their host path"
runuser -u boston -- ls "$data/sftp/vendor-acme/reports" >/dev/null 2>&1 \
  && fail "outside the chroot, boston can list vendor-acme's reports"
runuser -u boston -- ls "$data/sftp/vendor-acme/upload" >/dev/null 2>&1 \
  && fail "outside the chroot, boston can list vendor-acme's uploads"
pass "boston sees only /upload and /reports; vendor-acme's folders are out of its chroot and, outside it, closed to it (group sd-vendor-acme, no access for others)"
runuser -u boston -- ls "$data/work" >/dev/null 2>&1 && fail "boston can list work/"
pass "boston cannot list the daemon's work/ (stockdrop's alone)"

# --- vendor-acme: uploads; its reports are its own -------------------------
out=$(sftp_as vendor-acme "put $base/client/acme-stock.csv /upload/.acme-stock.csv.filepart" \
  "rename /upload/.acme-stock.csv.filepart /upload/acme-stock.csv") || fail "vendor-acme cannot upload: $out"
pass "vendor-acme uploads /upload/acme-stock.csv"
if [ "$mode" = inboxes ]; then
  for _ in $(seq 150); do [ -f "$data/sftp/vendor-acme/reports/index.html" ] && break; sleep 0.1; done
  ls "$data/sftp/vendor-acme/reports/" | grep -q '^acme-stock\.[0-9]*\.json$' || fail "no report for vendor-acme's file"
  ls "$data/sftp/boston/reports/" | grep -q acme-stock && fail "vendor-acme's report went to boston's outbox"
  grep -q 'acme-stock' "$data/sftp/boston/reports/index.html" && fail "boston's index lists vendor-acme's file"
  grep -q 'boston-stock' "$data/sftp/vendor-acme/reports/index.html" && fail "vendor-acme's index lists boston's file"
  pass "the daemon reported vendor-acme's file in vendor-acme's reports only; each index lists its own"
else
  # The one default inbox is boston's: do by hand, as the daemon user, what
  # the daemon does with a claimed file and a report.
  runuser -u stockdrop -- mv "$data/sftp/vendor-acme/upload/acme-stock.csv" "$data/work/acme-stock.csv" \
    || fail "stockdrop cannot rename out of vendor-acme's upload/"
  runuser -u stockdrop -- cat "$data/work/acme-stock.csv" >/dev/null || fail "stockdrop cannot read the claimed file"
  runuser -u stockdrop -- sh -c "umask 0027; cp '$data/work/acme-stock.csv' '$data/sftp/vendor-acme/reports/acme-stock.9.json'" \
    || fail "stockdrop cannot write into vendor-acme's reports/"
  pass "as user stockdrop: renamed vendor-acme's upload into work/ and wrote into its reports/"
  out=$(sftp_as vendor-acme "get /reports/acme-stock.9.json $base/client/acme.json") || fail "vendor-acme cannot read: $out"
  sftp_as vendor-acme "rm /reports/acme-stock.9.json" >/dev/null && fail "vendor-acme could delete its report"
  pass "vendor-acme reads its report and cannot delete it"
fi
sftp_as vendor-acme "ls /../boston/reports" >/dev/null && fail "vendor-acme can reach boston's folder"
runuser -u vendor-acme -- cat "$data/sftp/boston/reports/index.html" >/dev/null 2>&1 \
  && fail "outside the chroot, vendor-acme can read boston's index"
pass "vendor-acme cannot reach or read boston's reports"

# Another account's upload cannot be taken away by a sender either:
# sticky upload/ means only its owner (and stockdrop, the folder's owner)
# may rename or delete it. (Two senders never share an upload/ here.)
echo "check-sftp-accounts: all $n checks passed"
