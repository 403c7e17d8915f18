//! A tiny JSON writer (enough for hyperfine's --export-json schema).

pub enum J {
    Num(f64),
    Int(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
    Null,
}

pub fn obj(fields: Vec<(&str, J)>) -> J {
    J::Obj(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

pub fn nums(xs: &[f64]) -> J {
    J::Arr(xs.iter().map(|&x| J::Num(x)).collect())
}

fn esc(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write(v: &J, indent: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        J::Num(x) if x.is_finite() => out.push_str(&format!("{x}")),
        J::Num(_) | J::Null => out.push_str("null"),
        J::Int(i) => out.push_str(&i.to_string()),
        J::Str(s) => esc(s, out),
        J::Arr(items) => {
            // Arrays of scalars stay on one line, like hyperfine's times[].
            if items
                .iter()
                .all(|i| matches!(i, J::Num(_) | J::Int(_) | J::Null))
            {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(item, indent, out);
                }
                out.push(']');
            } else {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&pad(indent + 1));
                    write(item, indent + 1, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(indent));
                out.push(']');
            }
        }
        J::Obj(fields) => {
            out.push_str("{\n");
            for (i, (k, val)) in fields.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                esc(k, out);
                out.push_str(": ");
                write(val, indent + 1, out);
                out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
    }
}

pub fn to_string(v: &J) -> String {
    let mut s = String::new();
    write(v, 0, &mut s);
    s.push('\n');
    s
}

pub fn save(path: &str, v: &J) -> Result<(), String> {
    std::fs::write(path, to_string(v)).map_err(|e| format!("writing {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nests() {
        let v = obj(vec![
            ("command", J::Str("sh -c 'a\"b'\n".into())),
            ("times", nums(&[0.5, 1.0])),
            ("nan", J::Num(f64::NAN)),
        ]);
        let s = to_string(&v);
        assert!(s.contains(r#""command": "sh -c 'a\"b'\n""#));
        assert!(s.contains(r#""times": [0.5, 1]"#));
        assert!(s.contains(r#""nan": null"#));
    }
}
