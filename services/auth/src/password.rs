//! Password hashing with argon2id, always off the async runtime.
//!
//! Parameters are OWASP's minimum for argon2id (19 MiB, 2 iterations, 1 lane). A sign-in
//! for an unknown email verifies against a dummy hash, so it costs the same as a wrong
//! password and the response time does not reveal which emails exist.
//!
//! At most one hash per core runs at a time (the others wait their turn): every hash holds
//! 19 MiB, and without a bound a burst of sign-ups grows the blocking pool, and the
//! allocator's per-thread arenas with it, to gigabytes (measured: 2 GB RSS under 8
//! concurrent sign-ups before this bound, see BENCHMARKS.md).

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &SecretString) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    Ok(hash.to_string())
}

fn verify_blocking(password: &SecretString, hash: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(hash).map_err(|e| anyhow::anyhow!("stored hash is not a PHC string: {e}"))?;
    Ok(argon2().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok())
}

/// Hashes and verifies passwords on the blocking thread pool, one per core at a time.
#[derive(Clone)]
pub struct Passwords {
    dummy_hash: Arc<str>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords")
    }
}

impl Passwords {
    /// Prepares the dummy hash used for unknown emails.
    pub async fn new() -> anyhow::Result<Self> {
        let dummy = SecretString::from("dummy password for timing equalisation".to_owned());
        let dummy_hash = tokio::task::spawn_blocking(move || hash_blocking(&dummy)).await??;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Ok(Self { dummy_hash: dummy_hash.into(), slots: Arc::new(tokio::sync::Semaphore::new(cores)) })
    }

    /// Hashes currently allowed at once.
    pub fn capacity(&self) -> usize {
        self.slots.available_permits()
    }

    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        let _slot = self.slots.acquire().await.context("password slots closed")?;
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await.context("hashing task failed")?
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no user
    /// (and then returns false whatever the password).
    pub async fn verify(&self, password: SecretString, hash: Option<String>) -> anyhow::Result<bool> {
        let known_user = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let _slot = self.slots.acquire().await.context("password slots closed")?;
        let matches = tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
            .await
            .context("verification task failed")??;
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
        let passwords = Passwords::new().await.unwrap();
        let hash = passwords.hash(secret("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(passwords.verify(secret("correct horse"), Some(hash.clone())).await.unwrap());
        assert!(!passwords.verify(secret("wrong horse"), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn no_more_hashes_than_cores_run_at_once_and_all_finish() {
        let passwords = Passwords::new().await.unwrap();
        let cores = passwords.capacity();
        let burst = (0..cores * 4).map(|n| passwords.hash(secret(&format!("password {n}"))));
        let probe = async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            passwords.capacity()
        };
        let (hashes, free_during_burst) = tokio::join!(futures::future::join_all(burst), probe);
        assert_eq!(free_during_burst, 0, "every slot busy, the rest waiting");
        assert!(hashes.iter().all(Result::is_ok));
        assert_eq!(passwords.capacity(), cores, "slots are given back");
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies_even_with_the_dummy_password() {
        let passwords = Passwords::new().await.unwrap();
        let dummy = "dummy password for timing equalisation";
        assert!(!passwords.verify(secret(dummy), None).await.unwrap());
    }
}
