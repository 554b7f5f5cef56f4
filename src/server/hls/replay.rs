//! The replay's data over HTTP: the recording's time line, the chapters by floor turn and the
//! public questions (`replay.json`), and the public comments in pages (`comments.json`), each
//! with its place on the VOD (`offset_ms`), for `/replay/{activity}` in the web client.
//!
//! ```text
//! GET /hls/{activity}/replay.json                  {title, live, duration_ms, timeline, chapters, questions}
//! GET /hls/{activity}/comments.json?after=S&limit=N  {comments: [{seq, ts, offset_ms, name, role, text}], next}
//! ```
//!
//! Both read the recording's index (the segments' wall-clock times) and the record (the session
//! summary: turns, questions, hidden comments; the topic's items) and map moments onto the VOD
//! with [`Timeline`] (pure, `programme/replay.rs`). Hidden comments are left out (the summary
//! lists them), held ones too (only public items are read). After the livestream ended the
//! answers do not change: a cache may keep them an hour.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shangliang_signaling::{ActivityId, ItemBody, Seq};

use super::{HlsError, from_home, livestream, read_recording};
use crate::consult::SessionSummary;
use crate::programme::replay::{Timeline, Turn, chapters};
use crate::programme::store::Recording;
use crate::server::Hub;

/// Comments per page at most (and by default).
pub const MAX_PAGE: u64 = 1000;

fn cache(ended: bool) -> &'static str {
    if ended { "public, max-age=3600" } else { "public, max-age=5" }
}

async fn summary(hub: &Hub, id: &ActivityId) -> Result<Option<SessionSummary>, HlsError> {
    let stored = hub.record.summary(id).await.map_err(|e| HlsError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()))?;
    Ok(stored.and_then(|(json, _)| serde_json::from_str(&json).ok()))
}

/// The floor turns of a session summary, as the chapters need them.
pub fn turns(s: &SessionSummary) -> Vec<Turn> {
    s.turns.iter().map(|t| Turn { holder: t.holder.as_str().to_owned(), name: t.holder_name.clone(), start_ms: t.granted_at_ms, end_ms: t.ended_at_ms }).collect()
}

async fn recording(hub: &Hub, id: &ActivityId) -> Result<Recording, HlsError> {
    let rec = read_recording(hub, id).await?;
    if rec.segments.is_empty() {
        return Err(HlsError(StatusCode::NOT_FOUND, "no_recording", "nothing of this livestream was recorded".into()));
    }
    Ok(rec)
}

/// `replay.json`: what the replay page draws before it plays.
pub async fn replay(State(hub): State<Arc<Hub>>, Path(activity): Path<String>, headers: HeaderMap) -> Result<Response, HlsError> {
    let id = livestream(&hub, &activity)?;
    // Cluster mode: the recording lies on the activity's home node.
    if let Some(r) = from_home(&hub, &id, "replay.json", None, &headers, false).await {
        return Ok(r);
    }
    metrics::counter!("shangliang_hls_requests_total", "kind" => "replay").increment(1);
    let rec = recording(&hub, &id).await?;
    let timeline = Timeline::from_segments(&rec.segments);
    let summary = summary(&hub, &id).await?;
    let title = match &summary {
        Some(s) => s.title.clone(),
        None => hub.record.activity(&id).ok().flatten().map(|a| a.title).unwrap_or_default(),
    };
    let chapters = summary.as_ref().map(|s| chapters(&turns(s), &timeline)).unwrap_or_default();
    let questions: Vec<_> = summary
        .iter()
        .flat_map(|s| s.questions.iter())
        .filter(|q| q.state.is_public())
        .map(|q| {
            json!({
                "id": q.id,
                "text": q.text,
                "asker": if q.anonymous { None } else { Some(&q.asker.name) },
                "state": q.state,
                "votes": q.votes(),
                "at_ms": q.submitted_at_ms,
                "offset_ms": timeline.offset_of(q.submitted_at_ms),
            })
        })
        .collect();
    let body = json!({
        "activity": id,
        "title": title,
        "live": !rec.ended,
        "playlist": "recording.m3u8",
        "start_ms": timeline.start_ms(),
        "duration_ms": timeline.duration_ms,
        "timeline": timeline.runs,
        "chapters": chapters,
        "questions": questions,
    });
    Ok(([(header::CACHE_CONTROL, cache(rec.ended))], axum::Json(body)).into_response())
}

/// `after` and `limit` of `comments.json`: decimal numbers, each at most once.
fn page_params(query: Option<&str>) -> Result<(u64, u64), HlsError> {
    let bad = |m: String| HlsError(StatusCode::BAD_REQUEST, "bad_request", m);
    let (mut after, mut limit) = (None, None);
    for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let n = (!v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse::<u64>().ok()).flatten();
        match (k, n) {
            ("after", Some(n)) if after.is_none() => after = Some(n),
            ("limit", Some(n)) if limit.is_none() && (1..=MAX_PAGE).contains(&n) => limit = Some(n),
            ("after" | "limit", _) => return Err(bad(format!("{k} must be given once, as a decimal number (limit 1..={MAX_PAGE})"))),
            _ => {}
        }
    }
    Ok((after.unwrap_or(0), limit.unwrap_or(MAX_PAGE)))
}

/// `comments.json`: public comments after seq `after`, at most `limit`, with their offsets.
pub async fn comments(State(hub): State<Arc<Hub>>, Path(activity): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Result<Response, HlsError> {
    let id = livestream(&hub, &activity)?;
    let (after, limit) = page_params(query.as_deref())?;
    if let Some(r) = from_home(&hub, &id, "comments.json", query.as_deref(), &headers, false).await {
        return Ok(r);
    }
    metrics::counter!("shangliang_hls_requests_total", "kind" => "replay_comments").increment(1);
    let rec = recording(&hub, &id).await?;
    let timeline = Timeline::from_segments(&rec.segments);
    let hidden: HashSet<Seq> = summary(&hub, &id).await?.map(|s| s.hidden_comments.iter().map(|h| h.seq).collect()).unwrap_or_default();
    let head = hub.record.head(&id).map_err(|e| HlsError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()))?;
    let from = after.saturating_add(1);
    let to = from.saturating_add(limit - 1).min(head.0);
    let items = if from > to {
        Vec::new()
    } else {
        hub.record.items(&id, Seq(from), Seq(to), true).await.map_err(|e| HlsError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()))?
    };
    let out: Vec<_> = items
        .iter()
        .filter(|s| !hidden.contains(&s.item.seq))
        .filter_map(|s| match &s.item.body {
            ItemBody::Comment { author, text, .. } => Some(json!({
                "seq": s.item.seq,
                "ts": s.item.ts,
                "offset_ms": timeline.offset_of(s.item.ts),
                "name": author.name,
                "role": author.role,
                "verified": author.verified,
                "text": text,
            })),
            ItemBody::Hide { .. } => None,
        })
        .collect();
    let next = (to < head.0).then_some(to);
    let ended = rec.ended && next.is_none();
    Ok(([(header::CACHE_CONTROL, cache(rec.ended))], axum::Json(json!({ "comments": out, "next": next, "complete": ended }))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_parameters_are_strict() {
        assert_eq!(page_params(None).unwrap(), (0, MAX_PAGE));
        assert_eq!(page_params(Some("after=17&limit=50")).unwrap(), (17, 50));
        for bad in ["after=-1", "after=x", "limit=0", "limit=1001", "after=1&after=2", "limit=", "after=99999999999999999999"] {
            assert!(page_params(Some(bad)).is_err(), "{bad}");
        }
    }
}
