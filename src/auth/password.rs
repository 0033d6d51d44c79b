use std::sync::OnceLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long")]
    Length,
    #[error("cannot hash password: {0}")]
    Hash(String),
}

/// Hashes with argon2id and the crate's recommended parameters (a PHC string with its salt).
pub fn hash_password(password: &SecretString) -> Result<String, PasswordError> {
    let chars = password.expose_secret().chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks `password` against a stored hash. With no stored hash (unknown user) it still spends
/// the time of one verification, so response times do not reveal which usernames exist.
pub fn verify_password(password: &SecretString, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash_password(&SecretString::from("not-a-real-password")).unwrap_or_default()
    });
    let candidate = stored.unwrap_or(dummy);
    let Ok(parsed) = PasswordHash::new(candidate) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok();
    ok && stored.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_password_verifies_and_wrong_one_does_not() {
        let hash = hash_password(&SecretString::from("correct horse")).unwrap();
        assert!(verify_password(
            &SecretString::from("correct horse"),
            Some(&hash)
        ));
        assert!(!verify_password(
            &SecretString::from("wrong horse"),
            Some(&hash)
        ));
        assert!(!verify_password(&SecretString::from("correct horse"), None));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(
            hash_password(&SecretString::from("short")),
            Err(PasswordError::Length)
        ));
    }
}
