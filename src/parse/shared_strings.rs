//! The shared-strings table of an `.xlsx`/`.xlsb` workbook, sized before
//! calamine opens the workbook.
//!
//! calamine (0.38) reads the whole table into a `Vec<String>` when a
//! workbook is opened (`Xlsx::read_shared_strings`; sheets are streamed,
//! this part is not), so a workbook of 110 MB whose table held 44 million
//! short strings took 1.5 GB. Until calamine can look strings up lazily,
//! the table is measured here first, as it inflates and without holding
//! it: the strings it holds and the bytes they take give the memory
//! calamine would need, and a table past [`MAX_SHARED_STRINGS_MEMORY`] is
//! refused with a way out (CSV is read in bounded memory at any size).
//! The sizes the ZIP directory declares are not trusted: what counts is
//! what inflates.

use std::io::{BufReader, Read};

use quick_xml::events::Event;

use super::container::{self, Member};
use crate::issue::{Code, Issue};

/// The most memory a workbook's shared strings may take once calamine has
/// read them (estimated as below); with what the rest of an import takes,
/// within the daemon's 256 MiB (SPEC §8).
pub const MAX_SHARED_STRINGS_MEMORY: u64 = 128 << 20;

/// What calamine holds for each string besides its text: the `String`
/// (24 bytes) and the allocator's rounding of a short text.
const PER_STRING: u64 = 40;

/// Deflate's best ratio (about 1032:1), and the most the estimate can be
/// per byte of a table (`<si/>`: 45 per 5 bytes): a part whose compressed
/// size times both is within the limit cannot pass it, so it is not read
/// twice.
const DEFLATE_MAX_RATIO: u64 = 1032;
const ESTIMATE_PER_BYTE: u64 = 9;

/// Whether a member is a shared-strings table: any part so named, in any
/// folder. calamine finds its table beside the workbook part it takes
/// (the last `officeDocument` relationship), which a forged package can
/// make differ from the one stockdrop reads the kind from, so every part
/// that could be it is measured.
fn is_table(member: &Member, binary: bool) -> bool {
    container::base_name(&member.name).eq_ignore_ascii_case(if binary {
        "sharedStrings.bin"
    } else {
        "sharedStrings.xml"
    })
}

/// Refuses a workbook whose shared strings would take more than
/// [`MAX_SHARED_STRINGS_MEMORY`] once read; otherwise gives the tables'
/// size, as their members declare it.
pub fn check(bytes: &[u8], members: &[Member], binary: bool) -> Result<u64, Issue> {
    check_within(bytes, members, binary, MAX_SHARED_STRINGS_MEMORY)
}

fn check_within(bytes: &[u8], members: &[Member], binary: bool, limit: u64) -> Result<u64, Issue> {
    let mut size: u64 = 0;
    for part in members.iter().filter(|m| is_table(m, binary)) {
        measure(bytes, part, binary, limit)?;
        size = size.saturating_add(part.size);
    }
    Ok(size)
}

fn measure(bytes: &[u8], part: &Member, binary: bool, limit: u64) -> Result<(), Issue> {
    if !binary {
        // calamine reserves room for the count the table declares before
        // reading a string: a 2 KB part declaring 10^17 aborts the process.
        let reader = BufReader::new(container::member_reader(bytes, part)?);
        if let Some(declared) = declared_unique(reader) {
            if !declared_fits_within(declared, limit) {
                return Err(too_many_declared(&part.name, declared, limit));
            }
        }
    }
    if part
        .compressed
        .saturating_mul(DEFLATE_MAX_RATIO * ESTIMATE_PER_BYTE)
        <= limit
    {
        return Ok(());
    }
    let reader = BufReader::with_capacity(1 << 16, container::member_reader(bytes, part)?);
    let measured = if binary {
        measure_binary(reader, limit)
    } else {
        measure_xml(reader, limit)
    };
    match measured {
        Ok(()) => Ok(()),
        Err(Measured::TooMuch { strings, bytes }) => {
            Err(too_much(&part.name, strings, bytes, limit))
        }
        // Read as calamine reads it (`measure_xml`), a table this reader
        // cannot read stops calamine at the same place: calamine's to
        // report, as for any other damaged part.
        Err(Measured::Unreadable) => Ok(()),
    }
}

/// What calamine's `Vec<String>` takes per string reserved.
const STRING_SLOT: u64 = 24;

/// Whether room for `count` strings, reserved up front as calamine does
/// from a count a workbook declares (an `.xlsx`'s `uniqueCount`, an
/// `.xls`'s SST), fits in [`MAX_SHARED_STRINGS_MEMORY`].
pub fn declared_fit(count: u64) -> bool {
    declared_fits_within(count, MAX_SHARED_STRINGS_MEMORY)
}

