//! The conformance suite of `docs/protocol.md`: each case is named after the section whose rule
//! it checks (`s2_1_…` is §2.1) and drives a real hub over the websocket the way a stranger's
//! client would — hand-written JSON objects in text frames and the same objects as MessagePack
//! maps in binary frames, decoded into untyped values, not the crate's types — so that what the
//! page says is what a client sees. The last cases check that the page and the crate cannot
//! drift: every message type, error code, close code and reset reason of `shangliang-signaling`
//! is in the page, and every error code the page lists is one the crate has.

mod common;

use std::time::Duration;

use common::{TestHub, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shangliang_signaling::{ErrorCode, Form, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

const FORMS: [Form; 2] = [Form::Json, Form::MsgPack];

/// A client that knows only the page: objects in, objects out.
struct Raw {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    form: Form,
}

#[derive(Debug, PartialEq)]
enum Got {
    Msg(Value),
    Closed(u16, String),
    Eof,
    Nothing,
}

impl Raw {
    async fn connect(hub: &TestHub, form: Form) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(hub.url()).await.expect("websocket connect");
        Raw { ws, form }
    }

    /// Connects, authenticates with `token` and returns the `welcome`.
    async fn authed(hub: &TestHub, form: Form, token: &str) -> (Raw, Value) {
        let mut c = Raw::connect(hub, form).await;
        c.send(json!({"t": "auth", "v": 1, "token": token})).await;
        let welcome = c.recv().await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
        (c, welcome)
    }

    fn frame(form: Form, v: &Value) -> Message {
        match form {
            Form::Json => Message::Text(v.to_string().into()),
            // `to_vec_named`: a JSON object becomes a MessagePack map with string keys.
            Form::MsgPack => Message::Binary(rmp_serde::to_vec_named(v).unwrap().into()),
        }
    }

    async fn send(&mut self, v: Value) {
        let f = Raw::frame(self.form, &v);
        self.ws.send(f).await.expect("send");
    }

    async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    async fn next(&mut self, wait: Duration) -> Got {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Ok(next) = tokio::time::timeout_at(deadline, self.ws.next()).await else { return Got::Nothing };
            match next {
                None | Some(Err(_)) => return Got::Eof,
                Some(Ok(Message::Text(t))) => {
                    assert_eq!(self.form, Form::Json, "a text frame on a MessagePack connection: {t}");
                    return Got::Msg(serde_json::from_str(&t).expect("the server's JSON parses"));
                }
                Some(Ok(Message::Binary(b))) => {
                    assert_eq!(self.form, Form::MsgPack, "a binary frame on a JSON connection");
                    return Got::Msg(rmp_serde::from_slice(&b).expect("the server's MessagePack parses"));
                }
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => return Got::Closed(code.into(), reason.to_string()),
                Some(Ok(Message::Close(None))) => return Got::Closed(1005, String::new()),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next message, skipping the live counts (`audience` events come every 2 s while the
    /// audience changes, between anything else; §5.4.2 checks them with `next`).
    async fn recv(&mut self) -> Value {
        loop {
            match self.next(WAIT).await {
                Got::Msg(v) if v["t"] == "event" && v["event"]["t"] == "audience" => continue,
                Got::Msg(v) => return v,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The next message whose `t` is `t`, skipping others (bounded by `WAIT`).
    async fn recv_t(&mut self, t: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Got::Msg(v) if v["t"] == t => return v,
                Got::Msg(_) => continue,
                other => panic!("expected {t}, got {other:?}"),
            }
        }
    }

    /// Reads until the close frame (bounded), returning it.
    async fn closed(&mut self) -> (u16, String) {
        for _ in 0..10_000 {
            match self.next(WAIT).await {
                Got::Msg(_) => continue,
                Got::Closed(code, reason) => return (code, reason),
                other => panic!("expected a close, got {other:?}"),
            }
        }
        panic!("no close after 10,000 messages");
    }
}

async fn hub() -> TestHub {
    TestHub::start(|_| {}).await
}

// ---- §1 Transport and framing --------------------------------------------------------------

#[tokio::test]
async fn s1_the_first_frame_fixes_the_form_and_unknown_fields_are_ignored() {
    let h = hub().await;
    for form in FORMS {
        let mut c = Raw::connect(&h, form).await;
        c.send(json!({"t": "auth", "v": 1, "token": h.token(Role::Viewer, "看客"), "extra": {"x": [1, 2]}})).await;
        assert_eq!(c.recv().await["t"], "welcome");
        // A frame of the other kind is accepted; the answer keeps the first form (`next` asserts it).
        let other = if form == Form::Json { Form::MsgPack } else { Form::Json };
        c.send_raw(Raw::frame(other, &json!({"t": "ping", "id": 5}))).await;
        assert_eq!(c.recv().await, json!({"t": "pong", "id": 5}));
    }
}

#[tokio::test]
async fn s1_messagepack_arrays_are_accepted_as_well_as_maps() {
    let h = hub().await;
    let (mut c, _) = Raw::authed(&h, Form::MsgPack, &h.token(Role::Viewer, "看客")).await;
    // The fields in declaration order, without names: ["ping", 9] means {"t": "ping", "id": 9}.
    // (Accepted because the decoder is serde's; maps are what clients should send.)
    let array = rmp_serde::to_vec(&("ping", 9u32)).unwrap();
    c.send_raw(Message::Binary(array.into())).await;
    assert_eq!(c.recv().await, json!({"t": "pong", "id": 9}), "arrays are accepted");
}

#[tokio::test]
async fn s1_limits_a_frame_over_16384_bytes_closes_with_1009() {
    let h = hub().await;
    for form in FORMS {
        let (mut c, _) = Raw::authed(&h, form, &h.token(Role::Viewer, "看客")).await;
        c.send(json!({"t": "post", "id": 1, "topic": "demo", "text": "长".repeat(6_000)})).await;
        assert_eq!(c.closed().await.0, 1009, "{form:?}");
    }
}

#[tokio::test]
async fn s1_limits_ids_are_unsigned_32_bit_and_ping_post_ids_are_required() {
    let h = hub().await;
    for form in FORMS {
        let (mut c, _) = Raw::authed(&h, form, &h.token(Role::Viewer, "看客")).await;
        for bad in [
            json!({"t": "ping", "id": 4_294_967_296u64}),
            json!({"t": "ping", "id": -1}),
            json!({"t": "ping"}),
            json!({"t": "post", "topic": "demo", "text": "没有 id"}),
            json!({"t": "sub"}),
        ] {
            c.send(bad.clone()).await;
            let e = c.recv().await;
            assert_eq!((e["t"].as_str(), e["code"].as_str()), (Some("error"), Some("bad_frame")), "{form:?} {bad} → {e}");
            assert!(e.get("id").is_none_or(Value::is_null), "a bad frame's error has no id: {e}");
        }
        c.send(json!({"t": "ping", "id": 4_294_967_295u64})).await;
        assert_eq!(c.recv().await, json!({"t": "pong", "id": 4_294_967_295u64}));
        c.send(json!({"t": "shout"})).await;
        assert_eq!(c.recv().await["code"], "unknown_type");
    }
}

#[tokio::test]
async fn s1_limits_ten_bad_frames_in_a_row_close_with_4400() {
    let h = hub().await;
    let (mut c, _) = Raw::authed(&h, Form::Json, &h.token(Role::Viewer, "看客")).await;
    for _ in 0..10 {
        c.send_raw(Message::Text("not json".into())).await;
    }
    assert_eq!(c.closed().await, (4400, "too many bad frames".into()));
}

#[tokio::test]
async fn s1_limits_over_the_frame_rate_posts_get_their_own_error_and_one_idless_error_per_second() {
    let h = TestHub::start(|cfg| cfg.frames_per_second = 2).await;
    let (mut c, welcome) = Raw::authed(&h, Form::Json, &h.token(Role::Member, "王委员")).await;
    assert_eq!(welcome["limits"]["frames_per_second"], 2, "{welcome}");
    for id in 1..=12u32 {
        c.send(json!({"t": "post", "id": id, "topic": "demo", "text": format!("第{id}条")})).await;
    }
    let (mut acked, mut refused, mut idless) = (0, 0, 0);
    while acked + refused < 12 {
        let m = c.recv().await;
        match (m["t"].as_str(), m.get("id")) {
            (Some("ack"), _) => acked += 1,
            (Some("error"), Some(id)) if id.is_u64() => {
                assert_eq!(m["code"], "rate_limited", "{m}");
                refused += 1;
            }
            (Some("error"), _) => {
                assert_eq!(m["code"], "rate_limited", "{m}");
                idless += 1;
            }
            _ => {}
        }
    }
    // A burst of twice the rate is processed; every refused post is answered with its id, and
    // the second's refusals bring one id-less `rate_limited` as well, though only posts were sent.
    assert!((4..=6).contains(&acked), "acked {acked}");
    assert_eq!(acked + refused, 12);
    assert_eq!(idless, 1, "one id-less rate_limited for the second");
}

// ---- §2.1 Authentication --------------------------------------------------------------------

#[tokio::test]
async fn s2_1_welcome_announces_the_limits() {
    let h = TestHub::start(|cfg| {
        cfg.comments_per_minute = 20;
        cfg.frames_per_second = 20;
    })
    .await;
    for form in FORMS {
        let (_c, w) = Raw::authed(&h, form, &h.token(Role::Member, "王委员")).await;
        assert_eq!(w["v"], 1);
        assert_eq!(w["activity"], "demo");
        assert_eq!(w["you"], json!({"id": "member:王委员", "name": "王委员", "role": "member", "verified": false}));
        assert_eq!(
            w["limits"],
            json!({"max_frame_bytes": 16384, "max_text_chars": 500, "comments_per_minute": 20, "idle_timeout_ms": 90000, "frames_per_second": 20}),
            "{form:?}"
        );
    }
}

#[tokio::test]
async fn s2_1_refusals_are_an_error_then_the_close() {
    let h = hub().await;
    let expired = h.token_with(Role::Viewer, "看客", "demo", -10);
    for form in FORMS {
        let cases: Vec<(Value, &str, u16, &str)> = vec![
            (json!({"t": "ping", "id": 1}), "unauthenticated", 4401, "unauthenticated"),
            (json!({"t": "auth", "v": 1, "token": "not.a.jwt"}), "invalid_token", 4401, "invalid token"),
            (json!({"t": "auth", "v": 1, "token": expired}), "token_expired", 4401, "token expired"),
            (json!({"t": "auth", "v": 2, "token": h.token(Role::Viewer, "看客")}), "version_unsupported", 4426, "version unsupported"),
            // Point 10: a malformed first frame, `auth` without `v`, gets `bad_frame`, then 4401.
            (json!({"t": "auth", "token": h.token(Role::Viewer, "看客")}), "bad_frame", 4401, "unauthenticated"),
            (json!({"t": "hello"}), "unknown_type", 4401, "unauthenticated"),
        ];
        for (first, code, close, reason) in cases {
            let mut c = Raw::connect(&h, form).await;
            c.send(first.clone()).await;
            let e = c.recv().await;
            assert_eq!((e["t"].as_str(), e["code"].as_str()), (Some("error"), Some(code)), "{form:?} {first}");
            assert_eq!(c.closed().await, (close, reason.to_string()), "{form:?} {first}");
        }
    }
}

#[tokio::test]
async fn s2_1_a_second_auth_is_refused_and_the_connection_stays() {
    let h = hub().await;
    let token = h.token(Role::Viewer, "看客");
    let (mut c, _) = Raw::authed(&h, Form::Json, &token).await;
    c.send(json!({"t": "auth", "v": 1, "token": token})).await;
    assert_eq!(c.recv().await["code"], "unauthenticated");
    c.send(json!({"t": "ping", "id": 2})).await;
    assert_eq!(c.recv().await, json!({"t": "pong", "id": 2}));
}

// ---- §2.2 Tokens ----------------------------------------------------------------------------

#[tokio::test]
async fn s2_2_the_public_gets_a_v_token_over_http_and_staff_a_role_name_token_from_the_cli() {
    let h = hub().await;
    let http = reqwest::Client::new();
    let r: Value = http
        .post(h.http("/api/activities/demo/viewer-token"))
        .json(&json!({"name": "热心市民"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subject = r["subject"].as_str().unwrap();
    assert!(subject.starts_with("v-") && subject.len() == 18, "{r}");
    assert_eq!(r["expires_in"], 14400);
    let (_c, w) = Raw::authed(&h, Form::Json, r["token"].as_str().unwrap()).await;
    assert_eq!(w["you"]["id"], subject);
    assert_eq!(w["you"]["role"], "viewer");

    // `shangliang token` reads the secret from the hub's --data-dir and prints one line: the token.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shangliang"))
        .args(["token", "--activity", "demo", "--role", "moderator", "--name", "主持人"])
        .arg("--data-dir")
        .arg(h.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let (_c, w) = Raw::authed(&h, Form::MsgPack, stdout.trim()).await;
    assert_eq!(w["you"]["id"], "moderator:主持人", "the CLI's default subject is ROLE:NAME");
    assert_eq!(w["you"]["role"], "moderator");
}

#[tokio::test]
async fn s2_2_one_token_may_be_used_on_many_connections_and_viewers_count_identities() {
    let h = hub().await;
    let token = h.token(Role::Viewer, "同一人");
    let (mut a, _) = Raw::authed(&h, Form::Json, &token).await;
    let (mut b, _) = Raw::authed(&h, Form::MsgPack, &token).await;
    let (_c, _) = Raw::authed(&h, Form::Json, &h.token(Role::Viewer, "另一人")).await;
    b.send(json!({"t": "ping", "id": 1})).await;
    assert_eq!(b.recv().await["t"], "pong");
    a.send(json!({"t": "sub", "topic": "demo"})).await;
    a.recv_t("subscribed").await;
    let state = a.recv_t("state").await;
    assert_eq!(state["state"]["viewers"], 2, "three connections, two identities: {state}");
}

// ---- §2.4 Subscribing -----------------------------------------------------------------------

#[tokio::test]
async fn s2_4_another_activity_is_forbidden_and_no_such_topic_needs_a_token_for_a_missing_activity() {
    let h = hub().await;
    for form in FORMS {
        let (mut c, _) = Raw::authed(&h, form, &h.token(Role::Viewer, "看客")).await;
        c.send(json!({"t": "sub", "topic": "elsewhere"})).await;
        assert_eq!(c.recv().await["code"], "forbidden");
        // The token check comes first: `no_such_topic` only for a token minted for an activity
        // that does not exist (the CLI does not check).
        let (mut c, _) = Raw::authed(&h, form, &h.token_with(Role::Viewer, "看客", "nope", 3600)).await;
        c.send(json!({"t": "sub", "topic": "nope"})).await;
        assert_eq!(c.recv().await["code"], "no_such_topic");
    }
}

#[tokio::test]
async fn s2_4_subscribed_then_state_then_batches_and_a_resume_from_another_epoch_is_reset() {
    let h = hub().await;
    for form in FORMS {
        let (mut c, _) = Raw::authed(&h, form, &h.token(Role::Viewer, "看客")).await;
        c.send(json!({"t": "sub", "topic": "demo"})).await;
        let s = c.recv().await;
        assert_eq!(s["t"], "subscribed", "{s}");
        assert_eq!(s["full_view"], false);
        assert_eq!(c.recv().await["t"], "state");
        let epoch = s["epoch"].as_u64().unwrap();
        c.send(json!({"t": "sub", "topic": "demo", "resume": {"epoch": epoch + 1, "offset": 0}})).await;
        assert_eq!(c.recv().await["t"], "subscribed");
        let r = c.recv().await;
        assert_eq!((r["t"].as_str(), r["reason"].as_str()), (Some("reset"), Some("epoch_changed")), "{r}");
        assert_eq!(c.recv().await["t"], "state", "state comes after a reset");
    }
}

// ---- §2.5 Batches ---------------------------------------------------------------------------

#[tokio::test]
async fn s2_5_catch_up_comes_as_back_to_back_batches_of_at_most_1000_items() {
    // (A comment rate with a burst above the 1,500 posts.)
    let h = TestHub::start(|cfg| cfg.comments_per_minute = 10_000_000).await;
    let (mut poster, _) = Raw::authed(&h, Form::MsgPack, &h.token(Role::Member, "王委员")).await;
    let n = 1_500u32;
    for id in 1..=n {
        poster.send(json!({"t": "post", "id": id, "topic": "demo", "text": format!("第{id}条")})).await;
    }
    let mut last = 0;
    for _ in 0..n {
        let a = poster.recv_t("ack").await;
        last = last.max(a["seq"].as_u64().unwrap());
    }
    for form in FORMS {
        let (mut c, _) = Raw::authed(&h, form, &h.token(Role::Viewer, "看客")).await;
        c.send(json!({"t": "sub", "topic": "demo"})).await;
        let s = c.recv_t("subscribed").await;
        let epoch = s["epoch"].as_u64().unwrap();
        // Wait until the live edge covers every acked comment, then resume from 0.
        let mut edge = s["offset"].as_u64().unwrap();
        while edge < last {
            edge = c.recv_t("batch").await["to"].as_u64().unwrap();
        }
        c.send(json!({"t": "sub", "topic": "demo", "resume": {"epoch": epoch, "offset": 0}})).await;
        c.recv_t("subscribed").await;
        let mut next = 1;
        let mut sizes = Vec::new();
        while next <= last {
            let b = c.recv_t("batch").await;
            assert_eq!(b["from"].as_u64(), Some(next), "contiguous: {}", b["from"]);
            let (from, to) = (b["from"].as_u64().unwrap(), b["to"].as_u64().unwrap());
            assert!(to - from < 1_000, "at most 1,000 seqs per catch-up batch");
            sizes.push(b["items"].as_array().unwrap().len());
            next = to + 1;
        }
        assert!(sizes.len() >= 2 && sizes[0] == 1_000, "{form:?}: catch-up batch sizes {sizes:?}");
    }
}

#[tokio::test]
async fn s2_5_thinning_leaves_viewer_comments_out_counts_them_and_still_acks_them() {
    let h = TestHub::start(|cfg| cfg.fanout.public_max_per_sec = 1).await;
    let (mut public, _) = Raw::authed(&h, Form::Json, &h.token(Role::Viewer, "看客")).await;
    public.send(json!({"t": "sub", "topic": "demo"})).await;
    let start = public.recv_t("subscribed").await["offset"].as_u64().unwrap();
    let (mut viewer, _) = Raw::authed(&h, Form::MsgPack, &h.token(Role::Viewer, "热心市民")).await;
    let (mut member, _) = Raw::authed(&h, Form::MsgPack, &h.token(Role::Member, "王委员")).await;
    for id in 1..=5 {
        viewer.send(json!({"t": "post", "id": id, "topic": "demo", "text": format!("观众{id}")})).await;
    }
    for _ in 0..5 {
        let a = viewer.recv_t("ack").await;
        assert_eq!(a["held"], false, "a thinned comment is acked held:false: {a}");
    }
    member.send(json!({"t": "post", "id": 1, "topic": "demo", "text": "委员的话"})).await;
    let last = member.recv_t("ack").await["seq"].as_u64().unwrap();
    let (mut next, mut shown, mut thinned, mut member_seen) = (start + 1, 0, 0, false);
    while next <= last {
        let b = public.recv_t("batch").await;
        assert_eq!(b["from"].as_u64(), Some(next), "from..to covers thinned items too");
        thinned += b["thinned"].as_u64().unwrap();
        for it in b["items"].as_array().unwrap() {
            if it["body"]["author"]["role"] == "viewer" {
                shown += 1;
            } else {
                member_seen = true;
            }
        }
        next = b["to"].as_u64().unwrap() + 1;
    }
    assert!(member_seen, "members' comments are never thinned");
    assert_eq!(shown + thinned, 5);
    assert!(thinned >= 3, "at most one viewer comment per second shown: shown {shown}, thinned {thinned}");
}

// ---- §2.6 Posting ---------------------------------------------------------------------------

#[tokio::test]
async fn s2_6_a_poster_need_not_subscribe_and_viewers_may_post() {
    let h = hub().await;
    for form in FORMS {
        for role in [Role::Viewer, Role::Member] {
            let (mut c, _) = Raw::authed(&h, form, &h.token(role, "发言人")).await;
            c.send(json!({"t": "post", "id": 7, "topic": "demo", "text": "农村养老服务怎么保障？"})).await;
            let a = c.recv().await;
            assert_eq!((a["t"].as_str(), a["id"].as_u64(), a["held"].as_bool()), (Some("ack"), Some(7), Some(false)), "{role:?} {a}");
            assert!(a["seq"].as_u64().unwrap() >= 1);
        }
    }
}

#[tokio::test]
async fn s2_6_the_ack_and_the_batch_carry_the_same_seq_in_either_order() {
    let h = hub().await;
    for form in FORMS {
        let (mut c, _) = Raw::authed(&h, form, &h.token(Role::Member, "王委员")).await;
        c.send(json!({"t": "sub", "topic": "demo"})).await;
        c.recv_t("subscribed").await;
        c.send(json!({"t": "post", "id": 3, "topic": "demo", "text": "同一条"})).await;
        let (mut ack_seq, mut batch_seq) = (None, None);
        while ack_seq.is_none() || batch_seq.is_none() {
            let m = c.recv().await;
            match m["t"].as_str() {
                Some("ack") => ack_seq = m["seq"].as_u64(),
                Some("batch") => {
                    for it in m["items"].as_array().unwrap() {
                        if it["body"]["text"] == "同一条" {
                            batch_seq = it["seq"].as_u64();
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(ack_seq, batch_seq);
    }
}

#[tokio::test]
async fn s2_7_ping_is_answered_with_pong_of_the_same_id() {
    let h = hub().await;
    for form in FORMS {
        let (mut c, _) = Raw::authed(&h, form, &h.token(Role::Viewer, "看客")).await;
        c.send(json!({"t": "ping", "id": 4242})).await;
        assert_eq!(c.recv().await, json!({"t": "pong", "id": 4242}));
    }
}

// ---- §4 Close codes -------------------------------------------------------------------------

#[tokio::test]
async fn s4_a_client_close_is_echoed_with_its_code() {
    let h = hub().await;
    for form in FORMS {
        let (mut c, _) = Raw::authed(&h, form, &h.token(Role::Viewer, "看客")).await;
        c.ws.close(Some(CloseFrame { code: 1000u16.into(), reason: "bye".into() })).await.unwrap();
        // §4: the hub answers a client's Close with the client's code (RFC 6455 §5.5.1), then
        // drops the connection.
        let got = c.next(WAIT).await;
        assert!(matches!(got, Got::Closed(1000, _)), "{form:?}: {got:?}");
    }
}

// ---- §5 Moderation: presence ----------------------------------------------------------------

#[tokio::test]
async fn s5_presence_goes_to_every_subscriber_when_a_member_authenticates() {
    let h = hub().await;
    let (mut viewer, _) = Raw::authed(&h, Form::Json, &h.token(Role::Viewer, "看客")).await;
    viewer.send(json!({"t": "sub", "topic": "demo"})).await;
    viewer.recv_t("state").await;
    // The member authenticates and subscribes to nothing.
    let (_member, _) = Raw::authed(&h, Form::MsgPack, &h.token(Role::Member, "李委员")).await;
    let e = viewer.recv_t("event").await;
    assert_eq!(e["event"], json!({"t": "presence", "participant": "member:李委员", "name": "李委员", "role": "member", "present": true}), "{e}");
    // A viewer's arrival is not announced (viewers are counted).
    let (_other, _) = Raw::authed(&h, Form::Json, &h.token(Role::Viewer, "路人")).await;
    let mut announced = false;
    while let Got::Msg(m) = viewer.next(Duration::from_millis(500)).await {
        announced |= m["t"] == "event" && m["event"]["t"] == "presence";
    }
    assert!(!announced, "viewers are not announced");
}

// ---- §5.4.2 Live counts ------------------------------------------------------------------------

/// The `audience` events a connection receives until one says `viewers == want` (bounded), with
/// when each arrived.
async fn audience_until(c: &mut Raw, want: u64) -> Vec<(tokio::time::Instant, Value)> {
    let deadline = tokio::time::Instant::now() + WAIT + Duration::from_secs(5);
    let mut seen = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.next(left).await {
            Got::Msg(m) if m["t"] == "event" && m["event"]["t"] == "audience" => {
                let done = m["event"]["counts"]["viewers"] == want;
                seen.push((tokio::time::Instant::now(), m["event"]["counts"].clone()));
                if done {
                    return seen;
                }
            }
            Got::Msg(_) => continue,
            other => panic!("expected audience events up to {want} viewers, got {other:?} after {seen:?}"),
        }
    }
    panic!("no audience event with {want} viewers; got {seen:?}");
}

#[tokio::test]
async fn s5_4_2_viewers_joining_together_give_one_pushed_count_not_one_per_join() {
    let h = hub().await;
    let (mut watcher, _) = Raw::authed(&h, Form::MsgPack, &h.token(Role::Viewer, "看客")).await;
    watcher.send(json!({"t": "sub", "topic": "demo"})).await;
    assert_eq!(watcher.recv_t("state").await["state"]["viewers"], 1);
    // The watcher's own arrival is pushed within the period.
    let first = audience_until(&mut watcher, 1).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].1, json!({"viewers": 1, "participants": 0, "by_level": {"province": 0, "city": 0, "county": 0}}));
    // N viewers arrive at once (the counts per organisation level: src/consult unit tests).
    const N: usize = 20;
    let tokens: Vec<String> = (0..N).map(|i| h.token(Role::Viewer, &format!("观众{i}"))).collect();
    let viewers = futures_util::future::join_all(tokens.iter().map(|t| Raw::authed(&h, Form::Json, t))).await;
    let seen = audience_until(&mut watcher, N as u64 + 1).await;
    // Coalesced: one item (two if the joins straddled a period on a slow machine), never N,
    // and never two within the period.
    assert!(seen.len() <= 2, "{} audience events for {N} joins: {seen:?}", seen.len());
    for w in seen.windows(2) {
        assert!(w[1].0 - w[0].0 >= Duration::from_millis(1_500), "two counts within one period: {seen:?}");
    }
    assert_eq!(seen.last().unwrap().1["participants"], 0);
    // Nothing changes: nothing more is pushed.
    let mut more = 0;
    while let Got::Msg(m) = watcher.next(Duration::from_millis(2_600)).await {
        more += usize::from(m["t"] == "event" && m["event"]["t"] == "audience");
    }
    assert_eq!(more, 0, "unchanged counts were pushed again");
    // Leaving is counted the same way: all N go, one count of 1 follows.
    drop(viewers);
    let after = audience_until(&mut watcher, 1).await;
    assert!(after.len() <= 2, "{after:?}");
}

// ---- The page and the crate cannot drift ---------------------------------------------------

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md")).unwrap()
}

fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(heading).unwrap_or_else(|| panic!("docs/protocol.md has no {heading:?}"));
    let rest = &doc[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    &rest[..end]
}

/// The variants of `pub enum NAME` in the signaling crate's source, in snake_case (the crate's
/// serde renaming; checked against serde by the callers).
fn variants(file: &str, name: &str) -> Vec<String> {
    let src = std::fs::read_to_string(format!("{}/signaling/src/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let start = src.find(&format!("pub enum {name} {{")).unwrap_or_else(|| panic!("no enum {name} in {file}"));
    let body = &src[start..];
    let body = &body[body.find('{').unwrap() + 1..];
    let mut depth = 0;
    let mut out = Vec::new();
    for line in body.lines() {
        let l = line.trim();
        if depth == 0 && l.starts_with('}') {
            break;
        }
        if depth == 0 && !l.starts_with("//") && !l.starts_with('#') && !l.is_empty() {
            let ident: String = l.chars().take_while(|c| c.is_alphanumeric()).collect();
            if !ident.is_empty() {
                out.push(snake(&ident));
            }
        }
        depth += l.matches(['{', '(']).count() as i32 - l.matches(['}', ')']).count() as i32;
    }
    assert!(!out.is_empty(), "no variants parsed for {name}");
    out
}

fn snake(camel: &str) -> String {
    let mut s = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            s.push('_');
        }
        s.extend(c.to_lowercase());
    }
    s
}

#[test]
fn drift_every_error_code_of_the_crate_is_in_the_error_table_and_back() {
    let doc = doc();
    let table = section(&doc, "## 3. Error codes");
    let crate_codes = variants("messages.rs", "ErrorCode");
    for code in &crate_codes {
        // The parse agrees with serde.
        serde_json::from_value::<ErrorCode>(json!(code)).unwrap_or_else(|e| panic!("{code}: {e}"));
        assert!(table.contains(&format!("`{code}`")), "error code `{code}` is not in §3 of docs/protocol.md");
    }
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap();
        for code in first_cell.split('`').skip(1).step_by(2) {
            assert!(crate_codes.iter().any(|c| c == code), "§3 lists `{code}`, which the crate does not have");
        }
    }
}

#[test]
fn drift_every_message_type_and_reset_reason_is_documented() {
    let doc = doc();
    for (enum_name, what) in [("ClientMsg", "client message"), ("ServerMsg", "server message")] {
        for t in variants("messages.rs", enum_name) {
            assert!(
                doc.contains(&format!("{{\"t\":\"{t}\"")) || doc.contains(&format!("`{t}`")),
                "{what} `{t}` is not in docs/protocol.md"
            );
        }
    }
    for r in variants("messages.rs", "ResetReason") {
        assert!(doc.contains(&format!("`{r}`")), "reset reason `{r}` is not in docs/protocol.md");
    }
    // Every `"t":"…"` of the page's examples in §1–§2 is a message of the crate.
    let known: Vec<String> = [variants("messages.rs", "ClientMsg"), variants("messages.rs", "ServerMsg")].concat();
    let sessions = &doc[..doc.find("## 3. Error codes").unwrap()];
    for piece in sessions.split("{\"t\":\"").skip(1) {
        let t = &piece[..piece.find('"').unwrap()];
        assert!(known.iter().any(|k| k == t), "§1–§2 show a message `{t}` the crate does not have");
    }
}

#[test]
fn drift_every_close_code_of_the_crate_is_in_the_close_table() {
    let doc = doc();
    let table = section(&doc, "## 4. Close codes");
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/signaling/src/lib.rs")).unwrap();
    let mut n = 0;
    for line in src.lines().filter(|l| l.trim_start().starts_with("pub const") && l.contains(": u16 = ")) {
        let code = line.split("= ").nth(1).unwrap().trim_end_matches(';');
        if line.contains("PROTOCOL_VERSION") {
            continue;
        }
        n += 1;
        assert!(table.contains(&format!("| {code} |")), "close code {code} ({}) is not in §4 of docs/protocol.md", line.trim());
    }
    assert!(n >= 9, "parsed {n} close codes");
}
