//! ICE-TCP (RFC 6544): the node's passive TCP candidate on one port, for clients whose network
//! blocks UDP. A viewer bot with TCP-only candidates (webrtc 0.21's active TCP candidate) watches
//! a stage published over UDP; its connection lives on one accepted TCP connection that the
//! node closes when the session closes. Connections that never name one of our ufrags are
//! closed.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use shangliang_sfu::{Sfu, SfuConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn node() -> Sfu {
    Sfu::new(SfuConfig { tcp_port: Some(0), ..SfuConfig::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_only_viewer_receives_the_stage_over_the_one_tcp_port() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = node();
        let tcp = sfu.tcp_addr().expect("the node listens for ICE-TCP");
        let publisher = Publisher::start(&sfu, "stage", "host", 30, 3, 900).await;
        let mut viewer = Viewer::start_tcp(&sfu, "stage").await;
        let got = viewer.collect(Duration::from_secs(2)).await;
        let (video, audio) = (got.iter().filter(|p| p.video).count(), got.iter().filter(|p| !p.video).count());
        assert!(video > 20 && audio > 20, "the TCP viewer receives video ({video}) and audio ({audio})");
        let io = sfu.io_stats();
        assert_eq!(io.tcp_connections, 1, "one TCP connection carries the viewer's connection: {io:?}");
        // The bot has no UDP socket at all: everything it received came over that connection.
        assert!(viewer.bot.pc.local_description().await.unwrap().sdp.contains(" tcp "), "the bot offers TCP candidates only");
        assert_eq!(tcp.ip(), sfu.local_addr().ip());

        // Closing the session closes its TCP connection.
        assert!(sfu.close_session(viewer.session).await);
        let t = std::time::Instant::now();
        while sfu.io_stats().tcp_connections != 0 {
            assert!(t.elapsed() < Duration::from_secs(10), "the TCP connection outlived its session: {:?}", sfu.io_stats());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = viewer.bot.pc.close().await;
        publisher.stop().await;
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_connection_that_names_no_known_ufrag_is_closed() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let sfu = node();
        let mut c = tokio::net::TcpStream::connect(sfu.tcp_addr().unwrap()).await.unwrap();
        // A framed STUN binding request for a ufrag the node never issued, then junk.
        let mut m = rtc::stun::message::Message::new();
        m.build(&[
            Box::new(rtc::stun::message::BINDING_REQUEST),
            Box::new(rtc::stun::textattrs::Username::new(rtc::stun::attributes::ATTR_USERNAME, "nobody:x".to_owned())),
        ])
        .unwrap();
        c.write_all(&rtc::shared::tcp_framing::frame_packet(&m.raw)).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await.expect("closed in time").unwrap_or(0);
        assert_eq!(n, 0, "the node closes it without answering");
        let t = std::time::Instant::now();
        while sfu.io_stats().tcp_connections != 0 {
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", sfu.io_stats());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(sfu.io_stats().unrouted, 1);
    })
    .await
    .expect("the test finishes in time");
}
