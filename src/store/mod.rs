//! The store: every SQL statement rollcall runs, and the domain rules that must hold inside
//! one transaction (the last admin stays, removal revokes access, …).
//!
//! Two backends, chosen at runtime from the database URL: SQLite (embedded default) and
//! PostgreSQL. Each has its own migrations. Statements are written once in the SQL both
//! understand (`$1` placeholders work on both) and compiled for each backend by [`on!`],
//! so each backend gets a concrete, statically typed implementation without `sqlx::Any`.
//! Where the dialects differ, the function matches on [`Tx`] explicitly.

pub mod audit;
pub mod connections;
pub mod credentials;
pub mod domains;
pub mod grants;
pub mod identities;
pub mod invitations;
pub mod limits;
pub mod members;
pub mod mfa;
pub mod oidc_logins;
pub mod orgs;
pub mod outbox;
pub mod passwords;
pub mod resets;
pub mod saml;
pub mod scim;
pub mod scim_query;
pub mod scim_tokens;
pub mod teams;
pub mod users;

use std::{
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use chrono::{DateTime, DurationRound, Utc};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    PgPool, Postgres, Sqlite, SqlitePool, Transaction,
};

/// Domain errors. The HTTP layer maps them to statuses; nothing here knows about HTTP.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is well-formed but contradicts current state (duplicate name, last admin).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The input itself is unacceptable (bad email, unknown team in this org).
    #[error("{0}")]
    Invalid(String),
    #[error("unsupported database URL {0:?}: use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A bug or broken installation, e.g. a template that does not render.
    #[error("{0}")]
    Internal(String),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A transaction that lost a race it can win on a second try: a deadlock or a
    /// serialization failure on PostgreSQL, a busy database on SQLite. The server replays
    /// the request (`server::guard_body`); it is never a 500.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(db)) => matches!(
                db.code().as_deref(),
                Some("40001" | "40P01" | "5" | "6" | "517" | "261" | "262")
            ),
            _ => false,
        }
    }

    /// The database cannot be reached (down, restarting, every connection busy): 503 with
    /// `Retry-After`, in each front door's own shape.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Database(err) => match err {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    // PostgreSQL: connection exceptions, shutting down, too many connections.
                    c.starts_with("08") || c.starts_with("57P") || c == "53300"
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

/// A PostgreSQL connection idle this long is pinged before it is handed out; under load none
/// is, and the first statement is the request's own.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Rows a SQLite connection's worker thread may send ahead of its reader: a SCIM page's
/// most (1,000), and a rename's chunk of members with their groups.
const ROW_BUFFER: usize = 1024;

/// Seconds a client is told to wait when the database is unavailable.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// Marks a response whose request lost a race that a replay can win.
#[derive(Clone, Copy, Debug)]
pub struct LostRace;

/// Turns a unique violation into a [`Error::Conflict`]; any other error passes through.
/// Each call site knows which constraint it can hit, so the message names it precisely.
pub(crate) fn on_unique(
    code: &'static str,
    message: impl Into<String>,
) -> impl FnOnce(sqlx::Error) -> Error {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::conflict(code, message),
        _ => Error::Database(err),
    }
}

/// Whether `err` is a unique violation of `constraint`. PostgreSQL names the constraint;
/// SQLite names only its columns ("UNIQUE constraint failed: t.a, t.b"), so `sqlite_columns`
/// are matched there. Without this, SQLite's conflicts would all read as the first one.
pub(crate) fn violates(err: &sqlx::Error, constraint: &str, sqlite_columns: &str) -> bool {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => match db.constraint() {
            Some(name) => name == constraint,
            None => db.message().ends_with(sqlite_columns),
        },
        _ => false,
    }
}

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One database transaction on either backend. Dropped without [`Tx::commit`], it rolls back.
/// (A [`Store::autocommit`] one is a pooled connection without BEGIN: each statement is its
/// own transaction.)
pub enum Tx {
    Sqlite(SqliteTx),
    Postgres(PgTx),
}

/// A transaction, or a pooled connection in autocommit; either way, the connection.
enum Held<DB: sqlx::Database> {
    Tx(Transaction<'static, DB>),
    Autocommit(sqlx::pool::PoolConnection<DB>),
}

impl<DB: sqlx::Database> Held<DB> {
    async fn commit(self) -> Result<()> {
        if let Held::Tx(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

impl<DB: sqlx::Database> std::ops::Deref for Held<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        match self {
            Held::Tx(t) => t,
            Held::Autocommit(c) => c,
        }
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Held<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Held::Tx(t) => &mut *t,
            Held::Autocommit(c) => &mut *c,
        }
    }
}

/// A SQLite transaction; a writing one holds its database file's place in the writer queue
/// until it ends. Derefs to the connection.
pub struct SqliteTx {
    held: Held<Sqlite>,
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for SqliteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.held
    }
}

impl std::ops::DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.held
    }
}

/// A PostgreSQL transaction. Derefs to the connection.
pub struct PgTx(Held<Postgres>);

