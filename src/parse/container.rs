//! ZIP containers — `.xlsx`/`.xlsm`/`.xlsb`/`.ods` workbooks and `.zip`
//! archives — inspected from their central directory alone, before anything
//! is inflated (SPEC §4.5): too many members, too much in all, or a member
//! or the archive as a whole that would expand more than 100:1 rejects the
//! file in milliseconds with bounded memory.
//!
//! What a container is comes from what its package declares (SPEC §3), not
//! from where Excel happens to put its parts: an Office Open XML package
//! names its main part in `_rels/.rels` and that part's type in
//! `[Content_Types].xml`; an OpenDocument package says what it is in its
//! `mimetype` member. Part names are matched as OPC matches them: without a
//! leading `/`, case-insensitively, and with `\` read as `/` (some writers
//! use Windows separators).

use std::io::{Cursor, Read};

use flate2::read::DeflateDecoder;
use quick_xml::events::Event;
use zip::CompressionMethod;

use crate::config::ImportRules;
use crate::issue::{Code, Issue};

/// Most members a ZIP file may have.
pub const MAX_MEMBERS: usize = 1000;
/// No member, and not the archive as a whole, may expand more than this.
pub const MAX_RATIO: u64 = 100;
/// The package parts read to tell what a container is are small; a larger
/// one is not a declaration but a trick.
const MAX_DECLARATION_BYTES: u64 = 1 << 20;

/// One member, as the central directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub index: usize,
    pub name: String,
    pub size: u64,
    pub compressed: u64,
    pub encrypted: bool,
    pub is_dir: bool,
    /// Where the member's local header starts in the file.
    pub header_start: u64,
    pub method: CompressionMethod,
}

/// What a ZIP container holds, judged by what its package declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An Office Open XML spreadsheet whose workbook part is `workbook`.
    Xlsx {
        workbook: String,
    },
    Xlsb {
        workbook: String,
    },
    Ods,
    /// An Office or OpenDocument package that is not a spreadsheet (a text
    /// document, a presentation): what it declares itself to be.
    OtherDocument(String),
    Archive,
}

fn damaged(e: impl std::fmt::Display) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!(
            "the file is a damaged ZIP container ({e}); save or zip it again and drop it again"
        ),
    )
}

fn too_large(message: String) -> Issue {
    Issue::new(Code::ArchiveTooLarge, message)
}

fn bomb(what: &str, compressed: u64, size: u64) -> Issue {
    too_large(format!(
        "{what} would expand from {compressed} to {size} bytes, more than {MAX_RATIO}:1; \
         a file like this is a ZIP bomb, not a stock file; zip the stock files as they are"
    ))
}

/// Whether `size` bytes stored in `compressed` bytes expands past the ratio.
fn past_ratio(size: u64, compressed: u64) -> bool {
    size > compressed.max(1).saturating_mul(MAX_RATIO)
}

/// Lists the members and checks the limits, reading only the central
/// directory: the member count, `import.max_unzipped_bytes` in all, and the
/// compression ratio of every member and of the archive as a whole.
pub fn inspect(bytes: &[u8], rules: &ImportRules) -> Result<Vec<Member>, Issue> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(damaged)?;
    // The `zip` crate keeps one entry per name: of two members listed under
    // one path, one would be imported and the other lost without a word.
    if let Some(listed) = listed_entries(bytes) {
        if listed != archive.len() {
            return Err(damaged(format!(
                "its directory lists {listed} members, but only {} distinct paths: two members \
                 share a path",
                archive.len()
            )));
        }
    }
    if archive.len() > MAX_MEMBERS {
        return Err(too_large(format!(
            "the archive has {} members; at most {MAX_MEMBERS} are accepted",
            archive.len()
        )));
    }
    let mut members = Vec::with_capacity(archive.len());
    let mut total: u64 = 0;
    let mut total_compressed: u64 = 0;
    for index in 0..archive.len() {
        let file = archive.by_index_raw(index).map_err(damaged)?;
        let member = Member {
            index,
            name: file.name().map(|n| n.into_owned()).unwrap_or_default(),
            size: file.size(),
            compressed: file.compressed_size(),
            encrypted: file.encrypted(),
            is_dir: file.is_dir(),
            header_start: file.header_start(),
            method: file.compression(),
        };
        total = total.saturating_add(member.size);
        total_compressed = total_compressed.saturating_add(member.compressed);
        if total > rules.max_unzipped_bytes {
            return Err(too_large(format!(
                "the archive expands to more than {} bytes (import.max_unzipped_bytes)",
                rules.max_unzipped_bytes
            )));
        }
        if past_ratio(member.size, member.compressed) {
            return Err(bomb(
                &format!("member \"{}\"", member.name),
                member.compressed,
                member.size,
            ));
        }
        members.push(member);
    }
    if past_ratio(total, total_compressed.min(bytes.len() as u64)) {
        return Err(bomb("the archive", bytes.len() as u64, total));
    }
    Ok(members)
}

