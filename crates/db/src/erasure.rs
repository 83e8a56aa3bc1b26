//! Every process drops its in-memory copies of search data once data was erased, whichever process
//! erased it: a thread counts the recorded erasures every second (one count of a small table) and
//! clears the caches when the count moved. Erasures are never deleted, so the count moves with
//! every one of them, in whatever order they commit.

use crate::periodic::Periodic;
use crate::Db;
use std::time::Duration;

/// How often a process looks for erasures made by others.
pub const ERASURES_POLL: Duration = Duration::from_secs(1);

/// The thread keeping a process's caches free of erased data; stopped when dropped.
pub struct ErasureWatch {
    _running: Periodic,
}

impl ErasureWatch {
    pub fn start(db: Db) -> ErasureWatch {
        let mut seen = db.erasure_mark().ok();
        ErasureWatch {
            _running: Periodic::start("erasures", ERASURES_POLL, move || {
                // Unreadable (an outage): looked at again next time; queries fail meanwhile.
                let Ok(mark) = db.erasure_mark() else {
                    return;
                };
                if seen.is_some_and(|seen| seen != mark) {
                    tracing::debug!("data was erased: dropping the cached search data");
                    db.forget_cached();
                }
                seen = Some(mark);
            }),
        }
    }
}
