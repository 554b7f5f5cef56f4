//! The media fallbacks in a real browser (`tests/browser/ice.mjs`, two members in a room who
//! decode each other's video):
//!
//! * **ICE-TCP with UDP blocked**: the test makes a network namespace joined to the host by a
//!   veth pair, drops all UDP inside it with iptables, and runs Chromium there; the hub (HTTP,
//!   the SFU's UDP socket and its ICE-TCP port) listens on the host end. Media must go over the
//!   node's passive TCP candidate, and getStats must show a TCP pair. Needs root (skipped
//!   otherwise, with a message), `ip` (iproute2) and `iptables`.
//! * **TURN relay**: a local coturn (`turnserver`, TURN REST secret shared with the hub) on
//!   loopback; the members take the `ice_servers` of their `joined` answer with
//!   `iceTransportPolicy: 'relay'`, and getStats must show relay candidates.
//!
//! Both need Chromium, Node.js and `tests/browser/node_modules` (see `common::browser`).
#![allow(missing_docs)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestHub;
use common::browser::{prerequisites, root, run_driver};
use common::services::{free_port, is_root, wait_port};
use shangliang_signaling::Role;

/// The two tests take turns: four Chromiums with fake cameras at once on a small CI machine
/// starve each other (seen here: the ICE-TCP pair connected but no frame decoded in 60 s while
/// the relay test ran beside it; alone it decodes within seconds).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `ice.mjs` in `mode` against `hub` (optionally inside network namespace `netns`).
async fn run_ice_script(h: &TestHub, base: &str, mode: &str, netns: Option<&str>) -> String {
    let _turn = ONE_AT_A_TIME.lock().await;
    let chromium = prerequisites();
    let shots = root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = root().join("tests/browser/ice.mjs");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "node"]);
            c
        }
        None => tokio::process::Command::new("node"),
    };
    cmd.arg(script)
        .arg(base)
        .arg(&shots)
        .env("ICE_MODE", mode)
        .env("CHROMIUM", chromium)
        .env("SHANGLIANG_MEDIA_TOKEN_A", h.token(Role::Member, "甲委员"))
        .env("SHANGLIANG_MEDIA_TOKEN_B", h.token(Role::Guest, "乙专家"));
    let text = run_driver(cmd, &format!("tests/browser/ice.mjs ({mode})"), Duration::from_secs(180)).await;
    assert!(text.contains(&format!("ice browser test ({mode}): ok")), "{text}");
    text
}

/// A network namespace joined to the host by a veth pair, UDP dropped inside; removed on drop
/// (deleting the namespace deletes both ends of the pair).
struct UdplessNamespace {
    name: String,
    host: IpAddr,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("cannot run {}: {e} (apt-get install -y iproute2 iptables)", args[0]));
    assert!(out.status.success(), "`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl UdplessNamespace {
    fn create() -> Self {
        let pid = std::process::id();
        let name = format!("sl-ice-{pid}");
        // A /30 of 10.213.0.0/16 per test process, so concurrent runs do not collide.
        let (a, b) = (((pid >> 6) % 256) as u8, ((pid % 64) * 4) as u8);
        let host = format!("10.213.{a}.{}", b + 1);
        let inner = format!("10.213.{a}.{}", b + 2);
        let (vh, vn) = (format!("slh{pid}"), format!("sln{pid}"));
        let _ = Command::new("ip").args(["netns", "del", &name]).output(); // a leftover of a killed run
        sh(&["ip", "netns", "add", &name]);
        let ns = Self { name: name.clone(), host: host.parse().unwrap() };
        sh(&["ip", "link", "add", &vh, "type", "veth", "peer", "name", &vn]);
        sh(&["ip", "link", "set", &vn, "netns", &name]);
        sh(&["ip", "addr", "add", &format!("{host}/30"), "dev", &vh]);
        sh(&["ip", "link", "set", &vh, "up"]);
        let exec = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", name.as_str()];
            v.extend_from_slice(args);
            sh(&v);
        };
        exec(&["ip", "addr", "add", &format!("{inner}/30"), "dev", &vn]);
        exec(&["ip", "link", "set", &vn, "up"]);
        exec(&["ip", "link", "set", "lo", "up"]);
        exec(&["iptables", "-A", "OUTPUT", "-p", "udp", "-j", "DROP"]);
        exec(&["iptables", "-A", "INPUT", "-p", "udp", "-j", "DROP"]);
        ns
    }
}

impl Drop for UdplessNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_udp_blocked_members_join_a_room_over_ice_tcp() {
    if !is_root() {
        eprintln!("skipped: this test creates a network namespace and iptables rules, which needs root (CI runs it as root)");
        return;
    }
    let ns = UdplessNamespace::create();
    let host = ns.host;
    let h = TestHub::start(|c| {
        c.listen = SocketAddr::new(host, 0);
        c.sfu.bind_ip = host;
        c.sfu.tcp_port = Some(0);
    })
    .await;
    assert!(h.hub.media.sfu.tcp_addr().is_some());
    let text = run_ice_script(&h, &format!("http://{}", h.addr), "tcp", Some(&ns.name)).await;
    assert!(text.contains("\"protocol\":\"tcp\""), "{text}");
    let io = h.hub.media.sfu.io_stats();
    assert!(io.datagrams_received > 0, "{io:?}");
    // Everything is released once the browsers are gone, TCP connections included.
    let t = std::time::Instant::now();
    while h.hub.media.sfu.stats().peer_connections != 0 || h.hub.media.sfu.io_stats().tcp_connections != 0 {
        assert!(t.elapsed() < Duration::from_secs(45), "left: {:?} {:?}", h.hub.media.sfu.stats(), h.hub.media.sfu.io_stats());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A local coturn on loopback with a TURN REST secret; stopped on drop.
struct Coturn {
    child: std::process::Child,
    port: u16,
    /// Its log, pid file and (unused) user database.
    _dir: tempfile::TempDir,
}

impl Coturn {
    async fn start(secret: &str) -> Coturn {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
        let child = Command::new("turnserver")
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli"])
            .args(["--fingerprint", "--use-auth-secret", "--realm=shangliang.test", "--simple-log", "--no-stdout-log"])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--static-auth-secret={secret}"))
            .arg(format!("--log-file={}", d("turn.log")))
            .arg(format!("--pidfile={}", d("turn.pid")))
            .arg(format!("--userdb={}", d("turndb")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the TURN test needs coturn: apt-get install -y coturn");
        wait_port(port, "turnserver", Duration::from_secs(15)).await;
        Coturn { child, port, _dir: dir }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_forced_to_relay_connect_through_a_local_coturn() {
    let secret = format!("test-secret-{}", std::process::id());
    let turn = Coturn::start(&secret).await;
    let url = format!("turn:127.0.0.1:{}?transport=udp", turn.port);
    let h = TestHub::start(|c| {
        c.turn = Some(shangliang::server::media::turn::TurnConfig::new(vec![url.clone()], &secret, Duration::from_secs(600)).unwrap());
    })
    .await;
    let text = run_ice_script(&h, &format!("http://{}", h.addr), "relay", None).await;
    // ice.mjs checked every selected pair's local candidate is a relay; coturn relayed to the
    // SFU's one port, from its relay address.
    assert!(text.contains("\"type\":\"relay\""), "{text}");
    assert!(h.hub.media.sfu.io_stats().datagrams_received > 0);
    drop(turn);
}
