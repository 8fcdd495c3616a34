#!/usr/bin/env bash
# Joe in the demo (docs/demo-joe.md): the hospital's ADT feed reports that Joe has arrived in the
# emergency department; his shared crisis plan says who must hear of it, and they do.
#
#   cargo build --release
#   scripts/demo-joe.sh            # offline; a fresh data directory under /tmp, removed afterwards
#
# Environment: CARECIRCLE (the binary, default target/release/carecircle), HTTP_PORT (18080),
# MLLP_PORT (12575), KEEP=1 to keep the server and its data directory when done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARECIRCLE:-$ROOT/target/release/carecircle}"
HTTP_PORT="${HTTP_PORT:-18080}"
MLLP_PORT="${MLLP_PORT:-12575}"
BASE="http://127.0.0.1:$HTTP_PORT"
MLLP="127.0.0.1:$MLLP_PORT"
DATA="$(mktemp -d /tmp/carecircle-demo-joe.XXXXXX)"
ALERTS="https://carecircle.example.org/fhir/CodeSystem/communication-category|care-plan-alert"

[ -x "$BIN" ] || { echo "no carecircle binary at $BIN: run 'cargo build --release' first" >&2; exit 1; }
command -v curl >/dev/null || { echo "this script needs curl" >&2; exit 1; }
command -v python3 >/dev/null || { echo "this script needs python3 (to print the alerts)" >&2; exit 1; }

