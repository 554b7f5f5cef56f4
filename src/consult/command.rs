//! One enum for every request a client can make of an activity, so the server's per-activity
//! driver can be fed by a single channel (STYLE habit 3) and the wire protocol can carry the
//! moderation requests as one tagged message. Comments are not here: their two-step flow
//! (decide, store, commit) runs through the record and fan-out (see [`super::consultation`]).


use super::grants::{ConsultError, Grants};
use super::consultation::Consultation;
use super::votes::NetBlock;
pub use shangliang_signaling::consult::{Command, Reply};

impl Consultation {
    /// Runs a command for `g` at `now_ms`; the same as calling the matching `handle_*`. The
    /// address a vote came from is not known: see [`Consultation::handle_command_from`].
    pub fn handle_command(
        &mut self,
        g: &Grants,
        cmd: Command,
        now_ms: u64,
    ) -> Result<Reply, ConsultError> {
        self.handle_command_from(g, None, cmd, now_ms)
    }

    /// Runs a command for `g`, sent from the address block `from` (the server's client
    /// address: anonymous votes are capped per block, `super::votes`).
    pub fn handle_command_from(
        &mut self,
        g: &Grants,
        from: Option<NetBlock>,
        cmd: Command,
        now_ms: u64,
    ) -> Result<Reply, ConsultError> {
        use Command::*;
        Ok(match cmd {
            RaiseHand => self.handle_raise_hand(g, now_ms).map(|()| Reply::Done)?,
            LowerHand { target } => self
                .handle_lower_hand(g, target.as_ref(), now_ms)
                .map(|()| Reply::Done)?,
            GrantFloor { target, limit_ms } => Reply::FloorGranted {
                holder: self.handle_grant_floor(g, target, limit_ms, now_ms)?,
            },
            ExtendFloor { extra_ms } => Reply::FloorExtended {
                deadline_ms: self.handle_extend_floor(g, extra_ms, now_ms)?,
            },
            RevokeFloor { reason } => {
                self.handle_revoke_floor(g, reason.as_deref(), now_ms)?;
                Reply::Done
            }
            YieldFloor => self.handle_yield_floor(g, now_ms).map(|()| Reply::Done)?,
            SetFloorMode { mode } => {
                self.handle_set_floor_mode(g, mode, now_ms)?;
                Reply::Done
            }
            SetAutoAdvance { limit_ms } => {
                self.handle_set_auto_advance(g, limit_ms, now_ms)?;
                Reply::Done
            }
            MuteAll => self.handle_mute_all(g, now_ms).map(|()| Reply::Done)?,
            PinProgramme { participant } => self
                .handle_pin_programme(g, participant.as_ref(), now_ms)
                .map(|()| Reply::Done)?,
            SetStage { participant, on } => self
                .handle_set_stage(g, &participant, on, now_ms)
                .map(|()| Reply::Done)?,
            SubmitQuestion { text, anonymous } => Reply::QuestionSubmitted {
                id: self.handle_submit_question(g, &text, anonymous, now_ms)?,
            },
            VoteQuestion { id, up } => Reply::Votes {
                votes: self.handle_vote_question(g, from, id, up, now_ms)?,
            },
            ModerateQuestion { id, op } => {
                self.handle_moderate_question(g, id, op, now_ms)?;
                Reply::Done
            }
            SetQuestionReview { review } => {
                self.handle_set_question_review(g, review, now_ms)?;
                Reply::Done
            }
            ApproveComment { seq } => Reply::Approved {
                comment: self.handle_approve_comment(g, seq, now_ms)?,
            },
            RejectComment { seq, reason } => {
                self.handle_reject_comment(g, seq, &reason, now_ms)?;
                Reply::Done
            }
            ApproveAllHeld => Reply::ApprovedAll {
                count: self.handle_approve_all_held(g, now_ms)?.len(),
            },
            HideComment { seq, reason } => {
                self.handle_hide_comment(g, seq, &reason, now_ms)?;
                Reply::Done
            }
            SetCommentPolicy { change } => {
                self.handle_set_comment_policy(g, change, now_ms)?;
                Reply::Done
            }
            Timeout {
                who,
                until_ms,
                reason,
            } => {
                self.handle_timeout(g, &who, until_ms, &reason, now_ms)?;
                Reply::Done
            }
            Ban { who, reason } => {
                self.handle_ban(g, &who, &reason, now_ms)?;
                Reply::Done
            }
            Unban { who } => {
                self.handle_unban(g, &who, now_ms)?;
                Reply::Done
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consult::grants::tests::grants;
    use crate::consult::consultation::ConsultationConfig;
    use crate::consult::{ParticipantId, QuestionOp};
    use shangliang_signaling::{ActivityId, Role};

    #[test]
    fn commands_round_trip_as_json_and_drive_the_session() {
        let mut c = Consultation::new(
            ActivityId::new("act-1").unwrap(),
            ConsultationConfig::default(),
            0,
        );
        let m = grants("chair", Role::Moderator);
        let a = grants("wang", Role::Member);
        c.handle_join(&m, 0).unwrap();
        c.handle_join(&a, 0).unwrap();
        let json = r#"{"c":"grant_floor","target":{"participant":"wang"},"limit_ms":60000}"#;
        let cmd: Command = serde_json::from_str(json).unwrap();
        assert_eq!(
            c.handle_command(&m, cmd, 10),
            Ok(Reply::FloorGranted {
                holder: ParticipantId::new("wang")
            })
        );
        let cmd: Command =
            serde_json::from_str(r#"{"c":"submit_question","text":"问","anonymous":true}"#)
                .unwrap();
        let Reply::QuestionSubmitted { id } = c.handle_command(&a, cmd, 20).unwrap() else {
            panic!()
        };
        let cmd: Command = serde_json::from_str(
            r#"{"c":"moderate_question","id":1,"op":"reject","reason":"重复"}"#,
        )
        .unwrap();
        assert_eq!(
            cmd,
            Command::ModerateQuestion {
                id,
                op: QuestionOp::Reject {
                    reason: Some("重复".into())
                }
            }
        );
        assert_eq!(
            c.handle_command(&a, cmd.clone(), 30),
            Err(ConsultError::Forbidden)
        );
        assert_eq!(c.handle_command(&m, cmd, 30), Ok(Reply::Done));
        let back: Command =
            serde_json::from_str(&serde_json::to_string(&Command::YieldFloor).unwrap()).unwrap();
        assert_eq!(back, Command::YieldFloor);
    }
}
