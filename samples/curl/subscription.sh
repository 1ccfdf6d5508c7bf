#!/usr/bin/env bash
# A subscription and its notifications with curl against one CSE:
#
#   python -m cse                                   # IN-CSE /id-in "cse-in" on :8080
#   bash samples/curl/subscription.sh [CSE_URL] [CSE_NAME]
#
# The notification receiver is `python -m ae_sdk listen --port 0` in the
# background: it answers the CSE's verification request with 2000, prints
# each notification as one JSON line (to notes.jsonl here) and says
# "LISTENING <url>" on stderr. The AE subscribes to new contentInstances of
# its container (net 3), creates one, waits for the notification line, then
# deletes the subscription (the receiver is told: sud, as su is set).
# The last line is "SUBSCRIPTION OK".
source "$(dirname "$0")/lib.sh"
CSE=${1:-http://127.0.0.1:8080}
NAME=${2:-cse-in}
APP=subs-$RUN
P=$NAME/$APP

echo "# start the notification receiver"
python -m ae_sdk listen --port 0 --timeout 300 > notes.jsonl 2> listen.log &
LISTENER=$!
CLEANUP+=("kill $LISTENER 2>/dev/null; wait $LISTENER 2>/dev/null")
for i in $(seq 100); do grep -q '^LISTENING ' listen.log && break; sleep 0.1; done
NU=$(sed -n 's/^LISTENING //p' listen.log)
[ -n "$NU" ] || { echo "FAILED: the receiver did not start: $(cat listen.log)" >&2; exit 1; }
echo "receiver at $NU"

echo "# register an AE and create a container"
m2m 2001 -X POST "${H[@]}" -H 'X-M2M-Origin: C' -H 'Content-Type: application/json;ty=2' \
  -d "{\"m2m:ae\": {\"rn\": \"$APP\", \"api\": \"Nsubs\", \"rr\": false, \"srv\": [\"3\"]}}" "$CSE/$NAME"
AE=$(json 'j["m2m:ae"]["aei"]')
delete_at_exit "$AE" "$CSE/$P"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=3' \
  -d '{"m2m:cnt": {"rn": "data"}}' "$CSE/$P"

echo "# subscribe to new contentInstances (net 3, whole resource nct 1); the CSE verifies nu first"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=23' \
  -d "{\"m2m:sub\": {\"rn\": \"sub1\", \"nu\": [\"$NU\"], \"su\": \"$NU\", \"enc\": {\"net\": [3]}, \"nct\": 1}}" \
  "$CSE/$P/data"

echo "# create a contentInstance: the receiver prints the notification"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=4' \
  -d '{"m2m:cin": {"cnf": "text/plain:0", "con": "21.5"}}' "$CSE/$P/data"
wait_for "contentInstance" 'n.get("m2m:sgn",{}).get("nev",{}).get("rep",{}).get("m2m:cin",{}).get("con") == "21.5"'

echo "# delete the subscription: the receiver gets the deletion notice (sud)"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P/data/sub1"
wait_for "deletion (sud)" 'n.get("m2m:sgn",{}).get("sud") is True'

echo "# clean up"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P"
echo "SUBSCRIPTION OK"
