//! The parser: what MAML.md says to read leniently is read, and every refusal names its line.

mod common;

use chimera_maml::{BlockKind, Problem, parse};
use common::*;
use proptest::prelude::*;

fn parsed(text: &str) -> chimera_maml::Job {
    parse(text.as_bytes(), 1 << 20)
        .unwrap_or_else(|e| panic!("{e}"))
        .job
}

/// The line and problem of a refused document.
fn refused(text: &str) -> (Option<usize>, Problem) {
    let error = parse(text.as_bytes(), 1 << 20).expect_err("refused");
    // The message always says where, for a one-line fault.
    if let Some(line) = error.line {
        assert!(error.to_string().starts_with(&format!("line {line}: ")));
    }
    (error.line, error.problem)
}

#[test]
fn the_bell_example_reads_into_a_typed_job() {
    let job = parsed(BELL);
    assert_eq!(job.maml_version.major, 2);
    assert_eq!(job.id, "urn:uuid:6f1c2a52-8e0b-4c1e-9d4a-0b7f3c2e1a01");
    assert_eq!(job.job_type, "quantum_circuit");
    assert_eq!(job.origin, "agent://chimera-examples");
    assert_eq!(job.permissions["execute"], ["gateway://chimera"]);
    assert_eq!(job.created_at.to_string(), "2026-11-20T10:00:00Z");
    assert_eq!(job.expires_at, None);
    assert!(
        job.intent
            .as_deref()
            .unwrap()
            .starts_with("Prepare a Bell pair")
    );
    assert_eq!(job.context["shots"], 4096);
    assert_eq!(job.context["seed"], 7);
    assert_eq!(job.context["precision"], "single");
    assert_eq!(job.code_blocks.len(), 1);
    let block = &job.code_blocks[0];
    assert_eq!((block.kind, block.line), (BlockKind::OpenQasm2, 19));
    assert!(block.code.starts_with("OPENQASM 2.0;\n") && block.code.ends_with("measure q -> c;\n"));
    assert_eq!(job.output_schema.as_ref().unwrap()["required"][0], "counts");
    assert_eq!(job.history.len(), 1);
    assert!(!job.requires_cuda());
}

#[test]
fn loose_forms_from_the_wild_are_read() {
    let job = parsed(&document(
        "maml_extra: {a: 1}\nrequires:\n  resources: cuda\npermissions:\n  execute: gateway://chimera\n  read: [a, b]\n",
        "# Title\n\n## Code Blocks\n~~~ QASM3 extra words\nOPENQASM 3;\n~~~\n## Input_Schema\n```json\n{\"type\": \"object\"}\n```\n## Notes\nfree text\n",
    )
    .replace("maml_version: \"2.0.0\"", "maml_version: 2.0"));
    assert_eq!(job.maml_version.major, 2);
    assert!(job.requires_cuda());
    assert_eq!(job.permissions["execute"], ["gateway://chimera"]);
    assert_eq!(job.permissions["read"], ["a", "b"]);
    assert_eq!(job.other_keys["maml_extra"]["a"], 1);
    assert_eq!(job.code_blocks[0].kind, BlockKind::OpenQasm3);
    assert_eq!(job.code_blocks[0].language, "QASM3");
    assert_eq!(job.input_schema.unwrap()["type"], "object");
    assert_eq!(job.other_sections[0].name, "Notes");
    assert_eq!(job.other_sections[0].text, "free text\n");
}

#[test]
fn version_1_is_read_and_others_refused() {
    let doc = document("", QASM_BODY);
    assert_eq!(
        parsed(&doc.replace("\"2.0.0\"", "\"1.4\""))
            .maml_version
            .major,
        1
    );
    let (line, problem) = refused(&doc.replace("\"2.0.0\"", "3.0"));
    assert_eq!(line, Some(2));
    assert_eq!(
        problem,
        Problem::UnsupportedVersion {
            found: "3.0".into()
        }
    );
}

#[test]
fn each_required_key_is_named_when_missing() {
    for (key, written) in [
        ("maml_version", "maml_version: \"2.0.0\"\n"),
        ("id", "id: \"urn:uuid:test\"\n"),
        ("type", "type: quantum_circuit\n"),
        ("origin", "origin: \"agent://test\"\n"),
        ("created_at", "created_at: 2026-11-20T10:00:00Z\n"),
    ] {
        let (line, problem) = refused(&document("", QASM_BODY).replace(written, ""));
        assert_eq!(line, Some(1));
        assert!(
            matches!(problem, Problem::MissingKey { key: k, .. } if k == key),
            "{problem}"
        );
    }
}

