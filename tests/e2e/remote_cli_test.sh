#!/usr/bin/env bash
# End-to-end test of the remote `signet` CLI: the real `signet serve` on port 0 over a fresh data
# folder, driven by `signet login/password/account/key ...` exactly as a person or a CI job would,
# with TOTP codes from oathtool, certificates from an openssl test CA and the HOME and config
# folder inside the test folder. Every wait is bounded; the server is killed on exit.
# Usage: remote_cli_test.sh PATH_TO_SIGNET
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
SIGNET=${1:?usage: $0 path/to/signet}
command -v oathtool >/dev/null || { echo "oathtool is missing: run scripts/install-deps"; exit 1; }

W=$(mktemp -d /tmp/signet-e2e-remote-XXXXXX)
D=$W/data
PID=
cleanup() {
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null; fi
  rm -rf "$W"
}
trap cleanup EXIT

export HOME=$W/home XDG_CONFIG_HOME=$W/home/config
mkdir -p "$HOME"
unset SIGNET_SERVER SIGNET_DATA_DIR SIGNET_PASSWORD SIGNET_PASSWORD_FILE SIGNET_NEW_PASSWORD \
  SIGNET_NEW_PASSWORD_FILE SIGNET_OTP SIGNET_USER SIGNET_PIN SIGNET_PIN_FILE
SESSION=$XDG_CONFIG_HOME/signet/session.json

# signet without a controlling terminal (setsid): a missing answer must be an error, never a wait.
s() { setsid -w "$SIGNET" "$@"; }
json_ok() {  # json_ok < text: the text parses as JSON (python3 if present, else its first byte)
  if command -v python3 >/dev/null; then python3 -c 'import json,sys; json.load(sys.stdin)'; else grep -q '^[[{]'; fi
}
jstr() {  # jstr NAME < pretty JSON: the first string member NAME
  sed -n "s/^ *\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" | head -1
}
secret_file() {  # secret_file NAME VALUE: an owner-only file holding VALUE
  (umask 077 && printf '%s\n' "$2" >"$W/$1")
  echo "$W/$1"
}

# TOTP: the server accepts the steps now-1..now+1, each once per account. next_otp ACCOUNT SECRET
# sets OTP to the code of the earliest step the account has not used, waiting when that step is
# still ahead of the window.
declare -A LAST_STEP
next_otp() {
  local acct=$1 secret=$2 now last step
  for _ in $(seq 1 70); do
    now=$(($(date +%s) / 30))
    last=${LAST_STEP[$acct]:--1}
    step=$((now > last ? now : last + 1))
    ((step <= now + 1)) && break
    sleep 1
  done
  LAST_STEP[$acct]=$step
  OTP=$(oathtool --totp -b -N "@$((step * 30))" "$secret")
}
wrong_otp() {  # wrong_otp SECRET: a code valid for no step in the window
  local now=$(($(date +%s) / 30)) c
  for back in 100 101 102 103; do
    c=$(oathtool --totp -b -N "@$(((now - back) * 30))" "$1")
    if [[ $c != $(oathtool --totp -b -N "@$(((now - 1) * 30))" "$1") &&
      $c != $(oathtool --totp -b -N "@$((now * 30))" "$1") &&
      $c != $(oathtool --totp -b -N "@$(((now + 1) * 30))" "$1") ]]; then
      echo "$c"; return
    fi
  done
}

# --- a server with optional mTLS (for a service account) ---------------------------------------
P=$W/pki; mkdir -p "$P"
check "init the data folder" s --data-dir "$D" init
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/client-ca.key" \
  -subj "/CN=Test Client CA" -days 30 -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign -out "$D/client-ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/svc.key" \
  -subj "/CN=build-bot" -out "$P/svc.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$P/client.ext"
openssl x509 -req -in "$P/svc.csr" -CA "$D/client-ca.pem" -CAkey "$P/client-ca.key" -CAcreateserial \
  -days 30 -extfile "$P/client.ext" -out "$P/svc.pem" 2>/dev/null
chmod 600 "$P/svc.key"
SVC_FP=$(openssl x509 -in "$P/svc.pem" -outform DER | sha256sum | cut -d' ' -f1)
sed -i 's/^client_auth = "none"$/client_auth = "optional"\nclient_ca = "client-ca.pem"/' "$D/signet.toml"

