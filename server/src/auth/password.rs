//! Password hashing with argon2id (the `argon2` crate, RustCrypto) on a fixed
//! set of worker threads that keep their argon2 memory between hashes.
//!
//! Each hash needs ~19 MiB of working memory. Run on tokio's blocking pool
//! (up to 512 threads), a burst of logins allocated that much per thread at
//! once, and glibc kept most of it in its per-thread arenas afterwards (1000
//! logins, 100 at a time, left the server at 14 GB). Here a [`HashPool`] runs
//! at most `workers` hashes at once, each worker reusing one buffer, and
//! queues at most `queue` more: past that a request is refused at once with
//! [`PasswordError::Busy`] (the caller answers 503 with `Retry-After`).
//! A worker idle for [`IDLE_RELEASE`] frees its buffer and asks the allocator
//! to return free memory to the system, so a burst does not leave the server
//! larger than before it. Checks in [`Lane::Ahead`] (logins from a browser
//! the account has used before, see `auth::device`) have their own queue,
//! which workers empty first: a flood of strangers' guesses fills only the
//! other one.
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    thread,
    time::Duration,
};

use argon2::{
    password_hash::{rand_core::OsRng, Output, ParamsString, SaltString},
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
};
use tokio::sync::oneshot;

/// Password hashing failures.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The argon2 computation itself failed (bad parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The worker went away before answering (pool shut down).
    #[error("password hashing worker stopped")]
    Join,
    /// Every worker is busy and the wait queue is full: try again later.
    #[error("password hashing is busy")]
    Busy,
}

/// Shortest password accepted for a new account.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (bounds hashing work per request).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Largest argon2 memory cost (KiB) a stored hash may ask for: a row edited
/// to demand more could otherwise make one login allocate gigabytes.
const MAX_M_COST_KIB: u32 = 256 * 1024;
/// Longest salt accepted in a stored hash (bytes; PHC allows 48 in base64).
const MAX_SALT_BYTES: usize = 64;
/// How long a worker with no work keeps its argon2 buffer before freeing it
/// (the next hash allocates it again, a few milliseconds).
pub const IDLE_RELEASE: Duration = Duration::from_millis(500);

/// How the workers get their argon2 memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMode {
    /// Each worker keeps one buffer for its whole life (the default).
    Reuse,
    /// A fresh buffer per hash, freed afterwards (what `argon2` does by
    /// itself; kept to measure the difference with `login-flood`).
    Fresh,
}

/// Which queue a password check waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Everyone else: first come, first served, refused when full.
    Normal,
    /// Checks the workers take before any in [`Lane::Normal`].
    Ahead,
}

/// What a worker is asked to do.
enum Work {
    /// Hash a new password (default parameters, random salt) into a PHC string.
    Hash(String),
    /// Check a password against a PHC string.
    Verify { password: String, phc: String },
    /// Do the work of a verification for an unknown user; never matches.
    Dummy(String),
}

/// A worker's answer: a PHC string for `Hash`, a match flag otherwise.
enum Answer {
    Phc(String),
    Matches(bool),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Answer, PasswordError>>,
}

