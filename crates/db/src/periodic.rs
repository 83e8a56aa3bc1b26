//! A thread that runs a task at a fixed interval until it is dropped (which wakes, stops and joins
//! it): the watches that keep a process's copies of shared state fresh.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub struct Periodic {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Periodic {
    /// Runs `task` every `interval` (first after one interval) on a thread named `name`.
    pub fn start(name: &str, interval: Duration, mut task: impl FnMut() + Send + 'static) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    guard = wake
                        .wait_timeout(guard, interval)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if *guard {
                        return;
                    }
                    task();
                }
            })
            .expect("spawning a thread");
        Periodic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
