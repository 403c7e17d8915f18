//! The shape of the profile format, read from the parser's own `Deserialize`
//! implementations: every table, key, type, enum value and required key,
//! exactly as `toml::from_str::<RawProfile>` accepts them.
//!
//! A tracing deserializer walks [`RawProfile`]: serde_derive hands it each
//! struct's field list and each enum's values, the integer types say their
//! ranges, `Option` and `#[serde(default)]` show which keys may be left out.
//! Types with a `Deserialize` of their own that accepts several forms
//! (`deserialize_any`: sizes, modes, `identity`...) are named, and the JSON
//! Schema describes them by name (see `jsonschema.rs`). The JSON Schema and
//! hutch-profile(5) are generated from this shape, so a key added to
//! `schema.rs` appears in both, and a test fails until it is documented.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

use super::schema::RawProfile;

/// What a value may be.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Bool,
    /// An integer within the Rust type's range.
    Integer {
        min: i128,
        max: i128,
    },
    Float,
    String,
    Array(Box<Shape>),
    /// A table with keys chosen by the user (`[volumes.NAME]`, `[env.set]`).
    Map(Box<Shape>),
    /// A table with fixed keys, in declaration order.
    Table(Vec<Key>),
    /// One of these strings.
    Enum(Vec<&'static str>),
    /// A type with its own `Deserialize` accepting several forms; the last
    /// segment of its Rust name (`Limit`, `Mode`, ...).
    Custom(&'static str),
}

/// A key of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: &'static str,
    pub shape: Shape,
    /// The parser fails with "missing key" when it is absent.
    pub required: bool,
}

/// One step down into a value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Key(&'static str),
    Element,
    MapValue,
}

/// The shape of a whole profile file.
pub fn profile() -> Shape {
    shape_of::<RawProfile>()
}

/// The shape of any type, as its `Deserialize` describes it.
pub fn shape_of<'de, T: Deserialize<'de>>() -> Shape {
    shape_at::<T>(&mut Vec::new())
}

fn shape_at<'de, T: Deserialize<'de>>(path: &mut Vec<Step>) -> Shape {
    match head_at::<T>(path) {
        Head::Bool => Shape::Bool,
        Head::Integer { min, max } => Shape::Integer { min, max },
        Head::Float => Shape::Float,
        Head::String => Shape::String,
        Head::Enum(values) => Shape::Enum(values),
        Head::Custom(name) => Shape::Custom(name),
        Head::Array => {
            path.push(Step::Element);
            let element = shape_at::<T>(path);
            path.pop();
            Shape::Array(Box::new(element))
        }
        Head::Map => {
            path.push(Step::MapValue);
            let value = shape_at::<T>(path);
            path.pop();
            Shape::Map(Box::new(value))
        }
        Head::Table(fields) => {
            let required = required_keys::<T>(path);
            let keys = fields
                .iter()
                .map(|&name| {
                    path.push(Step::Key(name));
                    let shape = shape_at::<T>(path);
                    path.pop();
                    Key {
                        name,
                        shape,
                        required: required.contains(&name),
                    }
                })
                .collect();
            Shape::Table(keys)
        }
    }
}