/// Fixed hashing workers fed through two bounded queues (one per [`Lane`]).
/// Dropping the pool stops the workers (and frees their memory).
pub struct HashPool {
    normal: flume::Sender<Job>,
    ahead: flume::Sender<Job>,
    workers: usize,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    /// Hashes running right now.
    busy: AtomicUsize,
    /// The most hashes that ever ran at once.
    peak: AtomicUsize,
    /// Bytes of argon2 memory the workers hold right now.
    held: AtomicUsize,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl HashPool {
    /// Starts `workers` hashing threads (at least one) with room for `queue`
    /// waiting requests in each lane. Buffers are allocated at a worker's
    /// first hash.
    pub fn new(workers: usize, queue: usize, memory: MemoryMode) -> Result<Self, PasswordError> {
        let workers = workers.max(1);
        let (tx, rx) = flume::bounded::<Job>(queue);
        let (ahead_tx, ahead_rx) = flume::bounded::<Job>(queue);
        let stats = Arc::new(Stats::default());
        for i in 0..workers {
            let queues = Queues {
                ahead: ahead_rx.clone(),
                normal: rx.clone(),
            };
            let stats = stats.clone();
            thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&queues, &stats, memory))
                .map_err(|e| PasswordError::Hash(format!("starting a hashing thread: {e}")))?;
        }
        Ok(Self {
            normal: tx,
            ahead: ahead_tx,
            workers,
            stats,
        })
    }

    /// Hashing threads in this pool.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The most hashes that ran at the same time since the pool started.
    pub fn peak_concurrency(&self) -> usize {
        self.stats.peak.load(Ordering::Relaxed)
    }

    /// Bytes of argon2 memory the workers hold right now.
    pub fn memory_held(&self) -> usize {
        self.stats.held.load(Ordering::Relaxed)
    }

    /// Requests waiting in `lane` right now.
    pub fn waiting(&self, lane: Lane) -> usize {
        self.sender(lane).len()
    }

    fn sender(&self, lane: Lane) -> &flume::Sender<Job> {
        match lane {
            Lane::Normal => &self.normal,
            Lane::Ahead => &self.ahead,
        }
    }

    async fn submit(&self, lane: Lane, work: Work) -> Result<Answer, PasswordError> {
        let (reply, answer) = oneshot::channel();
        self.sender(lane)
            .try_send(Job { work, reply })
            .map_err(|e| match e {
                flume::TrySendError::Full(_) => PasswordError::Busy,
                flume::TrySendError::Disconnected(_) => PasswordError::Join,
            })?;
        answer.await.map_err(|_| PasswordError::Join)?
    }

    /// Hashes a password into a PHC string (argon2id, default parameters).
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        match self
            .submit(Lane::Normal, Work::Hash(password.to_owned()))
            .await?
        {
            Answer::Phc(s) => Ok(s),
            Answer::Matches(_) => Err(PasswordError::Hash("unexpected answer".into())),
        }
    }

    /// Checks a password against a PHC string, waiting in `lane`; a
    /// malformed hash never matches.
    pub async fn verify(
        &self,
        lane: Lane,
        password: &str,
        phc: &str,
    ) -> Result<bool, PasswordError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        self.matches(
            lane,
            Work::Verify {
                password: password.to_owned(),
                phc: phc.to_owned(),
            },
        )
        .await
    }

    /// The same work as [`HashPool::verify`] for a user that does not exist,
    /// so that unknown and known names take the same time. Never matches.
    pub async fn verify_unknown(&self, lane: Lane, password: &str) -> Result<bool, PasswordError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        self.matches(lane, Work::Dummy(password.to_owned())).await
    }

    async fn matches(&self, lane: Lane, work: Work) -> Result<bool, PasswordError> {
        match self.submit(lane, work).await? {
            Answer::Matches(m) => Ok(m),
            Answer::Phc(_) => Err(PasswordError::Hash("unexpected answer".into())),
        }
    }
}

/// The pool the command line (and code without a server core) uses: one
/// worker, started on first use.
pub fn default_pool() -> Result<&'static HashPool, PasswordError> {
    static POOL: OnceLock<Result<HashPool, String>> = OnceLock::new();
    /// Requests the default pool queues before answering busy.
    const DEFAULT_POOL_QUEUE: usize = 64;
    POOL.get_or_init(|| {
        HashPool::new(1, DEFAULT_POOL_QUEUE, MemoryMode::Reuse).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| PasswordError::Hash(e.clone()))
}

/// Hashes a password on the process-wide default pool (command line use).
pub async fn hash(password: &str) -> Result<String, PasswordError> {
    default_pool()?.hash(password).await
}

/// Checks a password on the process-wide default pool (command line use).
pub async fn verify(password: &str, phc: &str) -> Result<bool, PasswordError> {
    default_pool()?.verify(Lane::Normal, password, phc).await
}

/// A worker's ends of the two lanes.
struct Queues {
    ahead: flume::Receiver<Job>,
    normal: flume::Receiver<Job>,
}

/// What a worker found when it looked for work.
enum Next {
    Job(Job),
    /// Nothing arrived within the wait.
    Idle,
    /// The pool was dropped.
    Stopped,
}