#[test]
fn wrong_types_and_bad_times_name_the_key_and_line() {
    let cases = [
        ("id: \"urn:uuid:test\"", "id: [1, 2]", 3, "id"),
        ("type: quantum_circuit", "type: 7", 4, "type"),
        ("origin: \"agent://test\"", "origin: \"\"", 5, "origin"),
    ];
    for (from, to, at, key) in cases {
        let (line, problem) = refused(&document("", QASM_BODY).replace(from, to));
        assert_eq!(line, Some(at), "{to}");
        assert!(
            matches!(&problem, Problem::WrongType { key: k, .. } if k == key),
            "{problem}"
        );
    }
    let (line, problem) =
        refused(&document("", QASM_BODY).replace("2026-11-20T10:00:00Z", "2026-11-20 10:00"));
    assert_eq!(line, Some(6));
    assert!(
        matches!(
            problem,
            Problem::BadTime {
                key: "created_at",
                ..
            }
        ),
        "{problem}"
    );
    let (line, problem) = refused(&document("expires_at: 2026-11-20T09:00:00Z\n", QASM_BODY));
    assert_eq!((line, problem), (Some(7), Problem::ExpiresBeforeCreated));
    let (line, problem) = refused(&document("permissions: [a]\n", QASM_BODY));
    assert_eq!(line, Some(7));
    assert!(matches!(problem, Problem::WrongType { .. }), "{problem}");
}

/// Issue 34: a 10,000-character id, echoed in a stream's trailers, made gRPC drop the stream.
#[test]
fn an_id_is_at_most_256_characters_with_no_control_characters() {
    let longest = "x".repeat(chimera_maml::MAX_ID_CHARS);
    assert_eq!(
        parsed(&document("", QASM_BODY).replace("urn:uuid:test", &longest)).id,
        longest
    );
    for id in [format!("{longest}x"), "a\\u0007b".to_owned()] {
        let (line, problem) = refused(&document("", QASM_BODY).replace("urn:uuid:test", &id));
        assert_eq!(line, Some(3), "{id}");
        assert!(
            matches!(&problem, Problem::WrongType { key, expected } if key == "id" && expected.contains("256")),
            "{problem}"
        );
    }
}

#[test]
fn a_key_given_twice_is_refused() {
    let (line, problem) = refused(&document("type: training\n", QASM_BODY));
    assert_eq!(line, Some(7));
    assert!(
        matches!(&problem, Problem::DuplicateKey { key, first_line: 4, .. } if key == "type"),
        "{problem}"
    );
}

#[test]
fn front_matter_faults() {
    assert_eq!(
        refused("# no front matter\n"),
        (Some(1), Problem::NoFrontMatter)
    );
    assert_eq!(
        refused("---\nid: x\n"),
        (Some(1), Problem::UnclosedFrontMatter)
    );
    assert_eq!(refused("---"), (Some(1), Problem::UnclosedFrontMatter));
    assert_eq!(refused(""), (Some(1), Problem::NoFrontMatter));
    let (line, problem) = refused("---\n- a list\n---\n");
    assert_eq!(line, Some(2));
    assert!(matches!(problem, Problem::NotAMapping { .. }), "{problem}");
    let (line, problem) = refused("---\nid: [unclosed\n---\n");
    assert!(matches!(problem, Problem::Yaml { .. }), "{problem}");
    assert!(line.is_some_and(|l| (2..=3).contains(&l)));
}

#[test]
fn section_faults_name_their_line() {
    // Front matter takes lines 1-7; the body starts at line 8.
    let (line, problem) = refused(&document("", "## Intent\nx\n## intent\ny\n"));
    assert_eq!(line, Some(10));
    assert!(
        matches!(problem, Problem::DuplicateSection { first_line: 8, .. }),
        "{problem}"
    );

    let (line, problem) = refused(&document(
        "",
        "## Code_Blocks\n```qasm\nh q[0];\n## Intent\n",
    ));
    assert_eq!(
        (line, problem),
        (
            Some(9),
            Problem::UnclosedCodeBlock {
                fence: "```".into()
            }
        )
    );

    let (line, problem) = refused(&document("", "## Output_Schema\n\n{ \"a\": }\n"));
    assert_eq!(line, Some(10));
    assert!(
        matches!(
            problem,
            Problem::BadJson {
                section: "Output_Schema",
                ..
            }
        ),
        "{problem}"
    );

    let (line, problem) = refused(&document("", "## Context\nshots: 10\nprecision: triple\n"));
    assert_eq!(line, Some(10));
    assert!(
        matches!(&problem, Problem::WrongType { key, .. } if key == "precision"),
        "{problem}"
    );

    let (line, problem) = refused(&document("", "## Context\nshots: -1\n"));
    assert_eq!(line, Some(9));
    assert!(
        matches!(&problem, Problem::WrongType { key, .. } if key == "shots"),
        "{problem}"
    );
}

