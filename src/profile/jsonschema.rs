//! The JSON Schema of the profile format (`hutch schema`), for editors:
//! taplo and "Even Better TOML" validate a profile against it and show each
//! key's description while it is typed.
//!
//! It is generated from the parser's own types ([`super::shape`]: keys,
//! types, values, required keys) and the reference's words and constraints
//! ([`super::reference`]). No crate generates it: `schemars` derives from
//! the struct definitions, so it cannot see through `toml::Spanned` (which
//! wraps every value here, and the orphan rule forbids implementing its trait
//! for it) nor know what the hand-written `Deserialize` impls accept.
//!
//! Draft 7, which taplo and VS Code's JSON support read; `$ref` only inside
//! `allOf`, since draft 7 ignores the keywords beside a `$ref`.

use serde_json::{Map, Value, json};

use super::reference::{self, Doc};
use super::schema::{FORMAT_VERSION, MountKind};
use super::shape::{self, Shape};

/// The schema, as printed by `hutch schema` and installed as
/// `share/hutch/hutch-profile.schema.json`.
pub fn generate() -> Value {
    let profile = shape::profile();
    let mut root = schema_of(&profile, "");
    let obj = root.as_object_mut().expect("a profile is a table");
    let required = obj
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    // Optional to serde, but `load::parse` refuses a file without it.
    if let Value::Array(list) = required {
        list.insert(0, json!("version"));
    }
    // `plan::rootfs::choice`: setting both in one file is an error.
    obj.insert("not".into(), json!({"required": ["root", "image"]}));
    let mut head = Map::new();
    head.insert(
        "$schema".into(),
        json!("http://json-schema.org/draft-07/schema#"),
    );
    head.insert(
        "title".into(),
        json!(format!("hutch profile, format version {FORMAT_VERSION}")),
    );
    head.insert(
        "description".into(),
        json!(
            "A sandbox profile for hutch(1). See hutch-profile(5) for every key, its default and the errors hutch reports."
        ),
    );
    head.extend(std::mem::take(obj));
    head.insert("definitions".into(), definitions());
    Value::Object(head)
}

/// `text`: a string whose `$` starts a known `${VARIABLE}` or `$$`; `path`:
/// such a string that starts like an absolute path and has no `..`.
fn definitions() -> Value {
    let vars = super::vars::KNOWN.join("|");
    json!({
        "text": {
            "type": "string",
            "pattern": format!("^([^$]|\\$\\$|\\$\\{{({vars})\\}})*$"),
        },
        "path": {
            "type": "string",
            "allOf": [
                {"$ref": "#/definitions/text"},
                {"pattern": "^(/|~(/|$)|\\$\\{)"},
                {"not": {"pattern": "(^|/)\\.\\.(/|$)"}},
            ],
        },
    })
}

