//! Every gRPC request the engine decodes, from arbitrary bytes: decoded or refused, never a panic;
//! what decodes re-encodes to the same message. A SubmitRequest's document then goes on to the
//! MAML parser, as the engine would take it.
#![no_main]

use chimera_proto::v1::{
    CancelRequest, GetRequest, ListHeadsRequest, RotateKeysRequest, SubmitRequest, WatchRequest,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn round_trips<M: Message + Default + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<M> {
    let message = M::decode(data).ok()?;
    let again = M::decode(message.encode_to_vec().as_slice()).expect("re-encoded decodes");
    assert_eq!(again, message);
    Some(message)
}

fuzz_target!(|data: &[u8]| {
    if let Some(submit) = round_trips::<SubmitRequest>(data) {
        let _ = chimera_maml::parse(&submit.document, chimera_maml::DEFAULT_MAX_BYTES);
    }
    round_trips::<GetRequest>(data);
    round_trips::<WatchRequest>(data);
    round_trips::<CancelRequest>(data);
    round_trips::<ListHeadsRequest>(data);
    round_trips::<RotateKeysRequest>(data);
});
