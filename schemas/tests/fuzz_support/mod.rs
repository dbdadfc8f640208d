//! Shared by the fuzz tests of every decoder of outside bytes
//! (`schemas/tests/fuzz.rs`, `edge-agent/tests/fuzz.rs`, which includes
//! this file by path): the case count, and the input generators —
//! arbitrary bytes, JSON-like token soup, byte-level mutations of a valid
//! encoding, and structured mutations of a valid message's JSON tree.
//!
//! Cases per property: `VIGIL_FUZZ_CASES` (default 256, what the normal
//! test suite runs); a long run is
//! `VIGIL_FUZZ_CASES=200000 cargo nextest run -p vigil-schemas -p vigil-edge -E 'binary(fuzz)'`.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};

/// Cases per property: `VIGIL_FUZZ_CASES`, default 256.
pub fn cases() -> u32 {
    std::env::var("VIGIL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The proptest configuration of a fuzz property: `cases() / divisor`
/// cases (at least 16) for properties that touch the disk or train.
pub fn config(divisor: u32) -> ProptestConfig {
    ProptestConfig {
        cases: (cases() / divisor.max(1)).max(16),
        // Shrinking a long run's failure can take long; cap it.
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

/// Values that break parsers and range checks.
fn interesting_value() -> impl Strategy<Value = Value> {
    // Nested arrays, past serde_json's recursion limit (128) for 200.
    let deep = |depth: usize| (0..depth).fold(Value::Null, |v, _| Value::Array(vec![v]));
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::from(0)),
        Just(Value::from(-1)),
        Just(Value::from(1)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(1u64 << 63)),
        Just(Value::from(u64::from(u32::MAX) + 1)),
        Just(Value::from(1.8446744073709552e19)),
        Just(Value::from(1e308)),
        Just(Value::from(-1e308)),
        Just(Value::from(0.5)),
        Just(Value::from(-0.0)),
        Just(Value::from(f64::MIN_POSITIVE)),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(Value::from("")),
        Just(Value::from("x".repeat(10_000))),
        Just(Value::from("a/b/+/#")),
        Just(Value::from("\u{0}\u{1f}\u{7f}")),
        Just(Value::from("1")),
        ".{0,40}".prop_map(Value::from),
        Just(Value::Array(Vec::new())),
        Just(Value::Object(Map::new())),
        Just(deep(64)),
        Just(deep(200)),
    ]
}

/// One structured change to a JSON tree, applied at the node an [`Index`]
/// picks (in pre-order).
#[derive(Debug, Clone)]
pub enum JsonOp {
    /// Replace the node.
    Replace(Value),
    /// Remove the node from its parent.
    Remove,
    /// Add a field (to an object) or an element (to an array).
    Add(String, Value),
    /// Repeat an array's first element, or an object's values as an array.
    Duplicate,
    /// Wrap the node in an array.
    Wrap,
}

fn json_op() -> impl Strategy<Value = JsonOp> {
    prop_oneof![
        4 => interesting_value().prop_map(JsonOp::Replace),
        2 => Just(JsonOp::Remove),
        2 => ("[a-z_]{1,12}", interesting_value()).prop_map(|(k, v)| JsonOp::Add(k, v)),
        1 => Just(JsonOp::Duplicate),
        1 => Just(JsonOp::Wrap),
    ]
}

/// One to five structured changes.
pub fn json_mutations() -> impl Strategy<Value = Vec<(Index, JsonOp)>> {
    prop::collection::vec((any::<Index>(), json_op()), 1..6)
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `op` to the `target`-th node (pre-order) below `v`; `seen`
/// counts the nodes visited. Returns true once applied.
fn apply_at(v: &mut Value, target: usize, seen: &mut usize, op: &JsonOp) -> bool {
    // Children first get a chance to be removed by their parent.
    let children: Vec<usize> = match v {
        Value::Array(a) => (0..a.len()).collect(),
        Value::Object(o) => (0..o.len()).collect(),
        _ => Vec::new(),
    };
    if *seen == target {
        match op {
            JsonOp::Replace(new) => *v = new.clone(),
            JsonOp::Add(key, new) => match v {
                Value::Object(o) => {
                    o.insert(key.clone(), new.clone());
                }
                Value::Array(a) => a.push(new.clone()),
                other => *other = new.clone(),
            },
            JsonOp::Duplicate => match v {
                Value::Array(a) => {
                    if let Some(first) = a.first().cloned() {
                        a.extend(std::iter::repeat_n(first, 3));
                    }
                }
                Value::Object(o) => *v = Value::Array(o.values().cloned().collect()),
                _ => {}
            },
            JsonOp::Wrap => *v = Value::Array(vec![v.take()]),
            // The root cannot be removed from a parent: empty it instead.
            JsonOp::Remove => *v = Value::Null,
        }
        return true;
    }
    *seen += 1;
    for i in children {
        let child_start = *seen;
        let (child, size) = match v {
            Value::Array(a) => {
                let size = count_nodes(&a[i]);
                (&mut a[i], size)
            }
            Value::Object(o) => {
                let Some((_, c)) = o.iter_mut().nth(i) else {
                    continue;
                };
                let size = count_nodes(c);
                (c, size)
            }
            _ => continue,
        };
        if target < child_start + size {
            if target == child_start && matches!(op, JsonOp::Remove) {
                match v {
                    Value::Array(a) => {
                        a.remove(i);
                    }
                    Value::Object(o) => {
                        let key = o.keys().nth(i).cloned();
                        if let Some(key) = key {
                            o.remove(&key);
                        }
                    }
                    _ => {}
                }
                return true;
            }
            return apply_at(child, target, seen, op);
        }
        *seen += size;
    }
    false
}

/// `seed` with `mutations` applied, in order.
pub fn mutate_json(seed: &Value, mutations: &[(Index, JsonOp)]) -> Value {
    let mut v = seed.clone();
    for (at, op) in mutations {
        let target = at.index(count_nodes(&v));
        let mut seen = 0;
        apply_at(&mut v, target, &mut seen, op);
    }
    v
}

/// One byte-level change.
#[derive(Debug, Clone)]
pub enum ByteOp {
    Set(u8),
    Flip(u8),
    Insert(u8),
    Delete,
    Truncate,
    /// Insert the bytes of a JSON token.
    Token(&'static str),
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "\"schema\"",
    "\"schema\":1",
    "\"schema\":2",
    "\"device_id\"",
    "\"metrics\"",
    "\"seq\"",
    "\"ts\"",
    "\"command\"",
    "\"payload\"",
    "\"x\"",
    "1",
    "-1",
    "0",
    "1e999",
    "-1e999",
    "18446744073709551616",
    "9223372036854775808",
    "0.5",
    "NaN",
    "-Infinity",
    "Infinity",
    "inf",
    "null",
    "true",
    "\n",
    " ",
    "\u{0}",
    "\u{feff}",
    "é",
];

fn byte_op() -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        any::<u8>().prop_map(ByteOp::Set),
        (0u8..8).prop_map(|bit| ByteOp::Flip(1 << bit)),
        any::<u8>().prop_map(ByteOp::Insert),
        Just(ByteOp::Delete),
        Just(ByteOp::Truncate),
        prop::sample::select(TOKENS).prop_map(ByteOp::Token),
    ]
}

/// One to eight byte-level changes.
pub fn byte_mutations() -> impl Strategy<Value = Vec<(Index, ByteOp)>> {
    prop::collection::vec((any::<Index>(), byte_op()), 1..9)
}

/// `seed` with `mutations` applied, in order.
pub fn mutate_bytes(seed: &[u8], mutations: &[(Index, ByteOp)]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for (at, op) in mutations {
        let len = bytes.len();
        let i = if len == 0 { 0 } else { at.index(len) };
        match op {
            ByteOp::Set(b) if len > 0 => bytes[i] = *b,
            ByteOp::Flip(mask) if len > 0 => bytes[i] ^= mask,
            ByteOp::Insert(b) => bytes.insert(i, *b),
            ByteOp::Delete if len > 0 => {
                bytes.remove(i);
            }
            ByteOp::Truncate => bytes.truncate(i),
            ByteOp::Token(t) => {
                let tail = bytes.split_off(i);
                bytes.extend_from_slice(t.as_bytes());
                bytes.extend_from_slice(&tail);
            }
            _ => {}
        }
    }
    bytes
}

/// JSON-like token soup: mostly almost-JSON, reaching the error
/// classification paths that random bytes rarely do.
pub fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.concat().into_bytes())
}

/// What a decoder under test is given, and how it was made.
#[derive(Debug, Clone)]
pub enum Input {
    /// Bytes with no structure guaranteed (random, token soup, byte
    /// mutations).
    Bytes(Vec<u8>),
    /// A JSON tree (a structured mutation of a valid message), encoded.
    Json(Value),
}

impl Input {
    /// The bytes to decode.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Input::Bytes(b) => b.clone(),
            Input::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
        }
    }
}

/// Every kind of input, around the valid encoding `seed`.
pub fn inputs(seed: Vec<u8>) -> impl Strategy<Value = Input> {
    let tree: Value = serde_json::from_slice(&seed).unwrap_or(Value::Null);
    let bytes_seed = seed.clone();
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(Input::Bytes),
        1 => json_soup().prop_map(Input::Bytes),
        3 => byte_mutations().prop_map(move |m| Input::Bytes(mutate_bytes(&bytes_seed, &m))),
        4 => json_mutations().prop_map(move |m| Input::Json(mutate_json(&tree, &m))),
        1 => Just(Input::Bytes(seed)),
    ]
}
