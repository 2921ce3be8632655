//! Password hashing with argon2id, always off the async runtime.
//!
//! Parameters are OWASP's minimum for argon2id (19 MiB, 2 iterations, 1 lane). A sign-in
//! for an unknown email verifies against a dummy hash, so it costs the same as a wrong
//! password and the response time does not reveal which emails exist.
//!
//! Hashing runs on a fixed pool of one dedicated thread per core, never on tokio's blocking
//! pool, and each of those threads reuses one 19 MiB argon2 memory buffer for every hash.
//! Two bounded queues stand in front of the pool, sign-ins taken before sign-ups
//! ([`Lane`]): when a request's queue is full it is refused at once
//! ([`PasswordError::Busy`], a 503 with `Retry-After`) instead of waiting behind a flood
//! for minutes, a flood of sign-ups never keeps existing users from signing in, and a job
//! whose request has gone away (the client hung up) is dropped before it is hashed.
//! Allocating and freeing 19 MiB per hash on an open-ended pool grew auth to 2 GB RSS under
//! 8 concurrent sign-ups (849 MB with a semaphore, 394 MB with the fixed pool alone); with
//! the reused buffers the peak is about 64 MB (see BENCHMARKS.md). Requests beyond the pool
//! wait in its queue. The start-up hash (the dummy) frees its buffer at once, so an idle
//! auth holds none; after load, each thread keeps its 19 MiB until the process ends.

use std::sync::Arc;

use anyhow::Context;
use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

thread_local! {
    /// The hashing thread's own argon2 memory, allocated once and reused by every hash on
    /// that thread (19 MiB): repeated 19 MiB allocations fragmented the heap into hundreds
    /// of megabytes under load.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn hash_into(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let blocks = argon.params().block_count();
        if memory.len() != blocks {
            *memory = vec![Block::new(); blocks];
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..])
    })
}

/// Frees the calling thread's argon2 memory (the next hash on it allocates it again).
fn release_memory() {
    MEMORY.with(|memory| drop(memory.take()));
}

fn hash_blocking(password: &SecretString) -> anyhow::Result<String> {
    let argon = argon2();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        Ok(hash_into(&argon, password.expose_secret().as_bytes(), salt_bytes, out)?)
    })
    .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(|e| anyhow::anyhow!("params: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Verifies with the parameters stored in the hash (so hashes made with older parameters
/// keep verifying), comparing in constant time.
fn verify_blocking(password: &SecretString, hash: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(hash).map_err(|e| anyhow::anyhow!("stored hash is not a PHC string: {e}"))?;
    let expected = parsed.hash.ok_or_else(|| anyhow::anyhow!("stored hash has no output"))?;
    let salt = parsed.salt.ok_or_else(|| anyhow::anyhow!("stored hash has no salt"))?;
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("algorithm: {e}"))?;
    let version = parsed.version.map(Version::try_from).transpose().map_err(|e| anyhow::anyhow!("version: {e}"))?;
    let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("params: {e}"))?;
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let mut computed = vec![0u8; expected.len()];
    hash_into(&argon, password.expose_secret().as_bytes(), salt_bytes, &mut computed)
        .map_err(|e| anyhow::anyhow!("argon2 verification failed: {e}"))?;
    let computed = Output::new(&computed).map_err(|e| anyhow::anyhow!("output: {e}"))?;
    Ok(expected == computed) // Output's equality is constant-time
}

type Job = Box<dyn FnOnce() + Send>;

/// Which queue a password job waits in. Sign-ins (checking an existing user's password)
/// are taken before sign-ups (hashing a new one), each queue with its own bound, so a
/// flood of sign-ups fills only its own queue and never keeps an existing user out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    SignIn,
    SignUp,
}

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every hashing thread is busy and the queue is full: try again in a moment.
    #[error("the hashing queue is full")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The two queues in front of the hashing threads.
struct Queues {
    waiting: std::sync::Mutex<Waiting>,
    ready: std::sync::Condvar,
    /// Jobs each queue may hold.
    bound: usize,
}

