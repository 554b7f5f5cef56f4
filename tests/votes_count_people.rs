//! Issue 12, item 4: votes that count people. One client on several addresses of one /24 cannot
//! stuff a question's votes with cheap anonymous tokens; verified and member identities always
//! count; behind a trusted proxy the forwarded client address is the one that counts, and the
//! headers of anyone else are ignored; the minutes show every question's votes by tier.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{Client, TestHub, WAIT, ask, cmd, demo};
use serde_json::{Value, json};
use shangliang::server::auth::{Claims, now_secs};
use shangliang::server::moderation::export::{ExportFormat, RecordSource, export_record};
use shangliang_signaling::consult::{Command, QuestionId, QuestionOp, Reply};
use shangliang_signaling::{ActivityId, ErrorCode, Form, Role};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::MaybeTlsStream;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A websocket client whose TCP connection comes from `src`, with extra request `headers`.
async fn client_from(hub: &TestHub, src: &str, headers: &[(&str, String)]) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(ip(src), 0)).unwrap();
    let stream = socket.connect(hub.addr).await.unwrap();
    let mut req = hub.url().into_client_request().unwrap();
    for (k, v) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await.expect("websocket handshake");
    Client::from_ws(ws, Form::MsgPack)
}

/// A viewer token minted by the hub's key (`verified` as given).
fn viewer_token(hub: &TestHub, name: &str, verified: bool) -> String {
    let now = now_secs();
    hub.hub.keys.mint(&Claims {
        sub: format!("viewer:{name}").into(),
        name: name.into(),
        role: Role::Viewer,
        act: ActivityId::new("demo").unwrap(),
        org: None,
        verified,
        iat: now,
        exp: now + 3600,
    })
}

