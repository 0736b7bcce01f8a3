//! Builds the test guests (tests/guests/*) and the example policies
//! (examples/policies/*) into components for the integration tests, and
//! tells the tests where they are.
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = root.join("Cargo.toml");
    let misbehave = guest_build::build_component(&manifest, "misbehave-guest");
    println!("cargo:rustc-env=MISBEHAVE_WASM={}", misbehave.display());
    let v010 = guest_build::build_component(&manifest, "v010-echo-guest");
    println!("cargo:rustc-env=V010_ECHO_WASM={}", v010.display());
    let big_memory = guest_build::build_component(&manifest, "big-memory-guest");
    println!("cargo:rustc-env=BIG_MEMORY_WASM={}", big_memory.display());
    let trap_at_start = guest_build::build_component(&manifest, "trap-at-start-guest");
    println!(
        "cargo:rustc-env=TRAP_AT_START_WASM={}",
        trap_at_start.display()
    );

    // The examples depend on guest-logic without its `component` feature, and
    // cargo builds a dependency's cdylib too: its guest_logic.wasm (with no
    // export) would overwrite the default policy host/build.rs embeds if they
    // shared a target directory. guest-build puts its target directory under
    // $CARGO_TARGET_DIR when that is set, so point it elsewhere for these.
    // SAFETY: a build script is single-threaded.
    unsafe { std::env::set_var("CARGO_TARGET_DIR", examples_target_dir()) };
    for (package, var) in [
        ("echo-policy", "ECHO_WASM"),
        ("moderation-policy", "MODERATION_WASM"),
        ("rate-limit-policy", "RATE_LIMIT_WASM"),
    ] {
        let wasm = guest_build::build_component(&manifest, package);
        println!("cargo:rustc-env={var}={}", wasm.display());
    }

    // The JavaScript example, built with its own ecosystem's tooling
    // (componentize-js from the npm registry; needs node and npm).
    let js_dir = root.join("examples/policies/js");
    let js_wasm =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set for build scripts"))
            .join("js-policy.wasm");
    let status = std::process::Command::new("sh")
        .arg(js_dir.join("build.sh"))
        .arg(&js_wasm)
        .status()
        .expect("cannot run sh for examples/policies/js/build.sh");
    assert!(
        status.success(),
        "examples/policies/js/build.sh failed ({status}); it needs Node.js >= 20 and npm with the npm registry"
    );
    println!("cargo:rustc-env=JS_POLICY_WASM={}", js_wasm.display());
    for file in ["policy.js", "package.json", "package-lock.json", "build.sh"] {
        println!("cargo:rerun-if-changed={}", js_dir.join(file).display());
    }

    guest_build::rerun_if_changed(&[
        &root.join("tests/guests"),
        // Not examples/ as a whole: examples/policies/js/node_modules is
        // large and changes with every npm install.
        &root.join("examples/policies/echo"),
        &root.join("examples/policies/moderation"),
        &root.join("examples/policies/rate-limit"),
        &root.join("guest-logic/src"),
        &root.join("guest-logic/Cargo.toml"),
        &root.join("wit"),
    ]);
}

/// `<target>/policy-examples`, beside the directory guest-build uses for
/// the other guests (`<target>/wasm`).
fn examples_target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("policy-examples");
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    out.ancestors()
        .nth(4)
        .map(|target| target.join("policy-examples"))
        .unwrap_or_else(|| out.join("policy-examples"))
}
