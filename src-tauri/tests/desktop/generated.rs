//! `ui/src/lib/generated/types.ts` must be what the Rust types produce.

use std::path::Path;

#[test]
fn generated_types_are_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/src/lib/generated/types.ts");
    let want = pulse_desktop::dto::typescript_bindings();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &want).expect("write types.ts");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: run `UPDATE_GENERATED=1 cargo test -p pulse-desktop --test desktop generated` and commit it",
        path.display()
    );
}
