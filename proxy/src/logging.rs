//! Log output: tracing-subscriber, plain or JSON, filtered by `log.level`; and [`Escaped`], how
//! text from the wire is shown to people.
//!
//! Text from the wire (a `client.id`, a group or topic name) reaches the log and the terminal.
//! The plain format escapes every control character in every field and message, so a
//! `client.id` holding `\n` cannot forge a log line and one holding `ESC [` cannot drive the
//! reader's terminal. The JSON format's encoder escapes the C0 controls; its lines are then
//! written with DEL, the C1 controls, the line separators and the bidi overrides as `\uXXXX`
//! escapes too ([`JsonEscaping`]), so a JSON log shown on a terminal is as safe; a JSON parser
//! reads back the same strings.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use sluice_config::{LogConfig, LogFormat};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, FormatFields};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Logs go to stderr; stdout stays for command output.
pub fn init(config: &LogConfig) {
    // The level was validated with the config; fall back to `info` only if that changes.
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let result = match config.format {
        LogFormat::Plain => plain(filter, std::io::stderr, ansi).try_init().is_ok(),
        LogFormat::Json => json(filter, || JsonEscaping(std::io::stderr()))
            .try_init()
            .is_ok(),
    };
    if !result {
        // A subscriber is already installed (tests, embedding): keep it.
    }
}

/// The plain subscriber: one line per event, every field escaped (see [`Escaped`]).
pub fn plain<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false)
        .fmt_fields(escaping_fields())
        .finish()
}

/// The JSON subscriber: one object per event, event fields flattened, the current span's
/// fields under `span`. Give it a [`JsonEscaping`] writer.
pub fn json<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .finish()
}

/// Writes JSON log lines with the characters [`needs_escape`] picks, beyond the C0 controls
/// the encoder already escaped, as `\uXXXX` escapes. JSON's structure is ASCII, so those
/// characters can only be inside strings, where the escape reads back as the same character.
#[derive(Debug)]
pub struct JsonEscaping<W>(pub W);

impl<W: std::io::Write> std::io::Write for JsonEscaping<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // The formatter writes each line whole; a part that is not UTF-8 on its own is
        // written as it is.
        let Ok(text) = std::str::from_utf8(buf) else {
            return self.0.write_all(buf);
        };
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if u32::from(c) < 0x20 || !needs_escape(c) {
                continue;
            }
            self.0.write_all(&buf[start..i])?;
            write!(self.0, "\\u{:04x}", u32::from(c))?;
            start = i + c.len_utf8();
        }
        self.0.write_all(&buf[start..])
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Fields as the default plain format writes them (`message`, then `name=value`), with every
/// value escaped. A `%` field is written with its `Display`, a `?` or string field with its
/// `Debug`; either way what reaches the line is escaped.
fn escaping_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    format::debug_fn(|w, field, value| {
        let mut out = EscapeWriter(w);
        if field.name() == "message" {
            write!(out, "{value:?}")
        } else {
            write!(out, "{}={value:?}", field.name())
        }
    })
    .delimited(" ")
}

/// Shows text from the wire with its control characters escaped: C0 controls as `\n`, `\r`,
/// `\t` or `\x1b`, DEL as `\x7f`, C1 controls as `\u{9b}`, and the Unicode line separators
/// and bidirectional overrides (which reorder what a reader sees) as `\u{202e}`. Everything
/// else, backslashes included, is shown as is.
///
/// ```
/// use sluice::logging::Escaped;
/// assert_eq!(Escaped("a\nb\x1b[2J").to_string(), r"a\nb\x1b[2J");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapeWriter(f), "{}", self.0)
    }
}

/// Whether `c` is shown escaped.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes what it is given with control characters escaped.
struct EscapeWriter<W>(W);

impl<W: fmt::Write> fmt::Write for EscapeWriter<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            self.0.write_str(&s[start..i])?;
            match c {
                '\n' => self.0.write_str(r"\n")?,
                '\r' => self.0.write_str(r"\r")?,
                '\t' => self.0.write_str(r"\t")?,
                c if c.is_ascii() => write!(self.0, "\\x{:02x}", u32::from(c))?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            start = i + c.len_utf8();
        }
        self.0.write_str(&s[start..])
    }
}

/// What `emit` logs at `info` and above in the plain format (for tests).
#[cfg(test)]
pub(crate) fn logged(emit: impl FnOnce()) -> String {
    logged_as(LogFormat::Plain, emit)
}

/// What `emit` logs at `info` and above in this format (for tests).
#[cfg(test)]
pub(crate) fn logged_as(format: LogFormat, emit: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};

    /// A writer the subscriber appends to, read back by the test.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let out = Capture::default();
    let w = out.clone();
    // While only one subscriber is registered, tracing-core takes a callsite's interest from
    // the subscriber of the thread that first reaches it: a callsite first reached on another
    // test's thread (none there) while this one is set caches "never", and its events here are
    // lost. A second subscriber registered for the whole process makes it ask every live one.
    static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    match format {
        LogFormat::Plain => {
            let subscriber = plain(EnvFilter::new("info"), move || w.clone(), false);
            tracing::subscriber::with_default(subscriber, emit);
        }
        LogFormat::Json => {
            let subscriber = json(EnvFilter::new("info"), move || JsonEscaping(w.clone()));
            tracing::subscriber::with_default(subscriber, emit);
        }
    }
    let bytes = out.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = "evil\nlevel=ERROR forged\x1b[2J\u{9b}31m\u{202e}\x7f";
    const SHOWN: &str = r"evil\nlevel=ERROR forged\x1b[2J\u{9b}31m\u{202e}\x7f";

    #[test]
    fn escapes_controls_and_keeps_the_rest() {
        assert_eq!(Escaped(EVIL).to_string(), SHOWN);
        assert_eq!(Escaped("plain käse / \\n").to_string(), "plain käse / \\n");
        assert_eq!(Escaped("\t\r\0").to_string(), r"\t\r\x00");
    }

    #[test]
    fn wire_text_in_any_field_or_span_stays_on_one_line() {
        let text = logged(|| {
            let span = tracing::info_span!("conn", client.id = %EVIL);
            let _in = span.enter();
            tracing::warn!(key = %EVIL, group = EVIL, debug = ?EVIL, "raised {}", EVIL);
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.trim_end().chars().any(needs_escape), "{text:?}");
        assert!(text.contains(&format!("raised {SHOWN}")), "{text}");
        assert!(text.contains(&format!("key={SHOWN}")), "{text}");
        assert!(text.contains(&format!("client.id={SHOWN}")), "{text}");
    }

    #[test]
    fn json_lines_escape_every_control_and_read_back_the_same() {
        let text = logged_as(LogFormat::Json, || {
            let span = tracing::info_span!("conn", client.id = %EVIL);
            let _in = span.enter();
            tracing::warn!(key = %EVIL, "raised {}", EVIL);
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        let line = text.trim_end_matches('\n');
        assert!(!line.chars().any(needs_escape), "{line:?}");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["key"], EVIL);
        assert_eq!(v["span"]["client.id"], EVIL);
        assert_eq!(v["message"], format!("raised {EVIL}"));
    }
}
