//! Retention: finished recordings older than their namespace's retention
//! period are deleted by a periodic job, and each deletion is audited.
use std::time::Duration;

use tracing::{info, warn};

use super::files::RecordingDir;
use crate::db::{self, Db, DbError};

/// Deletes every expired recording; returns how many.
pub async fn purge_expired(db: &Db, dir: &RecordingDir) -> Result<usize, DbError> {
    let expired = db::terminal_sessions::expired_recordings(db, db::now_unix()).await?;
    let mut deleted = 0;
    for row in expired {
        let Some(rec) = row.recording_id.clone() else {
            continue;
        };
        let d = dir.clone();
        let removed = tokio::task::spawn_blocking(move || d.remove(&rec))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(e) = removed {
            warn!(session = %row.id, "cannot delete an expired recording: {e}");
            continue;
        }
        db::terminal_sessions::set_recording(
            db,
            &row.id,
            0,
            row.recording_digest.as_deref().unwrap_or_default(),
            "deleted",
        )
        .await?;
        let detail = format!(
            "retention of namespace {:?} ran out; {} bytes",
            row.namespace,
            row.recording_size.unwrap_or(0)
        );
        db::audit::record(db, None, "recording.deleted", Some(&row.id), Some(&detail)).await?;
        deleted += 1;
    }
    if deleted > 0 {
        info!(deleted, "expired recordings deleted");
    }
    Ok(deleted)
}

/// Runs [`purge_expired`] every `every`.
pub fn spawn(db: Db, dir: RecordingDir, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = purge_expired(&db, &dir).await {
                warn!("recording retention: {e}");
            }
        }
    })
}
