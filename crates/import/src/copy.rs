//! The walk over the source: apps and their users, then each user's sessions, collections and
//! metamessages (a job of the workers), then each session's messages and each collection's
//! documents (a job each). Every list is written in the source's order, by one worker, page by
//! page (a list answers in the order its records were written, on both servers); a failed page
//! ends its list, since the rest would be written out of order (a later run completes it). A
//! record is written under its parent only when the parent is on the target as the source has it.

use crate::source::{Source, SourceError};
use crate::tally::{Kind, Tally};
use crate::Options;
use honcho_db::Db;
use honcho_domain::import::{stored_time, ImportMode, Outcome};
use honcho_domain::{
    App, Collection, CollectionKey, Document, Embedding, Message, Metamessage, Session, SessionKey,
    User,
};
use honcho_web::dto;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

/// A path segment, percent-encoded (ids and names may hold any character).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A record as the source describes it, with its time as the target's database keeps it.
fn record<D: Into<T>, T: Record>(d: D) -> T {
    let mut t: T = d.into();
    *t.created_at() = stored_time(*t.created_at());
    t
}

/// What the walk needs of every kind of record.
trait Record {
    fn id(&self) -> &str;
    fn created_at(&mut self) -> &mut chrono::DateTime<chrono::Utc>;
}

macro_rules! records {
    ($($t:ty),*) => {$(
        impl Record for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn created_at(&mut self) -> &mut chrono::DateTime<chrono::Utc> {
                &mut self.created_at
            }
        }
    )*};
}
records! { App, User, Session, Message, Metamessage, Collection, Document }

/// The API path of a user.
fn user_path(app_id: &str, user_id: &str) -> String {
    format!("/v1/apps/{}/users/{}", seg(app_id), seg(user_id))
}

/// The API path of the list of `what` under `parent` (`sessions/{id}`) of a user.
fn list_path(app_id: &str, user_id: &str, parent: &str, what: &str) -> String {
    format!("{}/{parent}/{what}/list", user_path(app_id, user_id))
}

/// The apps to import: those named (by id, else by name), or every app the key lists (an app's
/// own key lists only its app).
pub fn apps(source: &Source, named: &[String]) -> Result<Vec<App>, SourceError> {
    if named.is_empty() {
        let mut apps = Vec::new();
        let listed =
            source.each_page::<dto::App, SourceError>("/v1/apps/list", &json!({}), |page| {
                apps.extend(page.into_iter().map(record));
                Ok(())
            });
        return match listed {
            Ok(()) => Ok(apps),
            // A key of one app may not list the others: its own app is what it reaches.
            Err(SourceError::Refused(..)) if source.has_key() => {
                Ok(vec![record(source.get::<dto::App>("/v1/apps", &[])?)])
            }
            Err(e) => Err(e),
        };
    }
    named
        .iter()
        .map(|n| {
            let by_id = source.get::<dto::App>("/v1/apps", &[("app_id", n.clone())]);
            let found = match by_id {
                Err(SourceError::NotFound(_)) => {
                    source.get::<dto::App>(&format!("/v1/apps/name/{}", seg(n)), &[])
                }
                other => other,
            };
            match found {
                Ok(app) => Ok(record(app)),
                Err(SourceError::NotFound(_)) => Err(SourceError::NotFound(format!(
                    "no app with the id or name {n:?}"
                ))),
                Err(e) => Err(e),
            }
        })
        .collect()
}

/// A unit of work of the workers: a user's sessions and collections; a session's messages; a
/// collection's documents; a user's metamessages, once the user's messages are written (a
/// metamessage may point at one). Each list in its order.
enum Job {
    User(User),
    Messages(Session, Arc<Pending>),
    Documents(Collection),
    Metamessages(User),
}

/// A user whose sessions' messages are being written: the last session done queues its
/// metamessages.
struct Pending {
    user: User,
    sessions: std::sync::atomic::AtomicUsize,
}

/// The jobs waiting, and how many are queued or running (a producer counts as one while it adds).
#[derive(Default)]
struct Jobs {
    state: Mutex<(VecDeque<Job>, usize)>,
    changed: Condvar,
}

impl Jobs {
    fn push(&self, job: Job) {
        let mut s = self.state.lock().expect("the job queue's lock");
        s.0.push_back(job);
        s.1 += 1;
        self.changed.notify_one();
    }

    /// The next job, or `None` once none is queued or running.
    fn next(&self) -> Option<Job> {
        let mut s = self.state.lock().expect("the job queue's lock");
        loop {
            if let Some(job) = s.0.pop_front() {
                return Some(job);
            }
            if s.1 == 0 {
                return None;
            }
            s = self.changed.wait(s).expect("the job queue's lock");
        }
    }

    /// A job (or the producer) is done.
    fn done(&self) {
        let mut s = self.state.lock().expect("the job queue's lock");
        s.1 -= 1;
        if s.1 == 0 {
            self.changed.notify_all();
        }
    }
}

