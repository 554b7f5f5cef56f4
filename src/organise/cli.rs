//! The organisers' commands of the `shangliang` binary, over the same [`Organisers`] as the
//! REST API, acting as the local operator (`operator:cli`) on the data directory:
//!
//! ```text
//! shangliang committee add --id sn --name 陕西省政协 --level province
//! shangliang user add --username zhang.wei --name 张伟 --committee sn --role organiser   # password: $SHANGLIANG_PASSWORD or stdin
//! shangliang activity create --title T --topic 议题 --kind livestream --committee sn --start +30m --duration 2h
//! shangliang activity list
//! shangliang activity open --id ID          # also pause, resume, close, archive, delete
//! shangliang invite add --activity ID --name 王委员 --role member --person m-wang --committee sn-xa
//! shangliang invite list --activity ID
//! shangliang invite revoke --activity ID --id i-…
//! ```
//!
//! An activity created while a hub runs on the same data directory is listed by that hub at
//! once (the hub's list reads the record file); its topic opens in the hub when it is opened
//! through the hub's API or its first invitation is redeemed.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use shangliang_signaling::ActivityId;

use super::{Organisers, now_ms};
use crate::admin::accounts::NewAccount;
use crate::admin::activity::ListFilter;
use crate::admin::invitations::{InvitationStatus, InviteeRole, NewInvitee};
use crate::admin::{
    ActivityDraft, ActivityKind, Actor, CommitteeId, InvitationId, Level, LifecycleAction, PersonId, SettingsPatch,
    StaffRole,
};
use crate::record::Record;
use crate::record::sqlite::{RecordOptions, SqliteRecord};

/// Where the record is.
#[derive(clap::Args, Clone)]
pub struct DataDir {
    /// Directory of the record (as given to serve).
    #[arg(long, default_value = "data", env = "SHANGLIANG_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// The organisers' subcommands (flattened into the binary's).
#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Committees: add.
    #[command(subcommand)]
    Committee(CommitteeCmd),
    /// Staff accounts: add.
    #[command(subcommand)]
    User(UserCmd),
    /// Activities: create, list, open, pause, resume, close, archive, delete.
    #[command(subcommand)]
    Activity(ActivityCmd),
    /// Invitations: add (prints the link), list, revoke.
    #[command(subcommand)]
    Invite(InviteCmd),
}

/// `committee …`.
#[derive(clap::Subcommand)]
pub enum CommitteeCmd {
    /// Add a committee (a province has no parent; a city's parent is its province, a county's its city).
    Add {
        /// Its id.
        #[arg(long)]
        id: String,
        /// Name (display name).
        #[arg(long)]
        name: String,
        /// province, city or county.
        #[arg(long, value_parser = parse_level)]
        level: Level,
        /// The committee above.
        #[arg(long)]
        parent: Option<String>,
        /// Where the record is.
        #[command(flatten)]
        dir: DataDir,
    },
}

/// `user …`.
#[derive(clap::Subcommand)]
pub enum UserCmd {
    /// Add a staff account. The password comes from $SHANGLIANG_PASSWORD or the first line of stdin.
    Add {
        /// Sign-in name.
        #[arg(long)]
        username: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// The committee.
        #[arg(long)]
        committee: String,
        /// organiser or moderator.
        #[arg(long, value_parser = parse_role)]
        role: StaffRole,
        /// Where the record is.
        #[command(flatten)]
        dir: DataDir,
    },
}

/// `activity …`.
#[derive(clap::Subcommand)]
pub enum ActivityCmd {
    /// Schedule an activity.
    Create {
        /// An id of your choice (default: made up).
        #[arg(long)]
        id: Option<String>,
        /// Title.
        #[arg(long)]
        title: String,
        /// The topic under consultation (议题); default: the title.
        #[arg(long)]
        topic: Option<String>,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// room or livestream.
        #[arg(long, value_parser = parse_kind)]
        kind: ActivityKind,
        /// The organising committee.
        #[arg(long)]
        committee: String,
        /// Start: `+30m` from now, or ms since the Unix epoch.
        #[arg(long, default_value = "+10m")]
        start: String,
        /// How long it is planned to last (`90m`, `2h`).
        #[arg(long, default_value = "2h")]
        duration: String,
        /// Where the record is.
        #[command(flatten)]
        dir: DataDir,
    },
    /// List activities (all but archived unless --all).
    List {
        /// Archived ones too.
        #[arg(long)]
        all: bool,
        /// Where the record is.
        #[command(flatten)]
        dir: DataDir,
    },
    /// Open a scheduled activity (from an hour before its start).
    Open(ActionArgs),
    /// Pause an open activity.
    Pause(ActionArgs),
    /// Resume a paused activity.
    Resume(ActionArgs),
    /// Close an open or paused activity (read-only from then on).
    Close(ActionArgs),
    /// Archive a closed activity.
    Archive(ActionArgs),
    /// Delete an activity that never opened.
    Delete(ActionArgs),
}