/// The members the end of central directory record says the archive has;
/// `None` where it defers to ZIP64 (or is not found), whose count the
/// `zip` crate reads itself.
fn listed_entries(bytes: &[u8]) -> Option<usize> {
    // The record is 22 bytes and a comment of at most 65,535 follows it.
    let from = bytes.len().saturating_sub(22 + 65_535);
    let at = memchr::memmem::rfind(&bytes[from..], b"PK\x05\x06")? + from;
    let record = bytes.get(at..at + 22)?;
    let total = u16::from_le_bytes([record[10], record[11]]);
    (total != u16::MAX).then_some(usize::from(total))
}

/// An XML reader of a package part with calamine's settings (`xml_reader`
/// in its `xlsx/mod.rs`): what calamine reads past, this reads past too,
/// so a part measured before calamine opens the workbook is the part
/// calamine reads.
pub fn calamine_xml<R: std::io::BufRead>(reader: R) -> quick_xml::Reader<R> {
    let mut xml = quick_xml::Reader::from_reader(reader);
    let config = xml.config_mut();
    config.check_end_names = false;
    config.check_comments = false;
    config.trim_text(false);
    config.expand_empty_elements = true;
    xml
}

/// A part name as OPC compares them.
fn part_key(name: &str) -> String {
    name.replace('\\', "/")
        .trim_start_matches('/')
        .to_ascii_lowercase()
}

/// The member called `name` (compared as a part name).
pub fn find<'m>(members: &'m [Member], name: &str) -> Option<&'m Member> {
    let key = part_key(name);
    members
        .iter()
        .find(|m| !m.is_dir && part_key(&m.name) == key)
}

/// Tells a workbook from a plain archive by what the package declares.
pub fn kind(bytes: &[u8], members: &[Member]) -> Result<Kind, Issue> {
    if let Some(mimetype) = find(members, "mimetype") {
        let declared = read_small(bytes, mimetype)?;
        let declared = String::from_utf8_lossy(&declared).trim().to_string();
        if declared.starts_with("application/vnd.oasis.opendocument.spreadsheet") {
            return Ok(Kind::Ods);
        }
        if declared.starts_with("application/vnd.oasis.opendocument.") {
            return Ok(Kind::OtherDocument(declared));
        }
    }
    let (Some(types), Some(rels)) = (
        find(members, "[Content_Types].xml"),
        find(members, "_rels/.rels"),
    ) else {
        return Ok(Kind::Archive);
    };
    let Some(target) = office_document_target(&read_small(bytes, rels)?) else {
        return Ok(Kind::Archive);
    };
    let Some(part) = find(members, &target) else {
        return Err(damaged(format!(
            "its package names the main part \"{target}\", which it does not contain"
        )));
    };
    let workbook = part.name.clone();
    let content_type = declared_type(&read_small(bytes, types)?, &target).unwrap_or_default();
    let content_type = content_type.to_ascii_lowercase();
    Ok(if content_type.contains("sheet.binary.macroenabled.main") {
        Kind::Xlsb { workbook }
    } else if content_type.contains(".sheet.main+xml")
        || content_type.contains(".sheet.macroenabled.main+xml")
        || content_type.contains(".template.main+xml")
        || content_type.contains(".template.macroenabled.main+xml")
    {
        Kind::Xlsx { workbook }
    } else if content_type.is_empty() {
        // A main part without a declared type: judged by its name, as
        // spreadsheet programs do.
        if part_key(&target).ends_with(".bin") {
            Kind::Xlsb { workbook }
        } else {
            Kind::Xlsx { workbook }
        }
    } else {
        Kind::OtherDocument(content_type)
    })
}