struct Waiting {
    sign_in: std::collections::VecDeque<Job>,
    sign_up: std::collections::VecDeque<Job>,
    /// False once the last [`Passwords`] is dropped: the threads end.
    open: bool,
}

impl Queues {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, lane: Lane, job: Job) -> Result<(), PasswordError> {
        let mut waiting = self.lock();
        let queue = match lane {
            Lane::SignIn => &mut waiting.sign_in,
            Lane::SignUp => &mut waiting.sign_up,
        };
        if queue.len() >= self.bound {
            return Err(PasswordError::Busy);
        }
        queue.push_back(job);
        drop(waiting);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, sign-ins first; `None` once closed.
    fn next(&self) -> Option<Job> {
        let mut waiting = self.lock();
        loop {
            if !waiting.open {
                return None;
            }
            if let Some(job) = waiting.sign_in.pop_front().or_else(|| waiting.sign_up.pop_front()) {
                return Some(job);
            }
            waiting = self.ready.wait(waiting).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Closes the queues when the last [`Passwords`] clone goes.
struct Closer(Arc<Queues>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.lock().open = false;
        self.0.ready.notify_all();
    }
}

/// Hashes and verifies passwords on its own threads, one per core.
#[derive(Clone)]
pub struct Passwords {
    dummy_hash: Arc<str>,
    queues: Arc<Closer>,
    threads: usize,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords")
    }
}

impl Passwords {
    /// Starts one hashing thread per core, with room for `queue` waiting jobs in each
    /// lane, and prepares the dummy hash for unknown emails.
    pub async fn new(queue: usize) -> anyhow::Result<Self> {
        Self::with_threads(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get), queue).await
    }

    /// Starts `threads` hashing threads. They end when the last clone is dropped.
    pub async fn with_threads(threads: usize, queue: usize) -> anyhow::Result<Self> {
        let queues = Arc::new(Queues {
            waiting: std::sync::Mutex::new(Waiting {
                sign_in: std::collections::VecDeque::new(),
                sign_up: std::collections::VecDeque::new(),
                open: true,
            }),
            ready: std::sync::Condvar::new(),
            bound: queue.max(1),
        });
        for n in 0..threads.max(1) {
            let queues = Arc::clone(&queues);
            std::thread::Builder::new().name(format!("argon2-{n}")).spawn(move || {
                // The lock is held only while taking the next job, never while hashing.
                while let Some(job) = queues.next() {
                    job();
                }
            })?;
        }
        let mut passwords =
            Self { dummy_hash: Arc::from(""), queues: Arc::new(Closer(queues)), threads: threads.max(1) };
        let dummy = SecretString::from("dummy password for timing equalisation".to_owned());
        // The buffer of this start-up hash is freed at once: an idle auth holds no argon2
        // memory (idle RSS 29.6 -> 10.3 MB in bench/run). Under load each thread keeps its buffer.
        let dummy_hash = passwords.run(Lane::SignIn, move || {
            let hash = hash_blocking(&dummy);
            release_memory();
            hash
        });
        passwords.dummy_hash = dummy_hash.await.map_err(|e| anyhow::anyhow!("{e}"))??.into();
        Ok(passwords)
    }

