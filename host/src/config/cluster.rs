//! `[cluster]`: several nodes on one Redis. Its URL (the password kept out
//! of `Debug`, `Display` and every error), and the prefix of every key and
//! channel of one deployment. This node's id is beside them in
//! [`Config`](crate::config::Config) (`node.rs`): it exists without a
//! cluster too.

use std::fmt;
use std::net::Ipv6Addr;

/// The prefix when none is given.
pub const DEFAULT_PREFIX: &str = "switchboard";

/// The port when the URL names none (Redis's own).
const DEFAULT_PORT: u16 = 6379;

/// The longest prefix: it is repeated in every key.
const MAX_PREFIX: usize = 64;

/// How errors name the URL setting. Errors never repeat the URL or a part
/// of it: a password with an unescaped `/` or `@` would end up in what is
/// taken for the host, port or database.
const URL_SETTING: &str = "the cluster URL (--cluster, SWITCHBOARD_CLUSTER, [cluster] url)";

/// Where the nodes of a cluster meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The Redis server every node uses.
    pub url: RedisUrl,
    /// What every key and channel of this deployment starts with: PUB/SUB
    /// ignores the database number, so two deployments on one Redis are
    /// kept apart by this, not by `/DB`.
    pub prefix: ClusterPrefix,
}

impl ClusterConfig {
    /// `url` with the default prefix.
    pub fn new(url: RedisUrl) -> ClusterConfig {
        ClusterConfig {
            url,
            prefix: ClusterPrefix::default(),
        }
    }
}

/// `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://…` for TLS.
/// `HOST` is a name, an IPv4 address or `[IPv6]`; `PORT` defaults to 6379
/// and `DB` to 0.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// As given, password included: what the Redis client connects with.
    text: String,
    /// `rediss://`.
    tls: bool,
    /// Without brackets for IPv6.
    host: String,
    port: u16,
    db: u32,
    /// As written (percent-encoded); `None` when empty.
    username: Option<String>,
    /// Whether the URL carries a password (it is only in `text`).
    has_password: bool,
}

impl RedisUrl {
    /// Parse and check `text`; the error names the setting and what is
    /// wrong, never the URL.
    pub fn parse(text: &str) -> Result<RedisUrl, String> {
        let bad = |what: &str| format!("{URL_SETTING} {what} (e.g. redis://127.0.0.1:6379/0)");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("must start with redis:// or rediss://"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "redis" => false,
            "rediss" => true,
            _ => {
                return Err(bad(&format!(
                    "must start with redis:// or rediss://, not {scheme}://"
                )));
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (username, has_password) = match userinfo {
            None => ("", false),
            Some(info) => match info.split_once(':') {
                Some((user, _)) => (user, true),
                None => (info, false),
            },
        };
        let (host, port) = split_host_port(hostport).map_err(&bad)?;
        let db = match tail {
            "" | "/" => 0,
            _ if tail.contains(['?', '#']) => {
                return Err(bad("takes no ?query or #fragment"));
            }
            _ => tail[1..]
                .parse::<u32>()
                .ok()
                .filter(|_| tail[1..].bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad("must end with /DB, a database number"))?,
        };
        Ok(RedisUrl {
            text: text.to_owned(),
            tls,
            host: host.to_owned(),
            port,
            db,
            username: (!username.is_empty()).then(|| username.to_owned()),
            has_password,
        })
    }

    /// The URL with its password, for the Redis client alone: never log it.
    pub fn secret_url(&self) -> &str {
        &self.text
    }

    /// Whether the connection is TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The host (an IPv6 address without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database number (which PUB/SUB ignores: see the prefix).
    pub fn db(&self) -> u32 {
        self.db
    }

    /// The ACL user, as written in the URL.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Whether the URL carries a password.
    pub fn has_password(&self) -> bool {
        self.has_password
    }
}

/// `HOST[:PORT]` → the host (without IPv6 brackets) and the port.
fn split_host_port(text: &str) -> Result<(&str, u16), &'static str> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("has an unclosed [ in its host")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err("has no IPv6 address between [ and ]");
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("has text after its ]")?),
            ),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && (text.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    if !host_ok {
        return Err("must name a host (a name or an address)");
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0 && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or("must have a port 1-65535 after the host's :")?,
    };
    Ok((host, port))
}

/// The URL with its password shown as `***`, as logs and `Debug` show it.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        write!(f, "{scheme}://")?;
        match (&self.username, self.has_password) {
            (None, false) => {}
            (user, true) => write!(f, "{}:***@", user.as_deref().unwrap_or(""))?,
            (Some(user), false) => write!(f, "{user}@")?,
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        write!(f, ":{}/{}", self.port, self.db)
    }
}