/// What the value at the end of a path asked the deserializer for.
#[derive(Debug, Clone, PartialEq)]
enum Head {
    Bool,
    Integer { min: i128, max: i128 },
    Float,
    String,
    Array,
    Map,
    Table(&'static [&'static str]),
    Enum(Vec<&'static str>),
    Custom(&'static str),
}

/// Why a trace stopped: it always stops, since no value is ever built.
#[derive(Debug)]
enum Stop {
    /// Reached the end of the path and saw this.
    Found(Head),
    /// The struct reported this key missing.
    Missing(&'static str),
    /// Anything else (a type this tracer does not understand).
    Other(String),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Stop::Found(head) => write!(f, "found {head:?}"),
            Stop::Missing(key) => write!(f, "missing key `{key}`"),
            Stop::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Stop::Other(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Stop::Missing(field)
    }
}

fn head_at<'de, T: Deserialize<'de>>(path: &[Step]) -> Head {
    match T::deserialize(Tracer { path, fill: None }) {
        Err(Stop::Found(head)) => head,
        Err(other) => panic!("tracing the profile format at {path:?}: {other}"),
        Ok(_) => panic!("tracing the profile format at {path:?}: a value was built"),
    }
}

/// The keys of the table at `path` that serde reports missing when absent:
/// fed an empty table, the struct names its first required key; fed that
/// key (with a sample value), the next; and so on.
fn required_keys<'de, T: Deserialize<'de>>(path: &[Step]) -> Vec<&'static str> {
    let mut required = Vec::new();
    loop {
        let result = T::deserialize(Tracer {
            path,
            fill: Some(required.clone()),
        });
        match result {
            Err(Stop::Missing(key)) if !required.contains(&key) => required.push(key),
            _ => return required,
        }
    }
}

/// The name serde_spanned gives `Spanned<T>`'s struct, and its value field:
/// a `Spanned<T>` is traced as the `T` inside.
const SPANNED: &str = "$__serde_spanned_private_Spanned";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";

/// Follows `path` into the value being deserialized and reports what it
/// finds there. At a table on the path's end with `fill` set, it feeds the
/// table those keys with sample values instead (see [`required_keys`]).
struct Tracer<'p> {
    path: &'p [Step],
    fill: Option<Vec<&'static str>>,
}

impl<'p> Tracer<'p> {
    fn found<T>(self, head: Head) -> Result<T, Stop> {
        if self.path.is_empty() {
            Err(Stop::Found(head))
        } else {
            Err(Stop::Other(format!(
                "the path goes on below a {head:?}: {:?}",
                self.path
            )))
        }
    }

    fn integer<T>(self, min: i128, max: i128) -> Result<T, Stop> {
        self.found(Head::Integer { min, max })
    }
}

macro_rules! integers {
    ($($method:ident: $t:ty),*) => {
        $(fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            self.integer(<$t>::MIN as i128, <$t>::MAX as i128)
        })*
    };
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        let full = std::any::type_name::<V::Value>();
        let name = full.rsplit("::").next().unwrap_or(full);
        self.found(Head::Custom(name))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.found(Head::Bool)
    }

    integers!(deserialize_i8: i8, deserialize_i16: i16, deserialize_i32: i32,
        deserialize_i64: i64, deserialize_u8: u8, deserialize_u16: u16,
        deserialize_u32: u32, deserialize_u64: u64);

    fn deserialize_f32<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.found(Head::Float)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.found(Head::Float)
    }

    fn deserialize_str<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.found(Head::String)
    }

    fn deserialize_string<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.found(Head::String)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => self.found(Head::Array),
            Some((Step::Element, rest)) => visitor.visit_seq(OneElement(Some(Tracer {
                path: rest,
                fill: self.fill,
            }))),
            Some(_) => Err(Stop::Other(format!("{:?} in an array", self.path))),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => self.found(Head::Map),
            Some((Step::MapValue, rest)) => visitor.visit_map(OneEntry {
                keys: vec!["NAME"],
                value: Some(Tracer {
                    path: rest,
                    fill: self.fill,
                }),
            }),
            Some(_) => Err(Stop::Other(format!("{:?} in a map", self.path))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if name == SPANNED {
            return visitor.visit_map(OneEntry {
                keys: vec![SPANNED_VALUE],
                value: Some(self),
            });
        }
        match self.path.split_first() {
            None => match self.fill {
                None => self.found(Head::Table(fields)),
                // serde names the first required key missing from these.
                Some(keys) => visitor
                    .visit_map(Filled { keys, next: 0 })
                    .and_then(|_| Err(Stop::Found(Head::Table(fields)))),
            },
            Some((Step::Key(key), rest)) => visitor.visit_map(OneEntry {
                keys: vec![key],
                value: Some(Tracer {
                    path: rest,
                    fill: self.fill,
                }),
            }),
            Some(_) => Err(Stop::Other(format!("{:?} in a struct", self.path))),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.found(Head::Enum(variants.to_vec()))
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct newtype_struct
        tuple tuple_struct identifier ignored_any
    }
}

