//! Group commit: one writer task per instance owns one connection and runs every audited write.
//! Writes that arrive while a commit is being synced to disk are batched into the next
//! transaction, each in its own savepoint (one failing write does not undo the others), and all
//! are acknowledged after a single `COMMIT`. The commit's fsync is what a write costs, so this
//! turns N fsyncs into one without weakening durability: nobody hears "done" before their write
//! is on disk. Compiled once per backend; the backend says how a batch begins (`begin_batch`:
//! SQLite takes its write lock, PostgreSQL the audit chain's lock, shared by every instance) and
//! how it commits (`commit`: PostgreSQL announces the chain's new head with it).
//!
//! A connection that fails (the database restarted, the backend was terminated) is dropped and a
//! new one taken for the next batch; while none can be had, writes fail at once with
//! [`Error::Unavailable`] rather than queue behind a dead connection.

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use tokio::sync::{mpsc, oneshot};

use super::{Conn, Db, audit, begin_batch};
use crate::store::Error;
use crate::store::chain::{self, AuditKey, HEAD, Head};

type Done = Box<dyn FnOnce(Option<Error>) + Send>;
type Run =
    Box<dyn for<'c> FnOnce(Result<&'c mut Conn, Error>) -> BoxFuture<'c, (bool, Done)> + Send>;

/// A write waiting for its batch. `guarded`: it runs in a savepoint of its own, so its failure
/// undoes only it; an unguarded write (one statement that fails only when the database does)
/// saves that round trip, and its failure rolls back its whole batch, whose callers are told to
/// try again.
struct Job {
    run: Run,
    guarded: bool,
}

/// Most writes in one transaction.
const MAX_BATCH: usize = 256;

/// A handle to the writer task.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on a connection from `pool`.
    pub(crate) async fn start(pool: &sqlx::Pool<Db>, key: AuditKey) -> Result<Writer, Error> {
        let conn = pool.acquire().await.map_err(Error::db)?;
        let (jobs, rx) = mpsc::channel::<Job>(4096);
        let task = run(pool.clone(), Some(conn), rx, key);
        tokio::spawn(HEAD.scope(std::cell::RefCell::new(Head::default()), task));
        Ok(Writer { jobs })
    }

    /// Runs `f` inside the next group transaction and returns its result once committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, Error>> + Send + 'static,
    {
        self.submit(f, true).await
    }

    /// As [`Writer::write`], without a savepoint: for a write that is one statement, which fails
    /// only when the database does (then its whole batch is rolled back and told to try again).
    #[allow(dead_code)] // PostgreSQL's; SQLite keeps a savepoint per write
    pub(crate) async fn write_unguarded<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, Error>> + Send + 'static,
    {
        self.submit(f, false).await
    }

    async fn submit<T, F>(&self, f: F, guarded: bool) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, Error>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, Error>>();
        let run: Run = Box::new(move |conn| {
            Box::pin(async move {
                let result = match conn {
                    Ok(conn) => f(conn).await,
                    Err(e) => Err(e),
                };
                let ok = result.is_ok();
                let done: Done = Box::new(move |commit_error| {
                    let _ = tx.send(match commit_error {
                        None => result,
                        Some(e) => Err(e),
                    });
                });
                (ok, done)
            })
        });
        self.jobs
            .send(Job { run, guarded })
            .await
            .map_err(|_| Error::WriterStopped)?;
        rx.await.map_err(|_| Error::WriterStopped)?
    }
}

/// Runs `sql`, which may be several statements without parameters, in one round trip (a plain
/// `&str` goes as a simple query, which may hold several statements).
async fn exec(conn: &mut Conn, sql: &'static str) -> Result<(), Error> {
    sqlx::Executor::execute(conn, sql)
        .await
        .map(|_| ())
        .map_err(Error::db)
}

/// Fails a batch that could not start: nothing of it was written.
async fn fail(batch: Vec<Job>, error: &Error) {
    for job in batch {
        let (_, done) = (job.run)(Err(error.again())).await;
        done(None);
    }
}

