//! Text encodings of delimited files: UTF-8 with or without BOM, UTF-16 with
//! BOM, and Windows-1252 (what Excel on a Western-European Windows writes)
//! as the fallback for anything that is not valid UTF-8.

use std::borrow::Cow;

use encoding_rs::{UTF_16BE, UTF_16LE, WINDOWS_1252};

use crate::issue::{Code, Issue};

/// The file's text as UTF-8 bytes, borrowed when it already was UTF-8, and
/// a warning when the fallback was used.
pub fn to_utf8(bytes: &[u8]) -> (Cow<'_, [u8]>, Option<Issue>) {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return match std::str::from_utf8(rest) {
            Ok(_) => (Cow::Borrowed(rest), None),
            Err(_) => fallback(rest),
        };
    }
    if bytes.starts_with(&[0xFF, 0xFE]) {
        let (text, _, _) = UTF_16LE.decode(bytes);
        return (Cow::Owned(text.into_owned().into_bytes()), None);
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        let (text, _, _) = UTF_16BE.decode(bytes);
        return (Cow::Owned(text.into_owned().into_bytes()), None);
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => (Cow::Borrowed(bytes), None),
        Err(_) => fallback(bytes),
    }
}

fn fallback(bytes: &[u8]) -> (Cow<'_, [u8]>, Option<Issue>) {
    let (text, _, _) = WINDOWS_1252.decode(bytes);
    let warning = Issue::new(
        Code::EncodingFallback,
        "the file is not UTF-8; it was read as Windows-1252 (Western European). \
         If names look wrong in this report, save the file as \"CSV UTF-8\" and drop it again",
    );
    (Cow::Owned(text.into_owned().into_bytes()), Some(warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_bom_is_dropped() {
        let (text, warn) = to_utf8(b"\xEF\xBB\xBFsku,qty");
        assert_eq!(&*text, b"sku,qty");
        assert!(warn.is_none());
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let mut le = vec![0xFF, 0xFE];
        for unit in "Qté".encode_utf16() {
            le.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(&*to_utf8(&le).0, "Qté".as_bytes());
        let mut be = vec![0xFE, 0xFF];
        for unit in "Qté".encode_utf16() {
            be.extend_from_slice(&unit.to_be_bytes());
        }
        assert_eq!(&*to_utf8(&be).0, "Qté".as_bytes());
    }

    #[test]
    fn windows_1252_falls_back_with_a_warning() {
        // "Café;12,5" with é as 0xE9.
        let (text, warn) = to_utf8(b"Caf\xE9;12,5");
        assert_eq!(std::str::from_utf8(&text).unwrap(), "Café;12,5");
        assert_eq!(warn.map(|w| w.code), Some(Code::EncodingFallback));
    }
}
