//! The session context: what an agent puts in its next prompt, within a token budget. The rules
//! (what goes in, in which order, how much of the budget each part may take) live here; the store
//! reads the parts and the models crate counts tokens.
//!
//! # Assembly
//! With a budget of `N` tokens:
//! 1. **Facts** (when a query is given): the user's facts best ranked for it (as message search
//!    ranks, [`crate::retrieval`]), best first, at most [`FACTS_MAX`], taken while they fit in a
//!    quarter of `N`.
//! 2. **Messages**: the session's latest messages, newest first, taken while they fit in what the
//!    facts left; the answer lists them oldest first. A message that does not fit ends the run (the
//!    messages are always the latest ones, without gaps).
//! 3. **Summary** (when asked for, and only when some messages did not fit): the newest of the
//!    session's summaries (the one covering the most of the conversation; a long one on a tie),
//!    when it fits in half of `N`; messages are then dropped, oldest first, until the summary fits.
//!
//! `tokens` is the sum of the counted parts (message contents, the summary's content, the facts),
//! never above `N`.

use crate::Message;
use chrono::{DateTime, Utc};

/// Budget when the request names none.
pub const TOKENS_DEFAULT: usize = 2_048;
/// Largest budget a request may ask for.
pub const TOKENS_MAX: usize = 100_000;
/// Facts taken at most.
pub const FACTS_MAX: usize = 20;

/// Counts tokens as a language model does.
pub trait TokenCounter: Send + Sync + std::fmt::Debug {
    /// The encoding's name, e.g. `o200k_base`.
    fn encoding(&self) -> &str;
    /// Tokens of `text`.
    fn count(&self, text: &str) -> usize;
}

/// Which summary the deriver wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryKind {
    Short,
    Long,
}

impl SummaryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SummaryKind::Short => "short",
            SummaryKind::Long => "long",
        }
    }
}

/// A stored summary of a session: the conversation up to `message_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub content: String,
    pub message_id: String,
    pub kind: SummaryKind,
    pub created_at: DateTime<Utc>,
    /// Internal id of the message it covers up to (orders summaries by coverage).
    pub covers_up_to: i64,
}

/// What a context request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRequest {
    pub tokens: usize,
    pub summary: bool,
    pub query: Option<String>,
}

/// The assembled context.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionContext {
    /// Oldest first.
    pub messages: Vec<Message>,
    pub summary: Option<SessionSummary>,
    pub facts: Vec<String>,
    pub tokens: usize,
}

/// The facts that fit: best first, at most [`FACTS_MAX`], within a quarter of `budget`; with their
/// total.
pub fn fit_facts(
    budget: usize,
    ranked: Vec<String>,
    counter: &dyn TokenCounter,
) -> (Vec<String>, usize) {
    let facts = ranked.into_iter().take(FACTS_MAX);
    take_within(facts, budget / 4, |f| counter.count(f))
}

/// The first of `items` while their tokens fit in `budget`, and those tokens.
pub fn take_within<T>(
    items: impl IntoIterator<Item = T>,
    budget: usize,
    tokens: impl Fn(&T) -> usize,
) -> (Vec<T>, usize) {
    let (mut kept, mut used) = (Vec::new(), 0);
    for item in items {
        let n = tokens(&item);
        if used + n > budget {
            break;
        }
        used += n;
        kept.push(item);
    }
    (kept, used)
}

/// Fills a budget with messages, newest first.
#[derive(Debug)]
pub struct MessageFill {
    room: usize,
    used: usize,
    /// Newest first, with their token counts.
    taken: Vec<(Message, usize)>,
    full: bool,
}

impl MessageFill {
    /// A fill of `room` tokens.
    pub fn new(room: usize) -> Self {
        MessageFill {
            room,
            used: 0,
            taken: Vec::new(),
            full: false,
        }
    }

    /// Offers the next message (newer ones first); false once one did not fit (stop reading).
    pub fn offer(&mut self, message: Message, counter: &dyn TokenCounter) -> bool {
        if self.full {
            return false;
        }
        let n = counter.count(&message.content);
        if self.used + n > self.room {
            self.full = true;
            return false;
        }
        self.used += n;
        self.taken.push((message, n));
        true
    }

    /// Whether a message was left out (the summary then has something to cover).
    pub fn left_some_out(&self) -> bool {
        self.full
    }

