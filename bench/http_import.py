#!/usr/bin/env python3
"""HTTP import load: sends an NDJSON file to a FHIR server as `batch` Bundles of PUT entries
(ids kept), from several client threads, and prints resources/s and refusals.

    python3 bench/http_import.py BASE_URL DATA.ndjson [BUNDLE_SIZE] [THREADS]

The same load runs against carecircle and a peer server, so their figures compare directly.
"""
import json
import sys
import threading
import time
import urllib.request

base, path = sys.argv[1].rstrip("/"), sys.argv[2]
bundle_size = int(sys.argv[3]) if len(sys.argv) > 3 else 100
n_threads = int(sys.argv[4]) if len(sys.argv) > 4 else 4

bundles = []
entries = []
with open(path) as lines:
    for line in lines:
        resource = json.loads(line)
        url = f"{resource['resourceType']}/{resource['id']}"
        entries.append({"fullUrl": f"{base}/{url}", "resource": resource, "request": {"method": "PUT", "url": url}})
        if len(entries) == bundle_size:
            bundles.append(json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode())
            entries = []
if entries:
    bundles.append(json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode())

lock = threading.Lock()
state = {"next": 0, "ok": 0, "refused": 0, "failed_requests": 0, "first_error": None}


def worker():
    while True:
        with lock:
            i = state["next"]
            state["next"] += 1
        if i >= len(bundles):
            return
        request = urllib.request.Request(base + "/", data=bundles[i], method="POST",
                                         headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                body = json.loads(response.read())
            statuses = [e.get("response", {}).get("status", "") for e in body.get("entry", [])]
            ok = sum(1 for s in statuses if s[:1] == "2")
            with lock:
                state["ok"] += ok
                state["refused"] += len(statuses) - ok
                if len(statuses) - ok and state["first_error"] is None:
                    state["first_error"] = next(e for e in body["entry"] if e.get("response", {}).get("status", "")[:1] != "2")
        except Exception as error:  # a failed request is counted, and the load goes on
            with lock:
                state["failed_requests"] += 1
                if state["first_error"] is None:
                    state["first_error"] = str(error)


started = time.time()
threads = [threading.Thread(target=worker) for _ in range(n_threads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seconds = time.time() - started
print(f"{state['ok']} stored, {state['refused']} refused, {state['failed_requests']} failed requests "
      f"in {seconds:.1f} s: {state['ok'] / seconds:.0f} resources/s")
if state["first_error"] is not None:
    print("first problem:", json.dumps(state["first_error"])[:400])
