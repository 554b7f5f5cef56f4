//! Renderers of the session record: JSON (the full record), CSV and Markdown (forms to hand on).
//!
//! JSON keeps everything, the askers of anonymous questions included. CSV and Markdown are
//! meant to leave the organisers' hands, so they show an anonymous question's asker as
//! 匿名 (anonymous). Markdown times are Beijing time (UTC+8); CSV and JSON times are
//! milliseconds since the Unix epoch.

use std::fmt::Write as _;

use shangliang_signaling::{OrgLevel, Role};

use super::audit::verify_head;
use super::floor::TurnEnd;
use super::questions::QuestionState;
use super::consultation::SessionSummary;

const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;

/// `YYYY-MM-DD HH:MM:SS` for `ms` since the Unix epoch shifted by `offset_ms`.
fn datetime(ms: u64, offset_ms: i64) -> String {
    let t = (ms as i64 + offset_ms).div_euclid(1000);
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

pub(crate) fn bj(ms: u64) -> String {
    datetime(ms, BEIJING_OFFSET_MS)
}

fn bj_time(ms: u64) -> String {
    bj(ms)[11..].to_owned()
}

/// `m:ss` (or `h:mm:ss`).
fn dur(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn role_zh(r: Role) -> &'static str {
    match r {
        Role::Moderator => "主持人",
        Role::Member => "委员",
        Role::Guest => "特邀嘉宾",
        Role::Viewer => "群众",
    }
}

fn level_zh(l: OrgLevel) -> &'static str {
    match l {
        OrgLevel::Province => "省",
        OrgLevel::City => "市",
        OrgLevel::County => "县",
    }
}

fn end_zh(e: Option<TurnEnd>) -> &'static str {
    match e {
        None => "进行中 (ongoing)",
        Some(TurnEnd::Expired) => "到时 (expired)",
        Some(TurnEnd::Revoked) => "收回 (revoked)",
        Some(TurnEnd::Yielded) => "交还 (yielded)",
        Some(TurnEnd::Left) => "离开 (left)",
    }
}

fn state_zh(s: QuestionState) -> &'static str {
    match s {
        QuestionState::Pending => "待审 (pending)",
        QuestionState::Published => "已发布 (published)",
        QuestionState::Rejected => "未采用 (rejected)",
        QuestionState::OnStage => "回答中 (on stage)",
        QuestionState::Answered => "已回答 (answered)",
        QuestionState::Dismissed => "已撤下 (dismissed)",
    }
}

