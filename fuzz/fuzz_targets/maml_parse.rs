//! The MAML parser and the submission checks on arbitrary bytes: they may refuse, never panic.
//! Whatever parses, signed, must parse to the same job and pass the signature check.
#![no_main]

use chimera_maml::{Policy, Refusal, admit, parse, sign_document};
use libfuzzer_sys::fuzz_target;

#[path = "trusted.rs"]
mod trusted;
use trusted::{KEY, TRUST};

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    let now = jiff::Timestamp::UNIX_EPOCH;
    let _ = admit(data, &TRUST, &policy, now);
    let Ok(document) = parse(data, policy.max_bytes) else { return };
    if !document.signed_bytes.ends_with(b"\n") {
        return; // signing adds the final newline, which changes the last section's text
    }
    let signed = sign_document(data, &KEY, policy.max_bytes).expect("a parsed document signs");
    let again = parse(signed.text.as_bytes(), usize::MAX).expect("a signed document parses");
    assert_eq!(again.job, document.job);
    match admit(signed.text.as_bytes(), &TRUST, &Policy { max_bytes: usize::MAX, ..policy }, now) {
        Ok(_)
        | Err(
            Refusal::CreatedInFuture { .. }
            | Refusal::PythonBlock { .. }
            | Refusal::NothingToRun { .. }
            | Refusal::TypeMismatch { .. },
        ) => {}
        Err(other) => panic!("a freshly signed document was refused: {other}"),
    }
});
