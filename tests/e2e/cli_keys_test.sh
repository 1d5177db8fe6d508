#!/usr/bin/env bash
# End-to-end test of the local `signet` commands against a real SoftHSM2 token, checked with tools
# signet did not write: openssl (req -verify, pkey, x509) and OpenSC pkcs11-tool.
# Usage: cli_keys_test.sh PATH_TO_SIGNET
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
SIGNET=${1:?usage: $0 path/to/signet}
MODULE=/usr/lib/softhsm/libsofthsm2.so
W=$(mktemp -d /tmp/signet-e2e-XXXXXX)
chmod 755 "$W"
trap 'rm -rf "$W"' EXIT
D=$W/data
s() { "$SIGNET" --data-dir "$D" "$@"; }
p11() { SOFTHSM2_CONF=$D/softhsm2.conf pkcs11-tool --module $MODULE --token-label signet --login --pin "$(cat $D/user.pin)" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# --- init -----------------------------------------------------------------------------------
check "init creates the embedded default" s init
check "signet.toml, softhsm2.conf, database and token folder exist" \
  test -f $D/signet.toml -a -f $D/softhsm2.conf -a -f $D/signet.db -a -d $D/tokens
[[ $(stat -c %a $D/user.pin) == 600 && $(stat -c %a $D/so.pin) == 600 ]] && ok "PIN files are owner-only" || bad "PIN files are owner-only"
[[ $(stat -c %a $D) == 700 ]] && ok "data folder is owner-only" || bad "data folder is owner-only ($(stat -c %a $D))"
[[ $(wc -c <$D/user.pin) -ge 16 ]] && ok "user PIN is long and random" || bad "user PIN too short"
! grep -q "$(cat $D/user.pin)" $D/signet.toml && ok "PIN is not in signet.toml" || bad "PIN leaked into signet.toml"
# What init owns must not change. SoftHSM itself rewrites tokens/*/token.object on every login
# (also when pkcs11-tool logs in), so the token is compared by its set of object files.
snapshot() {
  (cd $D && sha256sum signet.toml softhsm2.conf user.pin so.pin &&
    find tokens -type f -name '*.object' ! -name token.object | sort && sqlite3 signet.db .dump)
}
before=$(snapshot)
out=$(s init)
after=$(snapshot)
[[ -n "$before" && "$before" == "$after" && "$out" == *"already initialised"* ]] && ok "second init changes nothing" || bad "second init changed files or said: $out"
# A PIN given for a folder that does not exist yet cannot be the new token's: init uses the one it
# generated, says so, and takes SIGNET_PIN out of the way.
out=$(SIGNET_PIN=not-the-new-pin-1234 "$SIGNET" --data-dir "$W/data2" init 2>&1) &&
  [[ $out == *"not used"* && $out == *"initialised signet data folder"* ]] &&
  ok "init of a new folder ignores SIGNET_PIN" || bad "init with SIGNET_PIN set: $out"
out=$(SIGNET_PIN=$(cat "$W/data2/user.pin") "$SIGNET" --data-dir "$W/data2" init 2>&1) &&
  [[ $out == *"already initialised"* ]] && ok "init of that folder again with its PIN" ||
  bad "second init with SIGNET_PIN: $out"
rm -rf "$W/data2"
# A folder named with a trailing slash (as shell completion writes it) is the same folder.
out=$("$SIGNET" --data-dir "$W/data3/" init 2>&1) && [[ -f $W/data3/signet.toml ]] &&
  [[ $(stat -c %a "$W/data3") == 700 ]] && ok "init of a folder given as 'data3/'" ||
  bad "init of 'data3/': $out ($(ls -la "$W/data3" 2>&1 | head -3 | tr '\n' '|'))"
out=$("$SIGNET" --data-dir "$W/data3//" status 2>&1) && ok "status with 'data3//'" ||
  bad "status with 'data3//': $out"
rm -rf "$W/data3"
# Ctrl-C or SIGTERM while init builds the folder: it finishes or removes the staging folder,
# which holds the new token's PINs, before it exits.
mkdir -p "$W/interrupt"
"$SIGNET" --data-dir "$W/interrupt/data" init >/dev/null 2>&1 &
ipid=$!
for _ in $(seq 1 20000); do compgen -G "$W/interrupt/.signet-init-*" >/dev/null && break; kill -0 $ipid 2>/dev/null || break; done
kill -TERM $ipid 2>/dev/null  # (a background job of a script ignores SIGINT)
wait $ipid
! compgen -G "$W/interrupt/.signet-init-*" >/dev/null && ok "an interrupted init leaves no staging folder" ||
  bad "staging folder left: $(ls -a "$W/interrupt")"
rm -rf "$W/interrupt"
check "pkcs11-tool sees the token" bash -c "SOFTHSM2_CONF=$D/softhsm2.conf pkcs11-tool --module $MODULE --list-token-slots | grep -q 'token label *: signet'"
check "status works" s status

# --- key create, every algorithm -------------------------------------------------------------
for alg in rsa-3072 rsa-4096 ec-p256 ec-p384; do
  check "key create $alg" s key create --name "k-$alg" --alg $alg
  j=$(s key show "k-$alg" --json)
  prot=$(echo "$j" | json "(d['protection']['extractable'], d['protection']['sensitive'], d['protection']['local'], d['protection']['never_extractable'], d['protection']['always_sensitive'], d['public_key_matches_hsm'])")
  [[ $prot == "(False, True, True, True, True, True)" ]] && ok "$alg key is non-extractable, sensitive, local, never extractable" || bad "$alg protection: $prot"
  id=$(echo "$j" | json "d['hsm_key_id']")
  # The token itself (read by OpenSC, not by signet) must say the same.
  attrs=$(p11 --list-objects --type privkey --id "$id" 2>/dev/null)
  if grep -q "sensitive" <<<"$attrs" && grep -q "never extractable" <<<"$attrs" && grep -q "local" <<<"$attrs" && ! grep -qE "Access: *.*\bextractable" <<<"$(sed 's/never extractable//' <<<"$attrs")"; then
    ok "pkcs11-tool reports $alg private key as sensitive, never extractable, local"
  else
    bad "pkcs11-tool attributes for $alg: $(tr '\n' '|' <<<"$attrs")"
  fi
  # CSR: openssl verifies it, and its key is the HSM's public key as read by pkcs11-tool.
  check "key csr $alg" s key csr "k-$alg" --subject "/CN=Example Signer $alg/O=Example Ltd/C=GB" --out $W/$alg.csr
  check "openssl req -verify accepts the $alg CSR" openssl req -verify -noout -in $W/$alg.csr
  # The HSM's public key as OpenSC reads it: RSA exported whole; for EC, pkcs11-tool 0.23 cannot
  # export P-384 ("cannot create EVP_PKEY"), so compare the raw EC_POINT it lists instead.
  csr_spki=$(openssl req -in $W/$alg.csr -pubkey -noout 2>/dev/null | openssl pkey -pubin -outform DER 2>/dev/null | od -An -tx1 | tr -d ' \n')
  if [[ $alg == rsa-* ]]; then
    p11 --read-object --type pubkey --id "$id" -o $W/$alg.pub.der >/dev/null 2>&1
    hsm_key=$(openssl pkey -pubin -inform DER -in $W/$alg.pub.der -outform DER 2>/dev/null | od -An -tx1 | tr -d ' \n')
    [[ -n $hsm_key && $hsm_key == "$csr_spki" ]] && ok "$alg CSR public key equals the key in the HSM" || bad "$alg CSR key differs from HSM key"
  else
    # pkcs11-tool --list-objects ignores --id, so pick the object whose ID line matches.
    point=$(p11 --list-objects --type pubkey 2>/dev/null | awk -v id="$id" '
      /^Public Key Object/ { p = "" } /EC_POINT:/ { p = $2 } $1 == "ID:" && $2 == id { print p; exit }')
    point=${point:4}  # drop the DER OCTET STRING header 0441 / 0461
    [[ -n $point && $csr_spki == *"$point" ]] && ok "$alg CSR public key equals the key in the HSM" || bad "$alg CSR key differs from HSM key ($point)"
  fi
  subj=$(openssl req -in $W/$alg.csr -noout -subject -nameopt compat)
  [[ "$subj" == "subject=/CN=Example Signer $alg/O=Example Ltd/C=GB" ]] && ok "$alg CSR subject as asked" || bad "$alg CSR subject: $subj"
done
case $(openssl req -in $W/ec-p384.csr -noout -text | grep -m1 "Signature Algorithm") in
  *ecdsa-with-SHA384*) ok "P-384 CSR signed with ecdsa-with-SHA384" ;; *) bad "P-384 CSR signature algorithm" ;;
