//! The minutes' "共识与分歧" (consensus and divisions) section, rendered from a
//! [`ConsensusSummary`]: consensus statements, statements every group rejects, divisive ones,
//! group sizes and poll results. Every statement cites its source — comment `#seq` or question
//! `Q<id>` — with its moment (Beijing time, as the rest of the minutes), so a reader can go
//! from the minutes to the replay. Appended after the session minutes
//! ([`crate::consult::SessionSummary::to_markdown`]) by the export.

use std::fmt::Write as _;

use super::polls::{CloseReason, PollKind};
use super::statements::StatementSource;
use super::summary::{CitedStatement, ConsensusSummary};
use super::voter::Tier;
use crate::consult::minutes::{bj, cell};

fn tier_zh(t: Tier) -> &'static str {
    match t {
        Tier::Member => "委员及嘉宾",
        Tier::Verified => "实名群众",
        Tier::Anonymous => "匿名群众",
    }
}

/// Where a statement came from, as the minutes cite it.
pub fn cite(source: &StatementSource) -> String {
    match source {
        StatementSource::Comment { seq, at_ms } => format!("评论 #{} ({})", seq.0, bj(*at_ms)),
        StatementSource::Question { id, at_ms } => format!("提问 Q{} ({})", id.0, bj(*at_ms)),
        StatementSource::Written => "主持人拟定 (written)".to_owned(),
    }
}

fn statements_table(m: &mut String, title: &str, score: &str, list: &[CitedStatement]) {
    let _ = writeln!(m, "### {title}\n");
    if list.is_empty() {
        let _ = writeln!(m, "无 (none)\n");
        return;
    }
    let _ = writeln!(
        m,
        "| 编号 (No.) | 主张 (Statement) | 来源 (Source) | {score} | 赞成/反对/跳过 (Agree/Disagree/Pass) | 各组赞成 (Agree by group) |\n|---|---|---|---|---|---|"
    );
    for s in list {
        let groups: Vec<String> = s
            .groups
            .iter()
            .map(|g| format!("组{} {}/{}", g.group.0, g.counts.agree, g.counts.seen()))
            .collect();
        let _ = writeln!(
            m,
            "| S{} | {} | {} | {:.2} | {}/{}/{} | {} |",
            s.statement.0,
            cell(&s.text),
            cite(&s.source),
            s.score,
            s.counts.agree,
            s.counts.disagree,
            s.counts.pass,
            groups.join("，")
        );
    }
    m.push('\n');
}

impl ConsensusSummary {
    /// The "共识与分歧" section (Markdown).
    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "## 共识与分歧 (Consensus and divisions)\n");
        let _ = writeln!(
            m,
            "- 主张 (Statements): {} 条；表态 (Votes): {} 次；参与 (Participants): {} 人\n",
            self.statements, self.votes, self.participants
        );
        match &self.groups {
            None => {
                let _ = writeln!(m, "尚未形成意见分组 (no opinion groups were computed).\n");
            }
            Some(g) => {
                let sizes: Vec<String> = g.groups.iter().map(|(id, n)| format!("组{} {n} 人", id.0)).collect();
                let _ = writeln!(
                    m,
                    "- 意见分组 (Opinion groups, {} 计入 counted, 截至 as of {}): {}\n",
                    g.counted,
                    bj(g.computed_at_ms),
                    if sizes.is_empty() { "无".to_owned() } else { sizes.join("，") }
                );
                statements_table(&mut m, "各组共同赞成 (Consensus)", "桥接分 (Bridging)", &g.consensus);
                statements_table(&mut m, "各组共同反对 (Rejected by every group)", "桥接分 (Bridging)", &g.consensus_against);
                statements_table(&mut m, "分歧 (Divisive)", "分歧度 (Spread)", &g.divisive);
            }
        }
        let _ = writeln!(m, "### 投票结果 (Polls)\n");
        if self.polls.is_empty() {
            let _ = writeln!(m, "无 (none)\n");
        }
        for p in &self.polls {
            let closed = match (p.closed_at_ms, p.close_reason) {
                (Some(t), Some(CloseReason::Countdown)) => format!("{} 倒计时结束 (countdown)", bj(t)),
                (Some(t), _) => format!("{} 主持人结束 (closed)", bj(t)),
                (None, _) => "未结束 (still open)".to_owned(),
            };
            let _ = writeln!(
                m,
                "**P{} {}** — {} 起，{}；{} 人作答 (answered)\n",
                p.poll.0,
                cell(&p.question),
                bj(p.opened_at_ms),
                closed,
                p.tally.voters
            );
            let labels: Vec<String> = match &p.kind {
                PollKind::SingleChoice { options } | PollKind::MultipleChoice { options, .. } => options.clone(),
                PollKind::Rating { min, max } => (*min..=*max).map(|v| v.to_string()).collect(),
                PollKind::OpenWord { .. } => Vec::new(),
            };
            if labels.is_empty() {
                let words: Vec<String> = p.tally.words.iter().map(|w| format!("{} ({})", cell(&w.word), w.count)).collect();
                let _ = writeln!(m, "- 高频词 (Words): {}\n", if words.is_empty() { "无".to_owned() } else { words.join("，") });
                continue;
            }
            let tiers: Vec<&str> = p.tally.by_tier.iter().map(|t| tier_zh(t.part)).collect();
            let _ = writeln!(m, "| 选项 (Option) | 合计 (All) | {} |", tiers.join(" | "));
            let _ = writeln!(m, "|---|---|{}", "---|".repeat(tiers.len()));
            for (i, label) in labels.iter().enumerate() {
                let by: Vec<String> = p.tally.by_tier.iter().map(|t| t.counts.get(i).copied().unwrap_or(0).to_string()).collect();
                let _ = writeln!(m, "| {} | {} | {} |", cell(label), p.tally.counts.get(i).copied().unwrap_or(0), by.join(" | "));
            }
            if let Some(mean) = p.tally.mean {
                let _ = writeln!(m, "\n平均分 (Mean): {mean:.2}");
            }
            m.push('\n');
        }
        m
    }
}
