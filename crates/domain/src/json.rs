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
        (Value::Array(d), Value::Array(f)) => array_contains(d, f),
        (Value::Object(_), _)
        | (Value::Array(_), _)
        | (_, Value::Object(_))
        | (_, Value::Array(_)) => false,
        (d, f) => scalar_eq(d, f),
    }
}

/// Below this many elements on both sides, comparing every pair is cheaper than hashing.
const LINEAR_MAX: usize = 8;

/// Every element of `f` is contained in some element of `d`. Scalars are looked up in a set of the
/// document's scalars (built once), so scalar arrays cost O(n + m) rather than O(n × m); an object
/// or array element of the filter is compared with the document's objects or arrays only.
fn array_contains(d: &[Value], f: &[Value]) -> bool {
    if f.is_empty() {
        return true;
    }
    if d.len() <= LINEAR_MAX || f.len() <= 1 {
        return f
            .iter()
            .all(|fv| d.iter().any(|dv| contains_nested(dv, fv)));
    }
    let scalars: std::collections::HashSet<ScalarKey> =
        d.iter().filter_map(ScalarKey::of).collect();
    let nested: Vec<&Value> = d.iter().filter(|v| v.is_array() || v.is_object()).collect();
    f.iter().all(|fv| match ScalarKey::of(fv) {
        Some(key) => scalars.contains(&key),
        None => nested.iter().any(|dv| contains_nested(dv, fv)),
    })
}

/// A scalar as containment compares it: numbers by value (`1`, `1.0` and `1e0` are one key).
#[derive(PartialEq, Eq, Hash)]
enum ScalarKey<'a> {
    Null,
    Bool(bool),
    Str(&'a str),
    /// `(negative, significant digits, scale)` of the number with trailing zeros dropped.
    Number(bool, String, i64),
    /// A number literal that does not parse as a decimal (kept as written).
    Other(String),
}

impl<'a> ScalarKey<'a> {
    fn of(v: &'a Value) -> Option<ScalarKey<'a>> {
        Some(match v {
            Value::Null => ScalarKey::Null,
            Value::Bool(b) => ScalarKey::Bool(*b),
            Value::String(s) => ScalarKey::Str(s),
            Value::Number(n) => {
                let text = n.to_string();
                match Decimal::parse(&text) {
                    Some(d) => {
                        let (negative, digits, scale) = d.normal();
                        ScalarKey::Number(negative, digits.to_string(), scale)
                    }
                    None => ScalarKey::Other(text),
                }
            }
            Value::Array(_) | Value::Object(_) => return None,
        })
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        // Stored and filter numbers are written the same way (`canonical_numbers`), so equal
        // values usually have equal text; only different spellings (`1` / `1.0`) are parsed.
        (Value::Number(x), Value::Number(y)) if x == y => true,
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.to_string(), y.to_string());
            match (Decimal::parse(&x), Decimal::parse(&y)) {
                (Some(x), Some(y)) => x.same_value(&y),
                _ => x == y,
            }
        }
        _ => a == b,
    }
}

/// The most characters a number in metadata may have once written out as PostgreSQL keeps it.
pub const NUMBER_MAX_CHARS: usize = 1000;

/// A JSON number literal, exactly: `digits` (no leading zeros; empty for zero) times 10^-`scale`.
#[derive(Debug, PartialEq)]
struct Decimal {
    negative: bool,
    digits: String,
    scale: i64,
}

impl Decimal {
    fn parse(literal: &str) -> Option<Decimal> {
        let (negative, rest) = match literal.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, literal),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() || !(int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = format!("{int}{frac}").trim_start_matches('0').to_string();
        let scale = i64::try_from(frac.len()).ok()?.checked_sub(exponent)?;
        Some(Decimal {
            negative,
            digits,
            scale,
        })
    }

    /// Equal as numbers: `1`, `1.0` and `1e0` are; so are `0` and `-0.0`.
    fn same_value(&self, other: &Decimal) -> bool {
        self.normal() == other.normal()
    }

    /// The number's value as `(negative, significant digits, scale)`, trailing zeros dropped: equal
    /// for equal values.
    fn normal(&self) -> (bool, &str, i64) {
        if self.digits.is_empty() {
            return (false, "", 0);
        }
        let trimmed = self.digits.trim_end_matches('0');
        let dropped = (self.digits.len() - trimmed.len()) as i64;
        (self.negative, trimmed, self.scale - dropped)
    }

