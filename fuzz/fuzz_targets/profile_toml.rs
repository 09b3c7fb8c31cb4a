//! Profile TOML (`pulse_core::profile::Profile::parse`), fed any bytes.
//!
//! Checks, beyond "no panic":
//! - a refusal is `ProfileError::Invalid` (never `Io` or `Unknown`, which only
//!   loading by name or path gives), and its position is inside the text: line
//!   1 ..= the number of lines, column 1 ..= that line's length + 1;
//! - an accepted profile has a name, and its envelope and resources hold only
//!   JSON pointers (the validator's rule), and parsing is deterministic
//!   (the same text parses again to a profile with the same name).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pulse_core::profile::{Profile, ProfileError};

fuzz_target!(|data: &[u8]| {
    // Profiles are read as UTF-8 text (`fs::read_to_string`).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Profile::parse(text, "fuzz.toml") {
        Ok(p) => {
            assert!(!p.name().is_empty());
            let env = &p.spec.envelope;
            for ptr in [Some(&env.type_path), Some(&env.data), env.ts.as_ref()]
                .into_iter()
                .flatten()
            {
                assert!(ptr.is_empty() || ptr.starts_with('/'), "pointer {ptr:?}");
            }
            let again = Profile::parse(text, "fuzz.toml").expect("parses twice");
            assert_eq!(again.name(), p.name());
        }
        Err(ProfileError::Invalid {
            origin,
            line,
            column,
            field,
            message,
        }) => {
            assert_eq!(origin, "fuzz.toml");
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                line >= 1 && line <= lines.len(),
                "line {line} of {}",
                lines.len()
            );
            let len = lines[line - 1].chars().count();
            assert!(column >= 1 && column <= len + 1, "column {column} of {len}");
            assert!(!field.is_empty() && !message.is_empty());
        }
        Err(other) => panic!("not an Invalid error: {other}"),
    }
});
