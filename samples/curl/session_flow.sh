#!/usr/bin/env bash
# Flow 2 of docs/sessions.md (a session-based request) with curl alone, against a running pair:
#
#   python -m cse.cluster samples/pair                    # CSE1 :8081, CSE2 :8082
#   bash samples/curl/session_flow.sh [CSE1_URL] [CSE2_URL]
#
# AE1 registers at CSE1, AE2 at CSE2 (both with scp smg; AE2's poa is a loopback
# listener, `python -m ae_sdk listen`), AE2 creates container1 and subscribes to
# its sessions, AE1 discovers AE2 through CSE1 and establishes a session, then
# sends a signed session-based UPDATE of AE2's container1 and a signed CREATE
# of a contentInstance (its con encrypted end to end) through CSE1; AE2 reads
# it back with ?sessionID= and decrypts it; AE1 terminates the session.
# Signing and encryption use `python -m ae_sdk sign|encrypt|decrypt`; JSON is
# read with `python -c` (no jq needed). Every answer's X-M2M-RSC is checked:
# the script stops with exit code 1 at the first unexpected one.
# The last line is "SESSION FLOW OK".
set -euo pipefail

CSE1=${1:-http://127.0.0.1:8081}
CSE2=${2:-http://127.0.0.1:8082}
source "$(dirname "$0")/lib.sh"          # m2m, json, wait_for; a temp work dir
SEVT='n.get("m2m:sgn",{}).get("nev",{}).get("rep",{}).get("m2m:sevt",{})'
H=(-H 'X-M2M-RI: 1' -H 'X-M2M-RVI: 3')     # every request: a request ID and the release version

echo "# AE2's notification receiver (accepts sessions, prints each notification as a JSON line)"
python -m ae_sdk listen --port 0 --accept --timeout 300 > notes.jsonl 2> listen.log &
LISTENER=$!
CLEANUP+=("kill $LISTENER 2>/dev/null; wait $LISTENER 2>/dev/null")
for i in $(seq 100); do grep -q '^LISTENING ' listen.log && break; sleep 0.1; done
NU=$(sed -n 's/^LISTENING //p' listen.log)
[ -n "$NU" ] || { echo "FAILED: the listener did not start: $(cat listen.log)" >&2; exit 1; }

echo "# register AE1 at CSE1 and AE2 at CSE2, both session-capable (scp smg)"
m2m 2001 -X POST "${H[@]}" -H 'X-M2M-Origin: C' -H 'Content-Type: application/json;ty=2' \
  -d "{\"m2m:ae\": {\"rn\": \"AE1-$RUN\", \"api\": \"Nae1\", \"rr\": false, \"srv\": [\"3\"], \"scp\": [\"smg\"]}}" \
  "$CSE1/cse1"
AE1=$(json 'j["m2m:ae"]["aei"]')
m2m 2001 -X POST "${H[@]}" -H 'X-M2M-Origin: C' -H 'Content-Type: application/json;ty=2' \
  -d "{\"m2m:ae\": {\"rn\": \"AE2-$RUN\", \"api\": \"Nae2\", \"rr\": true, \"srv\": [\"3\"], \"scp\": [\"smg\"], \"poa\": [\"$NU\"]}}" \
  "$CSE2/cse2"
AE2=$(json 'j["m2m:ae"]["aei"]')

echo "# AE2 creates container1 and subscribes to its sessions (nu = its AE-ID: delivered to its poa)"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE2" -H 'Content-Type: application/json;ty=3' \
  -d '{"m2m:cnt": {"rn": "container1"}}' "$CSE2/cse2/AE2-$RUN"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE2" -H 'Content-Type: application/json;ty=23' \
  -d "{\"m2m:sub\": {\"rn\": \"sessionEvents\", \"nu\": [\"$AE2\"]}}" "$CSE2/cse2/AE2-$RUN/sessions"

echo "# AE1 discovers session-capable AEs on CSE2, through CSE1"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE1" "$CSE1/~/id-cse2/cse2?fu=1&ty=2&scp=smg"
json "'/id-cse2/cse2/AE2-$RUN' if '/id-cse2/cse2/AE2-$RUN' in j['m2m:uril'] else sys.exit('AE2 not discovered: %s' % j)"

echo "# AE1 establishes a session with AE2 (the listener accepts it)"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE1" -H 'Content-Type: application/json;ty=9002' \
  -d "{\"m2m:sess\": {\"tep\": \"/id-cse2/$AE2\", \"epa\": {\"role\": \"collector\"}}}" "$CSE1/cse1/AE1-$RUN/sessions"
SID=$(json 'j["m2m:sess"]["sid"]')
KEY=$(json 'j["m2m:sess"]["scr"]["key"]')
KID=$(json 'j["m2m:sess"]["scr"]["kid"]')
SES=$(json 'j["m2m:sess"]["rn"]')
wait_for establishment "$SEVT.get('typ') == 1"
KEY2=$(python -c "import json; print(json.load(open('note.json'))['m2m:sgn']['nev']['rep']['m2m:sevt']['scr']['key'])")
[ "$KEY2" = "$KEY" ] || { echo "FAILED: AE2 was given another key" >&2; exit 1; }

TO=/id-cse2/cse2/AE2-$RUN/container1
echo "# AE1: signed session-based UPDATE of AE2's container1, through CSE1"
printf '{"m2m:cnt": {"lbl": ["updated-in-session"]}}' > update.json
python -m ae_sdk sign --op UPDATE --to "$TO" --sid "$SID" --key "$KEY" --body-file update.json > sig.txt
m2m 2004 -X PUT -H @sig.txt -H "X-M2M-Origin: $AE1" -H 'X-M2M-RVI: 3' -H 'Content-Type: application/json' \
  --data-binary @update.json "$CSE1/~$TO"
wait_for "update (typ 2)" "$SEVT.get('typ') == 2 and $SEVT.get('res') == '$TO'"

echo "# AE1: signed CREATE of a contentInstance whose con is encrypted end to end"
CON=$(python -m ae_sdk encrypt --sid "$SID" --kid "$KID" --key "$KEY" '21.5')
printf '{"m2m:cin": {"rn": "reading1", "cnf": "text/plain:0", "con": "%s"}}' "$CON" > cin.json
python -m ae_sdk sign --op CREATE --to "$TO" --sid "$SID" --key "$KEY" --body-file cin.json > sig.txt
m2m 2001 -X POST -H @sig.txt -H "X-M2M-Origin: $AE1" -H 'X-M2M-RVI: 3' -H 'Content-Type: application/json;ty=4' \
  --data-binary @cin.json "$CSE1/~$TO"

echo "# AE2 retrieves it at CSE2 with ?sessionID= (signed with the key from its notification) and decrypts it"
python -m ae_sdk sign --op RETRIEVE --to "cse2/AE2-$RUN/container1/la" --csi /id-cse2 --sid "$SID" \
  --key "$KEY2" --query-sid > sig.txt
m2m 2000 -H @sig.txt -H "X-M2M-Origin: $AE2" -H 'X-M2M-RVI: 3' \
  "$CSE2/cse2/AE2-$RUN/container1/la?sessionID=$SID"
VALUE=$(python -m ae_sdk decrypt --sid "$SID" --key "$KEY2" "$(json 'j["m2m:cin"]["con"]')")
[ "$VALUE" = "21.5" ] || { echo "FAILED: AE2 decrypted '$VALUE', not 21.5" >&2; exit 1; }
echo "AE2 read con = $VALUE"

echo "# AE1 terminates the session; AE2 is told (typ 3); the sid is unknown afterwards"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE1" "$CSE1/cse1/AE1-$RUN/sessions/$SES"
wait_for "termination (typ 3)" "$SEVT.get('typ') == 3"
python -m ae_sdk sign --op RETRIEVE --to "$TO" --sid "$SID" --key "$KEY" > sig.txt
m2m 4004 -H @sig.txt -H "X-M2M-Origin: $AE1" -H 'X-M2M-RVI: 3' "$CSE1/~$TO"

echo "# clean up: deregister both AEs"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE1" "$CSE1/cse1/AE1-$RUN"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE2" "$CSE2/cse2/AE2-$RUN"
echo "SESSION FLOW OK"
