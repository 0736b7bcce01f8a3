//! Builds the test guests (tests/guests/*) into components for the sandbox
//! tests, and tells the tests where they are.
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = root.join("Cargo.toml");
    let misbehave = guest_build::build_component(&manifest, "misbehave-guest");
    guest_build::rerun_if_changed(&[&root.join("tests/guests"), &root.join("wit")]);
    println!("cargo:rustc-env=MISBEHAVE_WASM={}", misbehave.display());
}