/// A lifecycle command's arguments.
#[derive(clap::Args)]
pub struct ActionArgs {
    /// Its id.
    #[arg(long)]
    id: String,
    /// Why (for the audit log).
    #[arg(long)]
    reason: Option<String>,
    /// Where the record is.
    #[command(flatten)]
    dir: DataDir,
}

/// `invite …`.
#[derive(clap::Subcommand)]
pub enum InviteCmd {
    /// Invite a member or guest; prints the join link.
    Add {
        /// The activity.
        #[arg(long)]
        activity: String,
        /// Name (display name).
        #[arg(long)]
        name: String,
        /// member or guest.
        #[arg(long, value_parser = parse_invitee)]
        role: InviteeRole,
        /// The member's id (a guest without one gets a fresh id).
        #[arg(long)]
        person: Option<String>,
        /// The member's committee.
        #[arg(long)]
        committee: Option<String>,
        /// A guest's affiliation.
        #[arg(long)]
        affiliation: Option<String>,
        /// The organisers verified the identity.
        #[arg(long)]
        verified: bool,
        /// The hub's public URL, to print a whole link.
        #[arg(long, default_value = "")]
        base_url: String,
        /// Where the record is.
        #[command(flatten)]
        dir: DataDir,
    },
    /// List an activity's invitations.
    List {
        /// The activity.
        #[arg(long)]
        activity: String,
        /// Where the record is.
        #[command(flatten)]
        dir: DataDir,
    },
    /// Revoke an invitation.
    Revoke {
        /// The activity.
        #[arg(long)]
        activity: String,
        /// Its id.
        #[arg(long)]
        id: String,
        /// Why (for the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Where the record is.
        #[command(flatten)]
        dir: DataDir,
    },
}

fn parse_level(s: &str) -> Result<Level, String> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| format!("{s:?}: province, city or county"))
}

fn parse_role(s: &str) -> Result<StaffRole, String> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| format!("{s:?}: organiser or moderator"))
}

fn parse_kind(s: &str) -> Result<ActivityKind, String> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| format!("{s:?}: room or livestream"))
}

fn parse_invitee(s: &str) -> Result<InviteeRole, String> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| format!("{s:?}: member or guest"))
}

/// `+30m` from now, or ms since the Unix epoch.
fn parse_start(s: &str, now_ms: u64) -> anyhow::Result<u64> {
    match s.strip_prefix('+') {
        Some(d) => Ok(now_ms + crate::server::parse_ttl(d).map_err(anyhow::Error::msg)? * 1000),
        None => s.parse().with_context(|| format!("--start {s:?}: +DURATION or ms since the Unix epoch")),
    }
}

fn open(dir: &Path) -> anyhow::Result<Organisers> {
    std::fs::create_dir_all(dir)?;
    let record: Arc<dyn Record> =
        Arc::new(SqliteRecord::open(&dir.join("shangliang.sqlite3"), RecordOptions { read_connections: 1, ..Default::default() }, Box::new(|_, _, _| {}))?);
    Ok(Organisers::open_sqlite(dir, record)?)
}

fn operator() -> Actor {
    Actor::Operator { name: "cli".into() }
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("SHANGLIANG_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Runs one of the organisers' commands, printing its result on stdout.
pub fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run_async(cmd))
}

