//! Recordings: the list a caller may see, one recording's markers and
//! length, and search in it. Anything the caller may not read is not found.
use std::sync::Arc;

use app::{
    backend::{Caller, Recordings},
    error::ApiError,
    model::{RecordingDetail, RecordingInfo, RecordingQuery, SearchHit, RECORDINGS_PER_PAGE},
};
use async_trait::async_trait;

use super::{day, internal, some};
use crate::{
    db::{self, terminal_sessions::TermSessionRow, users},
    recordings::{
        access,
        files::{valid_id, RecordingDir},
        index, timeline,
    },
    state::Core,
};

/// [`Recordings`] backed by the database and the recordings directory.
pub struct RecordingService(pub Arc<Core>);

impl RecordingService {
    fn info(row: TermSessionRow, user: String) -> RecordingInfo {
        RecordingInfo {
            id: row.id,
            user,
            target: row.target,
            namespace: row.namespace,
            started: row.started_at,
            status: row.status,
            duration_ms: row.duration_ms,
            size: row.recording_size,
            state: row.recording_state.unwrap_or_default(),
        }
    }

    /// The row of a recording the caller may read; `NotFound` otherwise.
    async fn readable(&self, caller: &Caller, id: &str) -> Result<TermSessionRow, ApiError> {
        let missing = || ApiError::NotFound("no such recording".into());
        if !valid_id(id) {
            return Err(missing());
        }
        let row = db::terminal_sessions::by_id(&self.0.db, id)
            .await
            .map_err(internal)?
            .filter(|r| r.recording_id.is_some() && r.recording_state.as_deref() != Some("deleted"))
            .ok_or_else(missing)?;
        let allowed = access::may_read(&self.0.db, caller.user.id, caller.user.is_admin(), &row)
            .await
            .map_err(internal)?;
        if allowed {
            Ok(row)
        } else {
            Err(missing())
        }
    }

    /// The name of the session's owner (empty if the user was deleted).
    async fn owner_name(&self, row: &TermSessionRow) -> Result<String, ApiError> {
        Ok(users::by_id(&self.0.db, row.user_id)
            .await
            .map_err(internal)?
            .map(|u| u.name)
            .unwrap_or_default())
    }

    /// The recordings directory.
    fn dir(&self) -> Result<RecordingDir, ApiError> {
        self.0
            .config
            .recordings
            .clone()
            .ok_or_else(|| ApiError::NotFound("recordings are off".into()))
    }

    /// Runs `read` over the recording's file on a blocking thread.
    async fn with_file<T: Send + 'static>(
        &self,
        id: &str,
        read: impl FnOnce(std::io::BufReader<std::fs::File>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let dir = self.dir()?;
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            dir.open(&id)
                .map(|f| read(std::io::BufReader::with_capacity(64 * 1024, f)))
        })
        .await
        .map_err(internal)?
        .map_err(|_| ApiError::NotFound("the recording's file is missing".into()))
    }
}

#[async_trait]
impl Recordings for RecordingService {
    async fn list(
        &self,
        caller: &Caller,
        q: &RecordingQuery,
    ) -> Result<Vec<RecordingInfo>, ApiError> {
        let db = &self.0.db;
        let user_id = match some(&q.user) {
            Some(name) => match users::by_name(db, &name).await.map_err(internal)? {
                Some(u) => Some(u.id),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let filter = db::terminal_sessions::RecordingFilter {
            user_id,
            target: some(&q.target),
            namespace: some(&q.namespace),
            status: some(&q.status),
            since: day(&q.since, 0)?,
            until: day(&q.until, 1)?,
            visible_to: (!caller.user.is_admin()).then_some(caller.user.id),
        };
        let per_page = i64::from(RECORDINGS_PER_PAGE);
        let rows =
            db::terminal_sessions::recordings(db, &filter, per_page, i64::from(q.page) * per_page)
                .await
                .map_err(internal)?;
        let names: std::collections::HashMap<i64, String> = users::list(db)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
        Ok(rows
            .into_iter()
            .map(|r| {
                let user = names.get(&r.user_id).cloned().unwrap_or_default();
                Self::info(r, user)
            })
            .collect())
    }

    async fn detail(&self, caller: &Caller, id: &str) -> Result<RecordingDetail, ApiError> {
        let row = self.readable(caller, id).await?;
        let dir = self.dir()?;
        let rec = id.to_string();
        let overview = tokio::task::spawn_blocking(move || {
            let index = dir.open_index(&rec).ok();
            dir.open(&rec).and_then(|f| index::overview(f, index))
        })
        .await
        .map_err(internal)?
        .map_err(|_| ApiError::NotFound("the recording's file is missing".into()))?;
        let user = self.owner_name(&row).await?;
        Ok(RecordingDetail {
            info: Self::info(row, user),
            markers: overview.markers,
            duration: overview.duration,
            windows: overview.windows,
        })
    }

    async fn share(
        &self,
        caller: &Caller,
        id: &str,
        room: &str,
        at: Option<f64>,
    ) -> Result<(), ApiError> {
        let row = self.readable(caller, id).await?;
        let link = app::model::RecordingLink {
            id: id.to_string(),
            at: at.filter(|t| t.is_finite() && *t >= 0.0),
        };
        let user = self.owner_name(&row).await?;
        let text = format!("▶ recording of {user}@{}: {}", row.target, link.path());
        super::post_to_room(&self.0, caller, room, text, "recording.share", id).await
    }

    async fn search(
        &self,
        caller: &Caller,
        id: &str,
        text: &str,
    ) -> Result<Vec<SearchHit>, ApiError> {
        if text.trim().is_empty() || text.len() > 200 {
            return Err(ApiError::Invalid("search for 1 to 200 characters".into()));
        }
        self.readable(caller, id).await?;
        let text = text.to_string();
        self.with_file(id, move |f| timeline::search(f, &text))
            .await
    }
}
