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

/// Every `switchboard_*` name in `expr` (a PromQL expression).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("switchboard_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The example alert rules and the Grafana dashboard (docs/OPERATIONS.md,
/// "Metrics") parse, and every metric they name is one a server serves:
/// scraped from a server in memory mode and from a cluster node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_and_the_dashboard_name_only_metrics_the_server_serves() -> Result<()> {
    use switchboard_tests::metrics::scrape;
    use switchboard_tests::{TestServer, config, with_admin};
    const TOKEN: &str = "packaging-test-token-0123456789";
    let redis = switchboard_tests::redis::RedisServer::start()?;
    let one = TestServer::start(with_admin(config(), TOKEN)).await?;
    let node = switchboard_tests::cluster::node(&redis, "a")?;
    let clustered = TestServer::start(with_admin(node, TOKEN)).await?;
    let mut served = scrape(&one, TOKEN).await?.names();
    served.extend(scrape(&clustered, TOKEN).await?.names());

    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("packaging/prometheus/switchboard-alerts.yml")?)?;
    let mut exprs = Vec::new();
    let groups = rules["groups"].as_sequence().context("no groups")?;
    for group in groups {
        for rule in group["rules"]
            .as_sequence()
            .context("a group without rules")?
        {
            let alert = rule["alert"].as_str().context("a rule without `alert`")?;
            let expr = rule["expr"].as_str().context("a rule without `expr`")?;
            ensure!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{alert}: no summary"
            );
            exprs.push((format!("alert {alert}"), expr.to_owned()));
        }
    }
    ensure!(exprs.len() >= 8, "only {} alert rules", exprs.len());

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("packaging/grafana/switchboard-dashboard.json")?)?;
    let panels = dashboard["panels"].as_array().context("no panels")?;
    ensure!(panels.len() >= 10, "only {} panels", panels.len());
    for panel in panels {
        let title = panel["title"].as_str().context("a panel without a title")?;
        for target in panel["targets"]
            .as_array()
            .context("a panel without targets")?
        {
            let expr = target["expr"].as_str().context("a target without `expr`")?;
            exprs.push((format!("panel {title:?}"), expr.to_owned()));
        }
    }

    let mut unknown = Vec::new();
    let mut named = 0;
    for (what, expr) in &exprs {
        for name in metric_names(expr) {
            named += 1;
            if !served.contains(&name) {
                unknown.push(format!("{what}: {name}"));
            }
        }
    }
    ensure!(named >= exprs.len(), "too few metrics named");
    ensure!(
        unknown.is_empty(),
        "metrics the server does not serve: {unknown:#?}\nserved: {served:#?}"
    );
    Ok(())
}