#[test]
fn fences_follow_commonmark() {
    // A longer fence is closed only by one as long; a `##` inside a block is code, not a section.
    let job = parsed(&document(
        "",
        "## Code_Blocks\n````qasm\n```\n## not a section\n````\n  ```chimera-train\nepochs: 1\n  ```\n    ## indented: not a heading\n",
    ));
    assert_eq!(job.code_blocks.len(), 2);
    assert_eq!(job.code_blocks[0].code, "```\n## not a section\n");
    assert_eq!(job.code_blocks[1].kind, BlockKind::Train);
    assert!(job.other_sections.is_empty());
}

#[test]
fn only_code_blocks_in_code_blocks_run() {
    let job = parsed(&document("", "## Intent\n```qasm\nh q[0];\n```\n"));
    assert!(job.code_blocks.is_empty());
}

#[test]
fn signature_block_faults() {
    let signed = signed(&document("", QASM_BODY), &key(1));
    let begin_line = signed
        .lines()
        .position(|l| l.starts_with("<!-- MAML:SIGNATURE:BEGIN"))
        .unwrap()
        + 1;
    let end = "<!-- MAML:SIGNATURE:END -->\n";
    assert_eq!(
        refused(signed.trim_end_matches(end)),
        (Some(begin_line), Problem::UnclosedSignature)
    );
    assert_eq!(
        refused(&format!("{signed}\n")),
        (Some(begin_line + 6), Problem::TrailerAfterSignature)
    );
    assert_eq!(
        refused(&format!("{}{end}", document("", QASM_BODY))),
        (Some(15), Problem::StraySignatureEnd)
    );
    let placeholder = signed
        .lines()
        .map(|l| {
            if l.starts_with("signature: ") {
                "signature: MIIb…"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let (line, problem) = refused(&placeholder);
    assert_eq!(line, Some(begin_line + 4));
    assert!(
        matches!(
            problem,
            Problem::BadSignatureField {
                field: "signature",
                ..
            }
        ),
        "{problem}"
    );
    let (line, problem) = refused(&signed.replace("algorithm: ML-DSA-65", "algorithm: Ed25519"));
    assert_eq!(line, Some(begin_line + 1));
    assert!(
        matches!(
            problem,
            Problem::BadSignatureField {
                field: "algorithm",
                ..
            }
        ),
        "{problem}"
    );
    let (_, problem) = refused(&signed.replace("algorithm: ML-DSA-65\n", ""));
    assert_eq!(
        problem,
        Problem::MissingSignatureField { field: "algorithm" }
    );
    let (_, problem) = refused(&signed.replace(
        "algorithm: ML-DSA-65\n",
        "algorithm: ML-DSA-65\nalgorithm: ML-DSA-65\n",
    ));
    assert_eq!(
        problem,
        Problem::DuplicateSignatureField { field: "algorithm" }
    );
    let (_, problem) =
        refused(&signed.replace("algorithm: ML-DSA-65\n", "algorithm: ML-DSA-65\nnote: hi\n"));
    assert_eq!(problem, Problem::UnknownSignatureField);
    // Comments, as in MAML.md's example, are allowed.
    let commented = signed.replace("algorithm: ML-DSA-65", "algorithm: ML-DSA-65   # FIPS 204");
    parse(commented.as_bytes(), 1 << 20).expect("comments are fine");
}

#[test]
fn whole_file_faults() {
    let (line, problem) = refused(&"x".repeat(2000));
    assert_eq!((line, problem), (Some(1), Problem::NoFrontMatter));
    let big = document("", &"a".repeat(100));
    let error = parse(big.as_bytes(), 64).unwrap_err();
    assert_eq!(
        error.problem,
        Problem::TooLarge {
            size: big.len(),
            limit: 64
        }
    );
    let error = parse(b"---\nid: \xff\n---\n", 1 << 20).unwrap_err();
    assert_eq!(error.problem, Problem::NotUtf8 { offset: 8 });
    // A CR must end a line: otherwise CRLF-to-LF would leave CRs that a second pass would change.
    let lone_cr = document("", QASM_BODY).replace("h q[0];\n", "h q[0];\r\r\n");
    assert_eq!(refused(&lone_cr), (Some(13), Problem::BareCarriageReturn));
    // A byte-order mark is read past, and kept in the signed bytes (MAML.md signs the bytes as
    // they are): what `chimera sign` signs is what another implementation hashes.
    let with_bom = format!("\u{feff}{}", document("", QASM_BODY));
    let read = parse(with_bom.as_bytes(), 1 << 20).unwrap();
    assert_eq!(read.signed_bytes, with_bom.as_bytes());
    let signed = signed(&with_bom, &key(1));
    assert!(
        signed.starts_with('\u{feff}'),
        "the signed copy keeps its mark"
    );
    let read = parse(signed.as_bytes(), 1 << 20).unwrap();
    let block = read.signature.unwrap();
    assert_eq!(block.sha3_512, chimera_maml::digest(with_bom.as_bytes()));
}

/// Real documents with one edit: deleted, duplicated or swapped lines and bytes.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        Just(BELL.to_owned()),
        Just(QFT.to_owned()),
        Just(signed(BELL, &key(1)))
    ];
    (
        base,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        0u8..4,
        any::<u8>(),
    )
        .prop_map(|(text, a, b, how, byte)| {
            let mut bytes = text.into_bytes();
            let (i, j) = (a.index(bytes.len()), b.index(bytes.len()));
            let (i, j) = (i.min(j), i.max(j));
            match how {
                0 => {
                    bytes.drain(i..j);
                }
                1 => {
                    let copy = bytes[i..j].to_vec();
                    bytes.splice(i..i, copy);
                }
                2 => bytes.swap(i, j),
                _ => bytes[i] = byte,
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_input_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&bytes, 1 << 20);
    }

    #[test]
    fn no_mutated_document_panics_and_errors_point_inside_it(bytes in mutated()) {
        if let Err(error) = parse(&bytes, 1 << 20)
            && let Some(line) = error.line
        {
            let lines = bytes.split(|&b| b == b'\n').count();
            prop_assert!(line >= 1 && line <= lines + 1, "line {} of {}: {}", line, lines, error);
        }
    }
}

#[test]
fn history_lines_are_appended_where_the_history_is() {
    let entries = [
        "2026-11-20T10:00:05Z: [EXECUTE] Code block 1 run by head q0. Status: Success.".to_owned(),
        "2026-11-20T10:00:05Z: [RECEIPT] two".to_owned(),
    ];
    let with = |text: &str| {
        let document = parse(text.as_bytes(), 1 << 20).unwrap();
        let appended = document.with_history(&entries).unwrap();
        let mut job = parsed(&appended);
        let history = std::mem::take(&mut job.history);
        let mut before = document.job;
        let old = std::mem::take(&mut before.history);
        // Lines after the History move down.
        for j in [&mut job, &mut before] {
            j.code_blocks.iter_mut().for_each(|b| b.line = 0);
            j.other_sections.iter_mut().for_each(|s| s.line = 0);
        }
        assert_eq!(job, before, "only the History changed:\n{appended}");
        assert_eq!(history[..old.len()], old[..]);
        assert_eq!(history[old.len()..], entries[..]);
        appended
    };
    // The Bell example's History holds one line and is its last section before the signature.
    with(BELL);
    // No History: one is added at the end, with or without a final newline.
    let bare = document("", QASM_BODY);
    let added = format!("```\n\n## History\n- {}\n- {}\n", entries[0], entries[1]);
    assert!(with(&bare).ends_with(&added));
    with(bare.trim_end());
    // A History in the middle keeps the sections after it, and the blank line before them.
    let middle = document(
        "",
        &format!("## History\n- 2026-11-20T09:00:00Z: [CREATE] x\n\n{QASM_BODY}"),
    );
    assert!(with(&middle).contains(&format!("{}\n\n## Code_Blocks", entries[1])));
    // An empty History gets the lines under its heading.
    with(&document("", &format!("## History\n{QASM_BODY}")));
}
