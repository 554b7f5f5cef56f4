#!/usr/bin/env python3
"""Validates the organisers' OpenAPI document with openapi-spec-validator (PyPI), then checks
recorded answers of a running hub against the document's schemas with
openapi-schema-validator (OAS 3.1 dialect).

    validate.py openapi.json samples.json

samples.json: [{"schema": "ActivityView", "body": {...}}, ...]. Exits non-zero on the first
problem, naming it.
"""
import json
import sys

from openapi_spec_validator import validate
from openapi_schema_validator import OAS31Validator

doc = json.load(open(sys.argv[1]))
validate(doc)
print(f"openapi {doc['openapi']}: {len(doc['paths'])} paths valid")

samples = json.load(open(sys.argv[2]))
for s in samples:
    schema = {"$ref": f"#/components/schemas/{s['schema']}", "components": doc["components"]}
    errors = sorted(OAS31Validator(schema).iter_errors(s["body"]), key=str)
    if errors:
        print(f"{s['schema']}: {errors[0].message} at {list(errors[0].absolute_path)}", file=sys.stderr)
        sys.exit(1)
    # Strict: every property an answer has is in its schema (none undocumented).
    props = doc["components"]["schemas"][s["schema"]].get("properties")
    if props is not None and isinstance(s["body"], dict):
        extra = set(s["body"]) - set(props)
        if extra:
            print(f"{s['schema']}: undocumented properties {sorted(extra)}", file=sys.stderr)
            sys.exit(1)
print(f"{len(samples)} answers match their schemas")
