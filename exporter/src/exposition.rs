//! Writing a scrape out, as plain text or straight into gzip.
//!
//! A scrape is a list of [`Part`]s: families prometheus-client encodes from a registry,
//! and families that write their own text ([`WritesText`], the 16,000 per-host series of
//! a large hub, whose label text is kept between scrapes). They are written in order into
//! one sink, closed by OpenMetrics' `# EOF`.
//!
//! Prometheus asks for gzip on every scrape. Encoding into a text buffer and compressing
//! that afterwards would hold the whole uncompressed exposition (1.1 MiB at 2,000 hosts)
//! and copy it twice; here the text goes in small chunks straight into the compressor, so
//! only the compressed answer (about a sixteenth of it) is ever held. Each writer starts
//! at the size the previous answer had, so a steady exporter does not grow its buffers
//! by doubling on every scrape.

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use flate2::{Compress, CompressError, Compression, FlushCompress, Status};
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// gzip level 2 of zlib-rs: at 2,000 hosts it compresses the 1.1 MiB exposition in about
/// 0.9 ms to 71 KiB, where miniz_oxide's fastest level took 1.0 ms for 77 KiB and zlib-rs'
/// level 1 0.7 ms for 91 KiB (bench/README.md).
const GZIP_LEVEL: u32 = 2;

/// The output format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text 1.0.0, what Prometheus asks for first.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, for older scrapers and `curl`.
    PrometheusText,
}

impl Format {
    /// The `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Families that write their own exposition text, in either format, exactly as
/// prometheus-client would encode them.
pub trait WritesText: Debug + Send + Sync {
    /// Writes the families to `out` in `format`.
    fn write_text(&self, out: &mut dyn std::fmt::Write, format: Format) -> std::fmt::Result;
}

/// One part of a scrape.
#[derive(Debug)]
pub enum Part {
    /// Families prometheus-client encodes.
    Registry(Registry),
    /// Families that write their own text.
    Text(Box<dyn WritesText>),
}

/// A scrape's parts, in the order they are written.
#[derive(Debug, Default)]
pub struct Exposition {
    parts: Vec<Part>,
}

impl Exposition {
    /// Adds a part after the others.
    pub fn push(&mut self, part: Part) {
        self.parts.push(part);
    }

    /// Writes every part, then the end marker OpenMetrics asks for.
    fn write(&self, sink: &mut impl std::fmt::Write, format: Format) -> std::fmt::Result {
        for part in &self.parts {
            match (part, format) {
                (Part::Registry(registry), Format::OpenMetrics) => {
                    text::encode_registry(sink, registry)?
                }
                (Part::Registry(registry), Format::PrometheusText) => {
                    prometheus_text::encode(sink, registry)?
                }
                (Part::Text(families), _) => families.write_text(sink, format)?,
            }
        }
        match format {
            Format::OpenMetrics => text::encode_eof(sink),
            Format::PrometheusText => Ok(()),
        }
    }
}

/// Writes scrapes out, keeping for the next one the previous answers' sizes, to start
/// the next ones' buffers at, and the gzip compressor, whose state (a few hundred KiB) is
/// reset rather than allocated again: allocated anew every scrape, glibc kept those
/// blocks and more in the heap (resident memory 10 to 13 MiB instead of 8.7 at 2,000
/// hosts).
#[derive(Debug)]
pub struct ExpositionWriter {
    text: AtomicUsize,
    gzip: AtomicUsize,
    compressor: Mutex<Compress>,
}

impl Default for ExpositionWriter {
    fn default() -> Self {
        ExpositionWriter {
            text: AtomicUsize::default(),
            gzip: AtomicUsize::default(),
            compressor: Mutex::new(new_compressor()),
        }
    }
}

fn new_compressor() -> Compress {
    Compress::new_gzip(Compression::new(GZIP_LEVEL), 15)
}

/// Room left above the previous size, so a slightly larger answer does not reallocate
/// (and the compressor always finds the spare room it asks for).
fn with_room(previous: usize) -> usize {
    (previous + previous / 8 + SPARE).max(16 * 1024)
}

/// The least spare room the compressor is given to write into.
const SPARE: usize = 4096;

impl ExpositionWriter {
    /// `exposition` as text in `format`.
    pub fn text(&self, exposition: &Exposition, format: Format) -> String {
        let mut body = String::with_capacity(with_room(self.text.load(Ordering::Relaxed)));
        // Writing to memory cannot fail; an error would be a bug in a label set.
        exposition
            .write(&mut body, format)
            .expect("encoding metrics into a String");
        self.text.store(body.len(), Ordering::Relaxed);
        body
    }

