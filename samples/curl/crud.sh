#!/usr/bin/env bash
# CRUD with curl against one CSE (README "Talking to it with curl"):
#
#   python -m cse                                   # IN-CSE /id-in "cse-in" on :8080
#   bash samples/curl/crud.sh [CSE_URL] [CSE_NAME]
#
# Registers an AE, creates a container and a contentInstance (rcn=2), reads
# it back (la, ol, rcn=4, atrl), updates with null (removes an attribute),
# deletes the AE (4004 afterwards), and shows two errors: a request without
# X-M2M-RVI (4001) and a body that is not JSON (4000). Every X-M2M-RSC is
# checked; the last line is "CRUD OK".
source "$(dirname "$0")/lib.sh"
CSE=${1:-http://127.0.0.1:8080}
NAME=${2:-cse-in}
APP=crud-$RUN

echo "# register an AE (origin C: the CSE assigns the AE-ID, returned in aei)"
m2m 2001 -X POST "${H[@]}" -H 'X-M2M-Origin: C' -H 'Content-Type: application/json;ty=2' \
  -d "{\"m2m:ae\": {\"rn\": \"$APP\", \"api\": \"Ncrud\", \"rr\": false, \"srv\": [\"3\"]}}" "$CSE/$NAME"
AE=$(json 'j["m2m:ae"]["aei"]')
delete_at_exit "$AE" "$CSE/$NAME/$APP"         # also if a step fails

echo "# create a container with labels"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=3' \
  -d '{"m2m:cnt": {"rn": "data", "mni": 100, "lbl": ["room:kitchen"]}}' "$CSE/$NAME/$APP"

echo "# create two contentInstances; rcn=2 answers only the new one's address"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=4' \
  -d '{"m2m:cin": {"cnf": "text/plain:0", "con": "21.5"}}' "$CSE/$NAME/$APP/data?rcn=2"
check '"m2m:uri" in j' "rcn=2 did not answer an address"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=4' \
  -d '{"m2m:cin": {"cnf": "text/plain:0", "con": "22.0"}}' "$CSE/$NAME/$APP/data"

echo "# the latest (la) and the oldest (ol) instance; la in the SP-relative form /~/<cse-id>/..."
CSEID=$(curl -sS "${H[@]}" -H 'X-M2M-Origin: CAdmin' "$CSE/$NAME" | python -c 'import json,sys; print(json.load(sys.stdin)["m2m:cb"]["csi"])')
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/~$CSEID/$NAME/$APP/data/la"
check 'j["m2m:cin"]["con"] == "22.0"' "la is not the latest"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$NAME/$APP/data/ol"
check 'j["m2m:cin"]["con"] == "21.5"' "ol is not the oldest"

echo "# the container with its children inline (rcn=4)"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$NAME/$APP/data?rcn=4"
check 'len(j["m2m:cnt"]["m2m:cin"]) == 2' "rcn=4 did not hold both instances"

echo "# partial retrieve: only cni and cbs (atrl)"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$NAME/$APP/data?atrl=cni+cbs"
check 'j["m2m:cnt"] == {"cni": 2, "cbs": 8}' "atrl answered other attributes"

echo "# update: change mni, remove the labels (null)"
m2m 2004 -X PUT "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json' \
  -d '{"m2m:cnt": {"mni": 5, "lbl": null}}' "$CSE/$NAME/$APP/data"
check 'j["m2m:cnt"]["mni"] == 5 and "lbl" not in j["m2m:cnt"]' "the update did not apply"

echo "# errors: no X-M2M-RVI (4001), a body that is not JSON (4000)"
m2m 4001 -H 'X-M2M-RI: 1' -H "X-M2M-Origin: $AE" "$CSE/$NAME/$APP/data"
m2m 4000 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=4' \
  -d '{"m2m:cin": {"con": ' "$CSE/$NAME/$APP/data"

echo "# delete the AE and everything below it; it is gone afterwards (4004), and so is its AE-ID (4103)"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$NAME/$APP"
m2m 4004 "${H[@]}" -H 'X-M2M-Origin: CAdmin' "$CSE/$NAME/$APP/data"
m2m 4103 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$NAME/$APP/data"
echo "CRUD OK"
