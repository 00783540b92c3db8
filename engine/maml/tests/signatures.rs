//! Signing round trips, and every way of tampering with a signed document is refused.

mod common;

use chimera_maml::{Refusal, SignatureError, admit, parse, sign_document, verify};
use common::*;
use proptest::prelude::*;

fn admit_with(text: &[u8], keys: &[u8]) -> Result<chimera_maml::Admitted, Refusal> {
    admit(text, &trusting(keys), &policy(), now())
}

#[test]
fn the_examples_sign_and_verify() {
    for example in [BELL, QFT] {
        let signed = signed(example, &key(1));
        let admitted = admit_with(signed.as_bytes(), &[1]).expect("admitted");
        assert_eq!(admitted.key_name, "k1");
        assert_eq!(admitted.key_id, key(1).public_key().id());
        // Everything the unsigned document said is still there, and signed.
        assert_eq!(
            admitted.document.job,
            parse(example.as_bytes(), 1 << 20).unwrap().job
        );
        assert!(signed.starts_with(example));
    }
}

#[test]
fn signing_is_deterministic_and_replaces_an_old_signature() {
    let once = signed(BELL, &key(1));
    assert_eq!(once, signed(BELL, &key(1)));
    let again = sign_document(once.as_bytes(), &key(2), 1 << 20).unwrap();
    assert_eq!(again.replaced, Some(key(1).public_key().id()));
    assert_eq!(again.text, signed(BELL, &key(2)));
    admit_with(again.text.as_bytes(), &[2]).expect("re-signed document admitted");
}

#[test]
fn crlf_documents_sign_as_their_lf_form() {
    let crlf = BELL.replace('\n', "\r\n");
    let signed_crlf = signed(&crlf, &key(1));
    assert_eq!(signed_crlf, signed(BELL, &key(1)));
    // A signed LF document converted to CRLF in transit still verifies.
    admit_with(signed_crlf.replace('\n', "\r\n").as_bytes(), &[1]).expect("CRLF copy admitted");
}

#[test]
fn a_missing_final_newline_is_added_before_signing() {
    let text = BELL.trim_end();
    let signed = signed(text, &key(1));
    assert!(signed.starts_with(&format!("{text}\n<!-- MAML:SIGNATURE:BEGIN -->\n")));
    admit_with(signed.as_bytes(), &[1]).expect("admitted");
}

#[test]
fn another_keys_signature_is_refused() {
    let by_two = signed(BELL, &key(2));
    // Key 2 is not trusted: the engine does not know who signed.
    let refusal = admit_with(by_two.as_bytes(), &[1]).unwrap_err();
    assert_eq!(refusal, Refusal::UnknownKey(key(2).public_key().id()));
    // Checked directly against key 1, the block names another key.
    let document = parse(by_two.as_bytes(), 1 << 20).unwrap();
    let error = verify(
        &document.signed_bytes,
        document.signature.as_ref().unwrap(),
        &key(1).public_key(),
    )
    .unwrap_err();
    assert!(matches!(error, SignatureError::OtherKey { .. }), "{error}");
}

#[test]
fn flipping_any_bit_of_any_byte_is_refused() {
    let signed = signed(BELL, &key(1)).into_bytes();
    let trust = trusting(&[1]);
    for at in 0..signed.len() {
        for bit in 0..8 {
            let mut bytes = signed.clone();
            bytes[at] ^= 1 << bit;
            let outcome = admit(&bytes, &trust, &policy(), now());
            assert!(
                outcome.is_err(),
                "flipping bit {bit} of byte {at} was admitted"
            );
        }
    }
}

/// The signature block of `signed`, and the text before it.
fn split(signed: &str) -> (&str, &str) {
    let at = signed.find("<!-- MAML:SIGNATURE:BEGIN").unwrap();
    signed.split_at(at)
}

