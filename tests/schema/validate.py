#!/usr/bin/env python3
"""Validates TOML files against a JSON Schema (draft 7) the way an editor
does: TOML parsed with Python's tomllib, the schema checked with the
`jsonschema` package (Debian: python3-jsonschema), an implementation
independent of hutch's.

usage: validate.py SCHEMA.json FILE.toml...
Prints one line per file: `ok FILE`, `invalid FILE: PATH: MESSAGE` or
`not-toml FILE: MESSAGE`. Exits 2 if the schema itself is not a valid
draft-7 schema, else 0.
"""
import json
import sys
import tomllib

import jsonschema


def one_line(text):
    return " ".join(str(text).split())


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        print(f"bad-schema: {one_line(e.message)}")
        return 2
    validator = jsonschema.Draft7Validator(schema)
    for path in sys.argv[2:]:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            print(f"not-toml {path}: {one_line(e)}")
            continue
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.absolute_path) or "(top)"
            print(f"invalid {path}: {where}: {one_line(e.message)}")
        else:
            print(f"ok {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
