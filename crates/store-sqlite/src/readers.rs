//! The pool of read-only connections.
//!
//! Reads never queue behind the writer: in WAL mode each reader sees the last committed
//! snapshot while the writer works. A read runs on tokio's blocking pool with a connection
//! taken from the pool; the semaphore makes a caller wait (asynchronously) for a free
//! connection instead of opening more.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gridloop_store::{Result, StoreError};
use rusqlite::Connection;
use tokio::sync::Semaphore;

pub(crate) struct Readers {
    pool: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub fn new(conns: Vec<Connection>) -> Readers {
        Readers {
            permits: Arc::new(Semaphore::new(conns.len())),
            pool: Arc::new(Mutex::new(conns)),
        }
    }

    /// Runs `f` on a pooled connection off the async threads.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("the reader pool is closed".into()))?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            // One permit per pooled connection, so there is always one to take here.
            let conn = lock(&pool)
                .pop()
                .ok_or_else(|| StoreError::Backend("no free read connection".into()))?;
            let lease = Lease {
                conn: Some(conn),
                pool,
            };
            let result = f(lease.conn());
            drop(lease);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("a read task failed: {e}")))?
    }
}

fn lock(pool: &Mutex<Vec<Connection>>) -> MutexGuard<'_, Vec<Connection>> {
    // A panic while the lock was held cannot leave the Vec itself inconsistent.
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gives its connection back to the pool, also when the read panics.
struct Lease {
    conn: Option<Connection>,
    pool: Arc<Mutex<Vec<Connection>>>,
}

impl Lease {
    fn conn(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A read that failed inside an explicit transaction would otherwise pin its old
            // snapshot for every later user of this connection.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            lock(&self.pool).push(conn);
        }
    }
}
