//! The cell styles of an `.xlsx` workbook, sized before calamine opens it.
//!
//! calamine (0.38) builds a full style for every cell format (`xf`) of
//! `styles.xml` when a workbook is opened, copying into each the number
//! format, font, fill and border it names (`read_styles` in its
//! `xlsx/mod.rs`). A 25 KB workbook of 30,000 formats that all name one
//! 20,000-character number format took 666 MB, and a larger one aborted
//! the process. The part is read here first, as it inflates: the formats
//! times the longest thing each could copy bounds what calamine would
//! build, and a part past [`MAX_STYLES_MEMORY`] is refused.

use std::io::BufReader;

use quick_xml::events::Event;

use super::container::{self, Member};
use crate::issue::{Code, Issue};

/// The most the styles calamine builds may take (estimated as below).
pub const MAX_STYLES_MEMORY: u64 = 96 << 20;

/// What a style takes besides the text it copies.
const PER_STYLE: u64 = 256;

fn is_styles(member: &Member) -> bool {
    container::base_name(&member.name).eq_ignore_ascii_case("styles.xml")
}

/// Refuses a workbook whose styles would take more than
/// [`MAX_STYLES_MEMORY`] once calamine has built them.
pub fn check(bytes: &[u8], members: &[Member]) -> Result<(), Issue> {
    check_within(bytes, members, MAX_STYLES_MEMORY)
}

fn check_within(bytes: &[u8], members: &[Member], limit: u64) -> Result<(), Issue> {
    for part in members.iter().filter(|m| is_styles(m)) {
        let reader = BufReader::with_capacity(1 << 16, container::member_reader(bytes, part)?);
        let mut xml = container::calamine_xml(reader);
        let mut buf = Vec::new();
        let mut formats: u64 = 0;
        // The longest element (its name and attributes): a number format's
        // code, a font's name, a colour; what one style can copy is a few
        // of them.
        let mut longest: u64 = 0;
        loop {
            buf.clear();
            // A part this reader cannot read stops calamine too.
            let Ok(event) = xml.read_event_into(&mut buf) else {
                break;
            };
            match event {
                Event::Start(e) | Event::Empty(e) => {
                    longest = longest.max(e.len() as u64);
                    if e.local_name().as_ref() == "xf" {
                        formats += 1;
                    }
                    let estimate = formats.saturating_mul(PER_STYLE + 4 * longest);
                    if estimate > limit {
                        return Err(too_many_styles(&part.name, formats, longest, limit));
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
    }
    Ok(())
}

fn too_many_styles(part: &str, formats: u64, longest: u64, limit: u64) -> Issue {
    Issue::new(
        Code::FileTooLarge,
        format!(
            "the workbook's cell styles (\"{part}\": at least {formats} formats, with parts of up to \
             {longest} bytes) would take more than {} MiB of memory to read; the file is damaged \
             or bloated with styles — save the stock list as CSV, or clear the formatting and save \
             it again, and drop it again",
            limit >> 20
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::parse::shared_strings::tests::package;

    /// The members as the directory lists them, past the 100:1 ratio
    /// `container::inspect` allows (these parts are one pattern repeated).
    fn members(bytes: &[u8]) -> Vec<Member> {
        crate::parse::shared_strings::tests::members(bytes)
    }

    /// `formats` cell formats that all name one number format of `code`
    /// characters.
    fn styles(formats: usize, code: usize) -> Vec<u8> {
        let mut body = format!(
            r#"<styleSheet><numFmts count="1"><numFmt numFmtId="164" formatCode="{}"/></numFmts><cellXfs count="{formats}">"#,
            "0".repeat(code)
        );
        for i in 0..formats {
            body.push_str(&format!(r#"<xf numFmtId="164" fontId="{}"/>"#, i % 7));
        }
        body.push_str("</cellXfs></styleSheet>");
        body.into_bytes()
    }

    #[test]
    fn styles_that_would_copy_a_long_format_into_every_cell_format_are_refused() {
        const LIMIT: u64 = 4 << 20;
        let check = |bytes: &[u8]| check_within(bytes, &members(bytes), LIMIT);
        let bloated = package("xl/styles.xml", &styles(3_000, 2_000));
        let err = check(&bloated).unwrap_err();
        assert_eq!(err.code, Code::FileTooLarge);
        assert!(err.message.contains("\"xl/styles.xml\""), "{}", err.message);
        // As many formats with ordinary codes, and a long code used once.
        check(&package("xl/styles.xml", &styles(3_000, 20))).unwrap();
        check(&package("xl/styles.xml", &styles(10, 2_000))).unwrap();
        // Any folder.
        assert!(check(&package("other/Styles.xml", &styles(3_000, 2_000))).is_err());
    }
}
