//! Erasing a user or a session: what an erasure removed, counted per kind (never their content).

/// Whose data an erasure removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureScope {
    /// A user and everything under it.
    User,
    /// One session, its messages and what was derived from them.
    Session,
}

impl ErasureScope {
    /// The name stored with the erasure and used as its metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureScope::User => "user",
            ErasureScope::Session => "session",
        }
    }
}

/// Rows an erasure removed, per kind. Keys naming what was erased are not removed (a revocation is
/// never undone): they are revoked and no longer name it (`keys`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub users: u64,
    pub sessions: u64,
    pub messages: u64,
    pub metamessages: u64,
    pub collections: u64,
    pub documents: u64,
    /// The deriver's queue rows and leases.
    pub queue_items: u64,
    /// Recorded API keys revoked and cleared of the erased ids.
    pub keys: u64,
}

impl Erased {
    /// Each kind with its count, in a fixed order (for logs, metrics and the command line).
    pub fn counts(&self) -> [(&'static str, u64); 8] {
        [
            ("users", self.users),
            ("sessions", self.sessions),
            ("messages", self.messages),
            ("metamessages", self.metamessages),
            ("collections", self.collections),
            ("documents", self.documents),
            ("queue_items", self.queue_items),
            ("keys", self.keys),
        ]
    }
}

impl std::fmt::Display for Erased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .counts()
            .iter()
            .map(|(kind, n)| format!("{n} {}", kind.replace('_', " ")))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_in_a_fixed_order() {
        let erased = Erased {
            users: 1,
            sessions: 2,
            messages: 30,
            queue_items: 4,
            ..Erased::default()
        };
        assert_eq!(
            erased.to_string(),
            "1 users, 2 sessions, 30 messages, 0 metamessages, 0 collections, 0 documents, \
             4 queue items, 0 keys"
        );
    }
}
