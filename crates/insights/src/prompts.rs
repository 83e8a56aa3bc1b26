//! Every prompt the insights send, and the reading of every answer. Prompts are short and ask for one
//! thing; answers are read tolerantly (an unusable answer is an error the caller retries or works
//! around, never a panic).

use honcho_domain::insights::Conversation;
use honcho_domain::llm::{Prompt, Role, Turn};
use honcho_domain::Message;
use serde_json::Value;

/// Longest fact-extraction answer, in tokens.
const FACTS_MAX_TOKENS: u32 = 400;
/// Longest short summary, in tokens.
const SHORT_SUMMARY_MAX_TOKENS: u32 = 300;
/// Longest long summary, in tokens.
const LONG_SUMMARY_MAX_TOKENS: u32 = 700;
/// Longest list of search queries, in tokens.
const QUERIES_MAX_TOKENS: u32 = 150;
/// Longest dialectic answer, in tokens.
const ANSWER_MAX_TOKENS: u32 = 500;
/// Search queries taken from the model, at most.
pub const MAX_EXPANDED_QUERIES: usize = 3;

const FACTS_SYSTEM: &str = "You keep a memory of durable facts about a user. You are shown the \
conversation so far and one new message written by the user. List only what the NEW message \
tells about the user that is likely to stay true and matter later: who they are, what they like \
or dislike, people and things in their life, plans, history, circumstances. Write each fact as one \
short sentence that stands on its own and starts with \"The user\". Leave out greetings, \
questions, opinions about the conversation and anything only the earlier messages say. Reply with \
a JSON object and nothing else: {\"facts\": [\"...\"]}. When the new message tells nothing \
lasting, reply {\"facts\": []}.";

const SHORT_SUMMARY_SYSTEM: &str = "You summarise a conversation between a user and an AI \
assistant so that it can be continued without the full transcript. Write at most 150 words of \
plain prose: keep names, facts about the user, decisions, open questions and the current topic. \
No heading, no preamble.";

const LONG_SUMMARY_SYSTEM: &str = "You keep the running record of a long conversation between a \
user and an AI assistant. Merge the previous record (if any) with the new messages into one \
summary of at most 400 words of plain prose: keep everything learned about the user, what was \
decided or done, and what is still open. No heading, no preamble.";

const QUERIES_SYSTEM: &str = "You help search a memory of short facts about a user, such as \
\"The user has a dog named Rex.\" Given a question about the user, write up to three different \
search phrases, each worded the way a fact answering the question would be worded. Reply with a \
JSON object and nothing else: {\"queries\": [\"...\"]}.";

const ANSWER_SYSTEM: &str = "You answer questions about a user on behalf of an AI application, \
using only what is given: facts remembered about the user and the current conversation. Answer \
in plain text, briefly and directly, without mentioning where the knowledge came from. When \
nothing given bears on the question, answer exactly: None";