#[test]
fn a_block_claiming_a_trusted_key_over_another_keys_signature_is_refused() {
    // The attacker signs with key 2, then writes key 1's id into the block.
    let forged = signed(BELL, &key(2)).replace(
        &key(2).public_key().id().to_string(),
        &key(1).public_key().id().to_string(),
    );
    let refusal = admit_with(forged.as_bytes(), &[1]).unwrap_err();
    assert_eq!(refusal.reason(), "BAD_SIGNATURE", "{refusal}");
}

#[test]
fn a_signature_block_moved_to_another_document_is_refused() {
    let (bell, qft) = (signed(BELL, &key(1)), signed(QFT, &key(1)));
    let ((_, bell_block), (qft_body, _)) = (split(&bell), split(&qft));
    let refusal = admit_with(format!("{qft_body}{bell_block}").as_bytes(), &[1]).unwrap_err();
    assert_eq!(refusal.reason(), "DIGEST_MISMATCH", "{refusal}");
    // With the digest made to match, the signature itself fails.
    let digest_of_qft = hex::encode(chimera_maml::digest(qft_body.as_bytes()));
    let doctored = bell_block.replace(
        bell_block
            .lines()
            .find_map(|l| l.strip_prefix("sha3_512: "))
            .unwrap(),
        &digest_of_qft,
    );
    let refusal = admit_with(format!("{qft_body}{doctored}").as_bytes(), &[1]).unwrap_err();
    assert_eq!(refusal.reason(), "BAD_SIGNATURE", "{refusal}");
}

/// The sections of a document (after its front matter), to shuffle.
fn sections(body: &str) -> Vec<String> {
    let mut sections: Vec<String> = Vec::new();
    for line in body.split_inclusive('\n') {
        if line.starts_with("## ") || sections.is_empty() {
            sections.push(String::new());
        }
        sections.last_mut().unwrap().push_str(line);
    }
    sections
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reordering_sections_is_refused(seed in any::<u64>()) {
        let signed = signed(BELL, &key(1));
        let (body, block) = split(&signed);
        let front_end = body.match_indices("---\n").nth(1).unwrap().0 + 4;
        let (front, rest) = body.split_at(front_end);
        let mut shuffled = sections(rest);
        let original = shuffled.clone();
        // A seeded rotation plus swap: never the identity once it differs.
        let n = shuffled.len();
        shuffled.rotate_left((seed as usize % (n - 1)) + 1);
        prop_assume!(shuffled != original);
        let text = format!("{front}{}{block}", shuffled.concat());
        let outcome = admit_with(text.as_bytes(), &[1]);
        prop_assert!(outcome.is_err());
    }

    #[test]
    fn any_trailer_after_the_signature_is_refused(trailer in "\\PC{1,40}") {
        let text = format!("{}{trailer}", signed(BELL, &key(1)));
        let refusal = admit_with(text.as_bytes(), &[1]).unwrap_err();
        prop_assert_eq!(refusal.reason(), "TRAILER_AFTER_SIGNATURE");
    }

    #[test]
    fn any_document_that_parses_signs_and_verifies(
        intent in "[a-zA-Z0-9 .,:;!?'()\\-]{0,200}",
        shots in 1u64..1_000_000,
        id in "[a-z0-9:-]{1,40}",
        crlf in any::<bool>(),
        signer in 1u8..4,
    ) {
        let text = BELL
            .replacen("urn:uuid:6f1c2a52-8e0b-4c1e-9d4a-0b7f3c2e1a01", &id, 1)
            .replacen("shots: 4096", &format!("shots: {shots}"), 1)
            .replacen("Prepare a Bell pair", &intent, 1);
        let text = if crlf { text.replace('\n', "\r\n") } else { text };
        let signed = signed(&text, &key(signer));
        let admitted = admit_with(signed.as_bytes(), &[1, 2, 3]).unwrap();
        prop_assert_eq!(admitted.document.job.id, id);
        prop_assert_eq!(admitted.key_name, format!("k{signer}"));
    }
}