/// The schema of the value at `path` (dotted, as `Shape::walk` spells it).
fn schema_of(shape: &Shape, path: &str) -> Value {
    let mut schema = match shape {
        Shape::Bool => json!({"type": "boolean"}),
        Shape::Integer { min, max } => integer(*min, *max),
        Shape::Float => json!({"type": "number"}),
        Shape::String => json!({"type": "string"}),
        Shape::Enum(values) => json!({"type": "string", "enum": values}),
        Shape::Custom(name) => custom(name),
        Shape::Array(element) => json!({
            "type": "array",
            "items": schema_of(element, &element_path(element, path)),
        }),
        Shape::Map(value) => json!({
            "type": "object",
            "additionalProperties": schema_of(value, &join(path, "*")),
        }),
        Shape::Table(keys) => {
            let properties: Map<String, Value> = keys
                .iter()
                .map(|k| (k.name.to_string(), schema_of(&k.shape, &join(path, k.name))))
                .collect();
            let required: Vec<&str> = keys.iter().filter(|k| k.required).map(|k| k.name).collect();
            let mut table = json!({
                "type": "object",
                "additionalProperties": false,
                "properties": properties,
            });
            if !required.is_empty() {
                table["required"] = json!(required);
            }
            if path == "mount[]" {
                table["allOf"] = mount_rules(shape);
            }
            table
        }
    };
    if let Some(doc) = reference::doc(path) {
        describe(&mut schema, doc);
    }
    schema
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Arrays of tables are documented under `KEY[]`; arrays of plain values
/// share the key's own documentation.
fn element_path(element: &Shape, path: &str) -> String {
    match element {
        Shape::Table(_) => format!("{path}[]"),
        _ => format!("{path}[item]"),
    }
}

fn integer(min: i128, max: i128) -> Value {
    let mut s = json!({"type": "integer"});
    // i64's own range is TOML's; only narrower types say theirs.
    if min > i64::MIN as i128 {
        s["minimum"] = json!(min);
    }
    if max < i64::MAX as i128 {
        s["maximum"] = json!(max);
    }
    s
}

fn custom(name: &str) -> Value {
    let Some(t) = reference::type_doc(name) else {
        // A new type without a schema: accept anything rather than reject
        // valid profiles (a test fails until it is described).
        return json!({});
    };
    let mut schema: Value = serde_json::from_str(t.schema).unwrap_or_else(|_| json!({}));
    if name == "ErrnoValue" {
        let names: Vec<&str> = crate::bpf::ERRNOS.iter().map(|(n, _)| *n).collect();
        schema["anyOf"][0] = json!({"enum": names});
    }
    schema
}

/// Which keys each mount type takes (`MountKind::allowed_keys`, as the
/// planner checks them) and which it needs (`plan/mounts.rs`).
fn mount_rules(entry: &Shape) -> Value {
    let Some(Shape::Enum(kinds)) = entry.key("type").map(|k| &k.shape) else {
        return json!([]);
    };
    let rules: Vec<Value> = kinds
        .iter()
        .filter_map(|name| {
            let kind: MountKind =
                serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                    serde::de::value::Error,
                >::new(name))
                .ok()?;
            let mut keys = vec!["type", "dst", "optional"];
            keys.extend_from_slice(kind.allowed_keys());
            let needs: Vec<&str> = reference::mount_needs(kind)
                .iter()
                .map(|(k, _)| *k)
                .collect();
            Some(json!({
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {"propertyNames": {"enum": keys}, "required": needs},
            }))
        })
        .collect();
    Value::Array(rules)
}

/// Adds the reference's words and constraint to a key's schema.
fn describe(schema: &mut Value, doc: &Doc) {
    let mut text = doc.summary.to_string();
    if !doc.values.is_empty() {
        text.push('\n');
        for (value, meaning) in doc.values {
            text.push_str(&format!("\n- \"{value}\": {meaning}"));
        }
    }
    if !doc.default.is_empty() {
        text.push_str(&format!("\n\nDefault: {}.", doc.default));
    }
    schema["description"] = json!(text);
    if let Some(v) = doc.default_value.and_then(toml_value) {
        schema["default"] = v;
    }
    if let Some(v) = toml_value(doc.example) {
        schema["examples"] = json!([v]);
    }
    if let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(doc.constraint) {
        merge(schema, extra);
    }
}

/// A TOML value written alone (`"64M"`, `[443]`, `{ A = "b" }`) as JSON.
pub fn toml_value(text: &str) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    let table: toml::Table = toml::from_str(&format!("v = {text}")).ok()?;
    serde_json::to_value(table.get("v")?).ok()
}

/// Merges a constraint into a schema: objects key by key, a `$ref` into
/// `allOf`.
fn merge(schema: &mut Value, extra: Map<String, Value>) {
    for (key, value) in extra {
        if key == "$ref" {
            let all = schema
                .as_object_mut()
                .map(|o| o.entry("allOf").or_insert_with(|| json!([])));
            if let Some(Value::Array(list)) = all {
                list.push(json!({"$ref": value}));
            }
            continue;
        }
        match (schema.get_mut(&key), value) {
            (Some(Value::Object(_)), Value::Object(inner)) => {
                merge(&mut schema[&key], inner);
            }
            (_, value) => schema[&key] = value,
        }
    }
}
