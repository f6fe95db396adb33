"""Checks hookgate's OpenAPI document and real answers against it.

Usage: openapi_check.py <document.json> <samples.json>

1. The document must validate as OpenAPI 3.1 with openapi-spec-validator.
2. Every sample (a real answer: method, path template, status, JSON body) must be documented
   (the path, the method and the status) and its body must validate against the documented
   schema. Schemas are checked strictly: every component schema that describes an object gets
   `unevaluatedProperties: false`, so an answer with a field the document does not name fails.

Prints one line per problem and exits 1 if there is any; prints a summary and exits 0 otherwise.
"""

import copy
import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.versions.shortcuts import get_spec_version
from referencing import Registry
from referencing.jsonschema import DRAFT202012

BASE = "urn:hookgate:openapi"


def strict(doc):
    """A copy of the document whose object component schemas refuse unnamed properties.

    Components used as an `allOf` part are left open: they describe part of an object whose
    other properties the including schema names, and the including schema is made strict.
    """
    doc = copy.deepcopy(doc)
    schemas = doc.get("components", {}).get("schemas", {})
    parts = set()

    def collect(node):
        if isinstance(node, dict):
            for part in node.get("allOf", []):
                ref = part.get("$ref", "") if isinstance(part, dict) else ""
                if ref.startswith("#/components/schemas/"):
                    parts.add(ref.rsplit("/", 1)[1])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(doc)
    for name, schema in schemas.items():
        if name in parts:
            continue
        if "properties" in schema or "allOf" in schema:
            schema["unevaluatedProperties"] = False
    return doc


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"]
        assert pointer.startswith("#/"), pointer
        node = doc
        for part in pointer[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        samples = json.load(f)

    version = get_spec_version(doc)
    validate(doc)
    print(f"document valid: {version}")

    checked = strict(doc)
    schemas = checked.setdefault("components", {}).setdefault("schemas", {})
    problems = []
    targets = []
    for i, sample in enumerate(samples):
        where = f"{sample['method'].upper()} {sample['path']} -> {sample['status']}"
        item = doc["paths"].get(sample["path"])
        if item is None:
            problems.append(f"{where}: the path is not documented")
            continue
        operation = item.get(sample["method"])
        if operation is None:
            problems.append(f"{where}: the method is not documented")
            continue
        response = operation.get("responses", {}).get(str(sample["status"]))
        if response is None:
            problems.append(f"{where}: the status is not documented")
            continue
        response = resolve(doc, response)
        if sample.get("body") is None:
            continue
        content = response.get("content", {}).get("application/json")
        if content is None or "schema" not in content:
            problems.append(f"{where}: no application/json schema is documented")
            continue
        name = f"__sample_{i}"
        schemas[name] = copy.deepcopy(content["schema"])
        targets.append((where, name, sample["body"]))

    registry = Registry().with_resource(BASE, DRAFT202012.create_resource(checked))
    for where, name, body in targets:
        validator = Draft202012Validator(
            {"$ref": f"{BASE}#/components/schemas/{name}"}, registry=registry
        )
        for error in validator.iter_errors(body):
            location = "/".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(f"{where}: at {location}: {error.message}")

    for problem in problems:
        print(problem)
    if problems:
        sys.exit(1)
    print(f"{len(samples)} answers match the document")


if __name__ == "__main__":
    main()
