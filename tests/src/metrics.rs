//! Scraping `/metrics` and reading one series back, as a Prometheus
//! scraper would see it.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use switchboard::ops::{AdminClient, Method};

use crate::TestServer;

/// One scrape: every series (`name{labels}` exactly as written) and its
/// value.
#[derive(Debug, Clone)]
pub struct Scraped {
    series: HashMap<String, f64>,
    /// The text itself, for failure messages.
    pub text: String,
}

impl Scraped {
    /// Read OpenMetrics text; it must end with `# EOF`.
    pub fn parse(text: &str) -> Result<Scraped> {
        if !text.trim_end().ends_with("# EOF") {
            bail!("not OpenMetrics text (no `# EOF`):\n{text}");
        }
        let mut series = HashMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name, value) = line
                .rsplit_once(' ')
                .with_context(|| format!("a series line without a value: {line}"))?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("not a number in: {line}"))?;
            series.insert(name.to_owned(), value);
        }
        Ok(Scraped {
            series,
            text: text.to_owned(),
        })
    }

    /// The value of `series` (`name` or `name{label="value",…}`), 0 when
    /// absent.
    pub fn get(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }

    /// Whether `series` is there at all.
    pub fn has(&self, series: &str) -> bool {
        self.series.contains_key(series)
    }

    /// Every series name (without labels) that has a value.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.series
            .keys()
            .map(|s| s.split('{').next().unwrap_or(s).to_owned())
            .collect()
    }
}

/// `GET /metrics` on the admin interface with `token`; it must answer 200.
pub async fn scrape(server: &TestServer, token: &str) -> Result<Scraped> {
    let (code, body) = server
        .admin(Some(token))?
        .request(Method::Get, "/metrics")
        .await
        .map_err(anyhow::Error::msg)?;
    if code != 200 {
        bail!("/metrics answered {code}: {body}");
    }
    Scraped::parse(&body)
}

/// `GET <base>/metrics` without a token: the status and the body.
pub async fn scrape_open(base: &str) -> Result<(u16, String)> {
    AdminClient::new(base, None)
        .request(Method::Get, "/metrics")
        .await
        .map_err(anyhow::Error::msg)
}
