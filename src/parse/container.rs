//! ZIP containers — `.xlsx`/`.xlsm`/`.xlsb`/`.ods` workbooks and `.zip`
//! archives — inspected from their central directory alone, before anything
//! is inflated (SPEC §4.5): too many members, too much in all, or a member
//! that would expand more than 100:1 past 10 MiB rejects the file in
//! milliseconds with bounded memory. calamine holds a whole sheet in memory,
//! so these bounds must come first.

use std::io::{Cursor, Read};

use crate::config::ImportRules;
use crate::issue::{Code, Issue};

/// Most members a ZIP file may have.
pub const MAX_MEMBERS: usize = 1000;
/// Members larger than this must not expand more than [`MAX_RATIO`]:1.
pub const RATIO_FLOOR: u64 = 10 * 1024 * 1024;
pub const MAX_RATIO: u64 = 100;

/// One member, as the central directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub index: usize,
    pub name: String,
    pub size: u64,
    pub compressed: u64,
    pub encrypted: bool,
    pub is_dir: bool,
}

/// What a ZIP container holds, judged by its member names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Xlsx,
    Xlsb,
    Ods,
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

/// Lists the members and checks the limits, reading only the central
/// directory.
pub fn inspect(bytes: &[u8], rules: &ImportRules) -> Result<Vec<Member>, Issue> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(damaged)?;
    if archive.len() > MAX_MEMBERS {
        return Err(too_large(format!(
            "the archive has {} members; at most {MAX_MEMBERS} are accepted",
            archive.len()
        )));
    }
    let mut members = Vec::with_capacity(archive.len());
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let file = archive.by_index_raw(index).map_err(damaged)?;
        let member = Member {
            index,
            name: file.name().map(|n| n.into_owned()).unwrap_or_default(),
            size: file.size(),
            compressed: file.compressed_size(),
            encrypted: file.encrypted(),
            is_dir: file.is_dir(),
        };
        total = total.saturating_add(member.size);
        if total > rules.max_unzipped_bytes {
            return Err(too_large(format!(
                "the archive expands to more than {} bytes (import.max_unzipped_bytes)",
                rules.max_unzipped_bytes
            )));
        }
        if member.size > RATIO_FLOOR && member.size / member.compressed.max(1) > MAX_RATIO {
            return Err(too_large(format!(
                "member \"{}\" would expand from {} to {} bytes, more than {MAX_RATIO}:1; \
                 a file like this is a ZIP bomb, not a stock file",
                member.name, member.compressed, member.size
            )));
        }
        members.push(member);
    }
    Ok(members)
}

/// Tells a workbook from a plain archive by the members it has.
pub fn kind(members: &[Member]) -> Kind {
    let has = |name: &str| members.iter().any(|m| m.name == name);
    if has("xl/workbook.bin") {
        Kind::Xlsb
    } else if has("xl/workbook.xml") {
        Kind::Xlsx
    } else if has("content.xml") && has("mimetype") {
        Kind::Ods
    } else {
        Kind::Archive
    }
}

/// Reads one member into memory, never more than it declared: a member
/// whose data expands past its declared size (a lying header) is refused.
pub fn extract(bytes: &[u8], member: &Member) -> Result<Vec<u8>, Issue> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(damaged)?;
    let file = archive.by_index(member.index).map_err(damaged)?;
    let mut data = Vec::with_capacity(usize::try_from(member.size).unwrap_or(0).min(64 << 20));
    file.take(member.size.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(damaged)?;
    if data.len() as u64 > member.size {
        return Err(too_large(format!(
            "member \"{}\" holds more data than its header declares; the archive is refused",
            member.name
        )));
    }
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
}
