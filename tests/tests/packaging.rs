//! Packaging (issue 22, section 7): the systemd unit, the Dockerfile and
//! the license files of the repository. The unit is checked for what the
//! operations guide relies on, and by `systemd-analyze verify` where it
//! exists; the Dockerfile is checked for its stages and its user, and
//! built where a Docker daemon answers (the test says when none does).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(root().join(path)).with_context(|| format!("reading {path}"))
}

#[test]
fn the_systemd_unit_has_what_the_operations_guide_relies_on() -> Result<()> {
    let unit = read("packaging/switchboard.service")?;
    let service = unit
        .split("[Service]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .context("no [Service] section")?;
    let lines: Vec<&str> = service.lines().map(str::trim).collect();
    for want in [
        "User=switchboard",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WorkingDirectory=/var/lib/switchboard",
    ] {
        ensure!(lines.contains(&want), "the unit has no `{want}`");
    }
    let nofile = lines
        .iter()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .context("the unit has no LimitNOFILE=")?;
    ensure!(
        nofile.parse::<u64>().is_ok_and(|n| n >= 65_536),
        "LimitNOFILE={nofile} is too low for a chat server"
    );
    ensure!(unit.contains("[Install]") && unit.contains("WantedBy=multi-user.target"));

    // systemd's own parser, where there is one: no key it does not know,
    // nothing it cannot parse (the binary and the user need not exist).
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(root().join("packaging/switchboard.service"))
        .output()
    {
        Ok(out) => {
            let said = String::from_utf8_lossy(&out.stderr);
            for line in said.lines() {
                ensure!(
                    !line.contains("Unknown key")
                        && !line.contains("Failed to parse")
                        && !line.contains("Unknown section")
                        && !line.contains("Invalid"),
                    "systemd-analyze: {line}"
                );
            }
        }
        Err(e) => {
            eprintln!("systemd-analyze not run ({e}): the unit's syntax was checked here only")
        }
    }
    Ok(())
}

#[test]
fn the_dockerfile_builds_then_runs_the_binary_alone_as_non_root() -> Result<()> {
    let dockerfile = read("Dockerfile")?;
    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    ensure!(
        stages.len() == 2,
        "two stages: build, run ({} found)",
        stages.len()
    );
    let run = stages[1];
    let copies: Vec<&str> = run
        .lines()
        .filter(|l| l.starts_with("COPY") || l.starts_with("ADD"))
        .collect();
    ensure!(
        copies == ["COPY --from=build /switchboard /switchboard"],
        "the final image takes the binary alone: {copies:?}"
    );
    let user = run
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .context("the final stage sets no USER")?;
    ensure!(
        !user.starts_with("root") && !user.starts_with('0'),
        "USER {user}"
    );
    ensure!(run.contains("ENTRYPOINT [\"/switchboard\"]"));

    let daemon = Command::new("docker").arg("info").output();
    match daemon {
        Ok(out) if out.status.success() => {
            let built = Command::new("docker")
                .args(["build", "-t", "switchboard-test", "."])
                .current_dir(root())
                .status()?;
            ensure!(built.success(), "docker build failed");
            let version = Command::new("docker")
                .args(["run", "--rm", "switchboard-test", "--version"])
                .output()?;
            ensure!(
                version.status.success()
                    && String::from_utf8_lossy(&version.stdout).contains("switchboard"),
                "the image does not run: {version:?}"
            );
        }
        Ok(out) => eprintln!(
            "Docker is not available here (`docker info`: {}): the Dockerfile was checked, not built",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => {
            eprintln!("Docker is not installed here ({e}): the Dockerfile was checked, not built")
        }
    }
    Ok(())
}

#[test]
fn the_license_files_say_what_cargo_toml_says() -> Result<()> {
    let cargo = read("Cargo.toml")?;
    ensure!(cargo.contains("license = \"MIT OR Apache-2.0\""));
    let license = read("LICENSE")?;
    ensure!(license.contains("LICENSE-APACHE") && license.contains("LICENSE-MIT"));
    ensure!(read("LICENSE-APACHE")?.contains("Apache License"));
    ensure!(read("LICENSE-MIT")?.contains("Permission is hereby granted"));
    Ok(())
}
