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
