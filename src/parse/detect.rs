//! Deciding a file's format: by content where the content is unambiguous
//! (ZIP container, OLE2 compound file, JSON), else by extension (SPEC §3).

use std::path::Path;

use super::Format;
use crate::issue::{Code, Issue};

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const ZIP_EMPTY_MAGIC: &[u8] = b"PK\x05\x06";
const OLE2_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// What the first bytes say the file is, if they say anything.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(ZIP_MAGIC) || bytes.starts_with(ZIP_EMPTY_MAGIC) {
        Some("zip")
    } else if bytes.starts_with(OLE2_MAGIC) {
        Some("ole2")
    } else if bytes.starts_with(b"%PDF") {
        Some("a PDF document")
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        Some("a gzip archive")
    } else if bytes.starts_with(b"\x89PNG") || bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("an image")
    } else if looks_like_json(bytes) {
        Some("json")
    } else {
        None
    }
}

/// JSON by content: an object, or an array of objects, that parses. A
/// text file whose first cell happens to start with `{` is not JSON.
fn looks_like_json(bytes: &[u8]) -> bool {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut rest = body.iter().skip_while(|b| b.is_ascii_whitespace());
    let shaped = match rest.next() {
        Some(b'{') => true,
        // `[` then `{` is a JSON array of request bodies.
        Some(b'[') => rest.find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
        _ => false,
    };
    shaped && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// Binary content that is not one of the containers above: a NUL byte early
/// on, without a UTF-16 byte-order mark.
fn looks_binary(bytes: &[u8]) -> bool {
    let utf16 = bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]);
    !utf16 && bytes.iter().take(8192).any(|&b| b == 0)
}

/// Whether an archive member's name is one stockdrop reads.
pub fn is_stock_file_name(name: &str) -> bool {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    matches!(
        ext.as_str(),
        "csv" | "tsv" | "txt" | "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" | "json" | "zip"
    )
}

pub fn detect(path: &Path, bytes: &[u8]) -> Result<Format, Issue> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let by_extension = match ext.as_str() {
        "csv" | "tsv" | "txt" => Some(Format::Csv),
        "xlsx" | "xlsm" | "xlsb" => Some(Format::Xlsx),
        "xls" => Some(Format::Xls),
        "ods" => Some(Format::Ods),
        "json" => Some(Format::Json),
        "zip" => Some(Format::Zip),
        _ => None,
    };
    match sniff(bytes) {
        // A ZIP container, whatever its name (an .xlsx renamed .csv is read
        // as the workbook it is); its members tell what it holds.
        Some("zip") => Ok(Format::Zip),
        Some("ole2") => Ok(Format::Xls),
        Some("json") => Ok(Format::Json),
        Some(other) => Err(Issue::new(
            Code::UnreadableFile,
            format!("the file looks like {other}, not a stock file; export the stock list as CSV or a spreadsheet"),
        )),
        None => match by_extension {
            Some(Format::Csv) if looks_binary(bytes) => Err(Issue::new(
                Code::UnreadableFile,
                "the file contains binary data, not text; export the stock list as CSV again",
            )),
            Some(Format::Csv) | Some(Format::Json) => Ok(by_extension.unwrap_or(Format::Csv)),
            Some(other) => Err(Issue::new(
                Code::UnreadableFile,
                format!(
                    "the file is named .{ext} but it is not a {} workbook: it looks like {}; \
                     save it from the spreadsheet program again, or name it .csv if it is text",
                    other.as_str(),
                    if looks_binary(bytes) { "binary data" } else { "plain text" }
                ),
            )),
            None => Err(Issue::new(
                Code::UnsupportedFormat,
                format!(
                    "files ending {} are not read; use .csv, .tsv, .txt, .xlsx, .xlsm, .xlsb, .xls, .ods, .json or .zip",
                    if ext.is_empty() { "without an extension".to_string() } else { format!(".{ext}") }
                ),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(name: &str, bytes: &[u8]) -> Result<Format, Code> {
        detect(Path::new(name), bytes).map_err(|i| i.code)
    }

    #[test]
    fn content_wins_over_extension() {
        assert_eq!(fmt("stock.csv", b"PK\x03\x04rest"), Ok(Format::Zip));
        assert_eq!(fmt("stock.xlsx", b"PK\x03\x04rest"), Ok(Format::Zip));
        assert_eq!(fmt("stock.txt", OLE2_MAGIC), Ok(Format::Xls));
        assert_eq!(
            fmt("body.txt", b" {\"locationName\":\"1\"}"),
            Ok(Format::Json)
        );
        assert_eq!(fmt("body.csv", b"[ {\"a\":1}]"), Ok(Format::Json));
    }

    #[test]
    fn extension_decides_text() {
        assert_eq!(fmt("STOCK.CSV", b"sku,qty\n"), Ok(Format::Csv));
        assert_eq!(fmt("stock.tsv", b"sku\tqty\n"), Ok(Format::Csv));
        assert_eq!(fmt("stock.doc", b"sku,qty\n"), Err(Code::UnsupportedFormat));
        assert_eq!(fmt("stock", b"sku,qty\n"), Err(Code::UnsupportedFormat));
    }

    #[test]
    fn text_named_as_workbook_is_unreadable() {
        let err = detect(Path::new("stock.xlsx"), b"sku,qty\n1,2\n").unwrap_err();
        assert_eq!(err.code, Code::UnreadableFile);
        assert!(err.message.contains("plain text"), "{}", err.message);
    }

    #[test]
    fn binary_is_unreadable() {
        assert_eq!(fmt("stock.csv", b"%PDF-1.4"), Err(Code::UnreadableFile));
        assert_eq!(fmt("stock.csv", b"ab\0cd"), Err(Code::UnreadableFile));
    }
}
