#!/usr/bin/env python3
"""Smoke test and latency figure of the Subscriptions websocket channel against a running server
(standard library only: a minimal RFC 6455 client). Creates a websocket Subscription as the token's
organisation, gets a binding token, binds, then POSTs CarePlans for PATIENT and times each write
until its notification arrives on the socket; finally shows that a used token is refused.

    carecircle demo --data-dir /tmp/d --listen 127.0.0.1:18731 --people 50 &
    carecircle token --data-dir /tmp/d --audience http://127.0.0.1:18731 --system \
        --org org-minsterford-hospital > /tmp/tok
    python3 scripts/ws-smoke.py http://127.0.0.1:18731 /tmp/tok pat-minsterford-hospital-000001
"""
import base64, json, os, socket, struct, sys, time, urllib.parse, urllib.request

BASE = sys.argv[1].rstrip("/")
TOKEN = open(sys.argv[2]).read().strip()
PATIENT = sys.argv[3]
H = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/fhir+json"}

def call(method, path, body=None):
    req = urllib.request.Request(BASE + path, method=method, headers=H, data=json.dumps(body).encode() if body else None)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)

def ws_connect(host, port, path):
    s = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s

def ws_send(s, text):
    data = text.encode(); mask = os.urandom(4)
    header = bytes([0x81]) + (bytes([0x80 | len(data)]) if len(data) < 126 else bytes([0x80 | 126]) + struct.pack(">H", len(data)))
    s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk: raise EOFError
        out += chunk
    return out

def ws_recv(s):
    b1, b2 = recv_exact(s, 2)
    n = b2 & 0x7f
    if n == 126: n = struct.unpack(">H", recv_exact(s, 2))[0]
    elif n == 127: n = struct.unpack(">Q", recv_exact(s, 8))[0]
    payload = recv_exact(s, n)
    op = b1 & 0x0f
    if op == 8: return ("close", struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None)
    return ("text", json.loads(payload))

TOPIC = "https://carecircle.example.org/fhir/SubscriptionTopic/care-plan-changed"
sub = {"resourceType": "Subscription", "status": "requested", "reason": "smoke", "criteria": TOPIC,
       "channel": {"type": "websocket", "payload": "application/fhir+json",
                   "_payload": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content", "valueCode": "id-only"}]}}}
st, created = call("POST", "/Subscription", sub); print("create", st, created.get("status"))
sid = created["id"]; time.sleep(0.5)
st, params = call("POST", f"/Subscription/{sid}/$get-ws-binding-token"); print("token", st, [p["name"] for p in params["parameter"]])
p = {x["name"]: x for x in params["parameter"]}
print("websocket-url", p["websocket-url"]["valueUrl"], "expiration", p["expiration"]["valueDateTime"])
ws_url = urllib.parse.urlsplit(p["websocket-url"]["valueUrl"])
s = ws_connect(ws_url.hostname, ws_url.port or 80, ws_url.path)
t0 = time.time()
ws_send(s, "bind-with-token " + p["token"]["valueString"])
kind, hs = ws_recv(s)
print("handshake in %.1f ms" % ((time.time() - t0) * 1000), [x.get("valueCode") for x in hs["entry"][0]["resource"]["parameter"] if x["name"] in ("type", "status")])
lat = []
for i in range(50):
    t0 = time.time()
    st, plan = call("POST", "/CarePlan", {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/" + PATIENT}})
    assert st == 201, plan
    kind, note = ws_recv(s)
    lat.append((time.time() - t0) * 1000)
    assert note["entry"][1]["fullUrl"].endswith(plan["id"]), note
lat.sort()
print("POST CarePlan -> notification on the socket, 50 sequential: p50 %.1f ms, p95 %.1f ms, max %.1f ms" % (lat[25], lat[47], lat[-1]))
st, status = call("GET", f"/Subscription/{sid}/$status")
print("status", [(x["name"], x.get("valueCode") or x.get("valueString")) for x in status["entry"][0]["resource"]["parameter"] if x["name"] in ("status", "events-since-subscription-start")])
s2 = ws_connect(ws_url.hostname, ws_url.port or 80, ws_url.path)
ws_send(s2, "bind-with-token " + p["token"]["valueString"])
print("reused token:", ws_recv(s2)[1]["issue"][0]["diagnostics"], ws_recv(s2))