/// `POST /api/activities/demo/viewer-token` from the address `src`: the status and the answer.
async fn token_over_http(hub: &TestHub, src: &str, name: &str) -> (u16, Value) {
    let http = reqwest::Client::builder().local_address(ip(src)).build().unwrap();
    let r = http.post(hub.http("/api/activities/demo/viewer-token")).json(&json!({ "name": name })).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn vote(c: &mut Client, id: QuestionId) -> Result<Reply, ErrorCode> {
    cmd(c, Command::VoteQuestion { id, up: true }).await
}

/// A published question of the chair's.
async fn question(chair: &mut Client, text: &str) -> QuestionId {
    let id = ask(chair, text).await;
    // The chair's own questions skip review; publishing again is refused and harmless.
    let _ = cmd(chair, Command::ModerateQuestion { id, op: QuestionOp::Publish }).await;
    id
}

/// `shangliang export` of the demo activity in `format`, read from the hub's data directory.
async fn export(hub: &TestHub, format: ExportFormat) -> anyhow::Result<String> {
    let source = RecordSource::Dir(hub.dir.path().to_path_buf());
    // The export runs a runtime of its own: not on this one's thread.
    tokio::task::spawn_blocking(move || export_record(&source, &demo(), format)).await.unwrap()
}

/// Waits until the stored summary's Markdown minutes contain `want`; returns them.
async fn minutes_with(hub: &TestHub, want: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match export(hub, ExportFormat::Markdown).await {
            Ok(md) if md.contains(want) => return md,
            other => assert!(tokio::time::Instant::now() < deadline, "the minutes never showed {want:?}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_client_on_three_addresses_of_one_slash_24_cannot_stuff_a_questions_votes() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let id = question(&mut chair, "公交一体化何时落地？").await;
    let other = question(&mut chair, "农村养老怎么办？").await;

    // The attack of the issue: every anonymous token the hub hands out from three addresses
    // (10 a minute each), each voting at once.
    let mut tokens = Vec::new();
    for src in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        for i in 0..10 {
            let (status, body) = token_over_http(&hub, src, &format!("号{src}-{i}")).await;
            assert_eq!(status, 200, "{body}");
            tokens.push((src, body["token"].as_str().unwrap().to_owned()));
        }
    }
    let (status, body) = token_over_http(&hub, "127.0.0.5", "再来一个").await;
    assert_eq!((status, body["error"].as_str()), (429, Some("rate_limited")), "a fourth address of the block gets no more tokens: {body}");

    let (mut counted, mut capped, mut last) = (0, 0, 0);
    let mut voters = Vec::new();
    for (src, token) in &tokens {
        let mut c = client_from(&hub, src, &[]).await;
        c.auth(token).await;
        match vote(&mut c, id).await {
            Ok(Reply::Votes { votes }) => {
                counted += 1;
                last = votes;
            }
            Err(ErrorCode::VoteCapped) => capped += 1,
            other => panic!("unexpected answer {other:?}"),
        }
        voters.push(c);
    }
    assert_eq!((counted, capped, last), (10, 20, 10), "one /24 counts at most 10 anonymous votes on a question");
    // The block's burst is spent: its next anonymous vote, on any question, waits.
    assert_eq!(vote(&mut voters[20], other).await, Err(ErrorCode::RateLimited));

    // Identities that cost something count, from the same block too; other blocks have their own allowance.
    let mut verified = client_from(&hub, "127.0.0.2", &[]).await;
    verified.auth(&viewer_token(&hub, "实名观众", true)).await;
    assert_eq!(vote(&mut verified, id).await, Ok(Reply::Votes { votes: 11 }));
    let mut member = client_from(&hub, "127.0.0.3", &[]).await;
    member.auth(&hub.token(Role::Member, "王委员")).await;
    assert_eq!(vote(&mut member, id).await, Ok(Reply::Votes { votes: 12 }));
    let mut elsewhere = client_from(&hub, "127.0.1.2", &[]).await;
    elsewhere.auth(&viewer_token(&hub, "别处的观众", false)).await;
    assert_eq!(vote(&mut elsewhere, id).await, Ok(Reply::Votes { votes: 13 }));

    // A withdrawn anonymous vote frees its place for someone else of the block (after the
    // burst's interval: 30 a minute is one every 2 s).
    assert_eq!(cmd(&mut voters[0], Command::VoteQuestion { id, up: false }).await, Ok(Reply::Votes { votes: 12 }));
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(vote(&mut voters[29], id).await, Ok(Reply::Votes { votes: 13 }));

    // The minutes: 13 votes, of which 1 verified, 1 member, 11 anonymous (10 of one block).
    let md = minutes_with(&hub, "| 13 | 1 | 1 | 11 |").await;
    assert!(md.contains("实名 (Verified) | 委员 (Member) | 匿名 (Anonymous)"), "{md}");
    let json = export(&hub, ExportFormat::Json).await.unwrap();
    let json: Value = serde_json::from_str(&json).unwrap();
    let q = json["questions"].as_array().unwrap().iter().find(|q| q["id"] == json!(id.0)).unwrap();
    let blocks: std::collections::BTreeSet<&str> = q["voters"].as_object().unwrap().values().filter_map(|b| b["block"].as_str()).collect();
    assert_eq!(blocks, ["127.0.0.0/24", "127.0.1.0/24"].into(), "the record keeps the block of an anonymous vote, never the address");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_counts_and_other_peers_headers_are_ignored() {
    let hub = TestHub::start(|cfg| cfg.edge.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let a = question(&mut chair, "经代理的问题").await;
    let b = question(&mut chair, "直连的问题").await;

    // Through the proxy (peer 127.0.0.1): eleven clients of 198.51.100.0/24 — the eleventh is
    // capped — and one of 203.0.113.0/24, which counts: the block is the forwarded client's.
    let mut results = Vec::new();
    for i in 1..=11 {
        let xff = vec![("x-forwarded-for", format!("198.51.100.{i}"))];
        let mut c = client_from(&hub, "127.0.0.1", &xff).await;
        c.auth(&viewer_token(&hub, &format!("代理后{i}"), false)).await;
        results.push(vote(&mut c, a).await);
    }
    assert!(results[..10].iter().all(Result::is_ok), "{results:?}");
    assert_eq!(results[10], Err(ErrorCode::VoteCapped));
    let mut c = client_from(&hub, "127.0.0.1", &[("x-forwarded-for", "203.0.113.7".into())]).await;
    c.auth(&viewer_token(&hub, "另一网段", false)).await;
    assert_eq!(vote(&mut c, a).await, Ok(Reply::Votes { votes: 11 }), "another forwarded block has its own allowance");

    // A peer that is not a trusted proxy (127.0.0.2) may write any header it likes: its own
    // address counts, so eleven "different" clients are one block and the eleventh is capped.
    let mut results = Vec::new();
    for i in 1..=11 {
        let forged = vec![("x-forwarded-for", format!("192.0.{i}.1")), ("forwarded", format!("for=192.0.{i}.2"))];
        let mut c = client_from(&hub, "127.0.0.2", &forged).await;
        c.auth(&viewer_token(&hub, &format!("伪造{i}"), false)).await;
        results.push(vote(&mut c, b).await);
    }
    assert!(results[..10].iter().all(Result::is_ok), "{results:?}");
    assert_eq!(results[10], Err(ErrorCode::VoteCapped), "an untrusted peer's forwarding headers are ignored");
}
