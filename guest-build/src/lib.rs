//! Used from build scripts (host/build.rs, tests/build.rs) to compile a guest
//! crate to a WebAssembly component, so that `cargo build` alone produces a
//! binary with its default policy embedded and tests get real components.
//!
//! The nested cargo gets its own target directory: it never waits on the lock
//! the outer cargo holds, and repeated builds are incremental.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target guests are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Build `package` (whose manifest is `manifest`) for wasm32-wasip2 with the
/// workspace's `guest` profile and return the path of the `.wasm` component.
/// Panics with a readable message on failure: this only runs in build scripts.
pub fn build_component(manifest: &Path, package: &str) -> PathBuf {
    check_target_installed();
    let target_dir = wasm_target_dir();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .args([
            "--package",
            package,
            "--target",
            TARGET,
            "--profile",
            "guest",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // Flags meant for the native build (clippy's wrapper, -C target-cpu=native,
    // coverage instrumentation…) must not leak into the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build guest `{package}`: {e}"));
    if !status.success() {
        panic!("building guest `{package}` for {TARGET} failed ({status}); see the errors above");
    }
    let file = format!("{}.wasm", package.replace('-', "_"));
    let wasm = target_dir.join(TARGET).join("guest").join(file);
    if !wasm.is_file() {
        panic!("guest `{package}` built but {} is missing", wasm.display());
    }
    wasm
}

/// Tell cargo to re-run the build script when anything under these paths
/// changes (the nested cargo decides what actually needs rebuilding).
pub fn rerun_if_changed(paths: &[&Path]) {
    for p in paths {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

/// Where guest builds go: beside the outer build's target directory.
fn wasm_target_dir() -> PathBuf {
    if let Ok(dir) = env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("wasm");
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    out.ancestors()
        .nth(4)
        .map(|target| target.join("wasm"))
        .unwrap_or_else(|| out.join("wasm"))
}

fn check_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    if let Some(sysroot) = sysroot
        && !sysroot.join("lib/rustlib").join(TARGET).is_dir()
    {
        panic!(
            "the {TARGET} Rust target is not installed; run `rustup target add {TARGET}` \
             (`make run` and `make test` do this for you)"
        );
    }
}
