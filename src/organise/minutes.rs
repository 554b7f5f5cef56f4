//! The organisers' part of the minutes (issue 14): which committee held the activity, on what
//! topic, when, and the people it invited with their attendance — by person, joined from the
//! invitations (the organisers' tables) and the session's attendance (the record's summary),
//! whose participant ids are the invited persons' ids (an invitation's pass has the person as
//! its subject).
//!
//! Pure: [`OrganisersMinutes::of`] takes the values, `export` reads them from the stores.

use std::fmt::Write;

use serde::Serialize;

use crate::admin::invitations::{Invitation, InviteeRole};
use crate::admin::{Activity, Directory, Level};
use crate::consult::SessionSummary;
use crate::consult::minutes::{bj, cell};

/// The organising committee as the minutes name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitteeLine {
    /// Id.
    pub id: String,
    /// Name (陕西省政协).
    pub name: String,
    /// Level.
    pub level: Level,
}

/// One invited person and whether (and how long) they attended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvitedRow {
    /// The person (the participant id in the session).
    pub person: String,
    /// Display name.
    pub name: String,
    /// Member or guest.
    pub role: InviteeRole,
    /// A member's committee, a guest's affiliation.
    pub organisation: Option<String>,
    /// The invitation was revoked.
    pub revoked: bool,
    /// Times the link was redeemed.
    pub uses: u32,
    /// Joined the session at least once.
    pub attended: bool,
    /// First joined, ms.
    pub first_joined_ms: Option<u64>,
    /// Total time present, ms.
    pub present_ms: u64,
}

/// What the organisers add to the minutes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrganisersMinutes {
    /// The organising committee.
    pub committee: CommitteeLine,
    /// Title.
    pub title: String,
    /// The topic (议题).
    pub topic: String,
    /// The description.
    pub description: String,
    /// Room or livestream.
    pub kind: crate::admin::ActivityKind,
    /// Scheduled start, ms.
    pub scheduled_start_ms: u64,
    /// Planned end, ms.
    pub planned_end_ms: u64,
    /// Opened, ms.
    pub opened_ms: Option<u64>,
    /// Closed, ms.
    pub closed_ms: Option<u64>,
    /// Everyone invited, by name.
    pub invited: Vec<InvitedRow>,
    /// Invited and attended.
    pub attended: usize,
}

impl OrganisersMinutes {
    /// Joins the activity, its invitations and the session's attendance (`summary`: `None` if
    /// the session never ran).
    pub fn of(a: &Activity, directory: &Directory, invitations: &[Invitation], summary: Option<&SessionSummary>) -> Self {
        let committee = directory.get(a.committee()).map_or_else(
            || CommitteeLine { id: a.committee().to_string(), name: a.committee().to_string(), level: a.level() },
            |c| CommitteeLine { id: c.id.to_string(), name: c.name.clone(), level: c.level },
        );
        let mut invited: Vec<InvitedRow> = invitations
            .iter()
            .map(|i| {
                let row = summary.and_then(|s| s.participants.iter().find(|p| p.id.as_str() == i.invitee.person.as_str()));
                InvitedRow {
                    person: i.invitee.person.to_string(),
                    name: i.invitee.name.clone(),
                    role: i.invitee.role,
                    organisation: i.invitee.org.as_ref().map(|o| o.name.clone()).or_else(|| i.invitee.affiliation.clone()),
                    revoked: i.revoked.is_some(),
                    uses: i.uses,
                    attended: row.is_some_and(|r| !r.spans.is_empty()),
                    first_joined_ms: row.and_then(|r| r.spans.first()).map(|s| s.joined_at_ms),
                    present_ms: row.map_or(0, |r| r.present_ms),
                }
            })
            .collect();
        invited.sort_by(|x, y| (&x.name, &x.person).cmp(&(&y.name, &y.person)));
        OrganisersMinutes {
            committee,
            title: a.title().to_owned(),
            topic: a.topic().to_owned(),
            description: a.description().to_owned(),
            kind: a.kind(),
            scheduled_start_ms: a.scheduled_start_ms(),
            planned_end_ms: a.planned_end_ms(),
            opened_ms: a.opened_ms(),
            closed_ms: a.closed_ms(),
            attended: invited.iter().filter(|r| r.attended).count(),
            invited,
        }
    }

    /// The section of the Markdown minutes (placed before the attendance).
    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        let level = match self.committee.level {
            Level::Province => "省级 (province)",
            Level::City => "市级 (city)",
            Level::County => "县级 (county)",
        };
        let _ = writeln!(m, "## 议题与邀请 (Topic and invitations)\n");
        let _ = writeln!(m, "- 主办 (Organised by): {}（{level}）", cell(&self.committee.name));
        let _ = writeln!(m, "- 议题 (Topic): {}", cell(&self.topic));
        let kind = match self.kind {
            crate::admin::ActivityKind::Room => "视频会商 (room)",
            crate::admin::ActivityKind::Livestream => "网络直播 (livestream)",
        };
        let _ = writeln!(m, "- 形式 (Kind): {kind}");
        let _ = writeln!(
            m,
            "- 计划 (Scheduled): {} — {} 北京时间 (UTC+8)",
            bj(self.scheduled_start_ms),
            bj(self.planned_end_ms)
        );
        if let Some(c) = self.closed_ms {
            let _ = writeln!(m, "- 结束 (Closed): {}", bj(c));
        }
        if !self.description.is_empty() {
            let _ = writeln!(m, "- 说明 (Description): {}", cell(&self.description));
        }
        let _ = writeln!(m, "- 应邀 (Invited): {} 人，出席 {} 人\n", self.invited.len(), self.attended);
        if self.invited.is_empty() {
            return m;
        }
        let _ = writeln!(
            m,
            "| 姓名 (Name) | 身份 (Role) | 单位 (Organisation) | 出席 (Attended) | 首次进入 (First in) | 在场时长 (Present) |\n|---|---|---|---|---|---|"
        );
        for r in &self.invited {
            let role = match r.role {
                InviteeRole::Member => "委员",
                InviteeRole::Guest => "特邀嘉宾",
            };
            let attended = match (r.attended, r.revoked) {
                (true, _) => "出席 (yes)",
                (false, true) => "邀请已撤销 (revoked)",
                (false, false) => "缺席 (no)",
            };
            let _ = writeln!(
                m,
                "| {} | {role} | {} | {attended} | {} | {} |",
                cell(&r.name),
                cell(r.organisation.as_deref().unwrap_or("")),
                r.first_joined_ms.map(bj).unwrap_or_default(),
                dur(r.present_ms)
            );
        }
        m.push('\n');
        m
    }

    /// Puts the section into Markdown minutes: before their attendance section if they have
    /// one, else at the end.
    pub fn insert_into(&self, minutes: &str) -> String {
        let section = self.to_markdown();
        match minutes.find("\n## ") {
            Some(i) => format!("{}\n{section}{}", &minutes[..i], &minutes[i + 1..]),
            None => format!("{minutes}\n{section}"),
        }
    }
}

/// `m:ss` (or `h:mm:ss`).
fn dur(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 { format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) } else { format!("{}:{:02}", s / 60, s % 60) }
}
