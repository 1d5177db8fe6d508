#!/usr/bin/env bash
# End-to-end test of `signet serve`: the real binary on a fresh data folder, checked with curl,
# openssl s_client and the sqlite3 CLI. Every wait is bounded; the server is killed on exit.
# Usage: serve_test.sh PATH_TO_SIGNET
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
SIGNET=${1:?usage: $0 path/to/signet}
command -v oathtool >/dev/null || { echo "oathtool is missing: run scripts/install-deps"; exit 1; }
W=$(mktemp -d /tmp/signet-e2e-serve-XXXXXX)
D=$W/data
PID=
cleanup() {
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null; fi
  rm -rf "$W"
}
trap cleanup EXIT

# start OUTFILE: starts the server in the background on a free port; sets PID and PORT.
start() {
  local out=$1
  PORT=
  "$SIGNET" serve --data-dir "$D" --listen 127.0.0.1:0 >"$out" 2>"$out.err" </dev/null &
  PID=$!
  for _ in $(seq 1 300); do  # up to 60 s: the first start creates a token and hashes a password
    PORT=$(sed -n 's#^signet: listening on https://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$out")
    [[ -n $PORT ]] && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "server did not start; stdout/stderr:"; cat "$out" "$out.err"
  return 1
}

# stop: SIGTERM, then waits up to 10 s; sets RC (124 if it did not exit in time).
stop() {
  kill -TERM "$PID"
  RC=124
  for _ in $(seq 1 100); do
    if ! kill -0 "$PID" 2>/dev/null; then wait "$PID"; RC=$?; PID=; return; fi
    sleep 0.1
  done
}

# --- first start ----------------------------------------------------------------------------
if start "$W/out1"; then ok "serve starts on a free port ($PORT)"; else bad "serve starts"; finish; exit 1; fi
URL=https://127.0.0.1:$PORT

# A second service on the same data folder is refused before it changes anything.
timeout 30 "$SIGNET" serve --data-dir "$D" --listen 127.0.0.1:0 >"$W/second.out" 2>&1 </dev/null
rc=$?
[[ $rc != 0 && $rc != 124 ]] && grep -q "another process (pid $PID) is using the data folder" "$W/second.out" \
  && ok "a second serve on the same data folder is refused" || bad "second serve: rc $rc, $(cat "$W/second.out")"
code=$(curl -sk --max-time 10 -o "$W/health" -w '%{http_code}' "$URL/healthz")
[[ $code == 200 ]] && grep -q '"ok"' "$W/health" && ok "/healthz is 200 ok" || bad "/healthz: $code $(cat "$W/health")"
code=$(curl -sk --max-time 10 -o "$W/metrics" -w '%{http_code}' "$URL/metrics")
[[ $code == 401 ]] && ! grep -q signet_ "$W/metrics" && ok "/metrics needs a token by default" || bad "/metrics without a token: $code"
check "TLS 1.2 is accepted" bash -c "openssl s_client -connect 127.0.0.1:$PORT -tls1_2 </dev/null"
if timeout 10 openssl s_client -connect 127.0.0.1:$PORT -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null >/dev/null 2>&1; then
  bad "TLS 1.1 is refused"
else
  ok "TLS 1.1 is refused"
fi

B=$D/bootstrap-admin.txt
[[ -f $B && $(stat -c %a "$B") == 600 ]] && ok "bootstrap-admin.txt exists, mode 600" || bad "bootstrap-admin.txt missing or not 600"
check "bootstrap-admin.txt has the TOTP URI" grep -q 'otpauth://totp/' "$B"
# stdout is a file here (as under a service manager): the enrolment stays in the 0600 file.
check "stdout names the bootstrap file" grep -q "are in $B (mode 0600)" "$W/out1"
! grep -q "$(sed -n 's/^ *one-time password *\([^ ]*\)$/\1/p' "$B")" "$W/out1" "$W/out1.err" &&
  ! grep -q "$(printf '\xe2\x96\x88')" "$W/out1" && ok "no one-time password or QR code in a non-terminal stdout" ||
  bad "bootstrap credentials printed to a non-terminal stdout"
# On a terminal (a pty from script(1)) the enrolment is shown once, with its QR code.
script -qefc "'$SIGNET' serve --data-dir '$W/tty-data' --listen 127.0.0.1:0" "$W/tty.out" </dev/null >/dev/null 2>&1 &
TTY_PID=$!
for _ in $(seq 1 300); do
  grep -q 'signet: listening' "$W/tty.out" 2>/dev/null && break
  kill -0 "$TTY_PID" 2>/dev/null || break
  sleep 0.2
done
pkill -TERM -f "serve --data-dir $W/tty-data" 2>/dev/null; wait "$TTY_PID" 2>/dev/null
grep -q "$(printf '\xe2\x96\x88')" "$W/tty.out" && grep -q 'one-time password' "$W/tty.out" &&
  ok "a terminal is shown the enrolment with a QR code" || bad "terminal output: $(head -c 600 "$W/tty.out")"
[[ -f $D/tls-server.crt && $(stat -c %a "$D/tls-server.key") == 600 ]] && ok "TLS key file is owner-only" || bad "TLS identity files"
! grep -q "$(cat "$D/user.pin")" "$W/out1" "$W/out1.err" && ok "the user PIN is not printed" || bad "user PIN printed"

stop
[[ $RC == 0 ]] && ok "SIGTERM: exits 0 within 10 s" || bad "SIGTERM: exit $RC"
# A backup of the database as it is now, restored below after more checkpoints were signed.
mkdir -p "$W/backup" && cp -p "$D"/signet.db* "$W/backup/"

# --- second start: no second admin, no second enrolment ---------------------------------------
# With the PIN file named by the environment: the start-up entry names the file that was read.
cp -p "$D/user.pin" "$W/pin-elsewhere"
# Anonymous rejections beyond 2 a minute are logged as one count; the count of the last minute
# must be in the log once the service has stopped.
printf '\n[accounts]\nanonymous_rejections_per_minute = 2\n' >>"$D/signet.toml"
sed -i '/^\[server\]/a metrics_public = true' "$D/signet.toml"
if SIGNET_PIN_FILE=$W/pin-elsewhere start "$W/out2"; then ok "second start"; else bad "second start"; finish; exit 1; fi
for _ in 1 2 3 4 5; do
  curl -sk --max-time 10 -o /dev/null -X POST -H "Authorization: Bearer not-a-token" -H "Content-Type: application/json" \
    -d '{}' "https://127.0.0.1:$PORT/api/v1/auth/whoami"
done
pin_file=$(sqlite3 "$D/signet.db" "SELECT json_extract(data, '$.details.\"hsm.pin_file\"') FROM log_entries WHERE action='config_startup' ORDER BY idx DESC LIMIT 1")
[[ $pin_file == "$W/pin-elsewhere" ]] && ok "config_startup names the PIN file actually read" || bad "config_startup hsm.pin_file: $pin_file"
# The TLS certificate's content and signet's version are part of the recorded configuration, so a
# certificate replaced in place or an upgrade between two starts shows as a config_change.
startup() { sqlite3 "$D/signet.db" "SELECT json_extract(data, '$.details.\"$1\"') FROM log_entries WHERE action='config_startup' ORDER BY idx DESC LIMIT 1"; }
cert_sha=$(sha256sum "$D/tls-server.crt" | cut -d' ' -f1)
[[ $(startup server.tls_certificate_sha256) == "$cert_sha" ]] \
  && ok "config_startup records the TLS certificate's SHA-256" || bad "config_startup server.tls_certificate_sha256: $(startup server.tls_certificate_sha256), file $cert_sha"
[[ $(startup signet.version) == "$("$SIGNET" --version | cut -d' ' -f2)" ]] \
  && ok "config_startup records signet's version" || bad "config_startup signet.version: $(startup signet.version)"
[[ $(startup hsm.token_manufacturer) == "SoftHSM project" ]] \
  && ok "config_startup records the module's manufacturer" || bad "config_startup hsm.token_manufacturer: $(startup hsm.token_manufacturer)"
grep -q "the keys are in SoftHSM, a software token" "$W/out2.err" \
  && ok "serve says SoftHSM is for development" || bad "no SoftHSM note: $(cat "$W/out2.err")"
! grep -q otpauth "$W/out2" && ok "second start prints no enrolment" || bad "second start printed an enrolment"
check "/metrics counts requests, public with [server] metrics_public = true" bash -c "curl -sk --max-time 10 https://127.0.0.1:$PORT/metrics | grep -q signet_http_requests_total"
admins=$(sqlite3 "$D/signet.db" "SELECT count(*) FROM accounts")
[[ $admins == 1 ]] && ok "still exactly one account" || bad "accounts: $admins"
stop
[[ $RC == 0 ]] && ok "second SIGTERM: exits 0" || bad "second SIGTERM: exit $RC"
rejected=$(sqlite3 "$D/signet.db" "SELECT count(*) FROM log_entries WHERE action='login_failure' AND json_extract(data, '$.details.not_logged_one_by_one') IS NULL AND json_extract(data, '$.details.account_action') = 'token_rejected'")
held=$(sqlite3 "$D/signet.db" "SELECT sum(json_extract(data, '$.details.not_logged_one_by_one')) FROM log_entries WHERE action='login_failure'")
# Budgets are per minute: across a minute's turn up to 4 go one by one, so check the sum.
[[ $((rejected + held)) == 5 && $rejected -le 4 && $held -ge 1 ]] \
  && ok "5 bad tokens: $rejected logged one by one, the other $held as a count written at shutdown" \
  || bad "bad tokens logged one by one: $rejected, held count: $held"

# --- audit trail --------------------------------------------------------------------------------
n() { sqlite3 "$D/signet.db" "SELECT count(*) FROM log_entries WHERE action='$1'"; }
[[ $(n service_start) == 2 && $(n service_stop) == 2 ]] && ok "service_start and service_stop recorded" || bad "service_start $(n service_start), service_stop $(n service_stop)"
[[ $(n config_startup) == 2 ]] && ok "config_startup recorded" || bad "config_startup $(n config_startup)"
stop_idx=$(sqlite3 "$D/signet.db" "SELECT max(idx) FROM log_entries WHERE action='service_stop'")
signed=$(sqlite3 "$D/signet.db" "SELECT max(size) FROM log_checkpoints")
[[ -n $stop_idx && $signed -gt $stop_idx ]] && ok "the last service_stop is under a signed checkpoint" || bad "service_stop at $stop_idx, signed size $signed"
[[ $(n account_create) == 1 ]] && ok "the admin's creation is audited" || bad "account_create $(n account_create)"
# The newest signed checkpoint is also kept outside the database (a tlog-checkpoint note: origin,
# size, root), and a database restored from an older backup is refused rather than signed over.
witness_size=$(sed -n 2p "$D/log-witness.note" 2>/dev/null)
[[ -n $witness_size && $witness_size == "$signed" && $(stat -c %a "$D/log-witness.note") == 600 ]] \
  && ok "log-witness.note holds the newest checkpoint (size $signed), owner-only" \
  || bad "log-witness.note: size '$witness_size', newest checkpoint $signed"
mkdir -p "$W/current" && mv "$D"/signet.db* "$W/current/" && cp -p "$W/backup"/signet.db* "$D/"
timeout 60 "$SIGNET" serve --data-dir "$D" --listen 127.0.0.1:0 >"$W/rolled.out" 2>&1 </dev/null
rc=$?
[[ $rc != 0 && $rc != 124 ]] && grep -q "rolled back" "$W/rolled.out" \
  && ok "serve refuses a database rolled back behind the signed log" \
  || bad "rolled-back database: rc $rc, $(tail -3 "$W/rolled.out")"
# `audit verify` takes the same kept checkpoint as trusted when none is given.
timeout 60 "$SIGNET" audit verify --data-dir "$D" >"$W/verify-rolled.out" 2>&1
rc=$?
[[ $rc == 8 ]] && grep -q "log-witness.note is taken as trusted" "$W/verify-rolled.out" \
  && ok "audit verify fails on the rolled-back database against the kept checkpoint" \
  || bad "audit verify on the rolled-back database: rc $rc, $(tail -3 "$W/verify-rolled.out")"
rm -f "$D"/signet.db* && mv "$W/current"/signet.db* "$D/"
check "audit verify passes on the database as it was" timeout 60 "$SIGNET" audit verify --data-dir "$D"
# A kept checkpoint the log key does not open (its root changed here; a key row replaced in the
# database looks the same) is evidence of tampering: exit 8, not a usage error.
cp -p "$D/log-witness.note" "$W/witness.keep"
sed -i '3s/.*/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=/' "$D/log-witness.note"
timeout 60 "$SIGNET" audit verify --data-dir "$D" >"$W/verify-witness.out" 2>&1
rc=$?
[[ $rc == 8 ]] && grep -q "does not open with the log key" "$W/verify-witness.out" \
  && ok "audit verify fails (8) on a kept checkpoint the log key does not open" \
  || bad "altered kept checkpoint: rc $rc, $(tail -3 "$W/verify-witness.out")"
cp -p "$W/witness.keep" "$D/log-witness.note"
! sqlite3 "$D/signet.db" "SELECT data FROM log_entries" | grep -q "$(cat "$D/user.pin")" && ok "no PIN in the audit trail" || bad "PIN in the audit trail"

! grep -q "unrecorded" "$W/out1.err" "$W/out2.err" && ok "no unrecorded-key warning while every key is recorded" || bad "spurious unrecorded-key warning"

# --- a folder initialised before serve existed gets its TLS identity on first serve -----------
rm -f "$D/tls-server.crt" "$D/tls-server.key"
sed -i '/^\[server\]/,$d' "$D/signet.toml"
# ... and a private key no record names, as a crashed key creation leaves: serve says so.
SOFTHSM2_CONF=$D/softhsm2.conf pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label signet \
  --login --pin "$(cat "$D/user.pin")" --keypairgen --key-type EC:prime256v1 --id 5ca1ab1e --label crashed >/dev/null 2>&1
# ... and the bootstrap file is lost before the admin ever logged in (as a crash between creating
# the account and writing the file leaves it): serve issues new one-time credentials.
OLD_OTP_PW=$(sed -n 's/^ *one-time password *\([^ ]*\)$/\1/p' "$B")
mv "$B" "$W/bootstrap-lost.txt"
# ... and a crash in the middle of writing it left its temporary copy: the next start removes it.
cp "$W/bootstrap-lost.txt" "$D/.bootstrap-admin.txt.tmpAbC123"
# ... and so did a write of the TLS key and of the kept checkpoint.
echo "-----BEGIN PRIVATE KEY-----" >"$D/.tls-server.key.tmpXyZ789" && chmod 600 "$D/.tls-server.key.tmpXyZ789"
cp "$D/log-witness.note" "$D/.log-witness.note.tmpQwE456"
# This start takes the PIN from SIGNET_PIN: the running service must not keep it in its environment.
if SIGNET_PIN=$(cat "$D/user.pin") start "$W/out3"; then ok "serve recreates a missing embedded TLS identity"; else bad "serve without TLS files"; fi
! tr '\0' '\n' <"/proc/$PID/environ" | grep -qF "$(cat "$D/user.pin")" && tr '\0' '\n' <"/proc/$PID/environ" | grep -q '^PATH=' \
  && ok "SIGNET_PIN is gone from the running service's environment" || bad "the PIN is still in /proc/$PID/environ"
# The check runs once the service listens: wait for its line (bounded).
for _ in $(seq 1 100); do grep -q "no key record" "$W/out3.err" && break; sleep 0.1; done
grep -q "1 private key(s) on the token have no key record: 5ca1ab1e ('crashed')" "$W/out3.err" \
  && ok "serve warns about a private key no record names" || bad "no unrecorded-key warning: $(cat "$W/out3.err")"
NEW_OTP_PW=$(sed -n 's/^ *one-time password *\([^ ]*\)$/\1/p' "$B" 2>/dev/null)
NEW_SECRET=$(sed -n 's/^ *TOTP secret *\([^ ]*\)$/\1/p' "$B" 2>/dev/null)
[[ -n $NEW_OTP_PW && $NEW_OTP_PW != "$OLD_OTP_PW" && $(stat -c %a "$B") == 600 ]] && grep -q "issuing new one-time credentials" "$W/out3.err" \
  && ok "a lost bootstrap file is re-issued with new credentials" || bad "bootstrap re-issue: $(cat "$W/out3.err")"
[[ ! -e $D/.bootstrap-admin.txt.tmpAbC123 ]] && grep -q "a copy of bootstrap credentials left by an interrupted write" "$W/out3.err" \
  && ok "a stale copy of the bootstrap file is removed" || bad "stale bootstrap copy: $(ls -a "$D")"
[[ ! -e $D/.tls-server.key.tmpXyZ789 && ! -e $D/.log-witness.note.tmpQwE456 ]] && grep -q "a copy of the TLS private key" "$W/out3.err" \
  && ok "stale copies of the TLS key and the kept checkpoint are removed" || bad "stale copies: $(ls -a "$D")"
login_code() {  # login_code PASSWORD: HTTP status of a CSC login as admin with the current TOTP code
  curl -sk --max-time 10 -o "$W/login.json" -w '%{http_code}' -u "admin:$1" -H "Content-Type: application/json" \
    -d "{\"otp\":\"$(oathtool --totp -b "$NEW_SECRET")\"}" "https://127.0.0.1:$PORT/csc/v2/auth/login"
}
[[ $(login_code "$OLD_OTP_PW") != 200 ]] && ok "the lost one-time password no longer works" || bad "the lost password still logs in"
[[ $(login_code "$NEW_OTP_PW") == 200 ]] && grep -q access_token "$W/login.json" \
  && ok "the admin logs in with the re-issued credentials" || bad "login with re-issued credentials: $(cat "$W/login.json")"
stop
# Once the admin has logged in, a deleted bootstrap file is not a reason to replace its password
# and TOTP seed (it has both; it only has not changed the password yet).
rm -f "$B"
# The development TLS certificate is about to expire (a day left): serve makes a new one.
DEV_SUBJ="/O=signet development/OU=signet development TLS (not for production)/CN=localhost"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "$DEV_SUBJ" \
  -keyout "$D/tls-server.key" -out "$D/tls-server.crt" >/dev/null 2>&1 && chmod 600 "$D/tls-server.key"
if start "$W/out3b"; then ok "serve starts after the logged-in admin's file was deleted"; else bad "serve after file deleted"; fi
! grep -q "issuing new one-time credentials" "$W/out3b.err" && [[ ! -e $B ]] \
  && ok "credentials of an admin who has logged in are not re-issued" || bad "re-issued after a login: $(cat "$W/out3b.err")"
grep -q "the development TLS certificate .* expires at .*a new one is made" "$W/out3b.err" \
  && openssl x509 -in "$D/tls-server.crt" -noout -checkend $((300 * 86400)) >/dev/null \
  && ok "an expiring development TLS certificate is renewed at start" \
  || bad "TLS renewal: $(grep -i tls "$W/out3b.err"; openssl x509 -in "$D/tls-server.crt" -noout -enddate)"
stop
# Another certificate in those files (the obvious way to install a CA's) is the operator's: near
# its end it gets a warning, and neither it nor its key is replaced.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=signet.example \
  -keyout "$D/tls-server.key" -out "$D/tls-server.crt" >/dev/null 2>&1 && chmod 600 "$D/tls-server.key"
sum_before=$(cat "$D/tls-server.crt" "$D/tls-server.key" | sha256sum)
if start "$W/out3c"; then ok "serve starts with an operator's certificate near its end"; else bad "serve with an operator's certificate"; fi
[[ $(cat "$D/tls-server.crt" "$D/tls-server.key" | sha256sum) == "$sum_before" ]] \
  && grep -q "warning: the TLS certificate .* expires at .*install a renewed certificate" "$W/out3c.err" \
  && ok "an operator's certificate is warned about, not replaced" || bad "operator's certificate: $(grep -i tls "$W/out3c.err")"
stop

# --- configured TLS files that are missing are an error, even inside the data folder -----------
printf '[server]\ntls_certificate = "typo.crt"\ntls_private_key = "typo.key"\n' >>"$D/signet.toml"
timeout 20 "$SIGNET" serve --data-dir "$D" --listen 127.0.0.1:0 >"$W/out4" 2>"$W/out4.err" </dev/null
rc=$?
[[ $rc != 0 && $rc != 124 ]] && grep -q "typo.crt" "$W/out4.err" && [[ ! -e $D/typo.crt ]] \
  && ok "a missing configured certificate is named, not replaced by a development one" \
  || bad "missing configured certificate: exit $rc, $(cat "$W/out4.err")"

finish
