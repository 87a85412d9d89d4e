//! Logs that keep the service's promise: no pairing code and no full phone number in any line
//! the process writes, dependencies included.
//!
//! Two layers: a default filter that keeps dependencies (the WhatsApp client among them) at
//! `warn`, and a writer that redacts every line on its way out, whatever wrote it and at
//! whatever level `RUST_LOG` lets through.

use std::io::{self, Write};
use std::sync::LazyLock;

use regex::{Captures, Regex};
use tracing_subscriber::fmt::MakeWriter;
use wa_pairing_phone::RedactedPhone;

/// The filter used when `RUST_LOG` is not set: our own crates at `info`, everything else
/// (the WhatsApp client logs numbers and codes at `info`) at `warn`.
pub const DEFAULT_FILTER: &str = "warn,wa_pairing=info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default, for log collectors).
    Json,
    /// Human-readable lines.
    Text,
}

/// What [`redact`] looks for: a UUID (kept: device ids are not secret), a run of eight or more
/// digits (a phone number or a LID), or something shaped like a pairing code (eight
/// characters of WhatsApp's code alphabet, with or without the dash).
static SECRETS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<uuid>\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b)",
        r"|(?P<digits>[0-9]{8,})",
        r"|(?P<code>\b[1-9A-HJ-NP-TV-Z]{4}-?[1-9A-HJ-NP-TV-Z]{4}\b)",
    ))
    .unwrap_or_else(|e| unreachable!("a fixed pattern compiles: {e}"))
});

/// The location fields the `log` bridge adds to lines from crates that log through `log`
/// (the WhatsApp client): `log.file` is an absolute path on the machine that built the
/// binary, and the others repeat the line's `target`. Nothing an operator acts on.
static LOG_LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#","log\.(?:file|line|module_path|target)":(?:"(?:[^"\\]|\\.)*"|[0-9]+)"#)
        .unwrap_or_else(|e| unreachable!("a fixed pattern compiles: {e}"))
});

/// Drops the `log` bridge's location fields from a JSON log line (see [`LOG_LOCATION`]).
fn strip_log_location(text: &str) -> std::borrow::Cow<'_, str> {
    LOG_LOCATION.replace_all(text, "")
}

/// Redacts one piece of log output: runs of eight or more digits become a redacted phone
/// number (`62812****7890`), code-shaped words become `****-****`; UUIDs stay.
///
/// ```
/// use wa_pairing_service::logging::redact;
///
/// let line = r#"Pair code generated: ABCD1234 for 6281234567890@s.whatsapp.net, device 3f1c0b9e-8f7a-4c55-9c1e-3b2f0a9d8e11"#;
/// let safe = redact(line);
/// assert!(!safe.contains("ABCD1234") && !safe.contains("6281234567890"));
/// assert!(safe.contains("3f1c0b9e-8f7a-4c55-9c1e-3b2f0a9d8e11"));
/// ```
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    SECRETS.replace_all(text, |c: &Captures<'_>| {
        if let Some(u) = c.name("uuid") {
            u.as_str().to_owned()
        } else if let Some(d) = c.name("digits") {
            RedactedPhone::of_digits(d.as_str()).to_string()
        } else {
            "****-****".to_owned()
        }
    })
}

/// A [`MakeWriter`] whose writers pass everything through [`redact`].
#[derive(Debug, Clone)]
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.0.make_writer(),
            pending: Vec::new(),
        }
    }
}