    /// `exposition` as text in `format`, compressed with gzip at [`GZIP_LEVEL`].
    pub fn gzip(&self, exposition: &Exposition, format: Format) -> Vec<u8> {
        // The one runtime thread never finds it taken; a caller on another thread may.
        let mut kept = self.compressor.try_lock();
        let mut own = None;
        let compressor = match kept.as_deref_mut() {
            Ok(compressor) => {
                compressor.reset();
                compressor
            }
            Err(_) => own.insert(new_compressor()),
        };
        let mut sink = GzipSink {
            compressor,
            body: Vec::with_capacity(with_room(self.gzip.load(Ordering::Relaxed))),
        };
        exposition
            .write(&mut sink, format)
            .expect("compressing metrics into memory");
        sink.run(&[], FlushCompress::Finish)
            .expect("compressing metrics into memory");
        self.gzip.store(sink.body.len(), Ordering::Relaxed);
        sink.body
    }
}

/// The text, in the chunks its writers flush, into the compressor.
struct GzipSink<'a> {
    compressor: &'a mut Compress,
    body: Vec<u8>,
}

impl GzipSink<'_> {
    /// Compresses `input`; with [`FlushCompress::Finish`], until the stream is complete.
    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> Result<(), CompressError> {
        loop {
            // compress_vec writes only into spare capacity.
            if self.body.capacity() - self.body.len() < SPARE {
                self.body.reserve(self.body.len().max(16 * 1024));
            }
            let before = self.compressor.total_in();
            let status = self.compressor.compress_vec(input, &mut self.body, flush)?;
            let consumed = usize::try_from(self.compressor.total_in() - before)
                .expect("consumed at most the input");
            input = &input[consumed..];
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => input.is_empty(),
            };
            if done {
                return Ok(());
            }
        }
    }
}

impl std::fmt::Write for GzipSink<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.run(text.as_bytes(), FlushCompress::None)
            .map_err(|_| std::fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric_families::Gauges;
    use std::io::Read;

    fn exposition(hosts: usize) -> Exposition {
        let mut gauges = Gauges::new("koji_host_capacity", "Capacity.");
        for n in 0..hosts {
            gauges.push([("host", format!("buildvm-{n:04}.example.org"))], 2.0);
        }
        let mut registry = Registry::default();
        registry.register_collector(gauges.boxed());
        let mut exposition = Exposition::default();
        exposition.push(Part::Registry(registry));
        let mut more = Registry::default();
        more.register_collector(Gauges::single("koji_db_up", "Up.", 1.0));
        exposition.push(Part::Registry(more));
        exposition
    }

    #[test]
    fn gzip_decompresses_to_the_text_in_both_formats() {
        let writer = ExpositionWriter::default();
        // Large, small, large again: the kept compressor starts afresh every time.
        for (hosts, format) in [
            (3000, Format::OpenMetrics),
            (10, Format::OpenMetrics),
            (3000, Format::PrometheusText),
            (3000, Format::OpenMetrics),
        ] {
            let exposition = exposition(hosts);
            let text = writer.text(&exposition, format);
            let compressed = writer.gzip(&exposition, format);
            let mut decompressed = String::new();
            flate2::read::GzDecoder::new(&compressed[..])
                .read_to_string(&mut decompressed)
                .unwrap();
            assert_eq!(decompressed, text);
            let last = format!("{{host=\"buildvm-{:04}.example.org\"}} 2.0\n", hosts - 1);
            assert!(text.contains(&last));
            // Parts in order, one end marker after the last.
            assert!(text.contains("example.org\"} 2.0\n# HELP koji_db_up Up.\n"));
            assert_eq!(
                text.matches("# EOF").count(),
                usize::from(format == Format::OpenMetrics)
            );
            assert_eq!(text.ends_with("# EOF\n"), format == Format::OpenMetrics);
            if hosts == 3000 {
                assert!(compressed.len() * 10 < text.len(), "{}", compressed.len());
            }
        }
    }

    #[test]
    fn buffers_start_at_the_previous_size() {
        let exposition = exposition(3000);
        let writer = ExpositionWriter::default();
        let first = writer.text(&exposition, Format::OpenMetrics);
        let second = writer.text(&exposition, Format::OpenMetrics);
        assert_eq!(second, first);
        assert_eq!(second.capacity(), with_room(first.len()));
        let compressed = writer.gzip(&exposition, Format::OpenMetrics);
        let again = writer.gzip(&exposition, Format::OpenMetrics);
        assert_eq!(again, compressed);
        assert_eq!(again.capacity(), with_room(compressed.len()));
    }
}
