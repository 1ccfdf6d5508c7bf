#!/usr/bin/env bash
# A non-blocking request (rt=1) with curl against one CSE:
#
#   python -m cse                                   # IN-CSE /id-in "cse-in" on :8080
#   bash samples/curl/nonblocking.sh [CSE_URL] [CSE_NAME]
#
# A CREATE with ?rt=1 is answered 1001 at once with {"m2m:uri": "<request ri>"};
# the CSE runs it in the background and records the outcome in that <request>
# resource, which is polled (GET) until rs is 1 (completed) or 2 (failed).
# Its ors holds the operation's response (rsc 2001 and the new instance).
# The last line is "NONBLOCKING OK".
source "$(dirname "$0")/lib.sh"
CSE=${1:-http://127.0.0.1:8080}
NAME=${2:-cse-in}
APP=nb-$RUN
P=$NAME/$APP

echo "# register an AE and create a container"
m2m 2001 -X POST "${H[@]}" -H 'X-M2M-Origin: C' -H 'Content-Type: application/json;ty=2' \
  -d "{\"m2m:ae\": {\"rn\": \"$APP\", \"api\": \"Nnb\", \"rr\": false, \"srv\": [\"3\"]}}" "$CSE/$NAME"
AE=$(json 'j["m2m:ae"]["aei"]')
delete_at_exit "$AE" "$CSE/$P"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=3' \
  -d '{"m2m:cnt": {"rn": "data"}}' "$CSE/$P"

echo "# create a contentInstance non-blocking (rt=1): 1001 and the <request>'s address"
m2m 1001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=4' \
  -d '{"m2m:cin": {"cnf": "text/plain:0", "con": "22.0"}}' "$CSE/$P/data?rt=1"
REQ=$(json 'j["m2m:uri"]')
echo "request: $REQ"

echo "# poll the <request> until it is done (rs 1 completed, 2 failed; up to 15 s)"
for i in $(seq 150); do
  m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/${REQ#/}" > /dev/null
  case $(json 'j["m2m:req"].get("rs")') in 1|2) break;; esac
  sleep 0.1
done
check 'j["m2m:req"]["rs"] == 1' "the request did not complete"
check 'j["m2m:req"]["ors"]["rsc"] == 2001' "the operation did not answer 2001"
echo "rs=1, ors.rsc=$(json 'j["m2m:req"]["ors"]["rsc"]')"

echo "# the instance is there"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P/data/la"
check 'j["m2m:cin"]["con"] == "22.0"' "the instance was not created"

echo "# clean up"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P"
echo "NONBLOCKING OK"