/// Buffers what it is given, redacts it line by line, and writes it on; what is left of a
/// line is written when the writer is flushed or dropped (the log layer writes whole events
/// through one writer, then drops it).
#[derive(Debug)]
pub struct RedactingWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    fn emit(&mut self, upto: usize) -> io::Result<()> {
        let chunk: Vec<u8> = self.pending.drain(..upto).collect();
        let text = String::from_utf8_lossy(&chunk);
        self.inner
            .write_all(redact(&strip_log_location(&text)).as_bytes())
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last) = self.pending.iter().rposition(|b| *b == b'\n') {
            self.emit(last + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let n = self.pending.len();
        self.emit(n)?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Installs the global log subscriber writing redacted lines to standard error: `RUST_LOG`
/// filters (default [`DEFAULT_FILTER`]), `format` shapes. Panics are logged through it too
/// ([`install_panic_hook`]).
pub fn init_logging(format: LogFormat) {
    init_logging_to(format, io::stderr);
    install_panic_hook();
}

/// Sends panics through the log, redacted like every other line, instead of the standard
/// hook's unfiltered message on standard error: a panic message can hold whatever the
/// panicking code had in hand (a number, a code). The line says where it panicked; the
/// runner then ends that session like any other exit.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(log_panic));
}

fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    let location = info
        .location()
        .map(|l| format!("{}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let thread = std::thread::current();
    tracing::error!(
        thread = thread.name().unwrap_or("unnamed"),
        location = %location,
        "panic: {}",
        redact(&message)
    );
}

/// [`init_logging`] with another destination (tests capture the output this way).
pub fn init_logging_to<M>(format: LogFormat, writer: M)
where
    M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    init_logging_with(format, &filter, writer);
}

/// Installs the global log subscriber with this filter (`RUST_LOG` syntax) and destination;
/// every line is redacted. A filter that does not parse falls back to [`DEFAULT_FILTER`].
pub fn init_logging_with<M>(format: LogFormat, filter: &str, writer: M)
where
    M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Redacting(writer));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_bridges_location_fields_are_dropped() {
        let line = r#"{"level":"ERROR","message":"Failed to connect: \"x\". Will retry","log.target":"whatsapp_rust::client","log.module_path":"whatsapp_rust::client","log.file":"/root/.cargo/registry/src/x/whatsapp-rust-0.7.0/src/client/lifecycle.rs","log.line":587,"target":"whatsapp_rust::client"}"#;
        let out = strip_log_location(line);
        assert_eq!(
            out,
            r#"{"level":"ERROR","message":"Failed to connect: \"x\". Will retry","target":"whatsapp_rust::client"}"#
        );
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
        let ours = r#"{"level":"INFO","message":"service started","log_file":"kept"}"#;
        assert_eq!(strip_log_location(ours), ours);
    }

    #[test]
    fn numbers_and_codes_go_ids_and_ordinary_words_stay() {
        for (line, gone) in [
            (
                "Starting pair code authentication for phone: 6281234567890",
                "6281234567890",
            ),
            ("jid 6281234567890:12@s.whatsapp.net", "6281234567890"),
            ("lid 123456789012345@lid", "123456789012345"),
            ("Stage 1 complete. Code: ZX9K7PQ2", "ZX9K7PQ2"),
            ("code ABCD-EFGH shown", "ABCD-EFGH"),
            (r#"{"phone":"+6281234567890"}"#, "6281234567890"),
        ] {
            let out = redact(line);
            assert!(!out.contains(gone), "{line} -> {out}");
        }
        for kept in [
            "device 3f1c0b9e-8f7a-4c55-9c1e-3b2f0a9d8e11 fence 12 claimed 25 devices in 3 ms",
            "2026-12-01T16:56:56.123456Z INFO runner started change_feed=true",
            "valid_s=180 attempt=3",
        ] {
            assert_eq!(redact(kept), kept);
        }
        // A UUID whose groups are all digits is still a UUID.
        let id = "12345678-1234-1234-1234-123456789012";
        assert_eq!(redact(id), id);
    }

    #[test]
    fn the_writer_redacts_what_passes_through_it() {
        let mut out = Vec::new();
        {
            let mut w = RedactingWriter {
                inner: &mut out,
                pending: Vec::new(),
            };
            w.write_all(b"first 62812345").unwrap();
            w.write_all(b"67890 line\nsecond ABCD1234").unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("6281234567890"), "{text}");
        assert!(!text.contains("ABCD1234"), "{text}");
        assert!(
            text.starts_with("first 62812****7890 line\nsecond "),
            "{text}"
        );
    }
}