impl std::ops::Deref for PgTx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for PgTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// One queue of writers per SQLite database file, shared by every pool on it in this
/// process. SQLite lets one writer in at a time; without the queue, concurrent writers
/// wait in SQLite's busy handler, which sleeps and retries with growing pauses (up to
/// 100 ms each), so under load a write's p99 is made of sleeps. Waiting here is FIFO and
/// wakes the next writer the moment the previous one ends, and a queued writer holds no
/// pooled connection, so reads go on. An in-memory database (one connection, private to
/// its pool) has none: its pool already lets one transaction in at a time.
fn writer_queue(pool: &SqlitePool) -> Option<std::sync::Arc<tokio::sync::Mutex<()>>> {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex, OnceLock},
    };
    static QUEUES: OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    if file.as_os_str() == ":memory:" {
        return None;
    }
    let mut queues = QUEUES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Some(queues.entry(file).or_default().clone())
}

/// Statements and transactions this process has sent to the database (all its stores),
/// for `/metrics` and for the benchmark's statements per request. Counted where every
/// statement passes ([`on!`], [`Store::begin`], [`Store::read`]): one relaxed atomic add,
/// cheap enough to leave on.
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static TRANSACTIONS: AtomicU64 = AtomicU64::new(0);

/// `(statements, transactions)` since the process started.
pub fn statement_counts() -> (u64, u64) {
    (
        STATEMENTS.load(Ordering::Relaxed),
        TRANSACTIONS.load(Ordering::Relaxed),
    )
}

tokio::task_local! {
    static COUNTED: std::cell::Cell<u64>;
}

#[doc(hidden)]
pub fn count_statement() {
    STATEMENTS.fetch_add(1, Ordering::Relaxed);
    let _ = COUNTED.try_with(|n| n.set(n.get() + 1));
}

/// Runs `work` and says how many statements it sent: the process-wide counter cannot say,
/// with other tasks (or tests) using the database at the same time. For tests that hold
/// a path to a bounded number of statements, whatever the number of rows.
pub async fn counting<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    COUNTED
        .scope(std::cell::Cell::new(0), async {
            let out = work.await;
            (out, COUNTED.with(std::cell::Cell::get))
        })
        .await
}

