//! Group commit for SQLite: one writer task owns one connection and runs every broker write.
//! Writes that arrive while a commit is being synced to disk are batched into the next
//! transaction, each in its own savepoint (one failing write does not undo the others), and all
//! are acknowledged after a single `COMMIT`. With `synchronous = FULL` the fsync is what a write
//! costs, so this turns N fsyncs into one without weakening durability: nobody hears "done"
//! before their write is on disk.

use futures_util::future::BoxFuture;
use sqlx::SqliteConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::Error;
use super::sqlite_audit::{self, AuditKey, HEAD, Head};

type Done = Box<dyn FnOnce(Option<String>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Done)> + Send>;

/// Most writes in one transaction.
const MAX_BATCH: usize = 256;

/// A handle to the writer task.
#[derive(Clone, Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Takes a connection from `pool` for the writer task.
    pub(super) async fn start(pool: &SqlitePool, key: AuditKey) -> Result<Writer, Error> {
        let conn = pool.acquire().await.map_err(Error::Backend)?;
        let (jobs, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(HEAD.scope(std::cell::RefCell::new(Head::default()), run(conn, rx, key)));
        Ok(Writer { jobs })
    }

    /// Runs `f` inside the next group transaction and returns its result once committed.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, Error>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, Error>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                let ok = result.is_ok();
                let done: Done = Box::new(move |commit_error| {
                    let _ = tx.send(match commit_error {
                        None => result,
                        Some(e) => Err(Error::Commit(e)),
                    });
                });
                (ok, done)
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| Error::WriterStopped)?;
        rx.await.map_err(|_| Error::WriterStopped)?
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(|_| ())
}

async fn run(mut conn: PoolConnection<Sqlite>, mut rx: mpsc::Receiver<Job>, key: AuditKey) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE").await {
            tracing::error!(error = %e, "cannot begin a write transaction; failing its writes");
            continue; // dropping the jobs fails their callers: nothing was written
        }
        let mut dones = Vec::with_capacity(batch.len());
        let mut broken = None;
        // A lone write needs no savepoint: if it fails, the whole transaction is rolled back and
        // its caller gets its own error.
        let single = batch.len() == 1;
        let mut lone_failed = false;
        for job in batch {
            let before = sqlite_audit::snapshot();
            if !single && let Err(e) = exec(&mut conn, "SAVEPOINT w").await {
                broken = Some(e.to_string());
                break;
            }
            let (ok, done) = job(&mut conn).await;
            let end = match (ok, single) {
                (true, true) => Ok(()),
                (true, false) => exec(&mut conn, "RELEASE w").await,
                (false, true) => {
                    lone_failed = true;
                    Ok(())
                }
                (false, false) => {
                    sqlite_audit::restore(before);
                    match exec(&mut conn, "ROLLBACK TO w").await {
                        Ok(()) => exec(&mut conn, "RELEASE w").await,
                        Err(e) => Err(e),
                    }
                }
            };
            dones.push(done);
            if let Err(e) = end {
                broken = Some(e.to_string());
                break;
            }
        }
        if lone_failed {
            if let Err(e) = exec(&mut conn, "ROLLBACK").await {
                tracing::error!(error = %e, "rolling back a failed write failed");
            }
            sqlite_audit::restore(Head::default());
            for done in dones {
                done(None);
            }
            continue;
        }
        let head = sqlite_audit::snapshot();
        if broken.is_none()
            && head.dirty
            && let Some((seq, hash)) = &head.known
            && let Err(e) = sqlite_audit::record_head(&mut conn, *seq, hash, key.get()).await
        {
            broken = Some(e.to_string());
        }
        let outcome = match broken {
            Some(e) => Err(e),
            None => exec(&mut conn, "COMMIT").await.map_err(|e| e.to_string()),
        };
        match &outcome {
            Ok(()) => sqlite_audit::restore(Head {
                known: head.known,
                dirty: false,
            }),
            Err(_) => {
                // Nothing of this batch is on disk: forget the head and re-read it next time.
                let _ = exec(&mut conn, "ROLLBACK").await;
                sqlite_audit::restore(Head::default());
            }
        }
        let error = outcome.err();
        for done in dones {
            done(error.clone());
        }
    }
}
