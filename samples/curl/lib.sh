# Shared helpers for the curl walkthroughs (sourced, not run). They need bash,
# curl and python (for reading JSON; no jq). Each script works in a temp dir.
#
#   m2m WANT CURL-ARGS...  send one request (headers -> head.txt, body -> body.json);
#                          stop with exit code 1 unless X-M2M-RSC is WANT
#   json EXPR              print a Python expression over the last body (named j)
#   check EXPR MESSAGE     stop with exit code 1 unless EXPR (over j) is true
#   delete_at_exit ORIGIN URL  delete URL when the script ends (also on failure)
#   wait_for WHAT EXPR     wait (up to 15 s) for a line n of notes.jsonl (a notification
#                          printed by `python -m ae_sdk listen`) with EXPR true; print
#                          it and keep it in note.json
set -euo pipefail

WORK=$(mktemp -d)
CLEANUP=()                                  # commands run at exit
cleanup() {
  local c
  for c in "${CLEANUP[@]+"${CLEANUP[@]}"}"; do eval "$c" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
delete_at_exit() {
  CLEANUP+=("curl -s -o /dev/null -X DELETE -H 'X-M2M-RI: 1' -H 'X-M2M-RVI: 3' -H 'X-M2M-Origin: $1' '$2'")
}
cd "$WORK"

H=(-H 'X-M2M-RI: 1' -H 'X-M2M-RVI: 3')    # every request: a request ID and the release version
RUN=${RUN:-$$$RANDOM}                       # makes resource names unique per run

m2m() {
  local want=$1 got
  shift
  curl -sS -D head.txt -o body.json "$@"
  got=$(tr -d '\r' < head.txt | sed -n 's/^[Xx]-[Mm]2[Mm]-[Rr][Ss][Cc]: *//p' | tail -n 1)
  if [ "$got" != "$want" ]; then
    echo "FAILED: expected X-M2M-RSC $want, got ${got:-none}: $(cat body.json 2>/dev/null)" >&2
    exit 1
  fi
  echo "ok $got ${*: -1}"
}
json() { python -c "import json,sys; j=json.load(open('body.json')); print($1)"; }
check() {
  python -c "import json,sys; j=json.load(open('body.json')); sys.exit(0 if ($1) else 1)" \
    || { echo "FAILED: $2: $(cat body.json)" >&2; exit 1; }
}
wait_for() {
  local i
  for i in $(seq 150); do
    if python -c "
import json,sys
for line in open('notes.jsonl'):
    n=json.loads(line)
    if $2: print(line.strip()); sys.exit(0)
sys.exit(1)" > note.json 2>/dev/null; then cat note.json; return 0; fi
    sleep 0.1
  done
  echo "FAILED: no $1 notification within 15 s: $(cat notes.jsonl)" >&2
  exit 1
}
