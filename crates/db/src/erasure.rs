//! Every process drops its in-memory copies of search data once data was erased, whichever process
//! erased it: a thread counts the recorded erasures every second (one count of a small table) and
//! clears the caches when the count moved. Erasures are never deleted, so the count moves with
//! every one of them, in whatever order they commit.

use crate::Db;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often a process looks for erasures made by others.
pub const ERASURES_POLL: Duration = Duration::from_secs(1);

/// The thread keeping a process's caches free of erased data; stopped when dropped.
pub struct ErasureWatch {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ErasureWatch {
    pub fn start(db: Db) -> ErasureWatch {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("erasures".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut seen = db.erasure_mark().ok();
                let mut guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    guard = wake
                        .wait_timeout(guard, ERASURES_POLL)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if *guard {
                        return;
                    }
                    // Unreadable (an outage): looked at again next time; queries fail meanwhile.
                    let Ok(mark) = db.erasure_mark() else {
                        continue;
                    };
                    if seen != Some(mark) {
                        if seen.is_some() {
                            tracing::debug!("data was erased: dropping the cached search data");
                            db.forget_cached();
                        }
                        seen = Some(mark);
                    }
                }
            })
            .expect("spawning a thread");
        ErasureWatch {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ErasureWatch {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
