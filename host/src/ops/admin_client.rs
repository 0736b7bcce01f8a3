//! The client side of the admin interface, for `policy swap|status|rollback`.
//! Blocking HTTP (ureq) on a blocking thread: one request per command.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::fail;
use crate::config::AdminConfig;
use crate::config::cli::AdminArgs;

/// A client of the admin interface (used by the commands and by tests).
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
}

/// An admin request's method and body.
#[derive(Debug, Clone)]
pub enum Method {
    /// GET
    Get,
    /// PUT with this body
    Put(Vec<u8>),
    /// POST without a body
    Post,
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:3002`).
    pub fn new(base: &str, token: Option<String>) -> AdminClient {
        AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The URL and token from the flags and variables, else the settings
    /// file, else the defaults; with no token given, the one the server wrote
    /// to its token file. Without a URL, the interface is where the server
    /// puts it: `SWITCHBOARD_ADMIN_LISTEN`, else the file's `[admin]
    /// listen`, else the default.
    fn from_args(args: AdminArgs) -> Result<AdminClient, String> {
        let file = crate::config::file::discover(args.config.as_deref())
            .map_err(|e| e.to_string())?
            .admin;
        let defaults = AdminConfig::default();
        let base = match (args.admin_url, args.admin_listen, file.listen) {
            (Some(url), _, _) => with_scheme(&url),
            (None, Some(listen), _) => base_for(&listen, "SWITCHBOARD_ADMIN_LISTEN")?,
            (None, None, Some(listen)) => base_for(&listen, "the settings file's [admin] listen")?,
            (None, None, None) => base_for(&defaults.listen.to_string(), "the default")?,
        };
        let token = match args.admin_token.or(file.token) {
            Some(token) => token,
            None => {
                let path = args
                    .admin_token_file
                    .or(file.token_file)
                    .unwrap_or(defaults.token_file);
                read_token_file(&path)?
            }
        };
        Ok(AdminClient::new(&base, Some(token)))
    }

    /// One request; `Ok((status, body))` for any HTTP answer, `Err` when
    /// there is no answer.
    pub async fn request(&self, method: Method, path: &str) -> Result<(u16, String), String> {
        let url = format!("{}{}", self.base, path);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(120)))
                .build()
                .into();
            let result = match method {
                Method::Get => {
                    let mut r = agent.get(&url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.call()
                }
                Method::Post => {
                    let mut r = agent.post(&url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.send_empty()
                }
                Method::Put(body) => {
                    // The server answers a refusal (401, 413) before the
                    // body, which is then not sent at all.
                    let mut r = agent
                        .put(&url)
                        .header("Content-Type", "application/wasm")
                        .header("Expect", "100-continue");
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.send(&body[..])
                }
            };
            let mut response = result.map_err(|e| format!("cannot reach {url}: {e}"))?;
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("bad answer from {url}: {e}"))?;
            Ok((status, body))
        })
        .await
        .map_err(|e| format!("request task failed: {e}"))?
    }

    /// `GET /admin/policy`
    pub async fn status(&self) -> Result<(u16, String), String> {
        self.request(Method::Get, "/admin/policy").await
    }

    /// `PUT /admin/policy?source=<name>`
    pub async fn swap(&self, bytes: Vec<u8>, name: &str) -> Result<(u16, String), String> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("source", name)
            .finish();
        self.request(Method::Put(bytes), &format!("/admin/policy?{query}"))
            .await
    }

    /// `POST /admin/policy/rollback`
    pub async fn rollback(&self) -> Result<(u16, String), String> {
        self.request(Method::Post, "/admin/policy/rollback").await
    }
}

/// `url`, with `http://` in front when it has no scheme (`127.0.0.1:3002`).
fn with_scheme(url: &str) -> String {
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

/// The URL of an interface listening on `listen` (an address as the
/// server takes it, from `source`): a server on every address (`0.0.0.0`,
/// `[::]`) is reached on loopback.
fn base_for(listen: &str, source: &str) -> Result<String, String> {
    if listen == "off" {
        return Err(format!("the admin interface is off ({source} is \"off\")"));
    }
    let mut addr: SocketAddr = listen.parse().map_err(|_| {
        format!("the admin address {listen:?} ({source}) is neither ip:port nor \"off\"")
    })?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}"))
}

