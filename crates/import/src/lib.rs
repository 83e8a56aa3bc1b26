//! `honcho import`: copies the data of a server of the Honcho v1.1.0 API (this one, or any other)
//! into this server's database, read through the source's public API.
//!
//! Apps, users, sessions (active or not), messages (in order), metamessages, collections and
//! documents keep their ids, times, metadata and links, so that clients that stored ids keep working
//! against the target. Every record is judged against what the target holds under its id and
//! name (`honcho_domain::import`): a run writes only what is missing, so an interrupted run is
//! completed by running it again, and a second run writes nothing. Each page of the source (at most
//! 100 records) is written in one transaction. Documents get vectors of the target's embedder
//! (the source's are not part of the API).

mod copy;
pub mod source;
pub mod tally;

use honcho_domain::embed::Embedder;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use source::{Source, SourceError};
pub use tally::{Kind, Tally};

/// What to import and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Apps to import, by id or name (none: every app the key can list).
    pub apps: Vec<String>,
    /// Workers importing users' data at once.
    pub concurrency: usize,
    /// Judge everything, write nothing.
    pub dry_run: bool,
    /// Replace records that differ from the source's.
    pub overwrite: bool,
    /// Queue written messages for the deriver (otherwise the source's facts and summaries stand).
    pub derive: bool,
    /// How documents get vectors: the target's embedder, or none (`--skip-embedding`).
    pub embedder: Option<Arc<dyn Embedder>>,
}

/// Imports what `options` names from `source` into `db`, reporting as it goes through `tally`.
/// Fails before writing anything when the source cannot be read at all (unreachable, the key
/// refused, not a v1.1.0 API, a named app missing); after that, a record that fails is counted and
/// reported and the rest goes on.
pub fn run(
    source: &Source,
    open_target: impl FnOnce() -> Result<honcho_db::Db, String>,
    options: &Options,
    tally: &Arc<Tally>,
) -> Result<(), String> {
    source.check_api().map_err(|e| e.to_string())?;
    let apps = copy::apps(source, &options.apps).map_err(|e| e.to_string())?;
    let db = open_target()?;
    let copier = copy::Copier::new(source.clone(), db, options.clone(), tally.clone());
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| show_progress(tally, &done));
        copier.run(apps);
        done.store(true, Ordering::Relaxed);
    });
    Ok(())
}

/// How often progress is shown: redrawn in place on a terminal, a plain line otherwise.
const REDRAW_EVERY: Duration = Duration::from_millis(250);
const LINE_EVERY: Duration = Duration::from_secs(10);

/// Shows the tally's progress on stderr until `done`.
fn show_progress(tally: &Tally, done: &AtomicBool) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal { REDRAW_EVERY } else { LINE_EVERY };
    let mut last = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        if terminal {
            eprint!("\r\x1b[K{}", tally.progress_line());
        } else {
            eprintln!("progress: {}", tally.progress_line());
        }
    }
    if terminal {
        eprint!("\r\x1b[K");
    }
}
