//! Helpers shared by the exporter's integration tests: build a scraper for a database,
//! scrape it, and read sample values back out of the exposition text.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use koji_exporter::collectors::CollectorId;
use koji_exporter::config::Config;
use koji_exporter::scrape::{Format, Scraper};

/// A configuration pointing at `url` with a short scrape timeout.
pub fn config_for(url: &str, scrape_timeout: Duration) -> Config {
    let mut config = Config::default();
    config.database.url = Some(url.to_string());
    config.web.scrape_timeout = scrape_timeout;
    config.database.connect_timeout = scrape_timeout;
    config.database.pool_size = 4;
    config
}

/// A scraper running every hub collector against `url`.
pub fn hub_scraper(config: Config) -> Arc<Scraper> {
    koji_exporter::scraper(config, CollectorId::all().collect()).expect("scraper")
}

/// One sample of the exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Scrapes in OpenMetrics format and parses the samples.
pub async fn scrape(scraper: &Scraper) -> (String, Vec<Sample>) {
    let text = scraper.scrape(scraper.timeout(), Format::OpenMetrics).await;
    let samples = parse(&text);
    (text, samples)
}

/// Parses exposition text into samples, undoing label value escapes. Hand-written because
/// the tests need the exact unescaped label values (hostile host names) and the strict
/// format check is done separately by the official Python parser and promtool.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("sample has a name");
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        let mut chars = rest[1..].char_indices();
        let mut key = String::new();
        let mut consumed = 0;
        while let Some((index, c)) = chars.next() {
            match c {
                '}' => {
                    consumed = index + 2;
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'));
                    let mut value = String::new();
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(other) => value.push(other),
                                None => panic!("dangling escape in {line}"),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = &rest[consumed..];
    }
    let value = rest
        .split_whitespace()
        .next()
        .expect("sample has a value")
        .parse()
        .expect("numeric value");
    Sample {
        name,
        labels,
        value,
    }
}

/// The value of the sample `name` whose labels include all of `labels`; panics unless
/// exactly one matches.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = find(samples, name, labels);
    assert_eq!(
        matching.len(),
        1,
        "expected one {name}{labels:?}, found {matching:?}"
    );
    matching[0].value
}

/// The collectors that read the hub database.
pub const HUB_COLLECTORS: [&str; 4] = ["koji_db", "koji_hosts", "koji_tasks", "pg_stat_activity"];

/// Asserts that every hub collector succeeded in the scrape of `text`.
pub fn assert_hub_collectors_succeeded(samples: &[Sample], text: &str) {
    for collector in HUB_COLLECTORS {
        assert_eq!(
            value(
                samples,
                "koji_exporter_collector_success",
                &[("collector", collector)]
            ),
            1.0,
            "{collector} failed:\n{text}"
        );
    }
}

/// Every sample `name` whose labels include all of `labels`.
pub fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, want)| sample.labels.get(*key).map(String::as_str) == Some(*want))
        })
        .collect()
}