    /// The context from the messages taken, the facts (with their tokens) and the summaries to
    /// choose from (see the module's rules).
    pub fn finish(
        mut self,
        budget: usize,
        facts: (Vec<String>, usize),
        summaries: Vec<SessionSummary>,
        counter: &dyn TokenCounter,
    ) -> SessionContext {
        let (facts, facts_tokens) = facts;
        let mut summary = None;
        if self.full {
            let mut candidates = summaries;
            candidates.sort_by_key(|s| {
                (
                    std::cmp::Reverse(s.covers_up_to),
                    s.kind != SummaryKind::Long,
                )
            });
            for candidate in candidates {
                let n = counter.count(&candidate.content);
                if n > budget / 2 || facts_tokens + n > budget {
                    continue;
                }
                while self.used + n + facts_tokens > budget {
                    let Some((_, dropped)) = self.taken.pop() else {
                        break;
                    };
                    self.used -= dropped;
                }
                self.used += n;
                summary = Some(candidate);
                break;
            }
        }
        let mut messages: Vec<Message> = self.taken.into_iter().map(|(m, _)| m).collect();
        messages.reverse();
        SessionContext {
            messages,
            summary,
            facts,
            tokens: self.used + facts_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per word.
    #[derive(Debug)]
    struct Words;
    impl TokenCounter for Words {
        fn encoding(&self) -> &str {
            "words"
        }
        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }
    }

    fn message(i: usize, words: usize) -> Message {
        Message {
            id: format!("m{i}"),
            app_id: "a".into(),
            user_id: "u".into(),
            session_id: "s".into(),
            is_user: true,
            content: vec!["w"; words].join(" "),
            metadata: Default::default(),
            created_at: Utc::now(),
        }
    }

    fn summary(kind: SummaryKind, covers_up_to: i64, words: usize) -> SessionSummary {
        SessionSummary {
            content: vec!["s"; words].join(" "),
            message_id: format!("m{covers_up_to}"),
            kind,
            created_at: Utc::now(),
            covers_up_to,
        }
    }

    #[test]
    fn all_messages_fit_and_no_summary_is_added() {
        let mut fill = MessageFill::new(100);
        for i in (0..5).rev() {
            assert!(fill.offer(message(i, 10), &Words));
        }
        let ctx = fill.finish(
            100,
            (Vec::new(), 0),
            vec![summary(SummaryKind::Short, 3, 5)],
            &Words,
        );
        assert_eq!(ctx.messages.len(), 5);
        assert_eq!(ctx.messages[0].id, "m0", "oldest first");
        assert_eq!(ctx.summary, None);
        assert_eq!(ctx.tokens, 50);
    }

    #[test]
    fn the_newest_summary_replaces_the_oldest_messages_that_fit() {
        let mut fill = MessageFill::new(45);
        let mut read = 0;
        for i in (0..10).rev() {
            if !fill.offer(message(i, 10), &Words) {
                break;
            }
            read += 1;
        }
        assert_eq!(read, 4);
        let ctx = fill.finish(
            45,
            (Vec::new(), 0),
            vec![
                summary(SummaryKind::Long, 4, 8),
                summary(SummaryKind::Short, 5, 12),
                summary(SummaryKind::Short, 2, 1),
            ],
            &Words,
        );
        let s = ctx.summary.expect("a summary");
        assert_eq!((s.kind, s.covers_up_to), (SummaryKind::Short, 5));
        assert_eq!(ctx.messages.len(), 3, "one message gave way to the summary");
        assert_eq!(ctx.messages[0].id, "m7");
        assert_eq!(ctx.tokens, 42);
        assert!(ctx.tokens <= 45);
    }

    #[test]
    fn facts_take_at_most_a_quarter_and_a_too_long_summary_is_skipped() {
        let facts: Vec<String> = (0..30).map(|i| format!("fact {i} here")).collect();
        let (kept, used) = fit_facts(40, facts, &Words);
        assert_eq!((kept.len(), used), (3, 9));
        let mut fill = MessageFill::new(40 - used);
        while fill.offer(message(0, 7), &Words) {}
        let ctx = fill.finish(
            40,
            (kept, used),
            vec![summary(SummaryKind::Long, 9, 21)],
            &Words,
        );
        assert_eq!(ctx.summary, None, "21 tokens is over half of 40");
        assert_eq!(ctx.messages.len(), 4);
        assert_eq!(ctx.tokens, 37);
    }
}