esac
n=$(s key list --json | json "len(d)")
[[ $n == 4 ]] && ok "key list shows 4 keys" || bad "key list shows $n keys"
# The log names the OS account the command ran as, not whatever $USER says.
USER=mallory s key disable k-ec-p256 >/dev/null && USER=mallory s key enable k-ec-p256 >/dev/null
actor=$(sqlite3 $D/signet.db "SELECT data FROM log_entries WHERE action='key_enable' ORDER BY idx DESC LIMIT 1" | json "d['actor']['account_name']")
[[ $actor == "$(id -un)" ]] && ok "a local command is logged as its OS account ($actor)" || bad "local actor logged as '$actor'"
# Output that cannot be written is a failure (exit 7), not a silent empty file.
err=$(s key list --json 2>&1 >/dev/full); rc=$?
[[ $rc == 7 && $err == *"could not be written to standard output"* ]] \
  && ok "output to a full disk exits 7" || bad "output to a full disk: exit $rc, '$err'"
# A reader that has gone (a pipe closed before the command writes): exit 7 with the same message,
# not a silent death by SIGPIPE; and `audit tail` stops instead of polling into the pipe for ever.
closed_pipe() {  # runs signet with stdout a pipe whose read end is already closed; prints "rc err"
  python3 - "$SIGNET" --data-dir "$D" "$@" <<'PY'
import os, subprocess, sys
r, w = os.pipe(); os.close(r)
p = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE, timeout=30)  # SIGPIPE default
print(p.returncode, p.stderr.decode().strip())
PY
}
out=$(closed_pipe key list --json)
[[ $out == "7 "*"could not be written to standard output"* ]] \
  && ok "output to a closed pipe exits 7" || bad "output to a closed pipe: '$out'"
