use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::*;

fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let elsewhere = root.path().join("keys");
    fs::create_dir_all(&data).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    (root, data, elsewhere)
}

#[test]
fn a_new_key_file_is_32_bytes_its_owners_alone_and_never_overwritten() {
    let (_root, data, elsewhere) = dirs();
    let path = elsewhere.join("unseal.key");
    let made = new_key_file(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!((fs::read(&path).unwrap().len(), mode & 0o777), (32, 0o600));
    let found = find_with(&Source::File(path.clone()), &data, None).unwrap();
    assert_eq!(found.key.bytes(), made.bytes());
    assert_eq!(found.key.id(), made.id());
    assert_eq!(made.id().len(), 16);
    let again = new_key_file(&path).unwrap_err();
    assert!(matches!(again, UnsealError::Exists { .. }), "{again}");
    assert_eq!(fs::read(&path).unwrap(), made.bytes());
    // Two keys are not the same key.
    assert_ne!(
        new_key_file(&elsewhere.join("other")).unwrap().id(),
        made.id()
    );
}

#[test]
fn a_key_inside_the_data_directory_is_refused_however_it_is_named() {
    let (_root, data, _) = dirs();
    let inside = data.join("unseal.key");
    new_key_file(&inside).unwrap();
    for path in [inside.clone(), data.join("sub/../unseal.key")] {
        let refused = find_with(&Source::File(path), &data, None).unwrap_err();
        assert!(
            matches!(refused, UnsealError::InsideDataDirectory { .. }),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("--unseal-key-file"),
            "{refused}"
        );
    }
    // The default place, when the configuration directory is inside the data directory.
    let refused = find_with(&Source::ConfigDirectory, &data, Some(&data)).unwrap_err();
    assert!(
        matches!(refused, UnsealError::InsideDataDirectory { .. }),
        "{refused}"
    );
    assert!(
        !data.join("chimera").exists(),
        "nothing made before the refusal"
    );
}

#[test]
fn a_key_file_of_the_wrong_size_or_readable_by_others_is_refused_with_what_to_do() {
    let (_root, data, elsewhere) = dirs();
    let short = elsewhere.join("short.key");
    fs::write(&short, [7u8; 31]).unwrap();
    fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
    let refused = find_with(&Source::File(short), &data, None).unwrap_err();
    assert!(
        matches!(refused, UnsealError::WrongLength { got: 31, .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("chimera unseal-key new"),
        "{refused}"
    );
    let exposed = elsewhere.join("exposed.key");
    new_key_file(&exposed).unwrap();
    fs::set_permissions(&exposed, fs::Permissions::from_mode(0o644)).unwrap();
    let refused = find_with(&Source::File(exposed), &data, None).unwrap_err();
    assert!(
        matches!(refused, UnsealError::Exposed { mode: 0o644, .. }),
        "{refused}"
    );
    let missing = find_with(&Source::File(elsewhere.join("none")), &data, None).unwrap_err();
    assert!(
        matches!(missing, UnsealError::File { what: "read", .. }),
        "{missing}"
    );
}

#[test]
fn a_command_may_print_the_key_raw_in_hex_or_in_base64() {
    let (_root, data, elsewhere) = dirs();
    let path = elsewhere.join("unseal.key");
    let key = new_key_file(&path).unwrap();
    let hex = hex::encode(key.bytes());
    let commands = [
        format!("cat '{}'", path.display()),
        format!("echo {hex}"),
        format!("printf '  {hex}\\n\\n'"),
        format!("base64 < '{}'", path.display()),
        // What it says on its standard error goes to the log, not into the key.
        format!("echo 'fetched from the vault' >&2; echo {hex}"),
    ];
    for command in commands {
        let found = find_with(&Source::Command(command.clone()), &data, None).unwrap();
        assert_eq!(found.key.bytes(), key.bytes(), "{command}");
        assert!(found.from.contains(&command));
    }
}

#[test]
fn a_failing_command_or_one_that_prints_no_key_is_refused_with_what_it_said() {
    let (_root, data, _) = dirs();
    let refused = |command: &str| {
        let source = Source::Command(command.to_owned());
        find_with(&source, &data, None).unwrap_err()
    };
    let failed = refused("echo 'AccessDeniedException: not authorized' >&2; exit 3");
    assert!(
        matches!(failed, UnsealError::CommandFailed { .. }),
        "{failed}"
    );
    let message = failed.to_string();
    assert!(message.contains("exited with status 3"), "{message}");
    assert!(message.contains("AccessDeniedException"), "{message}");
    let not_a_key = refused("echo hello");
    assert!(
        matches!(not_a_key, UnsealError::CommandNotAKey { got: 6, .. }),
        "{not_a_key}"
    );
    let short = refused(&format!("echo {}", "ab".repeat(31)));
    assert!(
        matches!(short, UnsealError::CommandNotAKey { .. }),
        "{short}"
    );
    let missing = refused("/no/such/kms-client --decrypt");
    assert!(
        matches!(missing, UnsealError::CommandFailed { .. }),
        "{missing}"
    );
}

#[test]
fn a_command_that_takes_too_long_is_stopped_with_what_it_ran() {
    let started = Instant::now();
    // The command's child holds its output open: stopping the shell alone would leave us waiting.
    let line = "echo 'asking the KMS' >&2; sleep 30; echo too late";
    let refused = command::run(line, Duration::from_millis(300)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(refused, UnsealError::CommandTimedOut { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("asking the KMS"), "{refused}");
    assert_eq!(TIMEOUT, Duration::from_secs(10));
}

#[test]
fn the_default_key_is_made_once_in_the_configuration_directory() {
    let (_root, data, elsewhere) = dirs();
    let first = find_with(&Source::ConfigDirectory, &data, Some(&elsewhere)).unwrap();
    let path = elsewhere.join("chimera").join(DEFAULT_FILE);
    assert!(first.made && first.from.contains(&path.display().to_string()));
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = find_with(&Source::ConfigDirectory, &data, Some(&elsewhere)).unwrap();
    assert!(!second.made);
    assert_eq!(second.key.bytes(), first.key.bytes());
    let none = find_with(&Source::ConfigDirectory, &data, None).unwrap_err();
    assert!(matches!(none, UnsealError::NoConfigDirectory), "{none}");
}

/// Every file under `dir`, by path, with its bytes.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), fs::read(&path).unwrap());
        }
    }
    files
}

#[test]
fn a_keyring_is_made_once_and_opens_again_with_its_key_alone() {
    let (_root, data, elsewhere) = dirs();
    // The data directory is made with the keyring, as at an engine's first start.
    let data = data.join("not-yet");
    let key_file = elsewhere.join("unseal.key");
    let key = new_key_file(&key_file).unwrap();
    let source = Source::File(key_file);
    let first = unseal_with(&source, &data, None).unwrap();
    assert!(first.made);
    assert_eq!(first.keyring.unseal_key_id(), key.id());
    let stored = fs::read(keyring::path(&data)).unwrap();
    let mode = fs::metadata(keyring::path(&data))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for secret in [
        first.keyring.data(),
        first.keyring.models(),
        first.keyring.heads_root(),
    ] {
        assert!(!stored.windows(8).any(|w| secret.windows(8).any(|s| s == w)));
    }
    let again = unseal_with(&source, &data, None).unwrap();
    assert!(!again.made);
    assert_eq!(again.keyring.engine(), first.keyring.engine());
    assert_eq!(*again.keyring.data(), *first.keyring.data());
    assert_eq!(*again.keyring.models(), *first.keyring.models());
    assert_eq!(
        *again.keyring.head_wrapping_key("q0"),
        *first.keyring.head_wrapping_key("q0")
    );
    assert_ne!(
        *again.keyring.head_wrapping_key("q0"),
        *again.keyring.head_wrapping_key("q1")
    );
    assert_eq!(keyring::expected_key(&data).unwrap(), Some(key.id()));
}

#[test]
fn a_sealed_directory_refuses_another_key_no_key_and_a_failing_command_unchanged() {
    let (_root, data, elsewhere) = dirs();
    let right = elsewhere.join("right.key");
    let expected = new_key_file(&right).unwrap().id();
    unseal_with(&Source::File(right), &data, None).unwrap();
    fs::write(data.join("journal.redb"), b"sealed things").unwrap();
    let before = snapshot(&data);

    let wrong = elsewhere.join("wrong.key");
    let given = new_key_file(&wrong).unwrap().id();
    let refused = unseal_with(&Source::File(wrong), &data, None).unwrap_err();
    assert!(matches!(refused, UnsealError::WrongKey { .. }), "{refused}");
    let message = refused.to_string();
    assert!(
        message.contains(&expected) && message.contains(&given),
        "{message}"
    );

    let config = elsewhere.join("config");
    let refused = unseal_with(&Source::ConfigDirectory, &data, Some(&config)).unwrap_err();
    assert!(matches!(refused, UnsealError::NoKey { .. }), "{refused}");
    assert!(refused.to_string().contains(&expected), "{refused}");
    assert!(
        !config.exists(),
        "no default key is made for a sealed directory"
    );

    let command = Source::Command("echo 'vault: permission denied' >&2; exit 3".into());
    let refused = unseal_with(&command, &data, None).unwrap_err();
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );

    assert_eq!(snapshot(&data), before);
}

#[test]
fn a_damaged_keyring_is_refused_with_where_it_is() {
    let (_root, data, elsewhere) = dirs();
    let key_file = elsewhere.join("unseal.key");
    new_key_file(&key_file).unwrap();
    let source = Source::File(key_file);
    unseal_with(&source, &data, None).unwrap();
    let path = keyring::path(&data);
    let text = fs::read_to_string(&path).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
    let data_key = stored["keys"]["data"].as_str().unwrap();
    let mut altered = data_key.as_bytes().to_vec();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    fs::write(
        &path,
        text.replace(data_key, std::str::from_utf8(&altered).unwrap()),
    )
    .unwrap();
    let refused = unseal_with(&source, &data, None).unwrap_err();
    assert!(
        matches!(refused, UnsealError::KeyringDamaged { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("`data` key"), "{refused}");
    fs::write(&path, "{ not json").unwrap();
    let refused = unseal_with(&source, &data, None).unwrap_err();
    assert!(refused.to_string().contains("keyring.json"), "{refused}");
}

#[test]
fn two_engines_making_the_default_key_at_once_share_one() {
    let (_root, _, elsewhere) = dirs();
    let keys: Vec<_> = (0..8)
        .map(|i| {
            let elsewhere = elsewhere.clone();
            std::thread::spawn(move || {
                let data = elsewhere.join(format!("data-{i}"));
                fs::create_dir_all(&data).unwrap();
                find_with(&Source::ConfigDirectory, &data, Some(&elsewhere))
                    .unwrap()
                    .key
                    .id()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
}

#[test]
fn a_rewrapped_keyring_opens_with_the_new_key_only_and_keeps_its_keys() {
    let (_root, data, elsewhere) = dirs();
    let (old, new) = (elsewhere.join("old.key"), elsewhere.join("new.key"));
    let old_id = new_key_file(&old).unwrap().id();
    let new_id = new_key_file(&new).unwrap().id();
    let (old, new) = (Source::File(old), Source::File(new));
    let refused = rewrap_with(&data, &old, &new, None).unwrap_err();
    assert!(
        matches!(refused, UnsealError::NotSealed { .. }),
        "{refused}"
    );
    let before = unseal_with(&old, &data, None).unwrap().keyring;

    let same = rewrap_with(&data, &old, &old, None).unwrap_err();
    assert!(matches!(same, UnsealError::SameKey { .. }), "{same}");
    let done = rewrap_with(&data, &old, &new, None).unwrap();
    assert_eq!(
        done,
        Rewrapped {
            old_id: old_id.clone(),
            new_id: new_id.clone()
        }
    );
    let after = unseal_with(&new, &data, None).unwrap();
    assert!(!after.made);
    assert_eq!(after.keyring.engine(), before.engine());
    assert_eq!(*after.keyring.data(), *before.data());
    assert_eq!(*after.keyring.models(), *before.models());
    assert_eq!(
        *after.keyring.head_wrapping_key("a0"),
        *before.head_wrapping_key("a0")
    );
    let refused = unseal_with(&old, &data, None).unwrap_err();
    assert!(
        matches!(&refused, UnsealError::WrongKey { expected, given, .. } if *expected == new_id && *given == old_id),
        "{refused}"
    );
    // Rewrapping with the old key as the current one is refused the same way, changing nothing.
    let again = rewrap_with(&data, &old, &new, None).unwrap_err();
    assert!(matches!(again, UnsealError::WrongKey { .. }), "{again}");
    let names: Vec<_> = fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from(keyring::FILE)]);
}
