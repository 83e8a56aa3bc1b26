//! The deriver's queue as the rest of the program sees it: the status of an item (the one place
//! where a status is written as the text the database stores), counts, failed items and retries.

use chrono::{DateTime, Utc};

/// Where a queue item is in its life: `Pending` (waiting, maybe until a retry's time) →
/// `Processing` (a worker holding the session's lease is on it) → `Done`, or back to `Pending`
/// after a failed attempt, or `Failed` after the last one (until an operator retries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueStatus {
    Pending,
    Processing,
    Done,
    Failed,
}

impl QueueStatus {
    pub const ALL: [QueueStatus; 4] = [
        QueueStatus::Pending,
        QueueStatus::Processing,
        QueueStatus::Done,
        QueueStatus::Failed,
    ];
    /// Items still to be done: a session's next item is its oldest open one.
    pub const OPEN: [QueueStatus; 2] = [QueueStatus::Pending, QueueStatus::Processing];

    /// The stored text (the migrations' `CHECK` constraint lists the same).
    pub const fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Pending => "pending",
            QueueStatus::Processing => "processing",
            QueueStatus::Done => "done",
            QueueStatus::Failed => "failed",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Option<QueueStatus> {
        QueueStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_open(self) -> bool {
        QueueStatus::OPEN.contains(&self)
    }
}

/// The stored texts of the open statuses (for SQL).
pub const OPEN_TEXTS: [&str; 2] = [QueueStatus::OPEN[0].as_str(), QueueStatus::OPEN[1].as_str()];

/// Characters of a failure's error kept with the item.
pub const ERROR_KEPT_MAX: usize = 2_000;
/// Characters of a failure's error shown by the failed-items list (the rest is cut, `…` added).
pub const ERROR_SHOWN_MAX: usize = 500;

/// `error` cut to `max` characters (with `…` when cut).
pub fn truncate_error(error: &str, max: usize) -> String {
    match error.char_indices().nth(max) {
        None => error.to_string(),
        Some((at, _)) => format!("{}…", &error[..at]),
    }
}

/// The queue's state for an app, a user or a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueCounts {
    pub pending: i64,
    pub in_progress: i64,
    pub failed: i64,
    pub done: i64,
    /// When the oldest item not yet done or failed was queued.
    pub oldest_open: Option<DateTime<Utc>>,
    /// The oldest failed item still failed: when it failed, and why.
    pub oldest_failure: Option<(DateTime<Utc>, String)>,
}

/// Which items: an app's, optionally one user's or one session's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueScope {
    pub app_id: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
}

/// A message whose derivation failed after its last attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedItem {
    pub message_id: String,
    pub session_id: String,
    pub user_id: String,
    pub attempts: i32,
    /// The last attempt's error, cut to [`ERROR_SHOWN_MAX`] characters.
    pub error: String,
    pub failed_at: DateTime<Utc>,
}

/// Which failed items: every app's (the command line) or one app's, optionally one user's or one
/// session's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedScope {
    pub app_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
}

/// Which failed items to run again: those of `scope`, and of them only `message_ids` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryRequest {
    pub scope: FailedScope,
    pub message_ids: Option<Vec<String>>,
}

/// Most message ids in one retry request.
pub const RETRY_IDS_MAX: usize = 1_000;

/// Checks the number of message ids of a retry request: at most [`RETRY_IDS_MAX`].
pub fn check_retry_ids(count: usize) -> Result<(), crate::Invalid> {
    match count {
        n if n > RETRY_IDS_MAX => Err(crate::Invalid::TooManyItems {
            max: RETRY_IDS_MAX,
            actual: n,
        }),
        _ => Ok(()),
    }
}

/// Why an attempt failed, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The model's service refused the request (a refused key, a bad request).
    ModelRefused,
    /// The model's service could not be reached or kept failing.
    ModelUnreachable,
    /// The model answered something that could not be used.
    AnswerUnusable,
    /// The embedding service failed.
    EmbedderFailed,
    /// The outcome could not be stored.
    StoreError,
}

impl FailureCause {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::ModelRefused => "model_refused",
            FailureCause::ModelUnreachable => "model_unreachable",
            FailureCause::AnswerUnusable => "answer_unusable",
            FailureCause::EmbedderFailed => "embedder_failed",
            FailureCause::StoreError => "store_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_text() {
        for status in QueueStatus::ALL {
            assert_eq!(QueueStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(QueueStatus::parse("stuck"), None);
        assert_eq!(OPEN_TEXTS, ["pending", "processing"]);
    }

    #[test]
    fn errors_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_error("short", 10), "short");
        assert_eq!(truncate_error("ééééé", 3), "ééé…");
    }
}