out=$(closed_pipe audit tail --from 0 --interval 0.05)
[[ $out == "7 "*"standard output was closed"* ]] \
  && ok "audit tail into a closed pipe stops (exit 7)" || bad "audit tail into a closed pipe: '$out'"

# --- certificate import ----------------------------------------------------------------------
P=$W/pki; mkdir -p $P
cat >$P/ext.cnf <<'CNF'
[v3_ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[v3_cs]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $P/root.key -subj "/CN=Test Root" -days 30 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out $P/root.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $P/inter.key -subj "/CN=Test Intermediate" -out $P/inter.csr 2>/dev/null
openssl x509 -req -in $P/inter.csr -CA $P/root.pem -CAkey $P/root.key -CAcreateserial -days 30 -extfile $P/ext.cnf -extensions v3_ca -out $P/inter.pem 2>/dev/null
for alg in ec-p256 rsa-3072; do
  openssl x509 -req -in $W/$alg.csr -CA $P/inter.pem -CAkey $P/inter.key -CAcreateserial -days 30 -extfile $P/ext.cnf -extensions v3_cs -out $P/$alg.pem 2>/dev/null
  cat $P/$alg.pem $P/inter.pem >$P/$alg-chain.pem
done
# An impostor intermediate: same name, different key, so only a signature check can tell.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $P/fake.key -subj "/CN=Test Intermediate" -days 30 -addext basicConstraints=critical,CA:TRUE -out $P/fake-inter.pem 2>/dev/null
cat $P/ec-p256.pem $P/fake-inter.pem >$P/broken-chain.pem
expect_error "a certificate for another key is refused" 2 "public key" s key import-cert k-ec-p256 --chain $P/rsa-3072-chain.pem
expect_error "a chain that does not link is refused" 2 "did not issue" s key import-cert k-ec-p256 --chain $P/broken-chain.pem
expect_error "a file that is not PEM is refused" 2 "certificate" s key import-cert k-ec-p256 --chain $W/ec-p256.csr
[[ $(s key show k-ec-p256 --json | json "d['has_certificate']") == False ]] && ok "refused imports left no certificate" || bad "refused import changed the key"
check "the right chain is imported" s key import-cert k-ec-p256 --chain $P/ec-p256-chain.pem
s key show k-ec-p256 --json | json "d['certificate_chain_pem']" >$W/stored.pem
check "the stored chain verifies with openssl against the root" openssl verify -CAfile $P/root.pem -untrusted $W/stored.pem $P/ec-p256.pem
# The log names the exact certificate put in use (SHA-256 of its DER, as openssl computes it).
leaf_sha=$(openssl x509 -in $P/ec-p256.pem -outform DER | sha256sum | cut -d' ' -f1)
logged_sha=$(sqlite3 $D/signet.db "select json_extract(data,'$.details.leaf_sha256') from log_entries where action = 'key_import_cert' and json_extract(data,'$.outcome') = 'success' and json_extract(data,'$.object') = 'k-ec-p256'")
[[ -n $leaf_sha && $logged_sha == "$leaf_sha" ]] && ok "key_import_cert records the leaf's SHA-256" || bad "leaf_sha256 logged '$logged_sha', openssl '$leaf_sha'"
csr_sha=$(openssl req -in $W/ec-p256.csr -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
logged_spki=$(sqlite3 $D/signet.db "select json_extract(data,'$.details.spki_sha256') from log_entries where action = 'key_csr' and json_extract(data,'$.object') = 'k-ec-p256' and json_extract(data,'$.outcome') = 'success' limit 1")
[[ -n $csr_sha && $logged_spki == "$csr_sha" ]] && ok "key_csr records the SHA-256 of the key it certifies" || bad "spki_sha256 logged '$logged_spki', openssl '$csr_sha'"
check "the right chain with its root is imported" s key import-cert k-rsa-3072 --chain <(cat $P/rsa-3072-chain.pem $P/root.pem)

# --- disable, enable, destroy ----------------------------------------------------------------
check "disable" s key disable k-ec-p384
[[ $(s key show k-ec-p384 --json | json "d['state']") == disabled ]] && ok "state is disabled" || bad "state not disabled"
expect_error "a disabled key makes no CSR" 6 "disabled" s key csr k-ec-p384 --subject "/CN=x"
expect_error "disabling twice is refused" 6 "disabled" s key disable k-ec-p384
check "enable" s key enable k-ec-p384
check "an enabled key makes a CSR again" s key csr k-ec-p384 --subject "/CN=again"
id=$(s key show k-rsa-4096 --json | json "d['hsm_key_id']")
s key destroy k-rsa-4096 </dev/null >/dev/null 2>$W/err; rc=$?
[[ $rc == 6 ]] && grep -q "pass --yes" $W/err && ok "destroy without confirmation is refused" || bad "destroy without confirmation: exit $rc, $(cat $W/err)"
[[ $(s key show k-rsa-4096 --json | json "d['state']") == active ]] && ok "unconfirmed destroy left the key active" || bad "unconfirmed destroy changed state"
echo "wrong-name" | s key destroy k-rsa-4096 >/dev/null 2>&1 && bad "mistyped confirmation destroyed the key" || ok "mistyped confirmation is refused"
echo "k-rsa-4096" | s key destroy k-rsa-4096 >/dev/null 2>&1 && ok "typed confirmation destroys" || bad "typed confirmation failed"
objs=$(p11 --list-objects 2>/dev/null | grep -c "ID: *$id")
[[ $objs == 0 ]] && ok "pkcs11-tool finds no object of the destroyed key" || bad "destroyed key still has $objs objects in the token"
[[ $(s key show k-rsa-4096 --json | json "d['state'], d['present_in_hsm']") == "('destroyed', False)" ]] && ok "destroyed key is recorded as destroyed" || bad "destroyed key record"
check "destroy --yes of a destroyed key is repeatable" s key destroy k-rsa-4096 --yes
expect_error "a destroyed key's name is not reused" 4 "already exists" s key create --name k-rsa-4096 --alg ec-p256

# A key lives on the token it was made on. With another token open, destroy, CSR and import are
# refused before anything changes: there the HSM step would find nothing, "succeed", and the key
# would live on in its own token while the log said it was destroyed.
SOFTHSM2_CONF=$D/softhsm2.conf softhsm2-util --init-token --free --label other \
  --so-pin "$(cat $D/so.pin)" --pin "$(cat $D/user.pin)" >/dev/null
expect_error "destroy with another token open is refused" 6 "is on token 'signet'" \
  s --token-label other key destroy k-ec-p384 --yes
expect_error "a CSR with another token open is refused" 6 "is on token 'signet'" \
  s --token-label other key csr k-ec-p384 --subject "/CN=elsewhere"
[[ $(s --token-label other key show k-ec-p384 --json | json "d['on_open_token'], d['present_in_hsm']") == "(False, False)" ]] \
  && ok "key show with another token open says the key is not on it" || bad "key show on another token"
[[ $(s key show k-ec-p384 --json | json "d['state'], d['on_open_token'], d['present_in_hsm']") == "('active', True, True)" ]] \
  && ok "the refused destroy left the key active and in its token" || bad "refused destroy changed the key"

# --- every key change is in the audit log of the database, and the log verifies ---------------
events=$(sqlite3 $D/signet.db "select action || ':' || json_extract(data,'$.outcome') from log_entries order by idx")
n_create=$(grep -c '^key_create:success$' <<<"$events")
n_destroy=$(grep -c '^key_destroy:success$' <<<"$events")
n_removed=$(sqlite3 $D/signet.db "select count(*) from log_entries where action = 'key_destroy' and json_extract(data,'$.details.hsm') = 'removed'")
[[ $n_create == 4 && $n_destroy == 3 && $n_removed == 2 ]] && grep -q '^key_import_cert:success$' <<<"$events" && grep -q '^key_disable:success$' <<<"$events" \
  && ok "key create, import, disable and destroy are in the audit log" || bad "log_entries: $(tr '\n' ' ' <<<"$events")"
grep -q '^key_import_cert:.*public key' <<<"$events" && ok "a refused import is logged with its reason" || bad "refused import not logged"
expect_error "audit verify before the first serve says there is no log key yet" 3 "no checkpoint key yet" s audit verify

# --- keys on the token that no record names (a creation that crashed, or another tool) -------
[[ $(s key unrecorded --json | json "len(d)") == 0 ]] && ok "signet's own keys are all recorded" || bad "unrecorded after signet's own work: $(s key unrecorded --json)"
# What a crash between C_GenerateKeyPair and the record leaves, and another tool's key.
p11 --keypairgen --key-type EC:prime256v1 --id 0badc0de --label left-behind >/dev/null 2>&1
p11 --keypairgen --key-type rsa:2048 --id 0badc0df --label other-tool >/dev/null 2>&1
got=$(s key unrecorded --json | json "sorted((k['hsm_key_id'], k['algorithm'], k['label']) for k in d)")
[[ $got == "[('0badc0de', 'ec-p256', 'left-behind'), ('0badc0df', 'other', 'other-tool')]" ]] \
  && ok "key unrecorded lists exactly the keys pkcs11-tool made" || bad "key unrecorded: $got"
s key unrecorded | grep -q "destroy-unrecorded" && ok "its text says how to remove one" || bad "key unrecorded text"
rec=$(s key show k-ec-p384 --json | json "d['hsm_key_id']")
expect_error "a recorded key is not destroyed as unrecorded" 6 "key destroy" s key destroy-unrecorded "$rec" --yes
expect_error "an id the token lacks is not found" 3 "no private key with id 0102" s key destroy-unrecorded 0102 --yes
expect_error "an id that is not hex is refused" 2 "hex" s key destroy-unrecorded 0xzz --yes
s key destroy-unrecorded 0badc0de </dev/null >/dev/null 2>$W/err; rc=$?
[[ $rc == 6 ]] && grep -q "pass --yes" $W/err && ok "destroy-unrecorded without confirmation is refused" || bad "destroy-unrecorded without confirmation: exit $rc, $(cat $W/err)"
echo 0badc0df | s key destroy-unrecorded 0badc0de >/dev/null 2>&1 && bad "a mistyped confirmation destroyed the key" || ok "a mistyped confirmation is refused"
echo 0badc0de | s key destroy-unrecorded 0badc0de >/dev/null 2>&1 && ok "typed confirmation destroys the unrecorded key" || bad "destroy-unrecorded failed"
objs=$(p11 --list-objects 2>/dev/null | grep -c "ID: *0badc0de")
[[ $objs == 0 ]] && ok "pkcs11-tool finds no object of the destroyed unrecorded key" || bad "unrecorded key still has $objs objects"
[[ $(p11 --list-objects 2>/dev/null | grep -c "ID: *0badc0df") == 2 ]] && ok "the other tool's key is untouched" || bad "the other tool's key changed"
[[ $(s key show k-ec-p384 --json | json "d['present_in_hsm']") == True ]] && ok "the recorded key is untouched" || bad "recorded key changed"
p11 --keypairgen --key-type EC:prime256v1 --id d0d0 --label twin-1 >/dev/null 2>&1
p11 --keypairgen --key-type EC:prime256v1 --id d0d0 --label twin-2 >/dev/null 2>&1
expect_error "two private keys with one id are left to the HSM's tools" 6 "2 private keys" s key destroy-unrecorded d0d0 --yes
[[ $(p11 --list-objects 2>/dev/null | grep -c "ID: *d0d0") == 4 ]] && ok "both twins are untouched" || bad "twins changed"
entry=$(sqlite3 $D/signet.db "select json_extract(data,'$.outcome') || ' ' || json_extract(data,'$.details.unrecorded') || ' ' || json_extract(data,'$.details.label') from log_entries where action = 'key_destroy' and json_extract(data,'$.object') = 'hsm:0badc0de' and json_extract(data,'$.details.hsm') = 'removed'")
[[ $entry == "success true left-behind" ]] && ok "the destruction is in the audit log" || bad "log entry for hsm:0badc0de: '$entry'"
refusals=$(sqlite3 $D/signet.db "select count(*) from log_entries where action = 'key_destroy' and json_extract(data,'$.object') = 'hsm:$rec' and json_extract(data,'$.outcome') != 'success'")
[[ $refusals == 1 ]] && ok "the refused destruction is in the audit log" || bad "refusals logged for hsm:$rec: $refusals"

# --- bad input: one clear line, non-zero exit, nothing changed --------------------------------
count_objs() { p11 --list-objects 2>/dev/null | grep -c "Object"; }
objs_before=$(count_objs)
keys_before=$(s key list --json | json "len(d)")
expect_error "unknown algorithm" 2 "unknown key algorithm 'rsa-1024'" s key create --name x1 --alg rsa-1024
expect_error "ed25519 is not a code-signing algorithm" 2 "not allowed for code-signing" s key create --name x1 --alg ed25519
expect_error "bad key name" 2 "key name" s key create --name "bad name" --alg ec-p256
expect_error "duplicate name" 4 "already exists" s key create --name k-ec-p256 --alg ec-p256
expect_error "unknown key" 3 "no-such-key" s key show no-such-key
expect_error "bad subject" 2 "subject" s key csr k-ec-p256 --subject "CN=missing-slash"
expect_error "wrong PIN, naming where it came from" 5 "the PIN came from SIGNET_PIN" env SIGNET_PIN=wrong-pin-1234 "$SIGNET" --data-dir $D key list
echo "wrong-pin-5678" >"$W/wrong.pin" && chmod 600 "$W/wrong.pin"
expect_error "wrong PIN file, named" 5 "the PIN was read from $W/wrong.pin" s --pin-file "$W/wrong.pin" key list
expect_error "missing module" 3 "/nonexistent/libpkcs11.so" s --module /nonexistent/libpkcs11.so key list
expect_error "wrong token label" 3 "no-such-token" s --token-label no-such-token key list
expect_error "missing data folder" 3 "signet init" "$SIGNET" --data-dir $W/nothing-here key list
[[ $(count_objs) == "$objs_before" && $(s key list --json | json "len(d)") == "$keys_before" ]] && ok "failed commands left token and database unchanged" || bad "failed commands changed state"

# A corrupt and a foreign database, each in a copy of the data folder.
cp -a $D $W/corrupt && sed -i "s#$D/tokens#$W/corrupt/tokens#" $W/corrupt/softhsm2.conf
head -c 65536 /dev/urandom >$W/corrupt/signet.db; rm -f $W/corrupt/signet.db-wal $W/corrupt/signet.db-shm
expect_error "a corrupt database is refused" 8 "signet.db" "$SIGNET" --data-dir $W/corrupt key list
cp -a $D $W/foreign && sed -i "s#$D/tokens#$W/foreign/tokens#" $W/foreign/softhsm2.conf
rm -f $W/foreign/signet.db*; python3 -c "import sqlite3; c=sqlite3.connect('$W/foreign/signet.db'); c.execute('create table songs(t text)'); c.commit()"
expect_error "a foreign database is refused" 6 "another application" "$SIGNET" --data-dir $W/foreign key list
# A data folder without permission, as an unprivileged user (root would bypass the mode).
if command -v setpriv >/dev/null && [[ $(id -u) == 0 ]]; then
  expect_error "a data folder without permission" 5 "permission" setpriv --reuid=65534 --regid=65534 --clear-groups "$SIGNET" --data-dir $D key list
  mkdir -p $W/ro && chmod 555 $W/ro
  expect_error "init where nothing can be written" 5 "permission" setpriv --reuid=65534 --regid=65534 --clear-groups "$SIGNET" --data-dir $W/ro/data init
  [[ -z $(ls -A $W/ro) ]] && ok "failed init left nothing behind" || bad "failed init left: $(ls -A $W/ro)"
  # An empty folder made ahead for the service user under a parent it cannot write (as a
  # package's install -d does) is initialised in place.
  mkdir -p $W/rop/data && chown 65534:65534 $W/rop/data && chmod 755 $W/rop/data && chmod 555 $W/rop
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$SIGNET" --data-dir $W/rop/data init 2>&1) \
    && [[ -f $W/rop/data/signet.toml && $(ls -A $W/rop) == data && $(stat -c %a $W/rop/data) == 700 ]] \
    && [[ -z $(ls -A $W/rop/data | grep signet-init) ]] \
    && setpriv --reuid=65534 --regid=65534 --clear-groups "$SIGNET" --data-dir $W/rop/data status >/dev/null 2>&1 \
    && ok "init of an empty folder under a parent it cannot write" || bad "init in place: $out ($(ls -la $W/rop/data | tr '\n' '|'))"
  chmod 755 $W/rop
else
  chmod 000 $D; expect_error "a data folder without permission" 5 "permission" s key list; chmod 700 $D
fi
# A symlink to an empty folder is initialised through the link (a rename onto it would fail).
mkdir -p $W/real && ln -s $W/real $W/link
out=$("$SIGNET" --data-dir $W/link init 2>&1) && [[ -f $W/real/signet.toml && -L $W/link ]] \
  && "$SIGNET" --data-dir $W/link status >/dev/null 2>&1 \
  && ok "init through a symlink to an empty folder" || bad "init through a symlink: $out"
# A fresh volume's lost+found does not make it "not empty"; it stays.
mkdir -p $W/vol/lost+found
out=$("$SIGNET" --data-dir $W/vol init 2>&1) && [[ -f $W/vol/signet.toml && -d $W/vol/lost+found ]] \
  && ok "init of a folder holding only lost+found" || bad "init with lost+found: $out"
# The remains of an interrupted in-place init are named as such.
mkdir -p $W/crashed/.signet-init-AbC123 && touch $W/crashed/signet.db
expect_error "the remains of an interrupted init are named" 6 "remains of an interrupted signet init" \
  "$SIGNET" --data-dir $W/crashed init
# A second init of the same existing folder waits for none: it is refused while the first runs.
mkdir -p $W/busy
flock $W/busy sleep 5 &
lock_pid=$!
for _ in $(seq 1 50); do [[ -n $(ls /proc/$lock_pid/fd 2>/dev/null) ]] && break; sleep 0.05; done
sleep 0.3
expect_error "a concurrent init of one folder is refused" 6 "another signet init is setting up" \
  "$SIGNET" --data-dir $W/busy init
kill $lock_pid 2>/dev/null; wait $lock_pid 2>/dev/null
[[ -z $(ls -A $W/busy) ]] && ok "... and left the folder as it was" || bad "busy folder: $(ls -A $W/busy)"
mkdir -p $W/full && touch $W/full/somefile
expect_error "init refuses a non-empty foreign folder" 6 "not empty" "$SIGNET" --data-dir $W/full init
expect_error "init with a missing module leaves nothing" 3 "/nonexistent/p11.so" "$SIGNET" --data-dir $W/new --module /nonexistent/p11.so init
[[ ! -e $W/new && -z $(ls -a $W | grep signet-init) ]] && ok "failed init left no partial data folder" || bad "failed init left files"
# A module other than SoftHSM2 (here OpenSC's) is refused before any slot is touched: init would
# otherwise initialise a token of a real HSM.
if [[ -f /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so ]]; then
  expect_error "init with a module that is not SoftHSM2 is refused" 6 "not SoftHSM; no token was initialised" \
    "$SIGNET" --data-dir $W/new --module /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so init
  [[ ! -e $W/new && -z $(ls -a $W | grep signet-init) ]] && ok "... and left nothing" || bad "init with OpenSC left files"
fi
echo 'bogus = 1' >>$W/foreign/signet.toml
expect_error "an unknown setting in signet.toml is refused" 2 "bogus" "$SIGNET" --data-dir $W/foreign key list

finish
