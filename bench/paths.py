#!/usr/bin/env python3
"""Writes request path lists for the load benchmarks from an NDJSON file of Patients:
read-by-id, search by identifier, and search by family name + birth date.

    python3 bench/paths.py DATA.ndjson OUT_DIR [N]
"""
import json
import random
import sys
import urllib.parse
from pathlib import Path

source, out = Path(sys.argv[1]), Path(sys.argv[2])
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
out.mkdir(parents=True, exist_ok=True)
random.seed(7)
reads, identifiers, names = [], [], []
with source.open() as lines:
    for line in lines:
        resource = json.loads(line)
        if resource.get("resourceType") != "Patient":
            continue
        reads.append(f"/Patient/{resource['id']}")
        for identifier in resource.get("identifier", []):
            if "system" in identifier and "value" in identifier:
                token = urllib.parse.quote(f"{identifier['system']}|{identifier['value']}", safe="")
                identifiers.append(f"/Patient?identifier={token}")
                break
        family = next((n.get("family") for n in resource.get("name", []) if n.get("family")), None)
        if family and resource.get("birthDate"):
            names.append(f"/Patient?family={urllib.parse.quote(family)}&birthdate={resource['birthDate']}")
for name, paths in (("read", reads), ("identifier", identifiers), ("family-birthdate", names)):
    random.shuffle(paths)
    (out / f"{name}.txt").write_text("\n".join(paths[:limit]) + "\n")
    print(f"{name}: {min(len(paths), limit)} paths")