SERVER=""
cleanup() {
  if [ -n "$SERVER" ] && [ "${KEEP:-0}" != 1 ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$DATA"; else echo "kept: server pid $SERVER, data in $DATA"; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
token() { "$BIN" --data-dir "$DATA" token --user "$1" --audience "$BASE"; }
get() { curl -sS -G -H "Authorization: Bearer $1" "$BASE/$2" "${@:3}"; }

# Prints the care-plan alerts in a searchset: agency, contact, what to do, the plan part attached.
show_alerts() {
  python3 -c '
import base64, json, sys
bundle = json.load(sys.stdin)
alerts = [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == "Communication"]
withheld = [e for e in bundle.get("entry", []) if e["resource"]["resourceType"] == "OperationOutcome"]
if not alerts:
    print("   (no alert)" + ("  [the server withheld something this user may not see]" if withheld else ""))
for a in alerts:
    state = json.loads(next(x["valueString"] for x in a["extension"] if x["url"].endswith("/alert-state")))
    to = [r.get("display") or r.get("reference") for r in a["recipient"]]
    part = json.loads(base64.b64decode(a["payload"][1]["contentAttachment"]["data"]))
    print("   %s  status=%s  occurrences=%s" % (a["id"], a["status"], state["occurrences"]))
    print("   to:     %s" % " / ".join(to))
    print("   do:     %s" % a["payload"][0]["contentString"])
    print("   plan:   \"%s\" (%s)" % (part["detail"]["description"], ", ".join(a2["reference"] for a2 in a["about"])))
    if state.get("acknowledged"):
        print("   acknowledged by %s" % state["acknowledged"]["by"])
'
}

step "Starting the demo partnership with an MLLP listener (data in $DATA)"
"$BIN" --data-dir "$DATA" demo --listen "127.0.0.1:$HTTP_PORT" --mllp "$MLLP" >"$DATA/server.out" 2>"$DATA/server.log" &
SERVER=$!
for _ in $(seq 1 300); do
  if curl -sf "$BASE/healthz" >/dev/null 2>&1; then break; fi
  kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/server.out" "$DATA/server.log" >&2; exit 1; }
  sleep 0.5
done
cat "$DATA/server.out"

step "Joe's shared crisis plan: what the partners agreed to do when he attends the emergency department"
CC=$(token prac-vale-mh-trust-01)
get "$CC" CarePlan/careplan-joe-crisis | python3 -c '
import json, sys
plan = json.load(sys.stdin)
for a in plan["activity"]:
    t = next(x for x in a["extension"] if x["url"].endswith("/careplan-trigger"))["extension"]
    if any(x["url"] == "event" and x["valueCoding"]["code"] == "ed-attendance" for x in t):
        print("   " + a["detail"]["description"])
        for r in (x for x in t if x["url"] == "response"):
            parts = {p["url"]: p for p in r["extension"]}
            who = [c.get("valueReference", {}).get("display") or c.get("valueContactPoint", {}).get("value")
                   for c in r["extension"] if c["url"] == "contact"]
            print("   - %s: %s" % (parts["agency"]["valueReference"]["display"], parts["text"]["valueString"]))
            print("       alert: %s" % " -> ".join(who))
'

step "The hospital's PAS sends an ADT^A04 (emergency department attendance) for Joe over MLLP"
sed -n '1,4p' "$ROOT/docs/demo/joe-ed-a04.hl7" | tr '\r' '\n' | sed 's/^/   /'
"$BIN" hl7 send --to "$MLLP" "$ROOT/docs/demo/joe-ed-a04.hl7"
sleep 1

for who in "prac-vale-mh-trust-01 org-vale-mh-trust Ms Ruth Oyelaran, Joe's care coordinator (Vale Mental Health NHS FT)" \
           "prac-vale-mh-trust-04 org-vale-mh-crisis-team Mr Aaron Whitlock, crisis team practitioner" \
           "prac-northvale-police-01 org-northvale-police-mh-liaison PC Martin Holgate, police mental-health liaison officer" \
           "prac-minsterford-hospital-01 org-minsterford-hospital-ed Mr Callum Brightside, emergency department nurse"; do
  read -r user agency name <<<"$who"
  step "$name: the alert for $agency"
  get "$(token "$user")" Communication --data-urlencode "category=$ALERTS" --data-urlencode "recipient=Organization/$agency" | show_alerts
done

step "Ms Paula Dinsdale, Joe's housing caseworker: in his care team, but the ED trigger does not name housing"
HOUSING=$(token prac-kettlebeck-homes-01)
get "$HOUSING" Communication --data-urlencode "category=$ALERTS" --data-urlencode "recipient=Organization/org-vale-mh-crisis-team" | show_alerts

step "Mr Aaron Whitlock acknowledges the crisis team's alert (escalation to his manager stops)"
CRISIS=$(token prac-vale-mh-trust-04)
CRISIS_ALERT=$(get "$CRISIS" Communication --data-urlencode "category=$ALERTS" --data-urlencode "recipient=Organization/org-vale-mh-crisis-team" \
  | python3 -c 'import json,sys; print(next(e["resource"]["id"] for e in json.load(sys.stdin)["entry"] if e["resource"]["resourceType"] == "Communication"))')
curl -sS -X POST -H "Authorization: Bearer $CRISIS" "$BASE/Communication/$CRISIS_ALERT/\$acknowledge" \
  | python3 -c 'import json,sys; c=json.load(sys.stdin); print("   %s is now %s" % (c["id"], c["status"]))'
echo "   the police liaison officer may not acknowledge it for them:"
curl -sS -X POST -H "Authorization: Bearer $(token prac-northvale-police-01)" "$BASE/Communication/$CRISIS_ALERT/\$acknowledge" \
  | python3 -c 'import json,sys; o=json.load(sys.stdin); print("   %s: %s" % (o["issue"][0]["code"], o["issue"][0]["diagnostics"][:110]))'

step "Three hours later Joe is back in the ED (a new visit): within the 24-hour window, the alerts are merged, not re-sent"
"$BIN" hl7 send --to "$MLLP" "$ROOT/docs/demo/joe-ed-a04-repeat.hl7"
sleep 1
get "$CRISIS" Communication --data-urlencode "category=$ALERTS" --data-urlencode "recipient=Organization/org-vale-mh-crisis-team" | show_alerts
get "$(token prac-northvale-police-01)" Communication --data-urlencode "category=$ALERTS" --data-urlencode "recipient=Organization/org-northvale-police-mh-liaison" | show_alerts

step "Done"