/// A small package part (a declaration), never more than it declares.
fn read_small(bytes: &[u8], member: &Member) -> Result<Vec<u8>, Issue> {
    if member.size > MAX_DECLARATION_BYTES {
        return Err(damaged(format!(
            "its package part \"{}\" is {} bytes, too large for what it should hold",
            member.name, member.size
        )));
    }
    let mut data = Vec::new();
    member_reader(bytes, member)?
        .read_to_end(&mut data)
        .map_err(|e| limit_error(member, e))?;
    Ok(data)
}

/// The target of the package's officeDocument relationship (transitional or
/// strict), relative to the package root.
fn office_document_target(rels: &[u8]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(rels);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "Relationship" => {
                let mut kind = None;
                let mut target = None;
                for attr in e.attributes().flatten() {
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .ok()?
                        .into_owned();
                    match attr.key.local_name().as_ref() {
                        "Type" => kind = Some(value),
                        "Target" => target = Some(value),
                        _ => {}
                    }
                }
                if kind.is_some_and(|k| k.ends_with("/officeDocument")) {
                    return target.map(|t| t.trim_start_matches('/').to_string());
                }
            }
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
        buf.clear();
    }
}

/// The content type `[Content_Types].xml` gives the part `part`: its
/// Override, else the Default for its extension.
fn declared_type(types: &[u8], part: &str) -> Option<String> {
    let key = part_key(part);
    let extension = key.rsplit_once('.').map(|(_, e)| e.to_string());
    let mut reader = quick_xml::Reader::from_reader(types);
    let mut buf = Vec::new();
    let mut by_default = None;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let local = e.local_name().as_ref().to_string();
                let mut name = None;
                let mut content_type = None;
                for attr in e.attributes().flatten() {
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .ok()?
                        .into_owned();
                    match attr.key.local_name().as_ref() {
                        "PartName" | "Extension" => name = Some(value),
                        "ContentType" => content_type = Some(value),
                        _ => {}
                    }
                }
                match (local.as_str(), name) {
                    ("Override", Some(name)) if part_key(&name) == key => return content_type,
                    ("Default", Some(ext)) if Some(ext.to_ascii_lowercase()) == extension => {
                        by_default = content_type;
                    }
                    _ => {}
                }
            }
            Ok(Event::Eof) | Err(_) => return by_default,
            _ => {}
        }
        buf.clear();
    }
}

