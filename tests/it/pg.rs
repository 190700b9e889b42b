//! The PostgreSQL side of the suite. With `AGENTGATE_TEST_BACKEND=postgres` every daemon the
//! tests start (in-process or the real binary) gets a database of its own on the server at
//! `AGENTGATE_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`), created empty and dropped
//! when the test is done. `scripts/test` runs the suite once per backend.

use sqlx::Connection;

/// The server tests create their databases on.
pub fn server() -> String {
    std::env::var("AGENTGATE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Whether this run's daemons use PostgreSQL.
pub fn selected() -> bool {
    std::env::var("AGENTGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A throwaway database, dropped (its connections ended) with this value.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// Creates an empty database with a fresh name.
    pub fn create() -> TestDb {
        let name = format!("agt_t_{:016x}", rand_u64());
        admin(&format!("CREATE DATABASE {name}"));
        TestDb { name }
    }

    /// A database when this run uses PostgreSQL, else `None` (SQLite in the data dir).
    pub fn if_selected() -> Option<TestDb> {
        selected().then(TestDb::create)
    }

    pub fn url(&self) -> String {
        format!("{}/{}", server(), self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs one statement on the server's `postgres` database, on a thread of its own (callers may
/// be inside a runtime, or in `Drop`).
pub fn admin(sql: &str) {
    let (url, sql) = (format!("{}/postgres", server()), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"));
            sqlx::raw_sql(&sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    })
    .join()
    .unwrap();
}

/// A fresh random number (std's hasher keys are random per `RandomState`).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}