    /// How many hashing threads there are.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work` on a hashing thread, after the jobs waiting in its `lane` (sign-ins go
    /// first), and waits for its result without blocking the runtime;
    /// [`PasswordError::Busy`] at once when that lane is full. If the caller stops waiting
    /// (its request went away), the job is skipped when its turn comes.
    pub async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if !done.is_closed() {
                drop(done.send(work()));
            }
        });
        self.queues.0.push(lane, job)?;
        Ok(result.await.context("a hashing thread dropped its job")?)
    }

    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        Ok(self.run(Lane::SignUp, move || hash_blocking(&password)).await??)
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no user
    /// (and then returns false whatever the password).
    pub async fn verify(&self, password: SecretString, hash: Option<String>) -> Result<bool, PasswordError> {
        let known_user = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self.run(Lane::SignIn, move || verify_blocking(&password, &hash)).await??;
        Ok(known_user && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let passwords = Passwords::new(8).await.unwrap();
        let hash = passwords.hash(secret("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(passwords.verify(secret("correct horse"), Some(hash.clone())).await.unwrap());
        assert!(!passwords.verify(secret("wrong horse"), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn work_runs_on_at_most_the_pool_threads_and_at_most_that_many_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let passwords = Passwords::with_threads(2, 16).await.unwrap();
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs = (0..12).map(|_| {
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            passwords.run(Lane::SignUp, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
                std::thread::current().name().unwrap_or_default().to_owned()
            })
        });
        let names: std::collections::HashSet<String> =
            futures::future::join_all(jobs).await.into_iter().map(Result::unwrap).collect();
        assert!(names.len() <= 2 && names.iter().all(|n| n.starts_with("argon2-")), "{names:?}");
        assert_eq!(peak.load(Ordering::SeqCst), 2, "both threads busy, the rest queued");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_job_whose_caller_left_is_skipped() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let passwords = Passwords::with_threads(1, 1).await.unwrap();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let ran = Arc::new(AtomicUsize::new(0));
        // The only thread is busy until released.
        let busy = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.run(Lane::SignUp, move || hold.recv().is_ok()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // One job waits in the queue; its caller gives up before its turn.
        let counted = Arc::clone(&ran);
        let abandoned = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.run(Lane::SignUp, move || counted.fetch_add(1, Ordering::SeqCst)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;

        let refused = passwords.run(Lane::SignUp, || ()).await;

        assert!(matches!(refused, Err(PasswordError::Busy)), "the queue is full: refused at once");
        abandoned.abort();
        drop(abandoned.await);
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // The worker drops the abandoned job when it reaches it, a moment after the
        // busy one finished: the queue has room again from then on.
        let mut again = passwords.run(Lane::SignUp, || ()).await;
        for _ in 0..100 {
            if again.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            again = passwords.run(Lane::SignUp, || ()).await;
        }
        again.expect("room again");
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the abandoned job never ran");
    }

    #[tokio::test]
    async fn sign_ins_get_through_a_full_sign_up_queue_and_go_first() {
        let passwords = Passwords::with_threads(1, 1).await.unwrap();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let busy = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.run(Lane::SignUp, move || hold.recv().is_ok()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let run = |lane: Lane, name: &'static str| {
            let (passwords, order) = (passwords.clone(), Arc::clone(&order));
            tokio::spawn(async move { passwords.run(lane, move || order.lock().unwrap().push(name)).await })
        };
        let sign_up = run(Lane::SignUp, "sign-up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;

        let flooded = passwords.run(Lane::SignUp, || ()).await;
        let sign_in = run(Lane::SignIn, "sign-in");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.send(()).unwrap();

        assert!(matches!(flooded, Err(PasswordError::Busy)), "the sign-up queue is full");
        busy.await.unwrap().unwrap();
        sign_in.await.unwrap().expect("a sign-in is taken although sign-ups are refused");
        sign_up.await.unwrap().unwrap();
        assert_eq!(*order.lock().unwrap(), ["sign-in", "sign-up"], "the sign-in went first");
    }

    #[test]
    fn hashes_are_standard_phc_strings_the_argon2_crate_verifies() {
        use argon2::password_hash::PasswordVerifier;
        let hash = hash_blocking(&secret("interop check")).unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(argon2().verify_password(b"interop check", &parsed).is_ok());
        assert!(argon2().verify_password(b"something else", &parsed).is_err());
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies_even_with_the_dummy_password() {
        let passwords = Passwords::new(8).await.unwrap();
        let dummy = "dummy password for timing equalisation";
        assert!(!passwords.verify(secret(dummy), None).await.unwrap());
    }
}