/// A reader of one member's content, straight from the file's bytes (so it
/// borrows nothing but them), that fails rather than yield more than the
/// member declared.
pub fn member_reader<'a>(bytes: &'a [u8], member: &Member) -> Result<Box<dyn Read + 'a>, Issue> {
    if member.encrypted {
        return Err(Issue::new(
            Code::UnsupportedFormat,
            format!(
                "\"{}\" is encrypted (password-protected); save it without a password",
                member.name
            ),
        ));
    }
    let start = usize::try_from(member.header_start).unwrap_or(usize::MAX);
    let header = bytes
        .get(start..start.saturating_add(30))
        .filter(|h| h.starts_with(b"PK\x03\x04"))
        .ok_or_else(|| damaged(format!("member \"{}\" has no local header", member.name)))?;
    let name_len = usize::from(u16::from_le_bytes([header[26], header[27]]));
    let extra_len = usize::from(u16::from_le_bytes([header[28], header[29]]));
    let data_start = start + 30 + name_len + extra_len;
    let compressed = usize::try_from(member.compressed).unwrap_or(usize::MAX);
    let data = bytes
        .get(data_start..data_start.saturating_add(compressed))
        .ok_or_else(|| damaged(format!("member \"{}\" is cut short", member.name)))?;
    let raw: Box<dyn Read + 'a> = match member.method {
        CompressionMethod::Stored => Box::new(data),
        CompressionMethod::Deflated => Box::new(DeflateDecoder::new(data)),
        other => {
            return Err(Issue::new(
                Code::UnsupportedFormat,
                format!(
                    "member \"{}\" is compressed with {other:?}; zip it again with the usual (deflate) compression",
                    member.name
                ),
            ))
        }
    };
    Ok(Box::new(Bounded {
        inner: raw,
        left: member.size,
        name: member.name.clone(),
    }))
}

/// Yields at most `left` bytes, and fails if the inner reader has more: a
/// member whose data expands past its declared size (a lying header).
struct Bounded<R> {
    inner: R,
    left: u64,
    name: String,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(OverDeclared(self.name.clone()))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The error a [`Bounded`] reader fails with.
#[derive(Debug)]
struct OverDeclared(String);

impl std::fmt::Display for OverDeclared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "member \"{}\" holds more data than its header declares; the archive is refused",
            self.0
        )
    }
}

impl std::error::Error for OverDeclared {}

/// The issue for an error met while reading a member.
pub fn limit_error(member: &Member, e: std::io::Error) -> Issue {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<OverDeclared>())
    {
        Some(over) => too_large(over.to_string()),
        None => damaged(format!("member \"{}\": {e}", member.name)),
    }
}

/// Reads one member into memory, never more than it declared: a member
/// whose data expands past its declared size (a lying header) is refused.
pub fn extract(bytes: &[u8], member: &Member) -> Result<Vec<u8>, Issue> {
    let mut data = Vec::with_capacity(usize::try_from(member.size).unwrap_or(0).min(64 << 20));
    member_reader(bytes, member)?
        .read_to_end(&mut data)
        .map_err(|e| limit_error(member, e))?;
    Ok(data)
}

/// The last component of a member's path: what it is called in reports.
/// Never a path, so it can never point outside the outbox.
pub fn base_name(member_name: &str) -> String {
    member_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_cannot_escape() {
        assert_eq!(base_name("../../etc/passwd"), "passwd");
        assert_eq!(base_name("a\\b\\store11.csv"), "store11.csv");
        assert_eq!(base_name("dir/"), "");
        assert_eq!(base_name("store11.csv"), "store11.csv");
    }

    #[test]
    fn part_names_compare_as_opc_does() {
        assert_eq!(part_key("/xl/Workbook.xml"), "xl/workbook.xml");
        assert_eq!(part_key("xl\\workbook.xml"), "xl/workbook.xml");
    }

    #[test]
    fn office_document_target_is_read_from_the_relationships() {
        let rels = br#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
            <Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>
            <Relationship Id="rId1" Type="http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument" Target="/book/main.xml"/>
            </Relationships>"#;
        assert_eq!(office_document_target(rels), Some("book/main.xml".into()));
    }

    #[test]
    fn declared_type_prefers_the_override() {
        let types = br#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
            <Default Extension="xml" ContentType="application/xml"/>
            <Override PartName="/Book/Main.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
            </Types>"#;
        assert_eq!(
            declared_type(types, "book/main.xml").as_deref(),
            Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml")
        );
        assert_eq!(
            declared_type(types, "other.xml").as_deref(),
            Some("application/xml")
        );
    }

    #[test]
    fn ratio_is_checked_whatever_the_size() {
        assert!(past_ratio(10 * 1024 * 1024, 10_000));
        assert!(past_ratio(101, 1));
        assert!(!past_ratio(100, 1));
        assert!(!past_ratio(0, 0));
    }
}
