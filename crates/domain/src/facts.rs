//! Reading the facts a language model extracted from a conversation. The model is asked for a JSON
//! object `{"facts": ["...", ...]}`; what comes back is read tolerantly: inside a code fence, with
//! prose around it, or as a bare list. Output that holds no such answer is an error the caller may
//! retry; it never panics.

use serde_json::Value;
use std::fmt;

/// Facts longer than this (in characters) are cut; a model rambling is not a fact.
pub const FACT_MAX_CHARS: usize = 2_000;

/// The model's output held no list of facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The start of what the model said, for the log.
    pub excerpt: String,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no list of facts in the model's answer: {:?}",
            self.excerpt
        )
    }
}

impl std::error::Error for Unreadable {}

/// The facts in a model's answer, trimmed, without empty or repeated ones, in order.
///
/// Accepted: `{"facts": [...]}` (other keys ignored), anywhere in the text, also inside a code
/// fence; a bare JSON list; items that are strings, or objects with a string `fact`, `text` or
/// `content`; an object of named facts (`{"facts": {"city": "Lisbon"}}` gives `city: Lisbon`).
/// `{"facts": []}` is an answer (no facts).
pub fn parse_facts(output: &str) -> Result<Vec<String>, Unreadable> {
    let values: Vec<Value> = json_values(output).collect();
    // Small models sometimes answer an object of named facts: `{"facts": {"city": "Lisbon"}}`.
    let named: Option<Vec<Value>> = values.iter().find_map(|v| match v.get("facts") {
        Some(Value::Object(map)) => Some(
            map.iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some(Value::String(format!("{k}: {s}"))),
                    Value::Number(n) => Some(Value::String(format!("{k}: {n}"))),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    });
    let answer = values
        .iter()
        .find_map(|v| match v.get("facts") {
            Some(Value::Array(items)) => Some(items.as_slice()),
            _ => None,
        })
        .or(named.as_deref())
        .or_else(|| {
            // A bare list: the first one holding something usable, or `[]` alone.
            values
                .iter()
                .filter_map(Value::as_array)
                .find(|items| items.iter().any(|i| fact_text(i).is_some()))
                .map(Vec::as_slice)
                .or_else(|| (output.trim() == "[]").then_some(&[][..]))
        })
        .ok_or_else(|| Unreadable {
            excerpt: output.chars().take(200).collect(),
        })?;
    let mut facts: Vec<String> = Vec::new();
    for text in answer.iter().filter_map(fact_text) {
        let text: String = text.trim().chars().take(FACT_MAX_CHARS).collect();
        if !text.is_empty() && !facts.contains(&text) {
            facts.push(text);
        }
    }
    Ok(facts)
}

/// The text of one item of the list: a string, or an object's `fact`, `text` or `content`.
fn fact_text(item: &Value) -> Option<&str> {
    match item {
        Value::String(s) => Some(s),
        Value::Object(map) => ["fact", "text", "content"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str)),
        _ => None,
    }
}

/// Every JSON object or list that starts somewhere in `text` and parses, in order of position.
fn json_values(text: &str) -> impl Iterator<Item = Value> + '_ {
    text.char_indices()
        .filter(|(_, c)| *c == '{' || *c == '[')
        .filter_map(move |(i, _)| {
            serde_json::Deserializer::from_str(&text[i..])
                .into_iter::<Value>()
                .next()
                .and_then(Result::ok)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(s: &str) -> Vec<String> {
        parse_facts(s).unwrap()
    }

    #[test]
    fn well_formed_fenced_and_prose_wrapped_answers_are_read() {
        assert_eq!(
            facts(r#"{"facts": ["Lives in Lisbon", "Has a dog"]}"#),
            ["Lives in Lisbon", "Has a dog"]
        );
        assert_eq!(
            facts("```json\n{\"facts\": [\"Likes tea\"]}\n```"),
            ["Likes tea"]
        );
        assert_eq!(
            facts(
                "Sure! Here are the facts:\n{\"facts\": [\" Likes tea \", \"\"]}\nHope it helps."
            ),
            ["Likes tea"]
        );
        assert_eq!(
            facts(r#"{"reasoning": "...", "facts": [{"fact": "Is 30"}, {"text": "Runs"}, 7]}"#),
            ["Is 30", "Runs"]
        );
        assert_eq!(facts(r#"["A", "A", "B"]"#), ["A", "B"]);
        // A brace in the prose before the answer does not hide it, nor does another list.
        assert_eq!(facts(r#"Note {this} first. {"facts": ["X"]}"#), ["X"]);
        assert_eq!(facts(r#"{"ids": [1, 2]} then {"facts": ["Y"]}"#), ["Y"]);
    }

    #[test]
    fn an_object_of_named_facts_is_read_as_key_and_value() {
        // The keys' order depends on whether serde_json keeps it (a feature of the build).
        let mut named = facts(r#"{"facts": {"name": "Maya", "age": 31, "pets": ["cat"]}}"#);
        named.sort();
        assert_eq!(named, ["age: 31", "name: Maya"]);
        assert_eq!(facts(r#"{"facts": {}}"#), Vec::<String>::new());
    }

    #[test]
    fn an_empty_list_is_an_answer() {
        assert_eq!(facts(r#"{"facts": []}"#), Vec::<String>::new());
        assert_eq!(facts(" [] "), Vec::<String>::new());
    }

    #[test]
    fn malformed_output_is_an_error_not_a_panic() {
        for bad in [
            "",
            "I could not find any facts.",
            r#"{"facts": "Likes tea"}"#,
            r#"{"facts": ["unterminated"#,
            "{{{{",
            "[1, 2, 3]",
            "\u{0}\u{ffff}",
        ] {
            assert!(parse_facts(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_output_is_read_or_refused_without_panicking(output in "\\PC{0,300}") {
            let _ = parse_facts(&output);
        }

        #[test]
        fn a_well_formed_answer_gives_back_its_facts(list in proptest::collection::vec("[a-z ]{1,20}", 0..5)) {
            let answer = serde_json::json!({ "facts": list }).to_string();
            let mut want: Vec<String> = Vec::new();
            for f in &list {
                let f = f.trim().to_string();
                if !f.is_empty() && !want.contains(&f) {
                    want.push(f);
                }
            }
            proptest::prop_assert_eq!(parse_facts(&format!("Here:\n```json\n{answer}\n```")).unwrap(), want);
        }
    }
}