: >"$W/serve.out"  # exists before the first read below, whenever the background job starts
"$SIGNET" serve --data-dir "$D" --listen 127.0.0.1:0 >"$W/serve.out" 2>"$W/serve.err" </dev/null &
PID=$!
PORT=
for _ in $(seq 1 300); do  # up to 60 s: the first start hashes the bootstrap password
  PORT=$(sed -n 's#^signet: listening on https://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$W/serve.out")
  [[ -n $PORT ]] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.2
done
if [[ -z $PORT ]]; then
  bad "serve starts"; cat "$W/serve.out" "$W/serve.err"; finish; exit 1
fi
ok "serve listens on port $PORT"
URL=https://127.0.0.1:$PORT
CA=$D/tls-server.crt
B=$D/bootstrap-admin.txt
ADMIN_OTP_PW=$(sed -n 's/^ *one-time password *\([^ ]*\)$/\1/p' "$B")
ADMIN_SECRET=$(sed -n 's/^ *TOTP secret *\([^ ]*\)$/\1/p' "$B")
[[ -n $ADMIN_OTP_PW && -n $ADMIN_SECRET ]] && ok "bootstrap-admin.txt holds the one-time password and TOTP secret" || bad "bootstrap-admin.txt: $(head -5 "$B")"
PW1=$(secret_file admin-otp.pw "$ADMIN_OTP_PW")

# --- before login -------------------------------------------------------------------------------
check "--help explains local vs remote" bash -c "'$SIGNET' --help | tr '\n' ' ' | grep -q 'SIGNET_SERVER.*session'"
expect_error "whoami without a session" 5 "not logged in; run 'signet login --server URL'" s whoami
expect_error "account list without a session" 5 "not logged in" s account list
expect_error "key grant without a session" 5 "not logged in" s key grant k alice
expect_error "login needs --server" 2 "--server" s login --user admin --password-file "$PW1" --otp 123456
expect_error "no password and no terminal: an error, not a wait" 2 "--password-file" \
  s login --server "$URL" --ca-file "$CA" --user admin --otp 123456
expect_error "no TOTP code and no terminal" 2 "--otp" \
  s login --server "$URL" --ca-file "$CA" --user admin --password-file "$PW1"
expect_error "a password is never an option" 2 "--password" \
  s login --server "$URL" --ca-file "$CA" --user admin --password "$ADMIN_OTP_PW" --otp 123456
cp "$PW1" "$W/loose.pw" && chmod 644 "$W/loose.pw"
expect_error "a password file others can read is refused" 5 "chmod 600" \
  s login --server "$URL" --ca-file "$CA" --user admin --password-file "$W/loose.pw" --otp 123456
expect_error "a malformed TOTP code is refused before asking the server" 2 "6 to 8 digits" \
  s login --server "$URL" --ca-file "$CA" --user admin --password-file "$PW1" --otp 12ab56
expect_error "an unreachable server fails before any prompt" 7 "cannot connect" \
  s login --server https://127.0.0.1:1 --ca-file "$CA" --user admin
expect_error "a server certificate from another CA is refused" 7 "the server certificate did not verify" \
  s login --server "$URL" --ca-file "$D/client-ca.pem" --user admin --password-file "$PW1" --otp 123456
{ printf 'Issuer: Soci\xe9t\xe9 G\xe9n\xe9rale\n'; cat "$CA"; } >"$W/latin1-ca.pem"
expect_error "a CA file that is not PEM text is refused before any prompt" 2 "is not PEM text: byte 12 is 0xe9" \
  s login --server "$URL" --ca-file "$W/latin1-ca.pem" --user admin
expect_error "wrong password" 5 "login failed" env SIGNET_PASSWORD=wrong-password \
  setsid -w "$SIGNET" login --server "$URL" --ca-file "$CA" --user admin --otp "$(wrong_otp "$ADMIN_SECRET")"
expect_error "wrong TOTP code" 5 "login failed" \
  s login --server "$URL" --ca-file "$CA" --user admin --password-file "$PW1" --otp "$(wrong_otp "$ADMIN_SECRET")"
[[ ! -e $SESSION ]] && ok "failed logins leave no session file" || bad "a failed login wrote $SESSION"

# --- bootstrap admin: one-time password, then its own password ---------------------------------
next_otp admin "$ADMIN_SECRET"
s login --server "$URL/" --ca-file "$CA" --user admin --password-file "$PW1" --otp "$OTP" >"$W/login.out" 2>"$W/login.err"
rc=$?
[[ $rc == 0 ]] && ok "admin logs in with the one-time password" || bad "admin login: exit $rc $(cat "$W/login.err")"
grep -q "signet password" "$W/login.out" && ok "login says the one-time password must be changed" || bad "login output: $(cat "$W/login.out")"
[[ $(stat -c %a "$SESSION") == 600 ]] && ok "session file mode 600" || bad "session file mode $(stat -c %a "$SESSION")"
[[ $(stat -c %a "$(dirname "$SESSION")") == 700 ]] && ok "session folder mode 700" || bad "session folder mode $(stat -c %a "$(dirname "$SESSION")")"
grep -q "\"ca_file\": \"$CA\"" "$SESSION" && grep -q '"account": "admin"' "$SESSION" && ok "session names the CA file and the account" || bad "session: $(grep -v token "$SESSION")"
! grep -qF -- "$ADMIN_OTP_PW" "$SESSION" && ok "the password is not in the session file" || bad "password stored in the session file"
expect_error "one-time password: key list refused" 5 "password" s key list
expect_error "one-time password: account create refused" 5 "password" s account create x --role signer
check "one-time password: whoami works" s whoami
s whoami --json >"$W/whoami.json" 2>&1
json_ok <"$W/whoami.json" && grep -q '"must_change_password": true' "$W/whoami.json" && ok "whoami --json shows must_change_password" || bad "whoami --json: $(cat "$W/whoami.json")"
expect_error "password: no new password and no terminal" 2 "--new-password-file" s password --password-file "$PW1"
# A new password in another encoding (Latin-1 0xe9): refused, without quoting any of its bytes.
LATIN1_PW=$(printf 'caf\xe9-password-long-enough')
SIGNET_PASSWORD=$ADMIN_OTP_PW SIGNET_NEW_PASSWORD=$LATIN1_PW s password >/dev/null 2>"$W/pw.err"; rc=$?
[[ $rc == 2 ]] && grep -q "not valid UTF-8" "$W/pw.err" && ! grep -qi "0xe9\|caf" "$W/pw.err" \
  && ok "a password that is not UTF-8 is refused without showing its bytes" || bad "non-UTF-8 password: exit $rc, $(cat "$W/pw.err")"
ADMIN_PW=admin-password-$RANDOM-$RANDOM-long
SIGNET_PASSWORD=$ADMIN_OTP_PW SIGNET_NEW_PASSWORD=$ADMIN_PW s password >"$W/pw.out" 2>&1
rc=$?
[[ $rc == 0 ]] && ok "password changed non-interactively (SIGNET_PASSWORD, SIGNET_NEW_PASSWORD)" || bad "password: exit $rc $(cat "$W/pw.out")"
[[ ! -e $B ]] && ok "bootstrap-admin.txt is deleted" || bad "bootstrap-admin.txt still exists"
s whoami >"$W/whoami.out" 2>&1 && grep -q "admin" "$W/whoami.out" && ! grep -q "must be changed" "$W/whoami.out" && ok "whoami: admin, password no longer one-time" || bad "whoami: $(cat "$W/whoami.out")"

# A second login of the same account within the TOTP window needs the next step's code; the new
# session replaces the old one, whose token is revoked.
mkdir -p "$W/stale/signet" && cp -p "$SESSION" "$W/stale/signet/session.json"
next_otp admin "$ADMIN_SECRET"
if SIGNET_PASSWORD_FILE=$(secret_file admin.pw "$ADMIN_PW") s login --server "$URL" --ca-file "$CA" --user admin --otp "$OTP" >"$W/relogin.out" 2>&1; then
  ok "admin logs in again with the new password (SIGNET_PASSWORD_FILE)"
else
  bad "admin login with the new password: $(cat "$W/relogin.out")"
fi
expect_error "the replaced session's token was revoked" 5 "session expired or revoked" \
  env XDG_CONFIG_HOME="$W/stale" setsid -w "$SIGNET" whoami
# A login whose session cannot be saved (the folder is another user's) keeps the old session and
# revokes the token it got.
if [[ $(id -u) == 0 ]]; then
  revokes_before=$(sqlite3 "$D/signet.db" "SELECT count(*) FROM log_entries WHERE action='token_revoke'")
  chown 65534 "$(dirname "$SESSION")"
  next_otp admin "$ADMIN_SECRET"
  SIGNET_PASSWORD_FILE=$(secret_file admin.pw "$ADMIN_PW") s login --server "$URL" --ca-file "$CA" --user admin --otp "$OTP" >/dev/null 2>"$W/nosave.err"; rc=$?
  chown 0 "$(dirname "$SESSION")"
  [[ $rc == 5 ]] && grep -q "could not be saved (the new token was revoked)" "$W/nosave.err" \
    && ok "a login that cannot save its session fails and says so" || bad "unsaved login: exit $rc, $(cat "$W/nosave.err")"
  check "the previous session still works after a login that could not be saved" s whoami
  for _ in $(seq 1 50); do
    [[ $(sqlite3 "$D/signet.db" "SELECT count(*) FROM log_entries WHERE action='token_revoke'") -gt $revokes_before ]] && break
    sleep 0.1
  done
  [[ $(sqlite3 "$D/signet.db" "SELECT count(*) FROM log_entries WHERE action='token_revoke'") -gt $revokes_before ]] \
    && ok "the unsaved login's token was revoked" || bad "no token_revoke after the unsaved login"
fi

# --- accounts -----------------------------------------------------------------------------------
s account create alice --role signer --json >"$W/alice.json" 2>"$W/alice.err"
rc=$?
json_ok <"$W/alice.json" && [[ $rc == 0 ]] && ok "account create alice --json" || bad "account create alice: exit $rc $(cat "$W/alice.err")"
ALICE_OTP_PW=$(jstr one_time_password <"$W/alice.json")
ALICE_SECRET=$(jstr totp_secret <"$W/alice.json")
[[ -n $ALICE_OTP_PW && -n $ALICE_SECRET ]] && grep -q '"totp_uri": "otpauth://totp/' "$W/alice.json" && ok "alice's one-time password, TOTP secret and URI are in the JSON" || bad "alice JSON: $(cat "$W/alice.json")"
s account create carol --role auditor >"$W/carol.out" 2>&1
grep -q "one-time password" "$W/carol.out" && grep -q "otpauth://totp/" "$W/carol.out" && grep -q "$(printf '\xe2\x96\x88')" "$W/carol.out" && ok "account create prints the one-time password, URI and a QR code" || bad "account create carol: $(head -c 600 "$W/carol.out")"
expect_error "a taken account name" 4 "" s account create alice --role signer
expect_error "an unknown role" 2 "" s account create dave --role wizard
s account list --json >"$W/accounts.json" 2>&1
json_ok <"$W/accounts.json" && grep -q '"name": "alice"' "$W/accounts.json" && grep -q '"name": "admin"' "$W/accounts.json" && ok "account list --json" || bad "account list --json: $(head -c 400 "$W/accounts.json")"
s account list 2>&1 | grep -q "^carol  *person  *auditor" && ok "account list table" || bad "account list: $(s account list 2>&1)"
s account show alice | grep -q "roles: *signer" && ok "account show" || bad "account show: $(s account show alice 2>&1)"
expect_error "account show of an unknown name" 3 "" s account show nobody
check "account roles" s account roles carol --role auditor --role signer
s account show carol --json | grep -q '"signer"' && ok "roles replaced" || bad "account roles had no effect"
check "account disable" s account disable carol
[[ $(s account show carol --json | jstr state) == disabled ]] && ok "carol is disabled" || bad "carol not disabled"
check "account enable" s account enable carol
check "account unlock" s account unlock carol
s account reset-totp carol >"$W/reset.out" 2>&1 && grep -q "otpauth://totp/" "$W/reset.out" && ok "account reset-totp prints a new enrolment" || bad "reset-totp: $(head -c 300 "$W/reset.out")"
s account reset-password carol >"$W/reset-pw.out" 2>&1 && grep -q "one-time password  [!-~]\{24\}$" "$W/reset-pw.out" && ok "account reset-password prints a new one-time password" || bad "reset-password: $(head -c 300 "$W/reset-pw.out")"
[[ $(s account show carol --json | grep -c '"must_change_password": true') == 1 ]] && ok "after reset-password carol must change her password" || bad "carol must_change_password not set"
check "account create a service account" s account create build-bot --role signer --service --client-cert-sha256 "$SVC_FP"
expect_error "reset-password of a service account" 2 "has no password" s account reset-password build-bot
expect_error "--service needs a fingerprint" 2 "--client-cert-sha256" s account create bot2 --service

# --- keys, remotely (a session exists and no data folder is named) -----------------------------
expect_error "a local token flag with a remote command is refused" 2 "--token-label chooses a local HSM token" \
  s --token-label prod key create --name k-flag --alg ec-p256
check "key create ec-p256" s key create --name k-ec --alg ec-p256
check "key create rsa-3072" s key create --name k-rsa --alg rsa-3072
sqlite3 "$D/signet.db" "SELECT name FROM keys" | grep -q '^k-ec$' && ok "the key is in the server's database" || bad "k-ec not in the server's database"
s key list --json >"$W/keys.json" 2>&1
json_ok <"$W/keys.json" && grep -q '"name": "k-rsa"' "$W/keys.json" && ok "key list --json" || bad "key list --json: $(head -c 300 "$W/keys.json")"
s key list | grep -q "^k-ec  *ec-p256  *active  *no" && ok "key list table as the local one" || bad "key list: $(s key list 2>&1)"
s key show k-ec --json >"$W/k-ec.json" 2>&1
json_ok <"$W/k-ec.json" && grep -q '"extractable": false' "$W/k-ec.json" && grep -q '"present_in_hsm": true' "$W/k-ec.json" && ok "key show --json: in the HSM, not extractable" || bad "key show: $(head -c 400 "$W/k-ec.json")"
s key show k-ec | grep -q "public key: *matches the HSM" && ok "key show text as the local one" || bad "key show text"
expect_error "a taken key name" 4 "" s key create --name k-ec --alg ec-p256
expect_error "an unknown key" 3 "" s key show no-such-key
expect_error "a bad algorithm, before asking the server" 2 "rsa-1024" s key create --name x --alg rsa-1024

cat >"$P/ext.cnf" <<'CNF'
[v3_cs]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/root.key" -subj "/CN=Test Code Signing CA" \
  -days 30 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out "$P/root.pem" 2>/dev/null
for k in k-ec k-rsa; do
  check "key csr $k" s key csr "$k" --subject "/CN=Remote $k/O=Example Ltd/C=GB" --out "$W/$k.csr"
  check "openssl verifies the $k CSR" openssl req -verify -noout -in "$W/$k.csr"
  openssl x509 -req -in "$W/$k.csr" -CA "$P/root.pem" -CAkey "$P/root.key" -CAcreateserial -days 30 \
    -extfile "$P/ext.cnf" -extensions v3_cs -out "$P/$k.pem" 2>/dev/null
  cat "$P/$k.pem" "$P/root.pem" >"$P/$k-chain.pem"
done
s key csr k-ec --subject "/CN=stdout" | grep -q "BEGIN CERTIFICATE REQUEST" && ok "key csr to stdout" || bad "key csr to stdout"
expect_error "a chain for another key is refused" 2 "public key" s key import-cert k-ec --chain "$P/k-rsa-chain.pem"
check "key import-cert k-ec" s key import-cert k-ec --chain "$P/k-ec-chain.pem"
check "key import-cert k-rsa" s key import-cert k-rsa --chain "$P/k-rsa-chain.pem"
s key show k-ec --json | grep -q '"has_certificate": true' && ok "k-ec has its certificate" || bad "k-ec has no certificate"

# --- grants and policy ----------------------------------------------------------------------------
check "key grant" s key grant k-ec alice
s key grants k-ec --json >"$W/grants.json" 2>&1
json_ok <"$W/grants.json" && grep -q '"alice"' "$W/grants.json" && ok "key grants --json lists alice" || bad "grants: $(cat "$W/grants.json")"
expect_error "grant to an unknown account" 3 "" s key grant k-ec nobody
check "key revoke" s key revoke k-ec alice
! s key grants k-ec | grep -q '^alice$' && ok "alice's grant is gone" || bad "alice still granted"
check "key grant again (for alice's signing rights)" s key grant k-ec alice
s key policy k-ec --json >"$W/policy0.json" 2>&1
json_ok <"$W/policy0.json" && grep -q '"max_signatures_per_authorization"' "$W/policy0.json" && ok "key policy --json" || bad "policy: $(cat "$W/policy0.json")"
schemes0=$(tr -d ' \n' <"$W/policy0.json" | sed -n 's/.*"sign_schemes":\(\[[^]]*\]\).*/\1/p')
rate_acct0=$(tr -d ' \n' <"$W/policy0.json" | sed -n 's/.*"rate_per_minute_account":\([0-9]*\).*/\1/p')
expect_error "policy fields without --set" 2 "--set" s key policy k-ec --max-signatures 5
check "key policy --set" s key policy k-ec --set --hash sha384 --hash sha512 --max-signatures 5 --rate-key 10
s key policy k-ec --json >"$W/policy1.json" 2>&1
p1=$(tr -d ' \n' <"$W/policy1.json")
if [[ $p1 == *'"hash_algorithms":["sha384","sha512"]'* && $p1 == *'"max_signatures_per_authorization":5'* &&
  $p1 == *'"rate_per_minute_key":10'* && $p1 == *"\"sign_schemes\":$schemes0"* &&
  $p1 == *"\"rate_per_minute_account\":$rate_acct0"* && -n $schemes0 ]]; then
  ok "policy: the given fields changed, the others kept their values"
else
  bad "policy after --set: $p1 (schemes before $schemes0)"
fi
s key policy k-ec | grep -q "hash algorithms: *sha384, sha512" && ok "key policy text" || bad "policy text: $(s key policy k-ec 2>&1)"
expect_error "a bad hash name" 2 "" s key policy k-ec --set --hash md5

# --- disable, enable, destroy ---------------------------------------------------------------------
check "key disable" s key disable k-rsa
[[ $(s key show k-rsa --json | jstr state) == disabled ]] && ok "k-rsa is disabled" || bad "k-rsa not disabled"
expect_error "a disabled key makes no CSR (exit 6, as locally)" 6 "disabled" s key csr k-rsa --subject "/CN=x"
check "key enable" s key enable k-rsa
s key destroy k-rsa </dev/null >/dev/null 2>"$W/err"; rc=$?
[[ $rc == 6 ]] && grep -q "pass --yes" "$W/err" && ok "destroy without confirmation is refused" || bad "destroy without confirmation: exit $rc $(cat "$W/err")"
echo k-rsa | s key destroy k-rsa >/dev/null 2>&1 && ok "typed confirmation destroys" || bad "destroy with confirmation"
[[ $(s key show k-rsa --json | jstr state) == destroyed ]] && ok "k-rsa is destroyed" || bad "k-rsa not destroyed"

# --- a private key no record names, made on the server's token while it runs -------------------
SOFTHSM2_CONF=$D/softhsm2.conf pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label signet \
  --login --pin "$(cat "$D/user.pin")" --keypairgen --key-type EC:prime256v1 --id 0ddba110 --label stray >/dev/null 2>&1
s key unrecorded --json >"$W/unrec.json" 2>&1
json_ok <"$W/unrec.json" && grep -q '"hsm_key_id": "0ddba110"' "$W/unrec.json" && grep -q '"label": "stray"' "$W/unrec.json" \
  && ok "key unrecorded lists the server's stray key" || bad "key unrecorded: $(head -c 300 "$W/unrec.json")"
echo 0ddba110 | s key destroy-unrecorded 0ddba110 >/dev/null 2>&1 && ok "destroy-unrecorded over the API" || bad "remote destroy-unrecorded"
[[ $(s key unrecorded --json) == "[]" ]] && ok "no unrecorded key left" || bad "after destroy-unrecorded: $(s key unrecorded --json 2>&1)"

# --- local commands still work while a session exists -----------------------------------------
L=$W/local
check "local init" s --data-dir "$L" init
check "local key create" s --data-dir "$L" key create --name k-local --alg ec-p256
out=$(s --data-dir "$L" key list)
[[ $out == *k-local* && $out != *k-ec* ]] && ok "key list --data-dir is local while a session exists" || bad "local key list: $out"
out=$(SIGNET_DATA_DIR=$L s key list)
[[ $out == *k-local* && $out != *k-ec* ]] && ok "SIGNET_DATA_DIR also means local" || bad "SIGNET_DATA_DIR key list: $out"
out=$(s --server "$URL" --data-dir "$L" key list)
[[ $out == *k-ec* && $out != *k-local* ]] && ok "--server means remote even with --data-dir" || bad "--server key list: $out"
expect_error "--server must be the session's server" 6 "signet login --server" s --server https://127.0.0.1:1 key list

# --- alice (signer), in her own config folder ------------------------------------------------------
a() { XDG_CONFIG_HOME=$W/alice-config setsid -w "$SIGNET" "$@"; }
next_otp alice "$ALICE_SECRET"
cp "$CA" "$W/alice-ca.crt"
a login --server "$URL" --ca-file "$W/alice-ca.crt" --user alice --password-file "$(secret_file alice.pw "$ALICE_OTP_PW")" --otp "$OTP" --json >"$W/alice-login.json" 2>&1
json_ok <"$W/alice-login.json" && grep -q '"name": "alice"' "$W/alice-login.json" && ok "alice logs in (--json)" || bad "alice login: $(cat "$W/alice-login.json")"
# The session pinned the CA certificate at login: replacing the file afterwards changes nothing.
cp "$D/client-ca.pem" "$W/alice-ca.crt"
ALICE_PW=alice-password-$RANDOM-$RANDOM-long
check "alice sets her password (the CA pinned at login, not the replaced file)" a password --password-file "$W/alice.pw" --new-password-file "$(secret_file alice-new.pw "$ALICE_PW")"
# The prompts, on a real pseudo-terminal (util-linux `script`): answered once each prompt shows.
tty_dialog() {  # tty_dialog TRANSCRIPT "COMMAND" PROMPT ANSWER...: COMMAND's exit code
  local out=$1 cmd=$2 spid
  shift 2
  rm -f "$W/tty.in" && mkfifo "$W/tty.in"
  script -qefc "$cmd" "$out" <"$W/tty.in" >/dev/null 2>&1 &
  spid=$!
  exec 7>"$W/tty.in"
  trap '' PIPE  # a command that ended early must not take this script with it
  while (($# >= 2)); do
    for _ in $(seq 1 100); do grep -qF -- "$1" "$out" 2>/dev/null && break; sleep 0.1; done
    printf '%s\n' "$2" >&7 2>/dev/null
    shift 2
  done
  exec 7>&-
  trap - PIPE
  for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$spid" 2>/dev/null
  wait "$spid"
}
if command -v script >/dev/null; then
  ALICE_PW2=alice-typed-$RANDOM-$RANDOM-long
  tty_dialog "$W/tty1.out" "env XDG_CONFIG_HOME=$W/alice-config $SIGNET password" \
    "Current password: " "$ALICE_PW" "New password: " "$ALICE_PW2" "New password again: " "$ALICE_PW2"
  rc=$?
  [[ $rc == 0 ]] && grep -q "password of 'alice' changed" "$W/tty1.out" && ok "password change typed at a terminal" || bad "terminal password change: exit $rc $(tr -d '\r' <"$W/tty1.out")"
  ! grep -qF -e "$ALICE_PW" -e "$ALICE_PW2" "$W/tty1.out" && ok "typed passwords are not echoed" || bad "a typed password was echoed"
  tty_dialog "$W/tty2.out" "env XDG_CONFIG_HOME=$W/alice-config $SIGNET password" \
    "Current password: " "$ALICE_PW2" "New password: " "$ALICE_PW-a" "New password again: " "$ALICE_PW-b"
  rc=$?
  [[ $rc == 2 ]] && grep -q "differ" "$W/tty2.out" && ok "two different new passwords are refused" || bad "mismatch: exit $rc $(tr -d '\r' <"$W/tty2.out")"
else
  echo "skip - util-linux 'script' is missing: the terminal prompts are not tested end to end"
fi
expect_error "a signer cannot create accounts" 5 "" a account create mallory --role admin
expect_error "a signer cannot change a key's policy" 5 "" a key policy k-ec --set --max-signatures 1000000
expect_error "a signer cannot create keys" 5 "" a key create --name k-alice --alg ec-p256
[[ -f $SESSION && $(grep -c '"account": "admin"' "$SESSION") == 1 ]] && ok "alice's login did not touch the admin's session" || bad "admin session changed"

# --- a service account over mTLS ------------------------------------------------------------------
v() { XDG_CONFIG_HOME=$W/bot-config setsid -w "$SIGNET" "$@"; }
expect_error "mTLS login takes no password" 2 "client certificate only" \
  v login --server "$URL" --ca-file "$CA" --client-cert "$P/svc.pem" --client-key "$P/svc.key" --otp 123456
if v login --server "$URL" --ca-file "$CA" --client-cert "$P/svc.pem" --client-key "$P/svc.key" >"$W/bot.out" 2>&1; then
  v whoami | grep -q "name: *build-bot" && ok "service account logs in over mTLS and is build-bot" || bad "bot whoami: $(v whoami 2>&1)"
else
  bad "service account mTLS login: $(cat "$W/bot.out")"
fi
# Its token is bound to the certificate: the same session without the certificate is refused.
mkdir -p "$W/bot2-config/signet" && chmod 700 "$W/bot2-config" "$W/bot2-config/signet"
sed -e 's#"client_certificate_file": "[^"]*"#"client_certificate_file": ""#' \
  -e 's#"client_private_key_file": "[^"]*"#"client_private_key_file": ""#' \
  "$W/bot-config/signet/session.json" >"$W/bot2-config/signet/session.json"
chmod 600 "$W/bot2-config/signet/session.json"
grep -q '"client_certificate_file": ""' "$W/bot2-config/signet/session.json" \
  && ok "a copy of the bot's session without its certificate" || bad "session copy: $(cat "$W/bot2-config/signet/session.json")"
v2() { XDG_CONFIG_HOME=$W/bot2-config setsid -w "$SIGNET" "$@"; }
expect_error "the bot's token without its client certificate is refused" 5 "session expired or revoked" v2 whoami
n=$(sqlite3 "$D/signet.db" "select count(*) from log_entries where json_extract(data, '$.outcome') = 'certificate_mismatch'")
[[ $n -ge 1 ]] && ok "the refusal is in the log as certificate_mismatch" || bad "certificate_mismatch entries: $n"
v whoami | grep -q "name: *build-bot" && ok "with the certificate it still works" || bad "bot whoami after: $(v whoami 2>&1)"
# A new login over a session file others could read revokes that file's token (it may have
# leaked) instead of leaving it valid.
cp -p "$W/bot-config/signet/session.json" "$W/bot-old-session.json"
chmod 644 "$W/bot-config/signet/session.json"
v login --server "$URL" --ca-file "$CA" --client-cert "$P/svc.pem" --client-key "$P/svc.key" >"$W/bot-relogin.out" 2>&1 \
  || bad "bot re-login: $(cat "$W/bot-relogin.out")"
mkdir -p "$W/bot3-config/signet" && chmod 700 "$W/bot3-config" "$W/bot3-config/signet"
cp "$W/bot-old-session.json" "$W/bot3-config/signet/session.json" && chmod 600 "$W/bot3-config/signet/session.json"
expect_error "re-login revoked the token of the readable session file" 5 "session expired or revoked" \
  env XDG_CONFIG_HOME=$W/bot3-config setsid -w "$SIGNET" whoami
v whoami | grep -q "name: *build-bot" && ok "the new session works" || bad "bot whoami after re-login: $(v whoami 2>&1)"

# --- the audit log over HTTPS: verify, export and tail through the server ----------------------
KEY=$(s audit key --data-dir "$D" 2>"$W/key.err") && [[ $KEY == *+*+* ]] \
  && ok "audit key prints the verifier key" || bad "audit key: $KEY $(cat "$W/key.err")"
# The integrator signs a checkpoint within 500 ms of new entries; verify needs one.
for _ in $(seq 1 50); do
  s audit verify --server "$URL" --key "$KEY" >"$W/verify.out" 2>&1 && break
  sleep 0.2
done
s audit verify --server "$URL" --key "$KEY" >"$W/verify.out" 2>&1 \
  && ok "audit verify --server recomputes the tree and checks every checkpoint" \
  || bad "audit verify --server: $(cat "$W/verify.out")"
expect_error "audit export --server needs the log's key" 2 "--key" s audit export --server "$URL" --out "$W/log.jsonl"
[[ ! -e $W/log.jsonl ]] && ok "nothing was written without --key" || bad "an export was written without --key"
s audit export --server "$URL" --key "$KEY" --out "$W/log.jsonl" 2>"$W/export.err" \
  && head -1 "$W/log.jsonl" | grep -q 'signet-audit-export/1' \
  && ok "audit export --server writes the export format" || bad "audit export: $(cat "$W/export.err")"
s audit verify --export "$W/log.jsonl" --key "$KEY" >"$W/verify-export.out" 2>&1 \
  && ok "the export verifies offline" || bad "audit verify --export: $(cat "$W/verify-export.out")"
grep -q "a prefix of the log, not that it is the whole log" "$W/verify-export.out" \
  && ok "verify --export without a trusted checkpoint says it proves only a prefix" \
  || bad "no prefix warning: $(cat "$W/verify-export.out")"
s audit tail --server "$URL" --from 0 --no-follow >"$W/tail.out" 2>"$W/tail.err"
n=$(wc -l <"$W/tail.out")
# Exactly the bytes that were hashed: the same lines the database holds, in index order.
sqlite3 "$D/signet.db" "SELECT data FROM log_entries ORDER BY idx LIMIT $n" >"$W/db-entries.out"
[[ $n -ge 3 ]] && head -1 "$W/tail.out" | grep -q '"index":0,' && cmp -s "$W/tail.out" "$W/db-entries.out" \
  && ok "audit tail --server --from 0 prints every entry as hashed ($n lines)" \
  || bad "audit tail --server: $n lines, $(cat "$W/tail.err"; diff "$W/tail.out" "$W/db-entries.out" | head -3)"
expect_error "a signer cannot read the audit log" 5 "" a audit tail --server "$URL" --from 0 --no-follow

# --- logout, revoked and expired sessions ---------------------------------------------------------
cp -p "$SESSION" "$W/old-session.json"
# A session file others could read is refused for use, but logout still revokes its token.
chmod 644 "$SESSION"
s logout >"$W/logout.out" 2>&1 && grep -q "the token is revoked" "$W/logout.out" && ok "logout revokes the token (even of a file others could read)" || bad "logout: $(cat "$W/logout.out")"
[[ ! -e $SESSION ]] && ok "logout deletes the session file" || bad "session file still there"
expect_error "after logout: not logged in" 5 "not logged in" s whoami
out=$(s logout 2>&1) && [[ $out == *"not logged in"* ]] && ok "logout again: nothing to do" || bad "second logout: $out"
cp -p "$W/old-session.json" "$SESSION"
expect_error "a revoked token" 5 "session expired or revoked; run 'signet login'" s key list
expect_error "a revoked token (account)" 5 "session expired or revoked" s account list
sed -i 's/"expires_at": [0-9]*/"expires_at": 1000/' "$SESSION"
expect_error "an expired session" 5 "session expired; run 'signet login'" s whoami
chmod 644 "$SESSION"
expect_error "a session file others can read is refused" 5 "chmod 600" s whoami
chmod 600 "$SESSION"
out=$(s logout 2>&1) && [[ $out == *expired* && ! -e $SESSION ]] && ok "logout of an expired session removes the file" || bad "logout expired: $out"

# The server goes away: logout still removes the file, and says the token was not revoked.
kill -TERM "$PID"
for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null && bad "server did not stop" || PID=
expect_error "logout with the server unreachable" 7 "removed the session file, but the token could not be revoked" a logout
[[ ! -e $W/alice-config/signet/session.json ]] && ok "unreachable server: the session file is still deleted" || bad "alice's session file remains"

! grep -qF -e "$ADMIN_PW" -e "$ALICE_PW" "$W/serve.out" "$W/serve.err" && ok "no password in the server's output" || bad "password in the server output"

finish
