//! The decoders hold on arbitrary input (the fuzz targets' properties, run as property tests).

use proptest::prelude::*;
use shangliang_signaling::{ClientMsg, Form, decode_client, decode_server, encode_client};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn client_decoder_never_panics_and_accepted_frames_round_trip(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        for form in [Form::MsgPack, Form::Json] {
            if let Ok(msg) = decode_client(form, &data) {
                prop_assert_eq!(decode_client(form, &encode_client(form, &msg)).unwrap(), msg);
            }
            let _ = decode_server(form, &data);
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(text in ".{0,40}", flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let msg = ClientMsg::Post { id: 1, topic: shangliang_signaling::ActivityId::new("demo").unwrap(), text };
        let mut frame = encode_client(Form::MsgPack, &msg).to_vec();
        let i = flip.index(frame.len());
        frame[i] = byte;
        let _ = decode_client(Form::MsgPack, &frame);
    }
}
