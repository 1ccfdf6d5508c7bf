#!/usr/bin/env bash
# Requests between two CSEs with curl (README "A pair of CSEs"):
#
#   python -m cse.cluster samples/pair              # CSE1 /id-cse1 on :8081, CSE2 /id-cse2 on :8082
#   bash samples/curl/pair.sh [CSE1_URL] [CSE2_URL]
#
# AE1 registers at CSE1, AE2 at CSE2; AE2 creates a labelled container (with
# an ACP letting AE1 read and discover it) and an instance. Then, through
# CSE1 only (/~/id-cse2/...: CSE1 forwards and relays the answer): the admin
# reads CSE2's CSEBase, AE1 discovers AE2 and its container on CSE2 and
# reads the latest instance; deleting it is refused (4103).
# The last line is "PAIR OK".
source "$(dirname "$0")/lib.sh"
CSE1=${1:-http://127.0.0.1:8081}
CSE2=${2:-http://127.0.0.1:8082}

echo "# AE1 registers at CSE1"
m2m 2001 -X POST "${H[@]}" -H 'X-M2M-Origin: C' -H 'Content-Type: application/json;ty=2' \
  -d "{\"m2m:ae\": {\"rn\": \"AE1-$RUN\", \"api\": \"Nae1\", \"rr\": false, \"srv\": [\"3\"]}}" "$CSE1/cse1"
AE1=$(json 'j["m2m:ae"]["aei"]')
delete_at_exit "$AE1" "$CSE1/cse1/AE1-$RUN"

echo "# AE2 registers at CSE2 (directly), labelled pair:$RUN"
m2m 2001 -X POST "${H[@]}" -H 'X-M2M-Origin: C' -H 'Content-Type: application/json;ty=2' \
  -d "{\"m2m:ae\": {\"rn\": \"AE2-$RUN\", \"api\": \"Nae2\", \"rr\": false, \"srv\": [\"3\"], \"lbl\": [\"pair:$RUN\"]}}" \
  "$CSE2/cse2"
AE2=$(json 'j["m2m:ae"]["aei"]')
delete_at_exit "$AE2" "$CSE2/cse2/AE2-$RUN"

echo "# AE2 lets AE1 retrieve and discover (acop 2+32) its container, itself do all (63)"
echo "# (AE1 arrives at CSE2 as /id-cse1/$AE1)"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE2" -H 'Content-Type: application/json;ty=1' \
  -d "{\"m2m:acp\": {\"rn\": \"readers\", \"pv\": {\"acr\": [{\"acor\": [\"/id-cse1/$AE1\"], \"acop\": 34},
                                 {\"acor\": [\"$AE2\"], \"acop\": 63}]},
       \"pvs\": {\"acr\": [{\"acor\": [\"$AE2\"], \"acop\": 63}]}}}" "$CSE2/cse2/AE2-$RUN"
ACP=$(json 'j["m2m:acp"]["ri"]')
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE2" -H 'Content-Type: application/json;ty=3' \
  -d "{\"m2m:cnt\": {\"rn\": \"data\", \"lbl\": [\"room:kitchen\"], \"acpi\": [\"$ACP\"]}}" "$CSE2/cse2/AE2-$RUN"
m2m 2001 -X POST "${H[@]}" -H "X-M2M-Origin: $AE2" -H 'Content-Type: application/json;ty=4' \
  -d '{"m2m:cin": {"cnf": "text/plain:0", "con": "21.5"}}' "$CSE2/cse2/AE2-$RUN/data"

echo "# CSE2's CSEBase, through CSE1"
m2m 2000 "${H[@]}" -H 'X-M2M-Origin: CAdmin' "$CSE1/~/id-cse2/cse2"
check 'j["m2m:cb"]["csi"] == "/id-cse2"' "this is not CSE2's CSEBase"

echo "# AE1 discovers AE2 on CSE2 by its label, through CSE1 (forwarded discovery)"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE1" "$CSE1/~/id-cse2/cse2?fu=1&ty=2&lbl=pair:$RUN"
check "j['m2m:uril'] == ['/id-cse2/cse2/AE2-$RUN']" "AE2 was not discovered (SP-relative: it is on CSE2)"
json 'j["m2m:uril"]'

echo "# AE1 discovers AE2's kitchen containers and reads the latest instance, through CSE1"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE1" "$CSE1/~/id-cse2/cse2/AE2-$RUN?fu=1&ty=3&lbl=room:kitchen"
check "j['m2m:uril'] == ['/id-cse2/cse2/AE2-$RUN/data']" "the container was not discovered"
m2m 2000 "${H[@]}" -H "X-M2M-Origin: $AE1" "$CSE1/~/id-cse2/cse2/AE2-$RUN/data/la"
check 'j["m2m:cin"]["con"] == "21.5"' "not the instance AE2 created"

echo "# the ACP grants no more: AE1 may not delete the container (4103)"
m2m 4103 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE1" "$CSE1/~/id-cse2/cse2/AE2-$RUN/data"

echo "# clean up: deregister both AEs"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE2" "$CSE2/cse2/AE2-$RUN"
m2m 2002 -X DELETE "${H[@]}" -H "X-M2M-Origin: $AE1" "$CSE1/cse1/AE1-$RUN"
echo "PAIR OK"
