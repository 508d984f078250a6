//! File names as senders make them, and the names stockdrop derives from
//! them (docs/file-names.md).
//!
//! A name in the inbox is whatever bytes the sender's filesystem accepted:
//! not always UTF-8 (a Latin-1 `Caf\xe9.csv` from an old client), perhaps
//! with a newline or a terminal escape in it, up to 255 bytes long. Before
//! such a name is shown anywhere (a log line, a systemd notification, a
//! report, the store's `file` column) or names anything stockdrop writes,
//! it goes through [`display`]: valid UTF-8 stays as it is, and every byte
//! that is not valid UTF-8, every control or invisible formatting character
//! (newlines, escapes, bidirectional overrides) and the escape character
//! `%` itself become `%XX` (the byte in hex). The form is lossless: two
//! different raw names never give the same form, and [`raw`] gives the
//! bytes back.
//!
//! Names stockdrop derives (claimed, archived, report names) add prefixes
//! and suffixes, so [`shorten`] cuts the displayable form to fit `NAME_MAX`,
//! keeping the extension and a hash of the whole name, so two shortened
//! names never clash.
//!
//! [`escape_controls`] is for text that is not a name (an error message, a
//! status line): it makes anything single-line, for log and notification
//! formats where a line break would start a record of its own.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use sha2::{Digest, Sha256};

/// The longest file name (in bytes) Linux filesystems accept.
pub const NAME_MAX: usize = 255;

/// The escape character of [`display`].
const ESCAPE: char = '%';

/// An extension longer than this is not kept apart when a name is
/// shortened (it is then just part of the name).
const LONGEST_EXTENSION: usize = 16;

/// Characters that are valid UTF-8 but must not be shown as they are:
/// controls (C0, DEL, C1) end or forge lines and drive terminals; format
/// characters reorder (bidirectional overrides, which can make `exe.csv`
/// look like `vsc.exe`) or hide text, and U+2028/U+2029 break lines in
/// some viewers.
fn must_escape(c: char) -> bool {
    c == ESCAPE
        || c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

fn push_escaped(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{ESCAPE}{b:02X}");
    }
}

/// The lossless, displayable form of a raw name (see the module doc).
pub fn display(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if must_escape(c) {
                let mut buffer = [0u8; 4];
                push_escaped(&mut out, c.encode_utf8(&mut buffer).as_bytes());
            } else {
                out.push(c);
            }
        }
        push_escaped(&mut out, chunk.invalid());
    }
    out
}

/// Whether `text` could be a displayable form: nothing in it that
/// [`display`] escapes, other than `%` (which a displayable form holds
/// only as the start of an escape).
pub fn is_displayable(text: &str) -> bool {
    !text.chars().any(|c| c != ESCAPE && must_escape(c))
}

/// [`display`] of a name as the filesystem gives it.
pub fn display_os(raw: &OsStr) -> String {
    display(raw.as_bytes())
}

