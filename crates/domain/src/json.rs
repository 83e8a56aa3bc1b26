//! JSON rules shared by both storage engines.

use serde_json::Value;

/// Whether `doc` contains `filter` with PostgreSQL's `jsonb @>` semantics: objects match when every key
/// of the filter is present and its value is contained; arrays match when every element of the filter is
/// contained in some element of the document; scalars match when equal (numbers by value). At the top
/// level an array also contains a bare scalar it holds, as in PostgreSQL.
pub fn contains(doc: &Value, filter: &Value) -> bool {
    match (doc, filter) {
        (Value::Array(items), f) if !f.is_array() && !f.is_object() => {
            items.iter().any(|item| scalar_eq(item, f))
        }
        _ => contains_nested(doc, filter),
    }
}

fn contains_nested(doc: &Value, filter: &Value) -> bool {
    match (doc, filter) {
        (Value::Object(d), Value::Object(f)) => f
            .iter()
            .all(|(k, fv)| d.get(k).is_some_and(|dv| contains_nested(dv, fv))),
        (Value::Array(d), Value::Array(f)) => f
            .iter()
            .all(|fv| d.iter().any(|dv| contains_nested(dv, fv))),
        (Value::Object(_), _)
        | (Value::Array(_), _)
        | (_, Value::Object(_))
        | (_, Value::Array(_)) => false,
        (d, f) => scalar_eq(d, f),
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        _ => a == b,
    }
}

/// Whether any string or key inside `v` contains a NUL character.
pub fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn follows_postgres_containment() {
        let doc = json!({"a": 1, "b": {"c": [1, 2, {"d": "x"}]}, "e": [1, [2, 3]]});
        assert!(contains(&doc, &json!({})));
        assert!(contains(&doc, &json!({"a": 1})));
        assert!(contains(&doc, &json!({"a": 1.0})));
        assert!(!contains(&doc, &json!({"a": "1"})));
        assert!(contains(&doc, &json!({"b": {"c": [2]}})));
        assert!(contains(&doc, &json!({"b": {"c": [{"d": "x"}, 1]}})));
        assert!(contains(&doc, &json!({"b": {"c": []}})));
        assert!(!contains(&doc, &json!({"b": {"c": 1}})));
        assert!(contains(&doc, &json!({"e": [[3]]})));
        assert!(!contains(&doc, &json!({"e": [3]})));
        assert!(!contains(&doc, &json!({"z": null})));
        assert!(contains(&json!({"z": null}), &json!({"z": null})));
        assert!(contains(&json!(["a", "b"]), &json!("a")));
    }
}
