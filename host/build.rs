//! Builds the default policy (guest-logic) into a component and embeds it,
//! so the `switchboard` binary runs with no files beside it.
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = guest_build::build_component(&root.join("Cargo.toml"), "guest-logic");
    guest_build::rerun_if_changed(&[
        &root.join("guest-logic/src"),
        &root.join("guest-logic/Cargo.toml"),
        &root.join("wit"),
    ]);
    println!(
        "cargo:rustc-env=SWITCHBOARD_DEFAULT_POLICY={}",
        wasm.display()
    );
}