/// The raw bytes a displayable form stands for: the inverse of
/// [`display`]. A `%` not followed by two hex digits (which `display`
/// never writes) is taken literally.
pub fn raw(shown: &str) -> Vec<u8> {
    let bytes = shown.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == ESCAPE as u8 {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// [`raw`] as a name to give the filesystem.
pub fn raw_os(shown: &str) -> OsString {
    OsString::from_vec(raw(shown))
}

/// `shown` cut to at most `room` bytes: unchanged when it fits; otherwise
/// the start of its stem, `~` and 8 hex digits of the SHA-256 of the whole
/// name (so names that share a long start stay distinct), then its
/// extension. Cut on a character boundary and never inside a `%XX` escape.
pub fn shorten(shown: &str, room: usize) -> String {
    if shown.len() <= room {
        return shown.to_string();
    }
    let digest = Sha256::digest(shown.as_bytes());
    let tag = format!(
        "~{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    );
    let (stem, extension) = match shown.rfind('.') {
        Some(dot) if dot > 0 && shown.len() - dot <= LONGEST_EXTENSION => shown.split_at(dot),
        _ => (shown, ""),
    };
    let (tag, extension) = if tag.len() + extension.len() <= room {
        (tag.as_str(), extension)
    } else if tag.len() <= room {
        (tag.as_str(), "")
    } else {
        ("", "")
    };
    let keep = room - tag.len() - extension.len();
    let mut out = String::with_capacity(room);
    out.push_str(&stem[..cut_point(stem, keep)]);
    out.push_str(tag);
    out.push_str(extension);
    out
}

/// The largest index ≤ `max` that ends a whole character and no `%XX`
/// escape is split by.
fn cut_point(text: &str, max: usize) -> usize {
    let bytes = text.as_bytes();
    let mut end = 0;
    let mut i = 0;
    while i < bytes.len() {
        let unit = if bytes[i] == ESCAPE as u8
            && bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        {
            3
        } else {
            text[i..].chars().next().map_or(1, char::len_utf8)
        };
        if i + unit > max {
            break;
        }
        i += unit;
        end = i;
    }
    end
}

/// Text made single-line for a log line or a notification: control and
/// invisible formatting characters become Rust-style escapes (`\n`, `\r`,
/// `\t`, `\u{1b}`). Not lossless (names are, through [`display`], before
/// they get here): it only guarantees that one record stays one line.
/// Borrowed when nothing needed escaping (the usual case).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let needs = |c: char| c != '%' && must_escape(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A displayable name as one relative URL path segment (a link in an HTML
/// page): every byte but letters, digits and `-._~` percent-encoded, so
/// the `%` of [`display`] (and a `#`, `?` or space) reaches the server as
/// itself.
pub fn url_segment(shown: &str) -> String {
    let mut out = String::with_capacity(shown.len());
    for &b in shown.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_shown_as_they_are() {
        for name in [
            "store11.csv",
            "Café Ünïcode.xlsx",
            "a b (1).csv",
            "東京.csv",
        ] {
            assert_eq!(display(name.as_bytes()), name);
            assert_eq!(raw(name), name.as_bytes());
        }
    }

    #[test]
    fn odd_bytes_controls_and_the_escape_are_escaped() {
        assert_eq!(display(b"Caf\xe9.csv"), "Caf%E9.csv");
        assert_eq!(display(b"line\nbreak.csv"), "line%0Abreak.csv");
        assert_eq!(display(b"50%.csv"), "50%25.csv");
        assert_eq!(display(b"\x1b[31mred.csv"), "%1B[31mred.csv");
        assert_eq!(display("a\u{202E}vsc.exe".as_bytes()), "a%E2%80%AEvsc.exe");
        assert_eq!(display("\u{85}x".as_bytes()), "%C2%85x");
    }

    #[test]
    fn the_form_is_lossless() {
        let names: &[&[u8]] = &[
            b"Caf\xe9.csv",
            b"Caf%E9.csv",
            b"Caf%25E9.csv",
            b"%",
            b"%%",
            b"%2",
            b"x\nWATCHDOG_USEC=1\nERRNO=12\ny.csv",
            b"\xff\xfe\x00",
            "é".as_bytes(),
        ];
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let shown = display(name);
            assert_eq!(raw(&shown), *name, "{shown}");
            assert!(seen.insert(shown.clone()), "{shown} twice");
            assert!(!shown.chars().any(char::is_control), "{shown}");
        }
    }

    #[test]
    fn every_byte_string_round_trips() {
        // Every one- and two-byte name.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let name = [a, b];
                assert_eq!(raw(&display(&name)), name);
                assert_eq!(raw(&display(&name[..1])), name[..1]);
            }
        }
    }

    #[test]
    fn displayable_forms_are_recognised() {
        assert!(is_displayable(&display(b"Caf\xe9\n50%.csv")));
        assert!(!is_displayable("line\nbreak.csv"));
    }

    proptest::proptest! {
        #[test]
        fn any_name_round_trips_and_shows_no_control(raw_name in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let shown = display(&raw_name);
            proptest::prop_assert_eq!(raw(&shown), raw_name);
            proptest::prop_assert!(is_displayable(&shown));
            proptest::prop_assert!(!shown.chars().any(char::is_control));
        }

        #[test]
        fn any_shortened_name_fits(raw_name in proptest::collection::vec(proptest::num::u8::ANY, 0..300), room in 0usize..260) {
            let shown = display(&raw_name);
            let short = shorten(&shown, room);
            proptest::prop_assert!(short.len() <= room);
            if shown.len() <= room {
                proptest::prop_assert_eq!(short, shown);
            }
        }
    }

    #[test]
    fn short_names_are_not_shortened() {
        assert_eq!(shorten("store11.csv", 11), "store11.csv");
    }

    #[test]
    fn long_names_keep_start_extension_and_stay_distinct() {
        let a = format!("{}A.csv", "x".repeat(300));
        let b = format!("{}B.csv", "x".repeat(300));
        let short_a = shorten(&a, 100);
        let short_b = shorten(&b, 100);
        assert_eq!(short_a.len(), 100);
        assert!(
            short_a.ends_with(".csv") && short_a.starts_with("xxxx"),
            "{short_a}"
        );
        assert_ne!(short_a, short_b);
        assert_eq!(shorten(&a, 100), short_a, "deterministic");
    }

    #[test]
    fn cuts_fall_on_characters_and_whole_escapes() {
        let name = format!("{}.csv", "é%E9".repeat(100));
        for room in 20..60 {
            let short = shorten(&name, room);
            assert!(short.len() <= room, "{room}: {short}");
            let stem = short.split('~').next().unwrap_or_default();
            assert!(
                !stem.ends_with('%') && !stem.ends_with("%E"),
                "{room}: {short}"
            );
        }
        // No room for the extension or even the tag.
        assert!(shorten(&name, 5).len() <= 5);
        assert_eq!(shorten(&name, 0), "");
    }

    #[test]
    fn url_segments_keep_the_escape_character() {
        assert_eq!(url_segment("Caf%E9.1.html"), "Caf%25E9.1.html");
        assert_eq!(url_segment("a b#?.csv"), "a%20b%23%3F.csv");
        assert_eq!(url_segment("é"), "%C3%A9");
    }

    #[test]
    fn escape_controls_makes_one_line() {
        assert_eq!(escape_controls("plain 100%"), "plain 100%");
        assert_eq!(escape_controls("a\nb"), "a\\nb");
        assert_eq!(escape_controls("\u{1b}[2J"), "\\u{1b}[2J");
    }
}