/// Runs `$body` with `$c` bound to the backend's connection, once per backend. Each use is
/// one statement (a body runs one query), which is what [`statement_counts`] counts.
macro_rules! on {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                $crate::store::count_statement();
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                $crate::store::count_statement();
                let $c = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on;

/// A small closed set stored as text (statuses, sources, kinds): the enum is what the code
/// compares, the text is what the column holds, and a value outside the set fails to decode
/// loudly instead of comparing unequal to every string. `as_str`, `FromStr`, `Display` and
/// the sqlx traits for both backends (delegating to their text types) come from here.
macro_rules! text_enum {
    ($name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> std::result::Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("{other:?} is not a {}", stringify!($name))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(text.parse()?)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'q str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }
    };
}
pub(crate) use text_enum;

impl Store {
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(20)
                .acquire_timeout(Duration::from_secs(10))
                // sqlx pings every idle connection it hands out: a round trip before each
                // request's first statement (two for a SCIM request, whose token is checked
                // on a connection of its own). Only a connection that sat idle long enough
                // for the server to have gone away in between is pinged.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_IDLE_AFTER {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await?;
            Ok(Store::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL is durable in WAL mode except for the last commits on power loss.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // Rows come from the connection's worker thread through a channel, which
                // stopped the worker at every 50th row (sqlx's default) to wait for the
                // reader: a page of 100 Users blocked it twice, a rename's reads of 500
                // members ten times a chunk. A page or a chunk now fits.
                .row_buffer_size(ROW_BUFFER);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                // A connection to a file cannot go away underneath: the ping sqlx sends
                // before handing one out is only a round trip to its worker thread.
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Ok(Store::Sqlite(pool))
        } else {
            Err(Error::UnsupportedUrl(url.to_string()))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Store::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// A transaction that may write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails with
    /// SQLITE_BUSY when another writer committed in between, and busy_timeout cannot help.
    pub async fn begin(&self) -> Result<Tx> {
        TRANSACTIONS.fetch_add(1, Ordering::Relaxed);
        Ok(match self {
            Store::Sqlite(pool) => {
                // In the queue first, then a connection: a queued writer holds none.
                let writer = match writer_queue(pool) {
                    Some(queue) => Some(
                        tokio::time::timeout(Duration::from_secs(10), queue.lock_owned())
                            .await
                            .map_err(|_| sqlx::Error::PoolTimedOut)?,
                    ),
                    None => None,
                };
                Tx::Sqlite(SqliteTx {
                    held: Held::Tx(pool.begin_with("BEGIN IMMEDIATE").await?),
                    _writer: writer,
                })
            }
            Store::Postgres(pool) => Tx::Postgres(PgTx(Held::Tx(pool.begin().await?))),
        })
    }

    /// A transaction that only reads; it does not block writers on SQLite.
    pub async fn read(&self) -> Result<Tx> {
        TRANSACTIONS.fetch_add(1, Ordering::Relaxed);
        Ok(match self {
            Store::Sqlite(pool) => Tx::Sqlite(SqliteTx {
                held: Held::Tx(pool.begin().await?),
                _writer: None,
            }),
            Store::Postgres(pool) => Tx::Postgres(PgTx(Held::Tx(pool.begin().await?))),
        })
    }

    /// A pooled connection without a transaction, for reads that need no single snapshot:
    /// each statement sees the latest commit, and no BEGIN or ROLLBACK is sent (two of the
    /// five round trips of a SCIM lookup were those). Never for writes: [`Tx::commit`] does
    /// nothing here, and each statement would commit alone.
    pub async fn autocommit(&self) -> Result<Tx> {
        Ok(match self {
            Store::Sqlite(pool) => Tx::Sqlite(SqliteTx {
                held: Held::Autocommit(pool.acquire().await?),
                _writer: None,
            }),
            Store::Postgres(pool) => Tx::Postgres(PgTx(Held::Autocommit(pool.acquire().await?))),
        })
    }

    /// A connection for one write that is atomic by itself (an upsert, a conditional
    /// `DELETE … RETURNING`): on PostgreSQL a pooled connection in autocommit, whose
    /// statement commits alone, so no BEGIN and COMMIT are sent (two of a rate-limit
    /// check's three round trips); on SQLite a write transaction as [`Store::begin`] gives
    /// one, since every writer there waits its turn in the writer queue. Exactly one
    /// statement: on PostgreSQL a second would commit apart from the first. Call
    /// [`Tx::commit`] as after `begin`.
    pub async fn write_alone(&self) -> Result<Tx> {
        match self {
            Store::Sqlite(_) => self.begin().await,
            Store::Postgres(pool) => {
                Ok(Tx::Postgres(PgTx(Held::Autocommit(pool.acquire().await?))))
            }
        }
    }

    /// Readiness: the database answers a query.
    pub async fn ping(&self) -> Result<()> {
        match self {
            Store::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
            Store::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// An online, consistent copy of a SQLite database in a new file (`VACUUM INTO`): one
    /// read transaction, so writers carry on and the copy is a single point in time. For
    /// PostgreSQL the tools are `pg_dump` and its kin, which this does not replace.
    pub async fn backup(&self, path: &std::path::Path) -> Result<()> {
        match self {
            Store::Sqlite(pool) => {
                if path.exists() {
                    return Err(Error::Invalid(format!(
                        "{} exists; a backup never overwrites a file",
                        path.display()
                    )));
                }
                let target = path.to_str().ok_or_else(|| {
                    Error::Invalid(format!("{} is not a UTF-8 path", path.display()))
                })?;
                sqlx::query("VACUUM INTO $1")
                    .bind(target)
                    .execute(pool)
                    .await?;
                Ok(())
            }
            Store::Postgres(_) => Err(Error::Invalid(
                "rollcall backup copies SQLite databases; back up PostgreSQL with pg_dump \
                 (see docs/operations.md)"
                    .into(),
            )),
        }
    }

    /// Connections the pool holds now, and how many of them are idle.
    pub fn pool_use(&self) -> (u32, usize) {
        match self {
            Store::Sqlite(pool) => (pool.size(), pool.num_idle()),
            Store::Postgres(pool) => (pool.size(), pool.num_idle()),
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self {
            // The transaction ends before its place in the writer queue is given up.
            Tx::Sqlite(t) => t.held.commit().await?,
            Tx::Postgres(t) => t.0.commit().await?,
        }
        Ok(())
    }
}

/// The current time at PostgreSQL's precision, so a value reads back exactly as written on
/// both backends. Times are always bound from Rust, never taken from the database clock,
/// so both backends and every instance agree on one notion of "now".
pub fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(chrono::Duration::microseconds(1))
        .expect("microsecond truncation of the current time cannot overflow")
}

/// Escapes `%`, `_` and `\` so user input is matched literally by `LIKE … ESCAPE '\'`.
pub(crate) fn like_pattern(fragment: &str) -> String {
    let mut out = String::with_capacity(fragment.len() + 2);
    out.push('%');
    for ch in fragment.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A migrated in-memory SQLite store for fast unit tests. One connection: every
    /// connection to `:memory:` would otherwise be its own empty database.
    pub async fn memory_store() -> Store {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .expect("valid in-memory URL")
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("in-memory SQLite opens");
        let store = Store::Sqlite(pool);
        store.migrate().await.expect("migrations apply");
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    /// A ping before each hand-out was a round trip to the connection's worker thread per
    /// request (two for SCIM's); a file connection cannot go stale, so none is sent.
    #[tokio::test]
    async fn sqlite_connections_are_handed_out_without_a_ping() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("x.db").display());
        let Store::Sqlite(pool) = Store::connect(&url).await.unwrap() else {
            unreachable!("a SQLite URL")
        };
        assert!(!pool.options().get_test_before_acquire());
    }

    #[tokio::test]
    async fn unsupported_urls_are_refused_by_name() {
        let err = Store::connect("mysql://localhost/x").await.unwrap_err();
        assert!(matches!(err, Error::UnsupportedUrl(_)), "{err}");
    }
}