/// The token a server wrote at start.
fn read_token_file(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Ok(_) => Err(format!("the admin token file {} is empty", path.display())),
        Err(e) => Err(format!(
            "no admin token: none given (--admin-token, SWITCHBOARD_ADMIN_TOKEN, [admin] token) and cannot read the token file {} the server writes at start ({e}); pass --admin-token-file if the server uses another",
            path.display()
        )),
    }
}

/// Print a successful answer, or the error message of a failed one.
fn report(answer: Result<(u16, String), String>) -> ExitCode {
    match answer {
        Ok((status, body)) if (200..300).contains(&status) => super::out(&body),
        Ok((status, body)) => {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or(body);
            fail(&format!("HTTP {status}: {}", message.trim()))
        }
        Err(e) => fail(&e),
    }
}

fn client(args: AdminArgs) -> Result<AdminClient, ExitCode> {
    AdminClient::from_args(args).map_err(|e| fail(&e))
}

pub async fn swap(file: &Path, args: AdminArgs) -> ExitCode {
    let client = match client(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return fail(&format!("cannot read {}: {e}", file.display())),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    report(client.swap(bytes, &name).await)
}

pub async fn status(args: AdminArgs) -> ExitCode {
    match client(args) {
        Ok(c) => report(c.status().await),
        Err(code) => code,
    }
}

/// `switchboard drain`: start the drain, print the answer, then (unless
/// `--no-wait`) wait until the server has exited: its admin interface no
/// longer answers.
pub async fn drain(args: crate::config::cli::DrainArgs) -> ExitCode {
    let client = match client(args.admin) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let path = match args.secs {
        Some(secs) => format!("/admin/drain?secs={secs}"),
        None => "/admin/drain".to_owned(),
    };
    let answer = client.request(Method::Post, &path).await;
    let secs = match &answer {
        Ok((status, body)) if (200..300).contains(status) => {
            serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["drain_secs"].as_u64())
                .unwrap_or(0)
        }
        _ => return report(answer),
    };
    let printed = report(answer);
    if args.no_wait || printed != ExitCode::SUCCESS {
        return printed;
    }
    // The server exits at the end of the drain; a little longer for its
    // last closes and the listener to go.
    let until = std::time::Instant::now() + Duration::from_secs(secs) + Duration::from_secs(15);
    while std::time::Instant::now() < until {
        if client.request(Method::Get, "/healthz").await.is_err() {
            return super::out("drained: the server has exited\n");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fail(&format!(
        "the server still answers {} s after the drain began",
        secs + 15
    ))
}

pub async fn rollback(args: AdminArgs) -> ExitCode {
    match client(args) {
        Ok(c) => report(c.rollback().await),
        Err(code) => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_scheme_is_http() {
        assert_eq!(with_scheme("127.0.0.1:3002"), "http://127.0.0.1:3002");
        assert_eq!(with_scheme("localhost:9"), "http://localhost:9");
        assert_eq!(with_scheme("http://[::1]:3002/"), "http://[::1]:3002/");
    }

    #[test]
    fn a_listen_address_becomes_a_url_reachable_from_here() {
        let base = |l: &str| base_for(l, "test");
        assert_eq!(base("127.0.0.1:4102").unwrap(), "http://127.0.0.1:4102");
        assert_eq!(base("0.0.0.0:4102").unwrap(), "http://127.0.0.1:4102");
        assert_eq!(base("[::]:4102").unwrap(), "http://[::1]:4102");
        assert_eq!(base("10.0.0.2:4102").unwrap(), "http://10.0.0.2:4102");
        assert!(base("off").unwrap_err().contains("off (test"));
        assert!(base("nowhere").unwrap_err().contains("neither ip:port"));
    }
}