fn declared_fits_within(count: u64, limit: u64) -> bool {
    count.saturating_mul(STRING_SLOT) <= limit
}

/// The `uniqueCount` the table's `sst` element declares, as calamine reads
/// it (a number it cannot parse, it ignores); looked for among the first
/// few elements only.
fn declared_unique(reader: impl std::io::BufRead) -> Option<u64> {
    let mut xml = container::calamine_xml(reader);
    let mut buf = Vec::new();
    for _ in 0..16 {
        buf.clear();
        match xml.read_event_into(&mut buf).ok()? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "sst" => {
                let value = e.try_get_attribute("uniqueCount").ok()??;
                let digits = value.value.to_string();
                return digits.trim_start_matches('+').parse().ok();
            }
            Event::Eof => return None,
            _ => {}
        }
    }
    None
}

fn too_many_declared(part: &str, declared: u64, limit: u64) -> Issue {
    Issue::new(
        Code::FileTooLarge,
        format!(
            "the workbook's shared strings (\"{part}\") declare {declared} texts, more than \
             {} MiB of memory would hold; the file is damaged or forged — save it again from \
             the spreadsheet program, or save the sheet as CSV, and drop it again",
            limit >> 20
        ),
    )
}

enum Measured {
    TooMuch { strings: u64, bytes: u64 },
    Unreadable,
}

fn estimate(strings: u64, bytes: u64) -> u64 {
    strings.saturating_mul(PER_STRING).saturating_add(bytes)
}

/// Counts the `si` elements (each a string calamine keeps) and the bytes
/// inflated, stopping as soon as the estimate passes the limit.
fn measure_xml(reader: impl std::io::BufRead, limit: u64) -> Result<(), Measured> {
    // Read as calamine reads it, a stray end tag cannot stop the
    // measuring and leave calamine to read the rest.
    let mut xml = container::calamine_xml(reader);
    let mut buf = Vec::new();
    let mut strings: u64 = 0;
    loop {
        buf.clear();
        let event = xml
            .read_event_into(&mut buf)
            .map_err(|_| Measured::Unreadable)?;
        match event {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "si" => {
                strings += 1;
                if strings.is_multiple_of(4096) {
                    over(strings, xml.buffer_position(), limit)?;
                }
            }
            Event::Eof => return over(strings, xml.buffer_position(), limit),
            _ => {}
        }
    }
}

/// A binary table gives no cheap count of its strings; each takes at
/// least a record header and a length (7 bytes) and its UTF-16 text
/// becomes UTF-8 of at most 1.5 times its size, so bytes alone bound it.
fn measure_binary(mut reader: impl Read, limit: u64) -> Result<(), Measured> {
    let mut chunk = vec![0u8; 1 << 16];
    let mut inflated: u64 = 0;
    loop {
        let n = reader.read(&mut chunk).map_err(|_| Measured::Unreadable)?;
        if n == 0 {
            return Ok(());
        }
        inflated += n as u64;
        let strings = inflated / 7;
        over(strings, inflated.saturating_mul(3) / 2, limit)?;
    }
}

fn over(strings: u64, bytes: u64, limit: u64) -> Result<(), Measured> {
    if estimate(strings, bytes) > limit {
        Err(Measured::TooMuch { strings, bytes })
    } else {
        Ok(())
    }
}