impl Queues {
    /// The next job, [`Lane::Ahead`] first; waits at most `wait` (or for ever).
    fn next(&self, wait: Option<Duration>) -> Next {
        if let Ok(job) = self.ahead.try_recv() {
            return Next::Job(job);
        }
        let select = flume::Selector::new()
            .recv(&self.ahead, Result::ok)
            .recv(&self.normal, Result::ok);
        let got = match wait {
            None => select.wait(),
            Some(wait) => match select.wait_timeout(wait) {
                Ok(got) => got,
                Err(_) => return Next::Idle,
            },
        };
        got.map_or(Next::Stopped, Next::Job)
    }
}

/// A hashing thread: takes jobs until the pool is dropped; gives its memory
/// back after [`IDLE_RELEASE`] without work.
fn worker(queues: &Queues, stats: &Stats, memory: MemoryMode) {
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let wait = (!blocks.is_empty()).then_some(IDLE_RELEASE);
        let job = match queues.next(wait) {
            Next::Job(job) => job,
            Next::Idle => {
                release(&mut blocks, stats);
                continue;
            }
            Next::Stopped => return,
        };
        if job.reply.is_closed() {
            continue; // the request was abandoned while queued
        }
        let now = stats.busy.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak.fetch_max(now, Ordering::SeqCst);
        let answer = match memory {
            MemoryMode::Reuse => {
                let before = held_bytes(&blocks);
                let answer = run(job.work, &mut blocks);
                stats
                    .held
                    .fetch_add(held_bytes(&blocks) - before, Ordering::SeqCst);
                answer
            }
            MemoryMode::Fresh => run(job.work, &mut Vec::new()),
        };
        stats.busy.fetch_sub(1, Ordering::SeqCst);
        let _ = job.reply.send(answer);
    }
}

fn held_bytes(blocks: &[Block]) -> usize {
    std::mem::size_of_val(blocks)
}

/// Frees an idle worker's buffer and returns free heap pages to the system.
fn release(blocks: &mut Vec<Block>, stats: &Stats) {
    stats.held.fetch_sub(held_bytes(blocks), Ordering::SeqCst);
    *blocks = Vec::new();
    crate::memory::return_free_memory();
}

fn run(work: Work, blocks: &mut Vec<Block>) -> Result<Answer, PasswordError> {
    match work {
        Work::Hash(password) => hash_with(password.as_bytes(), blocks).map(Answer::Phc),
        Work::Verify { password, phc } => Ok(Answer::Matches(verify_with(
            password.as_bytes(),
            &phc,
            blocks,
        ))),
        Work::Dummy(password) => {
            let _ = hash_with(password.as_bytes(), blocks)?;
            Ok(Answer::Matches(false))
        }
    }
}

/// `blocks` resized to what `params` need, growing the buffer only.
fn memory_for<'b>(params: &Params, blocks: &'b mut Vec<Block>) -> &'b mut [Block] {
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    &mut blocks[..needed]
}

fn hash_with(password: &[u8], blocks: &mut Vec<Block>) -> Result<String, PasswordError> {
    let err = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; MAX_SALT_BYTES];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| err(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, salt_bytes, &mut out, memory_for(&params, blocks))
        .map_err(|e| err(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(u32::from(Version::V0x13)),
        params: ParamsString::try_from(&params).map_err(|e| err(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| err(&e))?),
    };
    Ok(phc.to_string())
}

