//! Reading a claimed file: its checksum, and its content in memory or, for
//! large delimited text, left on disk to be streamed.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::PipelineError;
use crate::config::ImportRules;
use crate::issue::{Code, Issue};
use crate::parse;

/// A file's content and checksum. Delimited text larger than
/// [`HEAD_BYTES`] stays on disk and is read from its open descriptor at
/// each pass (hashed and checked for UTF-8 as it is opened), so memory does
/// not grow with the file; anything else is read into memory, within
/// `import.max_file_bytes`.
pub(super) struct Content {
    pub(super) name: String,
    pub(super) body: Body,
    pub(super) sha256: String,
    /// Rejects the file whatever its content: over `import.max_file_bytes`
    /// (hashed without being kept in memory), or an encrypted ZIP member.
    pub(super) forced_error: Option<Issue>,
}

pub(super) enum Body {
    Bytes(Vec<u8>),
    Text {
        file: fs::File,
        len: u64,
        head: Vec<u8>,
        utf8: bool,
    },
}

/// How much of a file is read before deciding whether it is streamed: as
/// much as delimiter detection samples.
pub(super) const HEAD_BYTES: usize = 64 * 1024;

impl Content {
    pub(super) fn input(&self) -> parse::Input<'_> {
        match &self.body {
            Body::Bytes(bytes) => parse::Input::Bytes(bytes),
            Body::Text {
                file,
                len,
                head,
                utf8,
            } => parse::Input::Text(parse::TextFile {
                file,
                len: *len,
                head,
                utf8: *utf8,
            }),
        }
    }

    /// The bytes of a file held in memory (an archive is); empty for a
    /// streamed one.
    pub(super) fn bytes(&self) -> &[u8] {
        match &self.body {
            Body::Bytes(bytes) => bytes,
            Body::Text { .. } => &[],
        }
    }
}

/// Whether a file whose first bytes are `head` is read from disk as it is
/// parsed: delimited text only (JSON needs its whole body to be told from
/// text, and workbooks and archives are read whole).
pub(super) fn streams(name: &str, head: &[u8]) -> bool {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let json_like = matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    );
    !json_like
        && matches!(
            parse::detect::detect(Path::new(name), head),
            Ok(parse::Format::Csv)
        )
}

/// Reads up to `want` bytes (fewer only at the end of the file).
pub(super) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

pub(super) fn read_content(
    path: &Path,
    name: Option<&str>,
    rules: &ImportRules,
    trust: crate::open::Trust,
) -> Result<Content, PipelineError> {
    let fail = |source| PipelineError::Read {
        path: path.to_path_buf(),
        source,
    };
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| crate::names::display_os(path.file_name().unwrap_or(path.as_os_str())));
    // One descriptor, checked (see `open`), read never past the limit.
    let (file, meta) = crate::open::open(path, trust).map_err(fail)?;
    let size = meta.len();
    let over = |read: u64| Content {
        name: name.clone(),
        body: Body::Bytes(Vec::new()),
        // Not read past the limit, so not hashed either.
        sha256: String::new(),
        forced_error: Some(too_large(size.max(read), rules)),
    };
    if size > rules.max_file_bytes {
        return Ok(over(size));
    }
    // One more byte than the limit tells a file that grew after the fstat.
    let mut reader = (&file).take(rules.max_file_bytes.saturating_add(1));
    let mut head = vec![0; HEAD_BYTES];
    let got = read_up_to(&mut reader, &mut head).map_err(fail)?;
    head.truncate(got);
    if got < HEAD_BYTES || !streams(&name, &head) {
        let mut bytes = head;
        bytes.reserve(usize::try_from(size.min(rules.max_file_bytes)).unwrap_or(0));
        reader.read_to_end(&mut bytes).map_err(fail)?;
        let read = bytes.len() as u64;
        if read > rules.max_file_bytes {
            return Ok(over(read));
        }
        let sha256 = hex(&Sha256::digest(&bytes));
        return Ok(Content {
            name,
            body: Body::Bytes(bytes),
            sha256,
            forced_error: None,
        });
    }
    // Delimited text: hashed and checked for UTF-8 a buffer at a time,
    // then parsed from the same descriptor.
    let mut hasher = Sha256::new();
    let mut utf8 = parse::decode::Utf8Check::default();
    hasher.update(&head);
    utf8.feed(&head);
    let mut read = head.len() as u64;
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = read_up_to(&mut reader, &mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        utf8.feed(&buf[..n]);
        read += n as u64;
    }
    if read > rules.max_file_bytes {
        return Ok(over(read));
    }
    Ok(Content {
        name,
        body: Body::Text {
            file,
            len: read,
            head,
            utf8: utf8.is_utf8(),
        },
        sha256: hex(&hasher.finalize()),
        forced_error: None,
    })
}

pub(super) fn too_large(size: u64, rules: &ImportRules) -> Issue {
    Issue::new(
        Code::FileTooLarge,
        format!(
            "the file is {size} bytes; the limit (import.max_file_bytes) is {}; split it into smaller files",
            rules.max_file_bytes
        ),
    )
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One member of an archive as a file of its own.
pub(super) fn member_content(
    archive: &Content,
    member: &parse::container::Member,
    name: String,
    rules: &ImportRules,
) -> Content {
    let rejected = |issue: Issue| Content {
        name: name.clone(),
        body: Body::Bytes(Vec::new()),
        sha256: hex(&Sha256::digest(format!(
            "{}#{}",
            archive.sha256, member.index
        ))),
        forced_error: Some(issue),
    };
    if member.encrypted {
        return rejected(Issue::new(
            Code::UnsupportedFormat,
            "the file is encrypted (password-protected) inside the archive; zip it without a password",
        ));
    }
    if member.size > rules.max_file_bytes {
        return rejected(too_large(member.size, rules));
    }
    match parse::container::extract(archive.bytes(), member) {
        Ok(bytes) => {
            let sha256 = hex(&Sha256::digest(&bytes));
            Content {
                name,
                body: Body::Bytes(bytes),
                sha256,
                forced_error: None,
            }
        }
        Err(issue) => rejected(issue),
    }
}

/// `unsupported-format` for an archive none of whose members is a stock
/// file; `skipped` are the members' names.
pub(super) fn no_stock_file(skipped: &[String]) -> Issue {
    Issue::new(
        Code::UnsupportedFormat,
        format!(
            "the archive holds no stock file (CSV, workbook or JSON){}",
            if skipped.is_empty() {
                String::new()
            } else {
                format!("; it has: {}", skipped.join(", "))
            }
        ),
    )
}