/// Escapes text from participants (names, question and comment texts, moderators' reasons) for
/// the minutes: one line (a table cell), no raw HTML (`<`, `>`, `&` as entities, so
/// `<img src=x onerror=…>` stays text) and no Markdown syntax (`[`, `]`, `` ` ``, `*`, `_`, `~`,
/// `|`, `\` backslash-escaped, so `[x](javascript:…)` is not a link and nothing can break out of
/// its cell). Every embedding point of such text goes through it.
pub(crate) fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\r' | '\n' => out.push(' '),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '|' | '[' | ']' | '`' | '*' | '_' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    out
}

/// Quotes a CSV field when needed (RFC 4180). A leading `= + - @` is prefixed with `'` so a
/// spreadsheet does not run a comment's text as a formula.
fn csv(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

impl SessionSummary {
    /// The full record as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the summary is plain data")
    }

    fn name_of(&self, id: &str) -> String {
        self.participants
            .iter()
            .find(|p| p.id.as_str() == id)
            .map_or_else(|| id.to_owned(), |p| p.name.clone())
    }

    /// One table in long form: `section,ref,participant,name,role,start_ms,end_ms,duration_ms,status,detail`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "section,ref,participant,name,role,start_ms,end_ms,duration_ms,status,detail\n",
        );
        let mut row = |f: [&str; 10]| {
            let line: Vec<String> = f.iter().map(|x| csv(x)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        };
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        for p in &self.participants {
            let org = p.org.as_ref().map(|o| o.name.clone()).unwrap_or_default();
            for (i, s) in p.spans.iter().enumerate() {
                let d = s
                    .left_at_ms
                    .map(|l| (l - s.joined_at_ms).to_string())
                    .unwrap_or_default();
                let status = if s.left_at_ms.is_some() {
                    "left"
                } else {
                    "present"
                };
                row([
                    "attendance",
                    &(i + 1).to_string(),
                    p.id.as_str(),
                    &p.name,
                    p.role.as_str(),
                    &s.joined_at_ms.to_string(),
                    &opt(s.left_at_ms),
                    &d,
                    status,
                    &org,
                ]);
            }
        }
        let v = &self.viewers;
        row([
            "viewers",
            "",
            "",
            "",
            "viewer",
            "",
            "",
            "",
            "",
            &format!(
                "distinct={} peak={} current={}",
                v.distinct, v.peak, v.current
            ),
        ]);
        for (i, t) in self.turns.iter().enumerate() {
            let status = t.end.map_or("ongoing", |e| match e {
                TurnEnd::Expired => "expired",
                TurnEnd::Revoked => "revoked",
                TurnEnd::Yielded => "yielded",
                TurnEnd::Left => "left",
            });
            row([
                "turn",
                &(i + 1).to_string(),
                t.holder.as_str(),
                &t.holder_name,
                "",
                &t.granted_at_ms.to_string(),
                &opt(t.ended_at_ms),
                &t.spoken_ms.to_string(),
                status,
                &format!(
                    "allotted_ms={} extended_ms={} overtime_ms={}",
                    t.allotted_ms, t.extended_ms, t.overtime_ms
                ),
            ]);
        }
        for q in &self.questions {
            let (who, name, role) = if q.anonymous {
                ("", "匿名 (anonymous)".to_owned(), "")
            } else {
                (
                    q.asker.id.as_str(),
                    q.asker.name.clone(),
                    q.asker.role.as_str(),
                )
            };
            let answered_by = q
                .answer
                .as_ref()
                .and_then(|a| a.by.as_ref())
                .map(|b| format!(" answered_by={}", self.name_of(b.as_str())))
                .unwrap_or_default();
            let reason = q
                .reason
                .as_ref()
                .map(|r| format!(" reason={r}"))
                .unwrap_or_default();
            row([
                "question",
                &q.id.to_string(),
                who,
                &name,
                role,
                &q.submitted_at_ms.to_string(),
                &opt(q.answer.as_ref().map(|a| a.at_ms).or(q.decided_at_ms)),
                "",
                q.state.as_str(),
                &{
                    let t = q.votes_by_tier();
                    format!(
                        "votes={} verified={} member={} anonymous={}{answered_by}{reason} text={}",
                        q.votes(),
                        t.verified,
                        t.member,
                        t.anonymous,
                        q.text
                    )
                },
            ]);
        }
        let c = &self.comments;
        let refused: u64 = c.refused.values().sum();
        row([
            "comments",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            &format!(
                "accepted={} held={} approved={} hidden={} refused={} awaiting_review={}",
                c.accepted, c.held, c.approved, c.hidden, refused, self.held_comments
            ),
        ]);
        for h in &self.hidden_comments {
            let (who, name) = h
                .author
                .as_ref()
                .map_or(("", ""), |a| (a.id.as_str(), a.name.as_str()));
            row([
                "hidden_comment",
                &h.seq.to_string(),
                who,
                name,
                "",
                &h.at_ms.to_string(),
                "",
                "",
                &self.name_of(h.by.as_str()),
                &format!(
                    "reason={} original={}",
                    h.reason,
                    h.text.as_deref().unwrap_or("(in the durable record)")
                ),
            ]);
        }
        for s in &self.sanctions {
            row([
                "sanction",
                "",
                s.participant.as_str(),
                "",
                "",
                &s.at_ms.to_string(),
                &opt(s.until_ms),
                "",
                if s.until_ms.is_some() {
                    "timeout"
                } else {
                    "ban"
                },
                &s.reason,
            ]);
        }
        for e in &self.audit {
            row([
                "audit",
                &e.index.to_string(),
                e.actor.as_str(),
                &self.name_of(e.actor.as_str()),
                "moderator",
                &e.at_ms.to_string(),
                "",
                "",
                &e.action,
                &format!(
                    "target={} detail={} reason={} hash={}",
                    e.target,
                    e.detail,
                    e.reason.as_deref().unwrap_or(""),
                    e.hash
                ),
            ]);
        }
        out
    }

    /// Minutes a secretary can hand on.
    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        let title = if self.title.is_empty() {
            self.activity.to_string()
        } else {
            self.title.clone()
        };
        let _ = writeln!(m, "# {} — 会议纪要 (Minutes)\n", cell(&title));
        let _ = writeln!(m, "- 活动 (Activity): `{}`", self.activity);
        let start = self
            .participants
            .iter()
            .flat_map(|p| p.spans.first())
            .map(|s| s.joined_at_ms)
            .min()
            .unwrap_or(self.created_at_ms);
        let _ = writeln!(m, "- 开始 (Opened): {} 北京时间 (UTC+8)", bj(start));
        let _ = writeln!(m, "- 纪要生成 (Generated): {}", bj(self.generated_at_ms));
        let members = self
            .participants
            .iter()
            .filter(|p| p.role == Role::Member)
            .count();
        let _ = writeln!(
            m,
            "- 出席 (Present): 委员 {members} 人，共 {} 人；群众观看 {} 人（同时最多 {} 人）\n",
            self.participants.len(),
            self.viewers.distinct,
            self.viewers.peak
        );

        let _ = writeln!(m, "## 一、出席情况 (Attendance)\n");
        if self.participants.is_empty() {
            let _ = writeln!(m, "（无）\n");
        } else {
            let _ = writeln!(
                m,
                "| 姓名 (Name) | 身份 (Role) | 单位 (Organisation) | 进入—离开 (In—out) | 在场时长 (Present) |\n|---|---|---|---|---|"
            );
            for p in &self.participants {
                let org = p
                    .org
                    .as_ref()
                    .map(|o| format!("{}（{}级）", o.name, level_zh(o.level)))
                    .unwrap_or_default();
                let spans: Vec<String> = p
                    .spans
                    .iter()
                    .map(|s| {
                        format!(
                            "{}—{}",
                            bj_time(s.joined_at_ms),
                            s.left_at_ms.map(bj_time).unwrap_or_else(|| "在场".into())
                        )
                    })
                    .collect();
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} |",
                    cell(&p.name),
                    role_zh(p.role),
                    cell(&org),
                    spans.join("，"),
                    dur(p.present_ms)
                );
            }
            m.push('\n');
        }

        let _ = writeln!(m, "## 二、发言记录 (Floor turns)\n");
        if self.turns.is_empty() {
            let _ = writeln!(m, "（无）\n");
        } else {
            let _ = writeln!(
                m,
                "| # | 发言人 (Speaker) | 开始 (From) | 结束 (To) | 时长 (Spoke) | 限时 (Allotted) | 延时 (Extended) | 超时 (Overtime) | 结束方式 (Ended) |\n|---|---|---|---|---|---|---|---|---|"
            );
            for (i, t) in self.turns.iter().enumerate() {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    i + 1,
                    cell(&t.holder_name),
                    bj_time(t.granted_at_ms),
                    t.ended_at_ms.map(bj_time).unwrap_or_default(),
                    dur(t.spoken_ms),
                    dur(t.allotted_ms),
                    dur(t.extended_ms),
                    dur(t.overtime_ms),
                    end_zh(t.end)
                );
            }
            let total: u64 = self.turns.iter().map(|t| t.spoken_ms).sum();
            let _ = writeln!(
                m,
                "\n共 {} 次发言，合计 {}。超时指超出最初限时的发言时间（含主持人批准的延时）。(Overtime is time beyond the limit first given, approved extensions included.)\n",
                self.turns.len(),
                dur(total)
            );
        }

        let _ = writeln!(m, "## 三、群众提问 (Questions)\n");
        if self.questions.is_empty() {
            let _ = writeln!(m, "（无）\n");
        } else {
            let _ = writeln!(
                m,
                "| 编号 (No.) | 问题 (Question) | 提问人 (Asked by) | 点赞 (Votes) | 实名 (Verified) | 委员 (Member) | 匿名 (Anonymous) | 结果 (Outcome) | 回答人 (Answered by) |\n|---|---|---|---|---|---|---|---|---|"
            );
            for q in &self.questions {
                let asker = if q.anonymous {
                    "匿名 (anonymous)".to_owned()
                } else {
                    q.asker.name.clone()
                };
                let mut outcome = state_zh(q.state).to_owned();
                if let Some(r) = &q.reason {
                    let _ = write!(outcome, "：{r}");
                }
                let by = q
                    .answer
                    .as_ref()
                    .and_then(|a| a.by.as_ref())
                    .map(|b| self.name_of(b.as_str()))
                    .unwrap_or_default();
                let t = q.votes_by_tier();
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    q.id,
                    cell(&q.text),
                    cell(&asker),
                    q.votes(),
                    t.verified,
                    t.member,
                    t.anonymous,
                    cell(&outcome),
                    cell(&by)
                );
            }
            let _ = writeln!(
                m,
                "\n点赞按身份计：实名与委员（含特邀嘉宾、工作人员）每人一票；匿名观众的点赞按网段（IPv4 /24、IPv6 /64）限额。(Votes by identity: verified viewers and members, guests and staff count one each; anonymous viewers' votes are capped per address block, IPv4 /24 or IPv6 /64.)"
            );
            m.push('\n');
        }

        let _ = writeln!(m, "## 四、评论情况 (Comments)\n");
        let c = &self.comments;
        let refused: u64 = c.refused.values().sum();
        let _ = writeln!(
            m,
            "- 直接发布 (Published at once): {}\n- 先审后发 (Held for review): {}，其中通过 (approved) {}，仍待审 (awaiting) {}\n- 隐藏 (Hidden): {}\n- 拒收 (Refused): {}",
            c.accepted, c.held, c.approved, self.held_comments, c.hidden, refused
        );
        for (code, n) in &c.refused {
            let _ = writeln!(m, "  - `{code}`: {n}");
        }
        m.push('\n');
        if !self.hidden_comments.is_empty() {
            let _ = writeln!(
                m,
                "### 被隐藏的评论 (Hidden comments)\n\n| 序号 (Seq) | 作者 (Author) | 原文 (Original) | 理由 (Reason) | 操作人 (By) | 时间 (At) |\n|---|---|---|---|---|---|"
            );
            for h in &self.hidden_comments {
                let author = h
                    .author
                    .as_ref()
                    .map(|a| a.name.clone())
                    .unwrap_or_default();
                let text = h
                    .text
                    .clone()
                    .unwrap_or_else(|| "（见存档 / in the durable record）".into());
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} | {} |",
                    h.seq,
                    cell(&author),
                    cell(&text),
                    cell(&h.reason),
                    cell(&self.name_of(h.by.as_str())),
                    bj_time(h.at_ms)
                );
            }
            m.push('\n');
        }
        if !self.sanctions.is_empty() {
            let _ = writeln!(
                m,
                "### 禁言 (Timeouts and bans)\n\n| 对象 (Who) | 类型 (Kind) | 至 (Until) | 理由 (Reason) | 操作人 (By) |\n|---|---|---|---|---|"
            );
            for s in &self.sanctions {
                let (kind, until) = match s.until_ms {
                    Some(u) => ("限时禁言 (timeout)", bj(u)),
                    None => ("禁止参与 (ban)", String::new()),
                };
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} |",
                    cell(s.participant.as_str()),
                    kind,
                    until,
                    cell(&s.reason),
                    cell(&self.name_of(s.by.as_str()))
                );
            }
            m.push('\n');
        }

        let _ = writeln!(m, "## 五、主持操作日志 (Moderation log)\n");
        let check = match verify_head(&self.audit, &self.audit_head) {
            Ok(()) => "校验通过 (chain verified)".to_owned(),
            Err(b) => format!("校验失败：第 {} 条 (BROKEN at entry {})", b.index, b.index),
        };
        let _ = writeln!(
            m,
            "共 {} 条，{}；末条哈希 (head) `{}`\n",
            self.audit.len(),
            check,
            self.audit_head
        );
        if !self.audit.is_empty() {
            let _ = writeln!(
                m,
                "| # | 时间 (At) | 操作人 (By) | 操作 (Action) | 对象 (Target) | 参数 (Detail) | 理由 (Reason) |\n|---|---|---|---|---|---|---|"
            );
            for e in &self.audit {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | `{}` | {} | {} | {} |",
                    e.index,
                    bj_time(e.at_ms),
                    cell(&self.name_of(e.actor.as_str())),
                    e.action,
                    cell(&self.name_of(&e.target)),
                    cell(&e.detail),
                    cell(e.reason.as_deref().unwrap_or(""))
                );
            }
        }
        m
    }
}

