//! Text encodings of delimited files: UTF-8 with or without BOM, UTF-16 with
//! BOM, and Windows-1252 (what Excel on a Western-European Windows writes)
//! as the fallback for anything that is not valid UTF-8.

use std::borrow::Cow;

use std::io::{self, Read};

use encoding_rs::{Decoder, Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};

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
    (
        Cow::Owned(text.into_owned().into_bytes()),
        Some(fallback_warning()),
    )
}

fn fallback_warning() -> Issue {
    Issue::new(
        Code::EncodingFallback,
        "the file is not UTF-8; it was read as Windows-1252 (Western European). \
         If names look wrong in this report, save the file as \"CSV UTF-8\" and drop it again",
    )
}

/// Checks that a file is UTF-8 as its bytes go past, a chunk at a time
/// (a character may be split between chunks): the encoding of a streamed
/// file is decided from the whole of it, as [`to_utf8`] decides it.
#[derive(Debug, Default)]
pub struct Utf8Check {
    carry: Vec<u8>,
    invalid: bool,
    /// Bytes still to skip (the UTF-8 byte-order mark is not checked).
    seen: u64,
}

impl Utf8Check {
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut chunk = chunk;
        // The byte-order mark is skipped as `to_utf8` skips it; it is only
        // ever at the very start, which the first chunk holds whole.
        if self.seen == 0 && chunk.starts_with(b"\xEF\xBB\xBF") {
            chunk = &chunk[3..];
        }
        self.seen += chunk.len() as u64;
        if self.invalid {
            return;
        }
        // Finish a character the last chunk split, a byte at a time.
        while !self.carry.is_empty() {
            let Some((&b, rest)) = chunk.split_first() else {
                return;
            };
            self.carry.push(b);
            chunk = rest;
            match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.clear(),
                Err(e) if e.error_len().is_some() || self.carry.len() >= 4 => {
                    self.invalid = true;
                    return;
                }
                Err(_) => {}
            }
        }
        if let Err(e) = std::str::from_utf8(chunk) {
            if e.error_len().is_some() {
                self.invalid = true;
            } else {
                self.carry.extend_from_slice(&chunk[e.valid_up_to()..]);
            }
        }
    }

    /// Whether everything fed was UTF-8 (ending on a whole character).
    pub fn is_utf8(&self) -> bool {
        !self.invalid && self.carry.is_empty()
    }
}

/// A file's text as a stream of UTF-8 bytes, decoded as [`to_utf8`] would
/// decode the whole file: `head` is the file's first bytes (for its
/// byte-order mark) and `utf8` whether the whole file (after a UTF-8 mark)
/// is UTF-8 (see [`Utf8Check`]). Memory is two fixed buffers.
pub fn reader<'a>(
    inner: impl Read + 'a,
    head: &[u8],
    utf8: bool,
) -> (Box<dyn Read + 'a>, Option<Issue>) {
    let utf8_bom = head.starts_with(b"\xEF\xBB\xBF");
    let (encoding, skip, warning) = if head.starts_with(&[0xFF, 0xFE]) {
        (Some(UTF_16LE), 2, None)
    } else if head.starts_with(&[0xFE, 0xFF]) {
        (Some(UTF_16BE), 2, None)
    } else if utf8 {
        (None, if utf8_bom { 3 } else { 0 }, None)
    } else {
        (
            Some(WINDOWS_1252),
            if utf8_bom { 3 } else { 0 },
            Some(fallback_warning()),
        )
    };
    let reader = Decoding {
        inner,
        skip,
        decoder: encoding.map(Encoding::new_decoder_without_bom_handling),
        input: vec![0; 1 << 16],
        start: 0,
        end: 0,
        eof: false,
        output: Vec::new(),
        out_start: 0,
        finished: false,
    };
    (Box::new(reader), warning)
}

struct Decoding<R> {
    inner: R,
    skip: usize,
    decoder: Option<Decoder>,
    input: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    output: Vec<u8>,
    out_start: usize,
    finished: bool,
}

impl<R: Read> Decoding<R> {
    fn fill(&mut self) -> io::Result<()> {
        if self.start < self.end || self.eof {
            return Ok(());
        }
        loop {
            match self.inner.read(&mut self.input) {
                Ok(0) => {
                    self.eof = true;
                    self.start = 0;
                    self.end = 0;
                }
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            // The byte-order mark, dropped before anything is decoded.
            while self.skip > 0 && self.start < self.end {
                self.start += 1;
                self.skip -= 1;
            }
            if self.start < self.end || self.eof {
                return Ok(());
            }
        }
    }
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_start < self.output.len() {
                let n = out.len().min(self.output.len() - self.out_start);
                out[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            self.fill()?;
            let input = &self.input[self.start..self.end];
            let Some(decoder) = &mut self.decoder else {
                if input.is_empty() {
                    return Ok(0);
                }
                let n = out.len().min(input.len());
                out[..n].copy_from_slice(&input[..n]);
                self.start += n;
                return Ok(n);
            };
            if self.finished {
                return Ok(0);
            }
            // At most three bytes of UTF-8 per input byte, plus what a
            // split character left in the decoder.
            self.output.clear();
            self.output.resize(input.len() * 3 + 16, 0);
            let (_, read, written, _) = decoder.decode_to_utf8(input, &mut self.output, self.eof);
            self.start += read;
            self.output.truncate(written);
            self.out_start = 0;
            // The last call (`last` set) flushes the decoder; it is not
            // used after it.
            self.finished = self.eof && self.start >= self.end;
        }
    }
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

    /// Reads `reader` a few bytes at a time, as a parser with a small
    /// buffer would.
    fn drain(mut reader: Box<dyn Read + '_>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn check(bytes: &[u8], chunk: usize) -> bool {
        let mut check = Utf8Check::default();
        for part in bytes.chunks(chunk) {
            check.feed(part);
        }
        check.is_utf8()
    }

    #[test]
    fn utf8_check_sees_characters_split_between_chunks() {
        let text = "\u{feff}Qté 12,5 — 中文 🎉".as_bytes();
        for chunk in 1..8 {
            assert!(check(text, chunk), "chunk {chunk}");
            assert!(!check(b"Caf\xE9 au lait", chunk), "chunk {chunk}");
            // Cut in the middle of a character at the end.
            assert!(!check(&text[..text.len() - 1], chunk), "chunk {chunk}");
        }
    }

    #[test]
    fn the_stream_decodes_as_the_whole_file_would() {
        let mut le = vec![0xFF, 0xFE];
        for unit in "sku\tqty\nQté\t5\n🎉\t1\n".encode_utf16() {
            le.extend_from_slice(&unit.to_le_bytes());
        }
        let cases: [&[u8]; 4] = [
            &le,
            b"\xEF\xBB\xBFsku,qty\nA,1\n",
            b"Caf\xE9;12,5\n",
            b"\xEF\xBB\xBFCaf\xE9;12,5\n",
        ];
        for bytes in cases {
            let (whole, warning) = to_utf8(bytes);
            let utf8 = check(bytes, 4096);
            let (stream, stream_warning) = reader(bytes, bytes, utf8);
            assert_eq!(drain(stream), whole.into_owned(), "{bytes:?}");
            assert_eq!(warning.is_some(), stream_warning.is_some(), "{bytes:?}");
        }
    }
}
