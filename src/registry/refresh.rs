//! Refresh tokens: opaque random strings, kept only as their SHA-256, in families that start at
//! a login. A refresh uses its token up and issues the next of the family; a used (or revoked)
//! token presented again revokes the whole family, so a stolen token works once at most and
//! then logs out the thief and the user alike — unless presented again within a grace of its
//! use (`auth.refresh_reuse_grace_s`): two tabs refreshing at once both get the one successor,
//! which is derived from the used token and a server key (HMAC-SHA256), so it is issued again
//! without ever being stored.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::Role;

/// A refresh token as handed out: the secret itself (never stored) and when it expires.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token came to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was good: the family's user, role and token generation now, the family (the
    /// login), and the token that replaces it.
    Rotated {
        username: String,
        role: Role,
        generation: i64,
        login: Uuid,
        next: Issued,
    },
    /// Unknown, expired, revoked, or predating a change of the user's role or password.
    Refused,
    /// Used before: the family is now revoked.
    Reused,
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// How tokens rotate: their lifetime, the reuse grace, and the key successors derive from.
#[derive(Clone)]
pub struct RotationRules {
    pub ttl_secs: u64,
    pub reuse_grace_secs: u64,
    /// Secret: with it and a used token, anyone could make its successor.
    pub successor_key: [u8; 32],
}

impl RotationRules {
    /// The successor of `token`: HMAC-SHA256 under the server key, 64 hex digits like a fresh
    /// token.
    fn successor(&self, token: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.successor_key) else {
            return new_secret();
        };
        mac.update(token.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// 244 random bits (two v4 UUIDs, from the OS's generator), as 64 hex digits.
fn new_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Starts a family for `username` under its token `generation` (a login) and returns the
/// family's id and its first token. Expired tokens of every user older than a day are deleted on
/// the way.
pub async fn start(
    pool: &PgPool,
    (username, generation): (&str, i64),
    ttl_secs: u64,
) -> Result<(Uuid, Issued), sqlx::Error> {
    sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    let mut tx = pool.begin().await?;
    let (token, family) = (new_secret(), Uuid::new_v4());
    let issued = insert(
        &mut tx,
        (&token, username),
        (family, None, generation),
        ttl_secs,
    )
    .await?;
    tx.commit().await?;
    Ok((family, issued))
}

/// Whether the login `family` is still in: not logged out or revoked, and not expired.
pub async fn login_in(pool: &PgPool, family: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM refresh_tokens \
         WHERE family = $1 AND revoked_at IS NULL AND expires_at > now())",
    )
    .bind(family)
    .fetch_one(pool)
    .await
}

async fn insert(
    tx: &mut sqlx::PgConnection,
    (token, username): (&str, &str),
    (family, started, generation): (Uuid, Option<DateTime<Utc>>, i64),
    ttl_secs: u64,
) -> Result<Issued, sqlx::Error> {
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO refresh_tokens (token_hash, family, username, family_started_at, expires_at, generation) \
         VALUES ($1, $2, $3, COALESCE($4, now()), now() + make_interval(secs => $5), $6) \
         RETURNING expires_at",
    )
    .bind(hash(token))
    .bind(family)
    .bind(username)
    .bind(started)
    .bind(ttl_secs as f64)
    .bind(generation)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Issued {
        token: token.to_owned(),
        expires_at,
    })
}

/// A presented token's family, user, family start, whether it was used (and within the reuse
/// grace), revoked or has expired, the user's role now (none: deleted), and the family's and the
/// user's token generations (a family predating a change of role or password is refused).
type Presented = (
    Uuid,
    String,
    DateTime<Utc>,
    (bool, bool),
    bool,
    bool,
    Option<Role>,
    (i64, Option<i64>),
);

/// Uses `token` up and issues the next of its family (see [`Rotation`]).
pub async fn rotate(
    pool: &PgPool,
    token: &str,
    rules: &RotationRules,
) -> Result<Rotation, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Locked: of two refreshes racing with one token, the second sees it used.
    let row: Option<Presented> = sqlx::query_as(
        "SELECT t.family, t.username, t.family_started_at, \
                    (t.used_at IS NOT NULL, \
                     COALESCE(t.used_at > now() - make_interval(secs => $2), false)), \
                    t.revoked_at IS NOT NULL, t.expires_at <= now(), \
                    u.role, (t.generation, u.token_generation) \
             FROM refresh_tokens t LEFT JOIN users u ON u.username = t.username \
             WHERE t.token_hash = $1 FOR UPDATE OF t",
    )
    .bind(hash(token))
    .bind(rules.reuse_grace_secs as f64)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((
        family,
        username,
        started,
        (used, in_grace),
        revoked,
        expired,
        role,
        (generation, now),
    )) = row
    else {
        return Ok(Rotation::Refused);
    };
    let role = role.filter(|_| !revoked && !expired && Some(generation) == now);
    let next = rules.successor(token);
    if used {
        // Another tab's refresh a moment ago: the same successor, while it stands.
        if let (true, Some(role)) = (in_grace, role) {
            if let Some(expires_at) = standing(&mut tx, &next).await? {
                let next = Issued {
                    token: next,
                    expires_at,
                };
                return Ok(Rotation::Rotated {
                    username,
                    role,
                    generation,
                    login: family,
                    next,
                });
            }
        }
        revoke(&mut tx, family).await?;
        tx.commit().await?;
        return Ok(Rotation::Reused);
    }
    let Some(role) = role else {
        return Ok(Rotation::Refused);
    };
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(hash(token))
        .execute(&mut *tx)
        .await?;
    let next = insert(
        &mut tx,
        (&next, &username),
        (family, Some(started), generation),
        rules.ttl_secs,
    )
    .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated {
        username,
        role,
        generation,
        login: family,
        next,
    })
}

/// When `token` expires, if it is not revoked and has not expired.
async fn standing(
    tx: &mut sqlx::PgConnection,
    token: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT expires_at FROM refresh_tokens \
         WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(hash(token))
    .fetch_optional(&mut *tx)
    .await
}

async fn revoke(tx: &mut sqlx::PgConnection, family: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Revokes the family of `token` (a logout) and returns it; an unknown token is no error.
pub async fn revoke_family_of(pool: &PgPool, token: &str) -> Result<Option<Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let family: Option<Uuid> =
        sqlx::query_scalar("SELECT family FROM refresh_tokens WHERE token_hash = $1")
            .bind(hash(token))
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(family) = family {
        revoke(&mut tx, family).await?;
    }
    tx.commit().await?;
    Ok(family)
}