/// The recording's section of the minutes and its CSV rows (`shangliang export` adds them when the
/// livestream was recorded; see [`crate::programme::replay::RecordingInfo`]).
impl SessionSummary {
    /// `## 六、录像 (Recording)`: where to watch it, how long it is, the chapters by floor turn.
    pub fn recording_markdown(&self, r: &crate::programme::replay::RecordingInfo) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "\n## 六、录像 (Recording)\n");
        let _ = writeln!(m, "- 回放 (Replay): `{}`（点播列表 (VOD playlist) `{}`）", r.replay_url, r.playlist_url);
        let _ = writeln!(
            m,
            "- 时长 (Duration): {}，自 {} 北京时间起，{} 个分片 (segments){}{}",
            dur(r.duration_ms),
            bj(r.start_ms),
            r.segments,
            if r.runs > 1 { format!("，中断后续录 {} 次 (resumed after {} interruptions)", r.runs - 1, r.runs - 1) } else { String::new() },
            if r.ended { "" } else { "；直播仍在进行，录像未完 (still live: incomplete)" }
        );
        let _ = writeln!(m);
        if r.chapters.is_empty() {
            let _ = writeln!(m, "（无发言章节 (no chapters)）");
        } else {
            let _ = writeln!(m, "| # | 录像位置 (At) | 发言人 (Speaker) | 开始 (From) | 长度 (Length) |\n|---|---|---|---|---|");
            for (i, c) in r.chapters.iter().enumerate() {
                let _ = writeln!(m, "| {} | {} | {} | {} | {} |", i + 1, dur(c.offset_ms), cell(&c.name), bj_time(c.start_ms), dur(c.duration_ms));
            }
        }
        m
    }

    /// The recording as CSV rows in the columns of [`Self::to_csv`] (without the header): one
    /// `recording` row, one `chapter` row per floor turn (`start_ms`/`end_ms`: offsets in the VOD).
    pub fn recording_csv(&self, r: &crate::programme::replay::RecordingInfo) -> String {
        let mut out = String::new();
        let mut row = |f: [&str; 10]| {
            let line: Vec<String> = f.iter().map(|x| csv(x)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        };
        let status = if r.ended { "complete" } else { "live" };
        row(["recording", &r.playlist_url, "", "", "", "0", &r.duration_ms.to_string(), &r.duration_ms.to_string(), status, &r.replay_url]);
        for (i, c) in r.chapters.iter().enumerate() {
            let end = c.offset_ms + c.duration_ms;
            row(["chapter", &(i + 1).to_string(), &c.holder, &c.name, "", &c.offset_ms.to_string(), &end.to_string(), &c.duration_ms.to_string(), "", &c.start_ms.to_string()]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_render_in_beijing_time() {
        // 2024-09-20 12:00:00 UTC is 20:00 in Beijing.
        assert_eq!(bj(1_726_833_600_000), "2024-09-20 20:00:00");
        assert_eq!(datetime(0, 0), "1970-01-01 00:00:00");
        assert_eq!(datetime(951_782_400_000, 0), "2000-02-29 00:00:00");
        assert_eq!(dur(125_000), "2:05");
        assert_eq!(dur(3_725_000), "1:02:05");
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("a|b"), "a\\|b");
    }

    #[test]
    fn minutes_escape_html_and_links_in_questions_comments_and_reasons() {
        use crate::consult::comments::HiddenComment;
        use crate::consult::questions::Question;
        use crate::consult::{Consultation, ConsultationConfig, ParticipantId};
        use shangliang_signaling::consult::{AuditEntry, QuestionId, QuestionState};
        use shangliang_signaling::{ActivityId, Author, Seq};
        let img = "<img src=x onerror=alert(1)>";
        let link = "[点我](javascript:alert(document.cookie))";
        let activity = ActivityId::new("demo").unwrap();
        let mut s = Consultation::new(activity, ConsultationConfig::default(), 0).summary(1);
        let author = Author { id: "viewer:x".into(), name: format!("名{img}"), role: Role::Viewer, verified: false };
        s.questions.push(Question {
            id: QuestionId(1),
            asker: author.clone(),
            anonymous: false,
            text: format!("问{img}{link}"),
            submitted_at_ms: 0,
            state: QuestionState::Rejected,
            voters: Default::default(),
            pinned: false,
            decided_by: None,
            decided_at_ms: None,
            reason: Some(format!("因{link}")),
            staged_at_ms: None,
            answer: None,
        });
        s.hidden_comments.push(HiddenComment {
            seq: Seq(5),
            author: Some(author),
            text: Some(format!("评{link}{img}")),
            reason: format!("理由{img}"),
            by: ParticipantId::new("moderator:主持人"),
            at_ms: 0,
        });
        s.audit.push(AuditEntry {
            index: 0,
            at_ms: 0,
            actor: ParticipantId::new("moderator:主持人"),
            action: "comment_hidden".into(),
            target: "#5".into(),
            detail: "`code` *em*".into(),
            reason: Some(format!("{link} {img}")),
            prev_hash: String::new(),
            hash: String::new(),
        });
        let md = s.to_markdown();
        assert!(!md.contains("<img"), "no live HTML:\n{md}");
        let live_link = md.match_indices("](javascript:").any(|(i, _)| !md[..i].ends_with('\\'));
        assert!(!live_link, "no live link:\n{md}");
        assert!(md.contains("&lt;img src=x onerror=alert(1)&gt;"), "the text stays readable:\n{md}");
        assert!(md.contains("\\[点我\\](javascript:alert(document.cookie))"), "{md}");
        assert!(md.contains("\\`code\\` \\*em\\*"), "{md}");
        // Each row stays one row of its table.
        assert_eq!(md.lines().filter(|l| l.contains("onerror")).count(), 3, "{md}");
    }
}