async fn run(
    pool: sqlx::Pool<Db>,
    mut conn: Option<PoolConnection<Db>>,
    mut rx: mpsc::Receiver<Job>,
    key: AuditKey,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A connection that died while idle (the server restarted, the backend was terminated)
        // fails at BEGIN, before anything was written: take a fresh one and begin again, once.
        let mut began = Err(Error::Unavailable("no connection".into()));
        for _ in 0..2 {
            let mut c = match conn.take() {
                Some(c) => c,
                None => match pool.acquire().await {
                    Ok(c) => c,
                    Err(e) => {
                        began = Err(Error::db(e));
                        break;
                    }
                },
            };
            match begin_batch(&mut c).await {
                Ok(()) => {
                    began = Ok(c);
                    break;
                }
                Err(e) => {
                    chain::restore(Head::default());
                    c.close_on_drop();
                    began = Err(e);
                }
            }
        }
        let mut c = match began {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot begin a write transaction; failing its writes");
                fail(batch, &e).await;
                continue;
            }
        };
        let healthy = commit_batch(&mut c, batch, &key).await;
        if healthy {
            conn = Some(c);
        } else {
            chain::restore(Head::default());
            c.close_on_drop();
        }
    }
}

/// Runs one batch in the open transaction and commits it. `false`: the connection failed.
async fn commit_batch(conn: &mut Conn, batch: Vec<Job>, key: &AuditKey) -> bool {
    let mut dones = Vec::with_capacity(batch.len());
    let mut broken: Option<Error> = None;
    // A lone write needs no savepoint: if it fails, the whole transaction is rolled back and
    // its caller gets its own error. Otherwise each guarded write has its own savepoint; ending
    // one and opening the next take one round trip together.
    let single = batch.len() == 1;
    let guards: Vec<bool> = batch.iter().map(|j| j.guarded && !single).collect();
    let mut lone_failed = false;
    for (i, job) in batch.into_iter().enumerate() {
        let guarded = guards[i];
        if broken.is_none()
            && guarded
            && (i == 0 || !guards[i - 1])
            && let Err(e) = exec(conn, "SAVEPOINT w").await
        {
            broken = Some(e);
        }
        if broken.is_some() {
            // Never run: its caller hears the batch's error.
            let (_, done) = (job.run)(Err(Error::Unavailable(
                "the write transaction failed".into(),
            )))
            .await;
            dones.push(done);
            continue;
        }
        let before = chain::snapshot();
        let (ok, done) = (job.run)(Ok(&mut *conn)).await;
        dones.push(done);
        let next_guarded = guards.get(i + 1).copied().unwrap_or(false);
        let end = match (ok, guarded) {
            (true, false) => Ok(()),
            (false, false) if single => {
                lone_failed = true;
                Ok(())
            }
            (false, false) => {
                tracing::warn!("a write without a savepoint failed; its batch is rolled back");
                Err(Error::Unavailable(
                    "a write of the same batch failed".into(),
                ))
            }
            // The savepoint stays open for a guarded write next.
            (true, true) if next_guarded => exec(conn, "RELEASE w; SAVEPOINT w").await,
            (true, true) => exec(conn, "RELEASE w").await,
            (false, true) => {
                chain::restore(before);
                if next_guarded {
                    exec(conn, "ROLLBACK TO w").await
                } else {
                    exec(conn, "ROLLBACK TO w; RELEASE w").await
                }
            }
        };
        if let Err(e) = end {
            broken = Some(e);
        }
    }
    if lone_failed {
        let rolled_back = exec(conn, "ROLLBACK").await;
        if let Err(e) = &rolled_back {
            tracing::error!(error = %e, "rolling back a failed write failed");
        }
        chain::restore(Head::default());
        for done in dones {
            done(None);
        }
        return rolled_back.is_ok();
    }
    let head = chain::snapshot();
    // The chain's new head is recorded by the commit's own round trip.
    let mut moved = None;
    if broken.is_none()
        && head.dirty
        && let Some((seq, hash)) = &head.known
    {
        match audit::head_statement(*seq, hash, key.get()) {
            Ok(statement) => moved = Some((*seq, statement)),
            Err(e) => broken = Some(e),
        }
    }
    let outcome = match broken {
        Some(e) => Err(e),
        None => super::commit(conn, moved).await,
    };
    let healthy = match &outcome {
        Ok(()) => {
            chain::restore(Head {
                known: head.known,
                dirty: false,
            });
            true
        }
        Err(_) => {
            // Nothing of this batch is on disk: forget the head and re-read it next time.
            chain::restore(Head::default());
            exec(conn, "ROLLBACK").await.is_ok()
        }
    };
    let error = outcome.err();
    for done in dones {
        done(error.as_ref().map(Error::again));
    }
    healthy
}