fn too_much(part: &str, strings: u64, bytes: u64, limit: u64) -> Issue {
    Issue::new(
        Code::FileTooLarge,
        format!(
            "the workbook's shared strings (\"{part}\": at least {strings} texts in {} MB) would \
             take more than {} MiB of memory to read, as the workbook reader holds them all at \
             once; save the sheet as CSV (read in bounded memory at any size), or split it into \
             smaller workbooks, and drop it again",
            bytes / 1_000_000,
            limit >> 20
        ),
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    /// A package of one deflated member `name` holding `body`.
    pub(in crate::parse) fn package(name: &str, body: &[u8]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(body).unwrap();
        zip.finish().unwrap().into_inner()
    }

    /// The members as the central directory lists them, past the ratio
    /// `container::inspect` allows: these tables are made of one pattern,
    /// so they compress far better than a real one (or a forged one whose
    /// directory lies about its sizes).
    pub(in crate::parse) fn members(bytes: &[u8]) -> Vec<Member> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        (0..archive.len())
            .map(|index| {
                let file = archive.by_index_raw(index).unwrap();
                Member {
                    index,
                    name: file.name().unwrap().into_owned(),
                    size: file.size(),
                    compressed: file.compressed_size(),
                    encrypted: false,
                    is_dir: false,
                    header_start: file.header_start(),
                    method: file.compression(),
                }
            })
            .collect()
    }

    fn table(strings: u64, prefix: &str) -> Vec<u8> {
        let mut body =
            format!(r#"<?xml version="1.0"?><{prefix}sst uniqueCount="{strings}">"#).into_bytes();
        for i in 0..strings {
            write!(body, "<{prefix}si><{prefix}t>{i}</{prefix}t></{prefix}si>").unwrap();
        }
        write!(body, "</{prefix}sst>").unwrap();
        body
    }

    #[test]
    fn every_part_named_as_a_table_is_a_table() {
        let member = |name: &str| members(&package(name, b"x")).remove(0);
        assert!(is_table(&member("xl/sharedStrings.xml"), false));
        assert!(is_table(&member("big/SHAREDSTRINGS.XML"), false));
        assert!(is_table(&member("xl\\sharedStrings.xml"), false));
        assert!(is_table(&member("sharedStrings.xml"), false));
        assert!(!is_table(&member("xl/sharedStrings.xml"), true));
        assert!(is_table(&member("xl/sharedStrings.bin"), true));
        assert!(!is_table(&member("xl/notsharedStrings.xml"), false));
    }

    /// The limit the tests measure against: 4 MiB, as 128 MiB is for
    /// the real thing, so that debug builds make their tables quickly.
    const LIMIT: u64 = 4 << 20;

    #[test]
    fn many_short_strings_are_refused_and_a_table_within_the_limit_is_not() {
        let check = |bytes: &[u8]| check_within(bytes, &members(bytes), false, LIMIT);
        // 200,000 short strings: 5 MB of XML that would be held as
        // 200,000 Strings, 13 MB.
        let many = package("xl/sharedStrings.xml", &table(200_000, ""));
        let err = check(&many).unwrap_err();
        assert_eq!(err.code, Code::FileTooLarge);
        assert!(
            err.message.contains("\"xl/sharedStrings.xml\""),
            "{}",
            err.message
        );
        assert!(err.message.contains("more than 4 MiB"), "{}", err.message);
        assert!(
            err.message.contains("save the sheet as CSV"),
            "{}",
            err.message
        );
        // With a namespace prefix, as some generators write it.
        let prefixed = package("xl/sharedStrings.xml", &table(200_000, "x:"));
        assert!(check(&prefixed).is_err());
        // An end tag that names another element, which calamine reads
        // past, does not stop the measuring.
        let mut stray = table(200_000, "");
        stray.splice(60..60, b"<foo></bar>".iter().copied());
        assert!(check(&package("xl/sharedStrings.xml", &stray)).is_err());
        // In another folder than the workbook part's, where a forged
        // package can make calamine read it.
        assert!(check(&package("big/sharedStrings.xml", &table(200_000, ""))).is_err());
        // 50,000 fit; the table is read to its end to see so.
        let fits = package("xl/sharedStrings.xml", &table(50_000, ""));
        assert!(members(&fits)[0].compressed * DEFLATE_MAX_RATIO * ESTIMATE_PER_BYTE > LIMIT);
        check(&fits).unwrap();
    }

    #[test]
    fn a_table_declaring_more_texts_than_memory_holds_is_refused() {
        let check = |bytes: &[u8]| check_within(bytes, &members(bytes), false, LIMIT);
        let declaring = |count: &str| {
            package(
                "xl/sharedStrings.xml",
                format!(r#"<?xml version="1.0"?><sst count="1" uniqueCount="{count}"><si><t>x</t></si></sst>"#)
                    .as_bytes(),
            )
        };
        let err = check(&declaring("100000000000000000")).unwrap_err();
        assert_eq!(err.code, Code::FileTooLarge);
        assert!(
            err.message.contains("declare 100000000000000000 texts"),
            "{}",
            err.message
        );
        assert!(check(&declaring("+1000000")).is_err());
        // What fits, and what calamine cannot parse (it reserves nothing).
        check(&declaring("1000")).unwrap();
        check(&declaring("99999999999999999999999")).unwrap();
        check(&declaring("lots")).unwrap();
    }

    #[test]
    fn a_binary_table_is_bounded_by_its_size() {
        let check = |bytes: &[u8]| check_within(bytes, &members(bytes), true, LIMIT);
        let big = package("xl/sharedStrings.bin", &vec![7u8; 2 << 20]);
        assert_eq!(check(&big).unwrap_err().code, Code::FileTooLarge);
        let small = package("xl/sharedStrings.bin", &vec![7u8; 300 << 10]);
        check(&small).unwrap();
    }
}
