//! What a run read and did, per kind of record: counted as it goes (shared by the workers), shown
//! as progress and summed up at the end.

use honcho_domain::import::Outcome;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The kinds of records an import carries, parents first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    App,
    User,
    Session,
    Message,
    Metamessage,
    Collection,
    Document,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::App,
        Kind::User,
        Kind::Session,
        Kind::Message,
        Kind::Metamessage,
        Kind::Collection,
        Kind::Document,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::App => "app",
            Kind::User => "user",
            Kind::Session => "session",
            Kind::Message => "message",
            Kind::Metamessage => "metamessage",
            Kind::Collection => "collection",
            Kind::Document => "document",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::App => "apps",
            Kind::User => "users",
            Kind::Session => "sessions",
            Kind::Message => "messages",
            Kind::Metamessage => "metamessages",
            Kind::Collection => "collections",
            Kind::Document => "documents",
        }
    }
}

/// Counts of one kind.
#[derive(Debug, Default)]
struct Counts {
    read: AtomicU64,
    written: AtomicU64,
    present: AtomicU64,
    differs: AtomicU64,
    overwritten: AtomicU64,
    conflicts: AtomicU64,
    failed: AtomicU64,
}

/// Differences reported one by one per kind; the rest are counted.
const DIFFERENCES_SHOWN: u64 = 20;

/// What a run read, wrote, found, skipped and failed at.
#[derive(Debug)]
pub struct Tally {
    counts: [Counts; 7],
    started: Instant,
    dry_run: bool,
    /// Whether stderr is a terminal (where a progress line is redrawn in place).
    terminal: bool,
}

impl Tally {
    pub fn new(dry_run: bool) -> Tally {
        Tally {
            counts: Default::default(),
            started: Instant::now(),
            dry_run,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn of(&self, kind: Kind) -> &Counts {
        &self.counts[kind as usize]
    }

    pub fn read(&self, kind: Kind, n: usize) {
        self.of(kind).read.fetch_add(n as u64, Relaxed);
    }

    /// Counts an outcome of a record (`id`, under `parent` for the report) and reports what is not
    /// plainly written or present.
    pub fn outcome(&self, kind: Kind, id: &str, outcome: &Outcome) {
        let c = self.of(kind);
        match outcome {
            Outcome::Written => {
                c.written.fetch_add(1, Relaxed);
            }
            Outcome::Present => {
                c.present.fetch_add(1, Relaxed);
            }
            Outcome::Overwritten => {
                c.overwritten.fetch_add(1, Relaxed);
            }
            Outcome::Differs => {
                let seen = c.differs.fetch_add(1, Relaxed);
                if seen < DIFFERENCES_SHOWN {
                    self.say(&format!(
                        "differs: {} {id} is on the target with other content (kept; --overwrite replaces it)",
                        kind.name()
                    ));
                }
            }
            Outcome::Conflict(why) => {
                c.conflicts.fetch_add(1, Relaxed);
                self.say(&format!("conflict: {why}; skipped with what it holds"));
            }
            Outcome::Unlinked(why) => {
                c.failed.fetch_add(1, Relaxed);
                self.say(&format!("failed: {why}"));
            }
        }
    }

    /// Counts `n` records of `kind` that could not be imported, and says why.
    pub fn failed(&self, kind: Kind, n: usize, what: &str, error: &dyn fmt::Display) {
        self.of(kind).failed.fetch_add(n.max(1) as u64, Relaxed);
        self.say(&format!("failed: {what}: {error}"));
    }

    /// A line of the report, on stderr (over the progress line; `eprintln!` holds stderr's lock for
    /// the whole line, so workers' lines do not interleave).
    fn say(&self, line: &str) {
        if self.terminal {
            eprintln!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    /// Records of `kind` read so far.
    pub fn count_read(&self, kind: Kind) -> u64 {
        self.of(kind).read.load(Relaxed)
    }

    /// Whether anything failed or was skipped by a conflict.
    pub fn incomplete(&self) -> (u64, u64) {
        let sum = |f: fn(&Counts) -> &AtomicU64| {
            self.counts.iter().map(|c| f(c).load(Relaxed)).sum::<u64>()
        };
        (sum(|c| &c.failed), sum(|c| &c.conflicts))
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// One line of progress: what was read of each kind, and messages per second.
    pub fn progress_line(&self) -> String {
        let secs = self.elapsed().as_secs_f64().max(0.001);
        let mut parts: Vec<String> = Kind::ALL
            .iter()
            .map(|k| format!("{} {}", k.plural(), self.count_read(*k)))
            .collect();
        parts.push(format!(
            "{:.0} messages/s",
            self.count_read(Kind::Message) as f64 / secs
        ));
        parts.join(" · ")
    }
}

impl fmt::Display for Tally {
    /// The summary: counts per kind, time, and rates.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let written = if self.dry_run { "to write" } else { "written" };
        writeln!(
            f,
            "{:<13}{:>10}{:>10}{:>10}{:>10}{:>12}{:>10}{:>8}",
            "", "read", written, "present", "differs", "overwritten", "conflicts", "errors"
        )?;
        for kind in Kind::ALL {
            let c = self.of(kind);
            let n = |a: &AtomicU64| a.load(Relaxed);
            writeln!(
                f,
                "{:<13}{:>10}{:>10}{:>10}{:>10}{:>12}{:>10}{:>8}",
                kind.plural(),
                n(&c.read),
                n(&c.written),
                n(&c.present),
                n(&c.differs),
                n(&c.overwritten),
                n(&c.conflicts),
                n(&c.failed)
            )?;
        }
        let secs = self.elapsed().as_secs_f64();
        write!(
            f,
            "{:.1} s; {:.0} messages/s, {:.0} documents/s",
            secs,
            self.count_read(Kind::Message) as f64 / secs.max(0.001),
            self.count_read(Kind::Document) as f64 / secs.max(0.001)
        )
    }
}
