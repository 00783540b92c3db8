//! Every request the engine decodes, from any bytes at all: an error or a message, never a panic;
//! and what decodes encodes back to bytes that decode to the same message.

use chimera_proto::v1::{
    CancelRequest, GetRequest, ListHeadsRequest, RotateKeysRequest, SubmitRequest, WatchRequest,
};
use proptest::prelude::*;
use prost::Message;

fn round_trips<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(message) = M::decode(bytes) {
        let again = M::decode(message.encode_to_vec().as_slice()).expect("re-encoded decodes");
        assert_eq!(again, message);
    }
}

fn every_request(bytes: &[u8]) {
    round_trips::<SubmitRequest>(bytes);
    round_trips::<GetRequest>(bytes);
    round_trips::<WatchRequest>(bytes);
    round_trips::<CancelRequest>(bytes);
    round_trips::<ListHeadsRequest>(bytes);
    round_trips::<RotateKeysRequest>(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        every_request(&bytes);
    }

    /// Bytes that look like protobuf: a valid request with some of its bytes changed or cut.
    #[test]
    fn damaged_requests_decode_or_fail_cleanly(
        id in "[ -~]{0,64}",
        document in proptest::collection::vec(any::<u8>(), 0..256),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = SubmitRequest { document }.encode_to_vec();
        bytes.extend(GetRequest { job_id: id }.encode_to_vec());
        for (at, value) in flips {
            let at = at.index(bytes.len().max(1));
            if let Some(byte) = bytes.get_mut(at) {
                *byte = value;
            }
        }
        let cut = cut.index(bytes.len() + 1);
        every_request(&bytes[..cut]);
    }
}