async fn run_async(cmd: AdminCommand) -> anyhow::Result<()> {
    let op = operator();
    match cmd {
        AdminCommand::Committee(CommitteeCmd::Add { id, name, level, parent, dir }) => {
            let o = open(&dir.data_dir)?;
            let parent = parent.as_deref().map(CommitteeId::new).transpose()?;
            let c = o.add_committee(&op, CommitteeId::new(&id)?, &name, level, parent)?;
            println!("committee {} ({}): {}", c.id, c.level.as_str(), c.name);
        }
        AdminCommand::User(UserCmd::Add { username, name, committee, role, dir }) => {
            let o = open(&dir.data_dir)?;
            let password = read_password()?;
            let a = o.add_user(&op, NewAccount { username, name, committee: CommitteeId::new(&committee)?, role, password })?;
            println!("user {} {} ({} of {})", a.id, a.username.as_str(), a.role.as_str(), a.committee);
        }
        AdminCommand::Activity(ActivityCmd::Create { id, title, topic, description, kind, committee, start, duration, dir }) => {
            let o = open(&dir.data_dir)?;
            let now = now_ms();
            let start = parse_start(&start, now)?;
            let end = start + crate::server::parse_ttl(&duration).map_err(anyhow::Error::msg)? * 1000;
            let draft = ActivityDraft {
                topic: topic.unwrap_or_else(|| title.clone()),
                title,
                description,
                kind,
                committee: CommitteeId::new(&committee)?,
                scheduled_start_ms: start,
                planned_end_ms: end,
                settings: SettingsPatch::default(),
            };
            let id = id.as_deref().map(ActivityId::new).transpose()?;
            let a = o.schedule(&op, id, draft).await?;
            println!("{}", a.id());
        }
        AdminCommand::Activity(ActivityCmd::List { all, dir }) => {
            let o = open(&dir.data_dir)?;
            let (list, _) = o.list(&op, &ListFilter { include_archived: all, ..Default::default() })?;
            for a in list {
                println!("{:<24} {:<9} {:<10} {:<12} {}", a.id().as_str(), a.state().as_str(), a.kind().as_str(), a.committee().as_str(), a.title());
            }
        }
        AdminCommand::Activity(cmd) => {
            let (action, args) = match cmd {
                ActivityCmd::Open(a) => (LifecycleAction::Open, a),
                ActivityCmd::Pause(a) => (LifecycleAction::Pause, a),
                ActivityCmd::Resume(a) => (LifecycleAction::Resume, a),
                ActivityCmd::Close(a) => (LifecycleAction::Close, a),
                ActivityCmd::Archive(a) => (LifecycleAction::Archive, a),
                ActivityCmd::Delete(a) => (LifecycleAction::Delete, a),
                ActivityCmd::Create { .. } | ActivityCmd::List { .. } => unreachable!("matched above"),
            };
            let o = open(&args.dir.data_dir)?;
            let done = o.transition(&op, &ActivityId::new(&args.id)?, action, args.reason.as_deref()).await?;
            println!("{} {}", args.id, done.activity.map_or("deleted", |a| a.state().as_str()));
        }
        AdminCommand::Invite(InviteCmd::Add { activity, name, role, person, committee, affiliation, verified, base_url, dir }) => {
            let o = open(&dir.data_dir)?;
            let invitee = NewInvitee {
                person: person.as_deref().map(PersonId::new).transpose()?,
                name,
                role,
                committee: committee.as_deref().map(CommitteeId::new).transpose()?,
                affiliation,
                verified,
            };
            let id = ActivityId::new(&activity)?;
            let issued = o.invite(&op, &id, invitee, None)?;
            println!("{} {}", issued.invitation.id, issued.invitation.invitee.person);
            println!("{base_url}/join/{id}?invite={}", issued.link_token);
        }
        AdminCommand::Invite(InviteCmd::List { activity, dir }) => {
            let o = open(&dir.data_dir)?;
            let now = now_ms();
            for i in o.invitations(&op, &ActivityId::new(&activity)?)? {
                let status = match i.status(now) {
                    InvitationStatus::Active => "active",
                    InvitationStatus::Revoked => "revoked",
                    InvitationStatus::Expired => "expired",
                };
                println!("{:<36} {:<8} {:<16} uses {:<3} {}", i.id.as_str(), status, i.invitee.person.as_str(), i.uses, i.invitee.name);
            }
        }
        AdminCommand::Invite(InviteCmd::Revoke { activity, id, reason, dir }) => {
            let o = open(&dir.data_dir)?;
            let i = o.revoke(&op, &ActivityId::new(&activity)?, &InvitationId::new(&id)?, reason.as_deref())?;
            println!("{} revoked", i.id);
        }
    }
    Ok(())
}