pub struct Copier {
    source: Source,
    db: Db,
    options: Options,
    tally: Arc<Tally>,
    mode: ImportMode,
    jobs: Jobs,
}

impl Copier {
    pub fn new(source: Source, db: Db, options: Options, tally: Arc<Tally>) -> Copier {
        let mode = ImportMode {
            write: !options.dry_run,
            overwrite: options.overwrite,
        };
        Copier {
            source,
            db,
            options,
            tally,
            mode,
            jobs: Jobs::default(),
        }
    }

    /// Imports `apps` and everything under them, with `concurrency` workers.
    pub fn run(&self, apps: Vec<App>) {
        // The producer's own count, released once every app's users are queued.
        self.jobs.state.lock().expect("the job queue's lock").1 += 1;
        std::thread::scope(|scope| {
            for _ in 0..self.options.concurrency.max(1) {
                scope.spawn(|| {
                    while let Some(job) = self.jobs.next() {
                        self.run_job(job);
                        self.jobs.done();
                    }
                });
            }
            self.tally.read(Kind::App, apps.len());
            for app in apps {
                self.app(app);
            }
            self.jobs.done();
        });
    }

    /// Imports the app and its users, in the source's order (a list answers in the order its
    /// records were written), and queues each user's data.
    fn app(&self, app: App) {
        if !self.judged(Kind::App, &app.id, self.db.import_app(&app, self.mode)) {
            return;
        }
        let path = format!("/v1/apps/{}/users/list", seg(&app.id));
        let listed = self.list::<dto::User, User>(&path, Kind::User, |users| {
            for user in users {
                if self.judged(Kind::User, &user.id, self.db.import_user(&user, self.mode)) {
                    self.jobs.push(Job::User(user));
                }
            }
            Ok(())
        });
        if let Err(e) = listed {
            self.tally
                .failed(Kind::User, 1, &format!("users of app {}", app.id), &e);
        }
    }

    fn run_job(&self, job: Job) {
        match job {
            Job::User(user) => self.user(user),
            Job::Messages(session, pending) => {
                self.messages(session);
                self.session_done(&pending);
            }
            Job::Documents(collection) => self.documents(collection),
            Job::Metamessages(user) => self.metamessages(&user),
        }
    }

    /// Counts the outcome of a parent; whether what it holds is imported too.
    fn judged(&self, kind: Kind, id: &str, outcome: honcho_db::DbResult<Outcome>) -> bool {
        match outcome {
            Ok(o) => {
                self.tally.outcome(kind, id, &o);
                o.imported()
            }
            Err(e) => {
                self.tally
                    .failed(kind, 1, &format!("{} {id}", kind.name()), &e);
                false
            }
        }
    }

    /// Every item of a list of the source, page by page, as records, counted as read.
    fn list<D, T>(
        &self,
        path: &str,
        kind: Kind,
        mut each: impl FnMut(Vec<T>) -> Result<(), String>,
    ) -> Result<(), String>
    where
        D: serde::de::DeserializeOwned + Into<T>,
        T: Record,
    {
        self.source
            .each_page::<D, ListError>(path, &json!({}), |page| {
                self.tally.read(kind, page.len());
                each(page.into_iter().map(record).collect()).map_err(ListError::Target)
            })
            .map_err(|e| e.to_string())
    }

    /// The user's sessions and collections (in order; their messages and documents are queued),
    /// and its metamessages.
    fn user(&self, user: User) {
        let base = user_path(&user.app_id, &user.id);
        // Counts the sessions queued, and this job until it has queued them all.
        let pending = Arc::new(Pending {
            user: user.clone(),
            sessions: 1.into(),
        });
        let sessions = self.list::<dto::Session, Session>(
            &format!("{base}/sessions/list"),
            Kind::Session,
            |page| {
                for s in page {
                    let written = self.db.import_session(&s, self.mode);
                    if self.judged(Kind::Session, &s.id, written) {
                        pending.sessions.fetch_add(1, Ordering::SeqCst);
                        self.jobs.push(Job::Messages(s, pending.clone()));
                    }
                }
                Ok(())
            },
        );
        if let Err(e) = sessions {
            let what = format!("sessions of user {}", user.id);
            self.tally.failed(Kind::Session, 1, &what, &e);
        }
        let collections = self.list::<dto::Collection, Collection>(
            &format!("{base}/collections/list"),
            Kind::Collection,
            |page| {
                for c in page {
                    let written = self.db.import_collection(&c, self.mode);
                    if self.judged(Kind::Collection, &c.id, written) {
                        self.jobs.push(Job::Documents(c));
                    }
                }
                Ok(())
            },
        );
        if let Err(e) = collections {
            let what = format!("collections of user {}", user.id);
            self.tally.failed(Kind::Collection, 1, &what, &e);
        }
        self.session_done(&pending);
    }