fn verify_with(password: &[u8], phc: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let mut salt_buf = [0u8; MAX_SALT_BYTES];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
    if argon
        .hash_password_into_with_memory(password, salt_bytes, &mut out, memory_for(&params, blocks))
        .is_err()
    {
        return false;
    }
    // `Output` compares in constant time.
    Output::new(&out).is_ok_and(|o| o == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h).await.unwrap());
        assert!(!verify("wrong horse", &h).await.unwrap());
        assert!(!verify("x", "not a phc string").await.unwrap());
    }

    #[tokio::test]
    async fn hashes_are_compatible_with_the_argon2_crate() {
        let pool = HashPool::new(1, 4, MemoryMode::Reuse).unwrap();
        let ours = pool.hash("correct horse").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        // A hash the crate made, with other parameters, through the reused buffer.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"battery staple", &salt)
        .unwrap()
        .to_string();
        assert!(pool
            .verify(Lane::Normal, "battery staple", &theirs)
            .await
            .unwrap());
        assert!(!pool
            .verify(Lane::Normal, "battery stapler", &theirs)
            .await
            .unwrap());
        assert!(!pool
            .verify_unknown(Lane::Normal, "battery staple")
            .await
            .unwrap());
        assert!(pool
            .verify(Lane::Normal, "correct horse", &ours)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn huge_memory_costs_in_stored_hashes_never_match() {
        let pool = HashPool::new(1, 4, MemoryMode::Reuse).unwrap();
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!pool.verify(Lane::Normal, "x", huge).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_and_workers_stay_bounded() {
        let pool = Arc::new(HashPool::new(1, 1, MemoryMode::Reuse).unwrap());
        let tries = (0..12).map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.verify_unknown(Lane::Normal, "guess-guess").await })
        });
        let results = futures::future::join_all(tries).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(PasswordError::Busy))))
            .count();
        let done = results
            .iter()
            .filter(|r| matches!(r, Ok(Ok(false))))
            .count();
        assert!(busy >= 1, "some requests are refused");
        assert!(done >= 1, "some are served");
        assert_eq!(busy + done, 12);
        assert_eq!(pool.peak_concurrency(), 1);
    }

    /// Waits (polling, up to 5 s) until `cond` holds.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn checks_in_the_ahead_lane_go_before_waiting_strangers_and_are_not_refused() {
        let pool = Arc::new(HashPool::new(1, 2, MemoryMode::Reuse).unwrap());
        let done = Arc::new(std::sync::Mutex::new(Vec::new()));
        let check = |lane: Lane, tag: &'static str| {
            let (pool, done) = (pool.clone(), done.clone());
            tokio::spawn(async move {
                let r = pool.verify_unknown(lane, "guess-guess").await;
                done.lock().unwrap().push(tag);
                r
            })
        };
        // One running and two waiting: the normal lane is full.
        let mut tasks = vec![check(Lane::Normal, "n0")];
        until("n0 running", || pool.stats.busy.load(Ordering::SeqCst) == 1).await;
        tasks.push(check(Lane::Normal, "n1"));
        tasks.push(check(Lane::Normal, "n2"));
        until("two waiting", || pool.waiting(Lane::Normal) == 2).await;
        assert!(matches!(
            pool.verify_unknown(Lane::Normal, "guess-guess").await,
            Err(PasswordError::Busy)
        ));
        tasks.push(check(Lane::Ahead, "ahead"));
        for t in tasks {
            assert!(!t.await.unwrap().unwrap(), "every check answered");
        }
        let done = done.lock().unwrap().clone();
        let pos = |tag| done.iter().position(|t| *t == tag).unwrap();
        assert!(
            pos("ahead") < pos("n2"),
            "the ahead check jumped the queue: {done:?}"
        );
        assert_eq!(pool.peak_concurrency(), 1);
    }

    #[tokio::test]
    async fn an_idle_worker_gives_its_memory_back() {
        let pool = HashPool::new(2, 4, MemoryMode::Reuse).unwrap();
        assert_eq!(
            pool.memory_held(),
            0,
            "nothing is allocated before the first hash"
        );
        let (a, b) = tokio::join!(
            pool.verify_unknown(Lane::Normal, "guess-one"),
            pool.verify_unknown(Lane::Normal, "guess-two")
        );
        assert!(!a.unwrap() && !b.unwrap());
        let one_buffer = Params::default().block_count() * std::mem::size_of::<Block>();
        assert!(
            pool.memory_held() >= one_buffer,
            "a worker keeps its buffer between hashes: {} bytes",
            pool.memory_held()
        );
        let deadline = std::time::Instant::now() + IDLE_RELEASE * 2 + Duration::from_secs(1);
        while pool.memory_held() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pool.memory_held(), 0, "idle workers freed their buffers");
        // And the next hash still works.
        assert!(!pool
            .verify_unknown(Lane::Normal, "guess-three")
            .await
            .unwrap());
    }
}