/// `user: ...` / `assistant: ...` lines.
fn transcript(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| {
            let who = if m.is_user { "user" } else { "assistant" };
            format!("{who}: {}", m.content)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn user_turn(content: String) -> Vec<Turn> {
    vec![Turn {
        role: Role::User,
        content,
    }]
}

fn or_none(text: Option<&str>) -> &str {
    match text {
        Some(t) if !t.trim().is_empty() => t,
        _ => "(none)",
    }
}

/// Asks for the facts that `message` (the last of `conversation.recent`) tells about the user.
pub fn facts(conversation: &Conversation, message: &Message) -> Prompt {
    let earlier: Vec<Message> = conversation
        .recent
        .iter()
        .filter(|m| m.id != message.id)
        .cloned()
        .collect();
    let content = format!(
        "Summary of the conversation before these messages:\n{}\n\nRecent messages:\n{}\n\n\
         New message from the user:\n{}",
        or_none(
            conversation
                .short_summary
                .as_ref()
                .map(|s| s.content.as_str())
        ),
        or_none(Some(&transcript(&earlier))),
        message.content
    );
    Prompt {
        system: FACTS_SYSTEM.into(),
        turns: user_turn(content),
        max_tokens: FACTS_MAX_TOKENS,
        json_object: true,
    }
}

/// Which summary to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryKind {
    Short,
    Long,
}

/// Asks for a summary of `messages`, continuing `seed` (the latest long summary).
pub fn summary(kind: SummaryKind, seed: Option<&str>, messages: &[Message]) -> Prompt {
    let (system, max_tokens, seed_name) = match kind {
        SummaryKind::Short => (
            SHORT_SUMMARY_SYSTEM,
            SHORT_SUMMARY_MAX_TOKENS,
            "Summary of everything before",
        ),
        SummaryKind::Long => (
            LONG_SUMMARY_SYSTEM,
            LONG_SUMMARY_MAX_TOKENS,
            "Previous record",
        ),
    };
    let content = format!(
        "{seed_name}:\n{}\n\nMessages:\n{}",
        or_none(seed),
        transcript(messages)
    );
    Prompt {
        system: system.into(),
        turns: user_turn(content),
        max_tokens,
        json_object: false,
    }
}

/// The summary in a model's answer: its text without a leading "Summary:" label; `None` when empty.
pub fn read_summary(output: &str) -> Option<String> {
    let text = output.trim();
    let text = ["Summary:", "summary:", "SUMMARY:"]
        .iter()
        .find_map(|label| text.strip_prefix(label))
        .unwrap_or(text)
        .trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Asks for search phrases for `question`.
pub fn search_queries(question: &str) -> Prompt {
    Prompt {
        system: QUERIES_SYSTEM.into(),
        turns: user_turn(format!("Question: {question}")),
        max_tokens: QUERIES_MAX_TOKENS,
        json_object: true,
    }
}

/// The search phrases in a model's answer (`{"queries": [...]}` or a bare list, anywhere in the
/// text), at most `MAX_EXPANDED_QUERIES`, trimmed and without repeats; `None` when there are none.
pub fn read_search_queries(output: &str) -> Option<Vec<String>> {
    let values: Vec<Value> = output
        .char_indices()
        .filter(|(_, c)| *c == '{' || *c == '[')
        .filter_map(|(i, _)| {
            serde_json::Deserializer::from_str(&output[i..])
                .into_iter::<Value>()
                .next()
                .and_then(Result::ok)
        })
        .collect();
    let list = values
        .iter()
        .find_map(|v| v.get("queries").and_then(Value::as_array))
        .or_else(|| values.iter().find_map(Value::as_array))?;
    let mut queries: Vec<String> = Vec::new();
    for q in list.iter().filter_map(Value::as_str).map(str::trim) {
        if !q.is_empty() && !queries.iter().any(|k| k == q) {
            queries.push(q.chars().take(1_000).collect());
        }
        if queries.len() == MAX_EXPANDED_QUERIES {
            break;
        }
    }
    (!queries.is_empty()).then_some(queries)
}

/// What the answer is based on: facts, the user's messages found by search (from any session) and
/// the conversation, as one text (also saved as the representation metamessage).
pub fn answer_context(facts: &[String], found: &[Message], conversation: &Conversation) -> String {
    let facts = if facts.is_empty() {
        "(none)".to_string()
    } else {
        facts
            .iter()
            .map(|f| format!("- {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let found = if found.is_empty() {
        "(none)".to_string()
    } else {
        found
            .iter()
            .map(|m| format!("- {}", transcript(std::slice::from_ref(m))))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "Facts remembered about the user:\n{facts}\n\nEarlier messages that may be relevant:\n{found}\n\n\
         Summary of the conversation so far:\n{}\n\n\
         Recent messages:\n{}",
        or_none(
            conversation
                .short_summary
                .as_ref()
                .map(|s| s.content.as_str())
        ),
        or_none(Some(&transcript(&conversation.recent)))
    )
}

/// Asks for the answer to `question` from `context` (see `answer_context`).
pub fn answer(question: &str, context: &str) -> Prompt {
    Prompt {
        system: ANSWER_SYSTEM.into(),
        turns: user_turn(format!("{context}\n\nQuestion: {question}")),
        max_tokens: ANSWER_MAX_TOKENS,
        json_object: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use honcho_domain::facts::parse_facts;
    use honcho_domain::insights::Summary;

    fn message(id: &str, is_user: bool, content: &str) -> Message {
        Message {
            id: id.into(),
            app_id: "a".into(),
            user_id: "u".into(),
            session_id: "s".into(),
            is_user,
            content: content.into(),
            metadata: Default::default(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_facts_prompt_separates_the_new_message_from_the_context() {
        let new = message("m3", true, "I just adopted a cat called Miso");
        let conversation = Conversation {
            short_summary: Some(Summary {
                content: "They talked about pets.".into(),
                message_id: "m0".into(),
            }),
            long_summary: None,
            recent: vec![
                message("m1", true, "hi"),
                message("m2", false, "hello!"),
                new.clone(),
            ],
            last_user_message: None,
        };
        let prompt = facts(&conversation, &new);
        assert!(prompt.json_object);
        let text = &prompt.turns[0].content;
        assert!(text.contains("They talked about pets."));
        assert!(text.contains("user: hi\nassistant: hello!"));
        assert!(text.ends_with("New message from the user:\nI just adopted a cat called Miso"));
        assert_eq!(text.matches("Miso").count(), 1, "{text}");
    }

    #[test]
    fn fact_answers_well_formed_malformed_and_empty() {
        assert_eq!(
            parse_facts(r#"{"facts": ["The user has a cat named Miso."]}"#).unwrap(),
            vec!["The user has a cat named Miso."]
        );
        assert_eq!(
            parse_facts("```json\n{\"facts\": [\"The user lives in Oslo.\"]}\n```").unwrap(),
            vec!["The user lives in Oslo."]
        );
        assert_eq!(
            parse_facts(r#"{"facts": []}"#).unwrap(),
            Vec::<String>::new()
        );
        assert!(parse_facts("").is_err());
        assert!(parse_facts("The user likes cats").is_err());
        assert!(parse_facts(r#"{"facts": ["unterminated"#).is_err());
    }

    #[test]
    fn summaries_are_read_without_their_label_and_empty_is_no_summary() {
        assert_eq!(
            read_summary("  Summary: They planned a trip.  ").as_deref(),
            Some("They planned a trip.")
        );
        assert_eq!(read_summary("A trip.").as_deref(), Some("A trip."));
        assert_eq!(read_summary(""), None);
        assert_eq!(read_summary("  Summary:  "), None);
        let prompt = summary(
            SummaryKind::Short,
            Some("Before."),
            &[message("m", true, "x")],
        );
        assert!(prompt.turns[0].content.contains("Before."));
        assert!(prompt.turns[0].content.ends_with("Messages:\nuser: x"));
        let prompt = summary(SummaryKind::Long, None, &[]);
        assert!(prompt.turns[0].content.contains("(none)"));
    }

    #[test]
    fn search_queries_well_formed_malformed_and_empty() {
        assert_eq!(
            read_search_queries(r#"{"queries": ["The user's pet", "The user has a cat"]}"#),
            Some(vec!["The user's pet".into(), "The user has a cat".into()])
        );
        assert_eq!(
            read_search_queries("Sure!\n```\n[\"a\", \"a\", \" b \", \"c\", \"d\"]\n```"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(read_search_queries(r#"{"queries": []}"#), None);
        assert_eq!(read_search_queries(""), None);
        assert_eq!(read_search_queries("pets, cats"), None);
        assert_eq!(read_search_queries(r#"{"queries": [1, null]}"#), None);
        assert_eq!(read_search_queries(r#"{"queries": ["x""#), None);
    }

    #[test]
    fn the_answer_prompt_holds_facts_conversation_and_question() {
        let conversation = Conversation {
            recent: vec![message("m1", true, "I'm off to Rome")],
            ..Default::default()
        };
        let found = [message("m0", true, "My sister lives in Lisbon")];
        let context = answer_context(&["The user likes pasta.".into()], &found, &conversation);
        assert!(context.contains("- The user likes pasta."));
        assert!(context.contains("- user: My sister lives in Lisbon"));
        assert!(context.contains("user: I'm off to Rome"));
        let prompt = answer("Where is the user going?", &context);
        assert!(prompt.turns[0]
            .content
            .ends_with("Question: Where is the user going?"));
        assert!(!prompt.json_object);
        let empty = answer_context(&[], &[], &Conversation::default());
        assert_eq!(empty.matches("(none)").count(), 4, "{empty}");
    }
}