    /// One of the user's sessions is done (or the job that queued them): after the last one, the
    /// user's metamessages are queued.
    fn session_done(&self, pending: &Pending) {
        if pending.sessions.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.jobs.push(Job::Metamessages(pending.user.clone()));
        }
    }

    /// Copies the list of `kind` at `path` (the records `of` a parent), page by page, in order:
    /// `write` stores a page and answers each record's outcome. A page that fails ends the list:
    /// what was written stands, in order, and a later run completes it.
    fn copy_list<D, T>(
        &self,
        path: &str,
        kind: Kind,
        of: &str,
        mut write: impl FnMut(&[T]) -> Result<Vec<Outcome>, String>,
    ) where
        D: serde::de::DeserializeOwned + Into<T>,
        T: Record,
    {
        let listed = self.list::<D, T>(path, kind, |page| {
            let outcomes =
                write(&page).map_err(|e| format!("writing the {} of {of}: {e}", kind.name()))?;
            for (record, outcome) in page.iter().zip(&outcomes) {
                self.tally.outcome(kind, record.id(), outcome);
            }
            Ok(())
        });
        if let Err(e) = listed {
            let what = format!(
                "{} of {of} (the rest of them; running again completes it)",
                kind.name()
            );
            self.tally.failed(kind, 1, &what, &e);
        }
    }

    fn messages(&self, session: Session) {
        let key = SessionKey {
            app_id: session.app_id,
            user_id: session.user_id,
            session_id: session.id,
        };
        let session = format!("sessions/{}", seg(&key.session_id));
        let path = list_path(&key.app_id, &key.user_id, &session, "messages");
        let of = format!("session {}", key.session_id);
        self.copy_list::<dto::Message, Message>(&path, Kind::Message, &of, |page| {
            let derive = self.options.derive;
            let written = self.db.import_messages(&key, page, self.mode, derive);
            written.map_err(|e| e.to_string())
        });
    }

    fn metamessages(&self, user: &User) {
        let path = format!("{}/metamessages/list", user_path(&user.app_id, &user.id));
        let of = format!("user {}", user.id);
        self.copy_list::<dto::Metamessage, Metamessage>(&path, Kind::Metamessage, &of, |page| {
            let written = self
                .db
                .import_metamessages(&user.app_id, &user.id, page, self.mode);
            written.map_err(|e| e.to_string())
        });
    }

    fn documents(&self, collection: Collection) {
        let key = CollectionKey {
            app_id: collection.app_id,
            user_id: collection.user_id,
            collection_id: collection.id,
        };
        let collection = format!("collections/{}", seg(&key.collection_id));
        let path = list_path(&key.app_id, &key.user_id, &collection, "documents");
        let of = format!("collection {}", key.collection_id);
        self.copy_list::<dto::Document, Document>(&path, Kind::Document, &of, |page| {
            let batch = self.embedded(&key, page.to_vec())?;
            let written = self.db.import_documents(&key, &batch, self.mode);
            written.map_err(|e| e.to_string())
        });
    }

    /// The page's documents, with a vector of the target's embedder for each one the write will
    /// store (judged first, so that a document already there costs no embedding).
    fn embedded(
        &self,
        key: &CollectionKey,
        page: Vec<Document>,
    ) -> Result<Vec<(Document, Option<Embedding>)>, String> {
        let mut batch: Vec<(Document, Option<Embedding>)> =
            page.into_iter().map(|d| (d, None)).collect();
        let Some(embedder) = self.options.embedder.as_ref().filter(|_| self.mode.write) else {
            return Ok(batch);
        };
        let plan = ImportMode {
            write: false,
            ..self.mode
        };
        let outcomes = self
            .db
            .import_documents(key, &batch, plan)
            .map_err(|e| e.to_string())?;
        let wanted: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Outcome::Written | Outcome::Overwritten))
            .map(|(i, _)| i)
            .collect();
        if wanted.is_empty() {
            return Ok(batch);
        }
        let texts: Vec<&str> = wanted
            .iter()
            .map(|i| batch[*i].0.content.as_str())
            .collect();
        let vectors = embedder
            .embed_each(&texts)
            .map_err(|e| format!("embedding documents: {e}"))?;
        for (i, vector) in wanted.into_iter().zip(vectors) {
            batch[i].1 = Some(Embedding {
                vector,
                embedder: embedder.id().to_string(),
            });
        }
        Ok(batch)
    }
}

/// Why a page of a list could not be imported.
enum ListError {
    Source(SourceError),
    Target(String),
}

impl From<SourceError> for ListError {
    fn from(e: SourceError) -> Self {
        ListError::Source(e)
    }
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListError::Source(e) => write!(f, "reading the source: {e}"),
            ListError::Target(e) => f.write_str(e),
        }
    }
}
