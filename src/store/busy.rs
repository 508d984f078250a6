//! Waiting for a database another process holds locked.
//!
//! SQLite's own busy timeout waits in silence: a database held by someone's
//! `BEGIN EXCLUSIVE` (a backup tool, an operator's `sqlite3` shell) looked
//! like a daemon doing nothing. This busy handler waits just as long
//! ([`WAIT_BOUND`]), then lets the statement fail into the usual
//! retry/fault path, but after [`ANNOUNCE_AFTER`] it logs once that the
//! database is locked and tells the listener (the daemon publishes it as
//! its current fault), and tells it again when the wait is over.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// The longest a statement waits for a lock (SQLite's busy timeout was 30 s).
pub const WAIT_BOUND: Duration = Duration::from_secs(30);
/// A wait shorter than this is a normal queue behind another writer, not
/// worth a word.
pub const ANNOUNCE_AFTER: Duration = Duration::from_secs(1);

/// What the listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// A statement has waited [`ANNOUNCE_AFTER`] for the lock; `message`
    /// is the line logged, with when the wait began (RFC 3339, UTC).
    Began { message: String, since: String },
    /// The announced wait is over: the lock was taken or the wait gave up.
    Ended,
}

type Listener = Box<dyn Fn(&Wait) + Send>;

static LISTENER: Mutex<Option<Listener>> = Mutex::new(None);

/// One wait on this thread: when it began, and whether it was announced.
#[derive(Clone, Copy)]
struct Episode {
    start: Instant,
    since: chrono::DateTime<chrono::Utc>,
    announced: bool,
}

thread_local! {
    static EPISODE: Cell<Option<Episode>> = const { Cell::new(None) };
}

/// Sets who hears of announced waits (the daemon; one-shot commands have
/// only the log line, which goes to their stderr).
pub fn set_listener(listener: impl Fn(&Wait) + Send + 'static) {
    if let Ok(mut slot) = LISTENER.lock() {
        *slot = Some(Box::new(listener));
    }
}

fn tell(wait: &Wait) {
    if let Ok(slot) = LISTENER.lock() {
        if let Some(listener) = slot.as_ref() {
            listener(wait);
        }
    }
}

/// Installs the handler on a connection.
pub fn install(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(handler))
}

/// Ends this thread's wait, if one was announced: called once the
/// statement that waited has its lock (or has failed).
pub fn settled() {
    if let Some(episode) = EPISODE.with(|e| e.take()) {
        if episode.announced {
            tracing::info!(
                waited_s = episode.start.elapsed().as_secs(),
                "the database lock is no longer in the way"
            );
            tell(&Wait::Ended);
        }
    }
}

/// SQLite calls this while the lock is taken, `count` being how often it
/// has already called it for this statement; `true` means "try again".
fn handler(count: i32) -> bool {
    if count == 0 {
        // A new wait: the previous one, if any, got its lock.
        settled();
        EPISODE.with(|e| {
            e.set(Some(Episode {
                start: Instant::now(),
                since: chrono::Utc::now(),
                announced: false,
            }))
        });
    }
    let Some(mut episode) = EPISODE.with(|e| e.get()) else {
        return false;
    };
    let waited = episode.start.elapsed();
    if waited >= WAIT_BOUND {
        // Give up: the statement fails with SQLITE_BUSY into the retry path,
        // which publishes its own fault.
        settled();
        return false;
    }
    if !episode.announced && waited >= ANNOUNCE_AFTER {
        episode.announced = true;
        EPISODE.with(|e| e.set(Some(episode)));
        let since = episode
            .since
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let message = format!("the database is locked by another process (waiting since {since})");
        tracing::warn!(bound_s = WAIT_BOUND.as_secs(), "{message}");
        tell(&Wait::Began { message, since });
    }
    // Short sleeps first (a writer that is about to commit), then 100 ms.
    let pause = Duration::from_millis(match count {
        0..=4 => 2,
        5..=19 => 10,
        _ => 100,
    });
    std::thread::sleep(pause);
    true
}