/// Never the password.
impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// What every key and channel of one deployment starts with: 1-64 of
/// `A-Z a-z 0-9 _ . - :`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPrefix(String);

impl ClusterPrefix {
    /// `text`, if it is a valid prefix; the error names the setting.
    pub fn parse(text: &str) -> Result<ClusterPrefix, String> {
        let valid = (1..=MAX_PREFIX).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'));
        if !valid {
            return Err(format!(
                "the cluster prefix (--cluster-prefix, [cluster] prefix) must be 1-{MAX_PREFIX} of A-Z a-z 0-9 _ . - :, not {text:?}"
            ));
        }
        Ok(ClusterPrefix(text.to_owned()))
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClusterPrefix {
    fn default() -> Self {
        ClusterPrefix(DEFAULT_PREFIX.to_owned())
    }
}

impl fmt::Display for ClusterPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> RedisUrl {
        RedisUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn urls_parse_into_their_parts() {
        let u = url("redis://127.0.0.1:6380/2");
        assert_eq!(
            (u.tls(), u.host(), u.port(), u.db()),
            (false, "127.0.0.1", 6380, 2)
        );
        assert_eq!(u.to_string(), "redis://127.0.0.1:6380/2");
        let u = url("rediss://redis.example.com");
        assert_eq!((u.tls(), u.port(), u.db()), (true, 6379, 0));
        assert_eq!(u.to_string(), "rediss://redis.example.com:6379/0");
        let u = url("redis://[::1]:7000/");
        assert_eq!((u.host(), u.port(), u.db()), ("::1", 7000, 0));
        assert_eq!(u.to_string(), "redis://[::1]:7000/0");
        assert_eq!(url("REDIS://h:1/15").db(), 15);
    }

    #[test]
    fn the_password_is_kept_but_never_shown() {
        for (text, shown) in [
            ("redis://:s3cret@h:6379/1", "redis://:***@h:6379/1"),
            ("rediss://app:s3cret@h/0", "rediss://app:***@h:6379/0"),
            ("redis://:s3@cr@et@h:6379/1", "redis://:***@h:6379/1"),
        ] {
            let u = url(text);
            assert!(u.has_password());
            assert_eq!(u.to_string(), shown);
            assert_eq!(format!("{u:?}"), format!("RedisUrl({shown})"));
            let config = ClusterConfig::new(u.clone());
            assert!(!format!("{config:?}").contains("s3"), "{config:?}");
            assert_eq!(u.secret_url(), text);
        }
        let u = url("redis://app@h:1/0");
        assert_eq!((u.username(), u.has_password()), (Some("app"), false));
        assert_eq!(u.to_string(), "redis://app@h:1/0");
    }

    #[test]
    fn bad_urls_are_refused_naming_the_setting_and_not_the_password() {
        for (text, why) in [
            ("127.0.0.1:6379", "redis:// or rediss://"),
            ("http://h:6379/0", "not http://"),
            ("redis://", "name a host"),
            ("redis://:6379/0", "name a host"),
            ("redis://h h:1/0", "name a host"),
            ("redis://h:port/0", "port 1-65535"),
            ("redis://h:0/0", "port 1-65535"),
            ("redis://h:70000/0", "port 1-65535"),
            ("redis://h:/0", "port 1-65535"),
            ("redis://h:1/db0", "database number"),
            ("redis://h:1/-1", "database number"),
            ("redis://h:1/0/1", "database number"),
            ("redis://h:1/0?protocol=resp3", "no ?query"),
            ("redis://[::1:1/0", "unclosed ["),
            ("redis://[nope]:1/0", "IPv6"),
            ("redis://:pw/secret@h:1/0", "name a host"),
            ("redis://:pw@h:secret/0", "port"),
        ] {
            let err = RedisUrl::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("--cluster"), "{text}: {err}");
            assert!(!err.contains("secret") && !err.contains("pw"), "{err}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(ClusterPrefix::default().as_str(), "switchboard");
        for good in ["sb", "prod:eu-1.chat_", &"p".repeat(64)] {
            assert_eq!(ClusterPrefix::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "a b", "a/b", "{tag}", &"p".repeat(65)] {
            let err = ClusterPrefix::parse(bad).unwrap_err();
            assert!(err.contains("--cluster-prefix"), "{err}");
        }
    }
}
