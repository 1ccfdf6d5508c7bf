#!/usr/bin/env bash
# Discovery (fu=1) with curl against one CSE:
#
#   python -m cse                                   # IN-CSE /id-in "cse-in" on :8080
#   bash samples/curl/discovery.sh [CSE_URL] [CSE_NAME]
#
# An AE with three containers (temp-1 and hum-1 labelled room:kitchen, temp-2
# room:hall) is searched by label, by type with a limit, for resource IDs
# (drt=2), by attribute with a wildcard (rn=temp*) and with conditions ORed
# (fo=2). The answer is {"m2m:uril": [...]}; every X-M2M-RSC and every list
# is checked; the last line is "DISCOVERY OK".
source "$(dirname "$0")/lib.sh"
CSE=${1:-http://127.0.0.1:8080}
NAME=${2:-cse-in}
APP=disc-$RUN
P=$NAME/$APP

echo "# register an AE and create three labelled containers"
m2m 2001 -X POST "${H[@]}" -H 'X-M2M-Origin: C' -H 'Content-Type: application/json;ty=2' \
  -d "{\"m2m:ae\": {\"rn\": \"$APP\", \"api\": \"Ndisc\", \"rr\": false, \"srv\": [\"3\"]}}" "$CSE/$NAME"
AE=$(json 'j["m2m:ae"]["aei"]')
delete_at_exit "$AE" "$CSE/$P"
for c in temp-1:room:kitchen temp-2:room:hall hum-1:room:kitchen; do
  m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE" -H 'Content-Type: application/json;ty=3' \
    -d "{\"m2m:cnt\": {\"rn\": \"${c%%:*}\", \"lbl\": [\"${c#*:}\"]}}" "$CSE/$P"
done
# found EXPECTED: the last discovery found exactly these (sorted, space-separated)
found() { check "' '.join(sorted(j['m2m:uril'])) == '$1'" "expected [$1]"; json '" ".join(sorted(j["m2m:uril"]))'; }

echo "# containers labelled room:kitchen"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P?fu=1&ty=3&lbl=room:kitchen"
found "$P/hum-1 $P/temp-1"

echo "# all containers, at most 2 (lim)"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P?fu=1&ty=3&lim=2"
check 'len(j["m2m:uril"]) == 2' "lim=2 did not cap the answer"

echo "# the same as resource IDs instead of structured paths (drt=2)"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P?fu=1&ty=3&lbl=room:hall&drt=2"
check 'len(j["m2m:uril"]) == 1 and "/" not in j["m2m:uril"][0].strip("/")' "drt=2 did not answer one resource ID"
json 'j["m2m:uril"][0]'

echo "# by attribute, with a wildcard: rn=temp*"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P?fu=1&ty=3&rn=temp*"
found "$P/temp-1 $P/temp-2"

echo "# conditions ORed (fo=2): labelled room:hall OR named hum*"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P?fu=1&fo=2&lbl=room:hall&rn=hum*"
found "$P/hum-1 $P/temp-2"

echo "# clean up"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE" "$CSE/$P"
echo "DISCOVERY OK"
