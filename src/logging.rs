//! Logs through `tracing`: human text on a terminal, the systemd journal
//! when started by systemd (`JOURNAL_STREAM` is set), JSON lines with
//! `log.format = "json"`. Every event about a file carries its name and,
//! once known, its import id (the daemon's `file` span).
//!
//! One event is one line, whatever its fields hold: file names are logged
//! in their displayable form (`crate::names`), and, for every other value
//! (an error that quotes a path, say), the text format escapes control
//! characters in the message and every field ([`OneLineFields`]); JSON
//! escapes them by its own rules, and journald takes each field as a
//! length-prefixed value, so no value can start a record of its own.

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. One-shot commands log warnings only
/// (their output is the report) unless `RUST_LOG` says otherwise; the
/// daemon logs at `log.level`.
pub fn init(config: &Config, daemon: bool) {
    let level = if daemon {
        config.log_level.as_str()
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let layer: Box<dyn Layer<_> + Send + Sync> = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text if daemon && std::env::var_os("JOURNAL_STREAM").is_some() => {
            match tracing_journald::layer() {
                Ok(journald) => journald.with_syslog_identifier("stockdrop".into()).boxed(),
                Err(_) => text_layer(),
            }
        }
        LogFormat::Text => text_layer(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

fn text_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use std::io::IsTerminal;
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .fmt_fields(OneLineFields)
        .boxed()
}

/// The text format's fields (the message included), formatted as usual,
/// then with control characters escaped (`names::escape_controls`), so a
/// value with a line break in it cannot forge a log line.
pub struct OneLineFields;

impl<'writer> FormatFields<'writer> for OneLineFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut buffer = String::new();
        DefaultFields::new().format_fields(Writer::new(&mut buffer), fields)?;
        writer.write_str(&crate::names::escape_controls(&buffer))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::OneLineFields;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buffer) = self.0.lock() {
                buffer.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn no_value_can_break_a_text_line() {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(OneLineFields);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("file", file = %"a\nFORGED span");
            let _guard = span.enter();
            tracing::warn!(error = %"disk\nFORGED error", "cannot\r\nFORGED message");
        });
        let text = String::from_utf8(captured.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("a\\nFORGED span"), "{text}");
        assert!(text.contains("disk\\nFORGED error"), "{text}");
        assert!(text.contains("cannot\\r\\nFORGED message"), "{text}");
    }
}
