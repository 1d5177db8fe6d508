# Shared helpers for signet's shell end-to-end tests. Each check prints one line; the script exits
# non-zero at the end if any check failed, and prints "N passed, N failed".
set -u
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() {  # check "description" command...
  local d=$1; shift
  if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}
# expect_error "description" EXIT_CODE "fragment of the one-line message" command...
# Passes when the command exits with EXIT_CODE, prints exactly one line on stderr, and that line
# contains the fragment.
expect_error() {
  local d=$1 code=$2 frag=$3; shift 3
  local err out rc
  err=$(mktemp)
  out=$("$@" 2>"$err" </dev/null); rc=$?
  local lines; lines=$(wc -l <"$err")
  if [[ $rc -eq $code && $lines -eq 1 ]] && grep -qF -- "$frag" "$err"; then
    ok "$d"
  else
    bad "$d (exit $rc, want $code; stderr: $(head -c 400 "$err" | tr '\n' '|'); want '$frag')"
  fi
  rm -f "$err"
}
finish() {
  echo "$PASS passed, $FAIL failed"
  [[ $FAIL -eq 0 ]]
}