/// A map with (at most) one key, whose value is traced further.
struct OneEntry<D> {
    keys: Vec<&'static str>,
    value: Option<D>,
}

impl OneEntry<Tracer<'static>> {
    fn empty() -> Self {
        OneEntry {
            keys: Vec::new(),
            value: None,
        }
    }
}

impl<'de, 'p> de::MapAccess<'de> for OneEntry<Tracer<'p>> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.keys.pop() {
            None => Ok(None),
            Some(key) => seed.deserialize(KeyDeserializer(key)).map(Some),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Stop> {
        match self.value.take() {
            Some(tracer) => seed.deserialize(tracer),
            None => Err(Stop::Other("a second value".into())),
        }
    }
}

/// A table holding these keys, each with a sample value.
struct Filled {
    keys: Vec<&'static str>,
    next: usize,
}

impl<'de> de::MapAccess<'de> for Filled {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        let Some(key) = self.keys.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(KeyDeserializer(key)).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Stop> {
        seed.deserialize(Sample)
    }
}

/// An array with one element, traced further.
struct OneElement<'p>(Option<Tracer<'p>>);

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = Stop;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Stop> {
        match self.0.take() {
            Some(tracer) => seed.deserialize(tracer).map(Some),
            None => Ok(None),
        }
    }
}

/// Deserializes a key (a struct field's name, serde_spanned's value field,
/// or a sample name in a map): a plain string, or a `Spanned` one.
struct KeyDeserializer(&'static str);

impl<'de> Deserializer<'de> for KeyDeserializer {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        // serde_spanned wants its field names borrowed.
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if name == SPANNED {
            spanned(fields, self.0.into_deserializer(), visitor)
        } else {
            self.deserialize_any(visitor)
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Feeds a `Spanned` visitor an empty span around `value`.
fn spanned<'de, V: Visitor<'de>, D>(
    fields: &'static [&'static str],
    value: D,
    visitor: V,
) -> Result<V::Value, Stop>
where
    D: Deserializer<'de, Error = Stop>,
{
    struct SpannedMap<D> {
        fields: &'static [&'static str],
        next: usize,
        value: Option<D>,
    }
    impl<'de, D: Deserializer<'de, Error = Stop>> de::MapAccess<'de> for SpannedMap<D> {
        type Error = Stop;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, Stop> {
            let Some(field) = self.fields.get(self.next) else {
                return Ok(None);
            };
            seed.deserialize(KeyDeserializer(field)).map(Some)
        }
        fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Stop> {
            self.next += 1;
            if self.fields.get(self.next - 1) == Some(&SPANNED_VALUE) {
                match self.value.take() {
                    Some(v) => seed.deserialize(v),
                    None => Err(Stop::Other("the spanned value twice".into())),
                }
            } else {
                seed.deserialize(0u64.into_deserializer())
            }
        }
    }
    visitor.visit_map(SpannedMap {
        fields,
        next: 0,
        value: Some(value),
    })
}

/// Some valid value of whatever type asks: the first enum value, an empty
/// string, `false`, 1, empty arrays and tables. Only required keys get one.
struct Sample;

impl<'de> Deserializer<'de> for Sample {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_u64(1)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_bool(false)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_str("/")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_str("/")
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_none()
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(OneElement(None))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_map(OneEntry::<Tracer>::empty())
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if name == SPANNED {
            spanned(fields, Sample, visitor)
        } else {
            visitor.visit_map(OneEntry::<Tracer>::empty())
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        let first = variants.first().copied().unwrap_or("");
        visitor.visit_enum(de::value::StrDeserializer::<Stop>::new(first))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct newtype_struct tuple tuple_struct identifier ignored_any
    }
}