    /// Written out as PostgreSQL's `numeric` writes it: no exponent, the literal's scale.
    fn written(&self) -> Option<String> {
        let zero = self.digits.is_empty();
        let sign = if self.negative && !zero { "-" } else { "" };
        let digits = if zero { "0" } else { self.digits.as_str() };
        let out = if self.scale <= 0 {
            let zeros = usize::try_from(-self.scale).ok()?;
            if digits.len().saturating_add(zeros) > NUMBER_MAX_CHARS {
                return None;
            }
            let zeros = if zero { 0 } else { zeros };
            format!("{sign}{digits}{}", "0".repeat(zeros))
        } else {
            let scale = usize::try_from(self.scale).ok()?;
            if scale.saturating_add(digits.len()).saturating_add(2) > NUMBER_MAX_CHARS {
                return None;
            }
            let padded = format!(
                "{}{digits}",
                "0".repeat((scale + 1).saturating_sub(digits.len()))
            );
            let (int, frac) = padded.split_at(padded.len() - scale);
            format!("{sign}{int}.{frac}")
        };
        Some(out)
    }
}

/// Writes every number inside `v` as PostgreSQL's `jsonb` keeps it (exact, without exponent:
/// `1e3` becomes `1000`, `1.50` stays `1.50`), so both engines store and return the same text.
/// `Err` names a number too long to keep.
pub fn canonical_numbers(v: &mut Value) -> Result<(), String> {
    match v {
        Value::Number(n) => {
            let literal = n.to_string();
            let written = Decimal::parse(&literal)
                .and_then(|d| d.written())
                .ok_or_else(|| {
                    format!("Number has more than {NUMBER_MAX_CHARS} digits when written out")
                })?;
            if written != literal {
                *n = written
                    .parse()
                    .map_err(|_| format!("Invalid number {literal}"))?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(canonical_numbers),
        Value::Object(map) => map.values_mut().try_for_each(canonical_numbers),
        _ => Ok(()),
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
    use super::{canonical_numbers, contains};
    use serde_json::{json, Value};

    fn canonical(literal: &str) -> Result<String, String> {
        let mut v: Value = serde_json::from_str(literal).unwrap();
        canonical_numbers(&mut v).map(|()| v.to_string())
    }

    #[test]
    fn numbers_are_kept_exactly_as_postgres_writes_them() {
        for (literal, written) in [
            (
                "1267650600228229401496703205376",
                "1267650600228229401496703205376",
            ),
            ("-9223372036854775809", "-9223372036854775809"),
            ("0.1", "0.1"),
            ("1.50", "1.50"),
            ("1e3", "1000"),
            ("1.5E+1", "15"),
            ("1.50e1", "15.0"),
            ("25e-3", "0.025"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("0e5", "0"),
            ("123.456e-1", "12.3456"),
        ] {
            assert_eq!(canonical(literal), Ok(written.to_string()), "{literal}");
        }
        assert!(canonical("1e100000").is_err());
        assert!(canonical("1e-100000").is_err());
        assert!(canonical("[1e99999999999999999999]").is_err());
    }

    #[test]
    fn large_scalar_arrays_are_contained_in_linear_time() {
        let n = 50_000;
        let doc = json!({ "a": (0..n).collect::<Vec<_>>() });
        let filter = json!({ "a": (0..n).rev().collect::<Vec<_>>() });
        let started = std::time::Instant::now();
        assert!(contains(&doc, &filter));
        let mut missing = (0..n).collect::<Vec<_>>();
        missing.push(n);
        assert!(!contains(&doc, &json!({ "a": missing })));
        // Comparing every pair of 50,000 × 50,000 elements would take minutes.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn hashed_and_pairwise_containment_agree() {
        let doc: Value = serde_json::from_str(
            r#"[1, 2.50, "x", null, true, [1, 2], {"k": [3, 4]}, 1e2, -0, "y", 7, 8, 9]"#,
        )
        .unwrap();
        for (filter, expected) in [
            ("[2.5, 100, 0, null, true]", true),
            ("[1.0, \"x\", [2], {\"k\": [4]}]", true),
            ("[2.51]", false),
            ("[false]", false),
            ("[[3]]", false),
            ("[{\"k\": [3, 4, 5]}]", false),
            ("[]", true),
        ] {
            let filter: Value = serde_json::from_str(filter).unwrap();
            assert_eq!(contains(&doc, &filter), expected, "{filter}");
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        let big = json!({"n": 1267650600228229401496703205376_u128});
        assert!(contains(&big, &big));
        let other: Value =
            serde_json::from_str(r#"{"n": 1267650600228229401496703205377}"#).unwrap();
        assert!(!contains(&big, &other));
        let a: Value = serde_json::from_str(r#"{"x": 1.50, "y": 0}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"x": 15e-1, "y": -0.0}"#).unwrap();
        assert!(contains(&a, &b));
    }

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
