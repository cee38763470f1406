//! Rate limits kept in the database, so every instance behind a load balancer counts the
//! same attempts. Fixed windows: simple, and good enough against password guessing.

use chrono::{DateTime, DurationRound, Utc};

use super::{now, on, Result, Tx};

/// Counts one hit on `key` in the current window of `window_minutes`, and answers whether
/// it is within `max`; when not, also when the window ends.
pub async fn hit(
    tx: &mut Tx,
    key: &str,
    max: i64,
    window_minutes: i64,
) -> Result<Result<(), DateTime<Utc>>> {
    let window = chrono::Duration::minutes(window_minutes);
    let start = now().duration_trunc(window).unwrap_or_else(|_| now());
    let hits: i64 = on!(tx, c => sqlx::query_scalar(
        "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 1) \
         ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1 RETURNING hits",
    )
    .bind(key)
    .bind(start)
    .fetch_one(&mut *c)
    .await)?;
    Ok(if hits <= max {
        Ok(())
    } else {
        Err(start + window)
    })
}

/// Forgets windows that ended before `before`.
pub async fn prune(tx: &mut Tx, before: DateTime<Utc>) -> Result<u64> {
    Ok(
        on!(tx, c => sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
        .bind(before)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?,
    )
}