impl Shape {
    /// The key `name` of a table.
    pub fn key(&self, name: &str) -> Option<&Key> {
        match self {
            Shape::Table(keys) => keys.iter().find(|k| k.name == name),
            _ => None,
        }
    }

    /// Every key, table and array element below this shape, with its
    /// dotted path (`mount[].type`, `volumes.*.dst`), depth first.
    pub fn walk(&self) -> Vec<(String, &Shape, bool)> {
        let mut out = Vec::new();
        self.walk_into("", &mut out);
        out
    }

    fn walk_into<'a>(&'a self, prefix: &str, out: &mut Vec<(String, &'a Shape, bool)>) {
        match self {
            Shape::Table(keys) => {
                for k in keys {
                    let path = if prefix.is_empty() {
                        k.name.to_string()
                    } else {
                        format!("{prefix}.{}", k.name)
                    };
                    out.push((path.clone(), &k.shape, k.required));
                    k.shape.walk_children(&path, out);
                }
            }
            other => other.walk_children(prefix, out),
        }
    }

    fn walk_children<'a>(&'a self, path: &str, out: &mut Vec<(String, &'a Shape, bool)>) {
        match self {
            Shape::Table(_) => self.walk_into(path, out),
            Shape::Array(element) if matches!(**element, Shape::Table(_)) => {
                element.walk_into(&format!("{path}[]"), out)
            }
            Shape::Map(value) => {
                let p = format!("{path}.*");
                if matches!(**value, Shape::Table(_)) {
                    value.walk_into(&p, out);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_sees_through_options_and_spans() {
        let p = profile();
        let version = p.key("version").unwrap();
        assert_eq!(
            version.shape,
            Shape::Integer {
                min: i64::MIN as i128,
                max: i64::MAX as i128
            }
        );
        assert!(!version.required);
        assert_eq!(p.key("init").unwrap().shape, Shape::Bool);
        assert_eq!(
            p.key("extends").unwrap().shape,
            Shape::Array(Box::new(Shape::String))
        );
        assert_eq!(
            p.key("terminal").unwrap().shape,
            Shape::Enum(vec!["auto", "inherit", "none", "pty"])
        );
        assert_eq!(p.key("identity").unwrap().shape, Shape::Custom("Identity"));
    }

    #[test]
    fn nested_tables_arrays_and_maps() {
        let p = profile();
        let Shape::Array(mount) = &p.key("mount").unwrap().shape else {
            panic!("mount is an array of tables")
        };
        assert!(!p.key("mount").unwrap().required, "#[serde(default)]");
        let required: Vec<_> = match &**mount {
            Shape::Table(keys) => keys.iter().filter(|k| k.required).map(|k| k.name).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(required, ["type", "dst"]);
        assert_eq!(mount.key("size").unwrap().shape, Shape::Custom("Size"));
        let Shape::Map(volume) = &p.key("volumes").unwrap().shape else {
            panic!("volumes is a map")
        };
        assert_eq!(
            volume.key("mode").unwrap().shape,
            Shape::Enum(vec!["rw", "ro"])
        );
        let Shape::Table(env) = &p.key("env").unwrap().shape else {
            panic!()
        };
        assert_eq!(env[2].shape, Shape::Map(Box::new(Shape::String)));
        let ports = &p
            .key("landlock")
            .unwrap()
            .shape
            .key("tcp_bind")
            .unwrap()
            .shape;
        assert_eq!(
            *ports,
            Shape::Array(Box::new(Shape::Integer { min: 0, max: 65535 }))
        );
    }

    #[test]
    fn every_key_has_a_dotted_path() {
        let paths: Vec<String> = profile().walk().into_iter().map(|(p, _, _)| p).collect();
        for p in [
            "version",
            "seccomp.errno",
            "mount[].keep_symlink",
            "volumes.*.tmp",
            "env.set",
        ] {
            assert!(paths.iter().any(|q| q == p), "{p} in {paths:?}");
        }
    }
}
