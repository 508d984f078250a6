//! OpenDocument spreadsheets (`.ods`), read a row at a time from
//! `content.xml` as it inflates.
//!
//! Not through calamine (0.38): its ODS reader rejects the whitespace text
//! that pretty-printing writers such as Gnumeric put between `table-cell`
//! elements ("Cannot detect file format" for every `ssconvert … x.ods`; the
//! `Mismatch { expected: "table-cell" }` of `read_row` in its `ods.rs`), and
//! it builds every sheet as a dense range of up to 100 million cells when
//! the file is opened, which no row limit can stop. Here only the text
//! inside `text:p` counts, so layout whitespace is ignored; repeated empty
//! rows and cells (`number-rows-repeated`, `number-columns-repeated`, which
//! LibreOffice writes to the end of the sheet) cost nothing, and a repeated
//! non-empty row is yielded one copy at a time, so `import.max_rows` stops
//! it.
//!
//! Every sheet's rows come from one shared pass over `content.xml`: sheets
//! are read in order, as validation reads them. A sheet asked for after a
//! later one started reading restarts the pass.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{BufReader, Read};
use std::rc::Rc;

use quick_xml::events::{BytesRef, BytesStart, Event};

use super::container::{self, Member};
use super::workbook::{MAX_SHEET_COLUMNS, MAX_SHEET_ROWS};
use super::{Cell, DecimalComma, Format, Parsed, Row, Table};
use crate::config::ImportRules;
use crate::issue::{Code, Issue, Place};

type Xml<'a> = quick_xml::Reader<BufReader<Box<dyn Read + 'a>>>;

fn unreadable(e: impl std::fmt::Display) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!(
            "the ods workbook could not be read ({e}); open it in the spreadsheet program, \
             save it again and drop it again"
        ),
    )
}

/// One sheet, as the listing pass found it.
struct SheetInfo {
    name: String,
    hidden: bool,
    has_data: bool,
}

pub fn parse<'a>(
    bytes: &'a [u8],
    members: &[Member],
    rules: &ImportRules,
) -> Result<Parsed<'a>, Issue> {
    let content = container::find(members, "content.xml")
        .cloned()
        .ok_or_else(|| unreadable("it has no content.xml"))?;
    let sheets = list_sheets(bytes, &content)?;
    let mut warnings = Vec::new();
    let wanted: Vec<usize> = if rules.sheet_names.is_empty() {
        (0..sheets.len()).filter(|&i| !sheets[i].hidden).collect()
    } else {
        for name in &rules.sheet_names {
            if !sheets.iter().any(|s| &s.name == name) {
                warnings.push(Issue::new(
                    Code::NoHeader,
                    format!(
                        "sheet \"{name}\" (sheet.names) is not in the workbook; it has: {}",
                        sheets
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        rules
            .sheet_names
            .iter()
            .filter_map(|name| sheets.iter().position(|s| &s.name == name))
            .collect()
    };
    let pass = Rc::new(RefCell::new(Pass::new(bytes, content.clone())));
    let mut tables = Vec::new();
    for index in wanted {
        let sheet = &sheets[index];
        if !sheet.has_data {
            warnings.push(
                Issue::new(
                    Code::EmptySheet,
                    format!("sheet \"{}\" is empty and was skipped", sheet.name),
                )
                .at(Place {
                    sheet: Some(sheet.name.clone()),
                    ..Place::default()
                }),
            );
            continue;
        }
        tables.push(Table {
            sheet: Some(sheet.name.clone()),
            decimal_comma: DecimalComma::Never,
            rows: Box::new(SheetRows {
                pass: Rc::clone(&pass),
                index,
                name: sheet.name.clone(),
                repeat: None,
                done: false,
            }),
        });
    }
    if tables.is_empty() {
        return Err(Issue::new(
            Code::MissingColumn,
            "the workbook has no visible sheet with data; put the stock list on a visible sheet",
        ));
    }
    Ok(Parsed {
        format: Format::Ods,
        tables,
        warnings,
    })
}

/// The listing pass: every sheet's name, whether its style hides it, and
/// whether it has a cell with a value.
fn list_sheets(bytes: &[u8], content: &Member) -> Result<Vec<SheetInfo>, Issue> {
    let mut pass = Pass::new(bytes, content.clone());
    let mut sheets = Vec::new();
    while let Some((name, style)) = pass.next_table()? {
        if sheets.len() == super::MAX_SHEETS {
            // Not read on to count the rest.
            return Err(super::too_many_sheets(None));
        }
        let mut has_data = false;
        while let Some(row) = pass.next_row(&name)? {
            if !row.cells.is_empty() {
                has_data = true;
                break;
            }
        }
        pass.skip_table()?;
        let hidden = style.is_some_and(|s| pass.hidden_styles.contains(&s));
        sheets.push(SheetInfo {
            name,
            hidden,
            has_data,
        });
    }
    Ok(sheets)
}

/// A row read from the XML: its first row number (0-based), how many times
/// it repeats, and its cells.
struct XmlRow {
    number: u64,
    repeats: u64,
    cells: Vec<Cell>,
}

/// One pass over `content.xml`.
struct Pass<'a> {
    bytes: &'a [u8],
    content: Member,
    xml: Option<Xml<'a>>,
    buf: Vec<u8>,
    /// Sheets whose start the pass has read (the current one included).
    tables_started: usize,
    in_table: bool,
    /// The next row's 0-based number in the current sheet.
    next_row: u64,
    /// Table styles whose `table:display` is false.
    hidden_styles: HashSet<String>,
    style_name: Option<String>,
    /// Cells made by repeating others, and their bytes (see
    /// [`MAX_REPEATED_CELLS`]).
    repeated_cells: u64,
    repeated_bytes: u64,
}

/// The most cells a workbook may make by repeating others
/// (`number-columns-repeated` on a cell with a value, `number-rows-repeated`
/// on a row with one): a few bytes can ask for a billion copies. A real
/// stock list repeats a few identical neighbours, far below this.
pub const MAX_REPEATED_CELLS: u64 = 10_000_000;
/// And the most bytes of text made so: a 100 KB cell repeated 10,000 times
/// is a gigabyte.
pub const MAX_REPEATED_BYTES: u64 = 256 << 20;

impl<'a> Pass<'a> {
    fn new(bytes: &'a [u8], content: Member) -> Pass<'a> {
        Pass {
            bytes,
            content,
            xml: None,
            buf: Vec::new(),
            tables_started: 0,
            in_table: false,
            next_row: 0,
            hidden_styles: HashSet::new(),
            style_name: None,
            repeated_cells: 0,
            repeated_bytes: 0,
        }
    }

    /// Counts `cells` copies of `bytes` in all made by repeating, failing
    /// past the limits.
    fn repeat(&mut self, sheet: &str, cells: u64, bytes: u64) -> Result<(), Issue> {
        self.repeated_cells = self.repeated_cells.saturating_add(cells);
        self.repeated_bytes = self.repeated_bytes.saturating_add(bytes);
        if self.repeated_cells > MAX_REPEATED_CELLS || self.repeated_bytes > MAX_REPEATED_BYTES {
            return Err(Issue::new(
                Code::UnreadableFile,
                format!(
                    "the workbook repeats cells with values more than {MAX_REPEATED_CELLS} \
                     times (or {} MiB) in all (table:number-rows-repeated or \
                     table:number-columns-repeated; sheet \"{sheet}\" went past it), far more \
                     than a stock list holds; clear the rows or columns filled far past the \
                     list, or save the sheets as CSV, and drop it again",
                    MAX_REPEATED_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    fn restart(&mut self) {
        *self = Pass::new(self.bytes, self.content.clone());
    }

    fn xml(&mut self) -> Result<&mut Xml<'a>, Issue> {
        if self.xml.is_none() {
            let reader = container::member_reader(self.bytes, &self.content)?;
            let mut xml = quick_xml::Reader::from_reader(BufReader::new(reader));
            xml.config_mut().expand_empty_elements = true;
            xml.config_mut().check_end_names = false;
            self.xml = Some(xml);
        }
        self.xml
            .as_mut()
            .ok_or_else(|| unreadable("content.xml could not be opened"))
    }

    /// Reads one event into `self.buf`; the XML error, or a member that
    /// inflates past its size, becomes an issue.
    fn event(&mut self) -> Result<Event<'static>, Issue> {
        let content = self.content.clone();
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let result = self.xml()?.read_event_into(&mut buf).map(Event::into_owned);
        self.buf = buf;
        result.map_err(|e| match e {
            quick_xml::Error::Io(io) => {
                let io = std::sync::Arc::try_unwrap(io)
                    .unwrap_or_else(|shared| std::io::Error::other(shared.to_string()));
                container::limit_error(&content, io)
            }
            other => unreadable(other),
        })
    }

    /// Advances to the next sheet: its name and table style. `None` at the
    /// end of the document.
    fn next_table(&mut self) -> Result<Option<(String, Option<String>)>, Issue> {
        if self.in_table {
            self.skip_table()?;
        }
        loop {
            match self.event()? {
                Event::Start(e) if e.name().as_ref() == "style:style" => {
                    self.style_name = attr(&e, "style:name");
                }
                Event::Start(e)
                    if e.name().as_ref() == "style:table-properties"
                        && attr(&e, "table:display").as_deref() == Some("false") =>
                {
                    if let Some(name) = self.style_name.clone() {
                        self.hidden_styles.insert(name);
                    }
                }
                Event::Start(e) if e.name().as_ref() == "table:table" => {
                    self.tables_started += 1;
                    self.in_table = true;
                    self.next_row = 0;
                    let name = attr(&e, "table:name")
                        .unwrap_or_else(|| format!("Sheet{}", self.tables_started));
                    return Ok(Some((name, attr(&e, "table:style-name"))));
                }
                Event::Eof => return Ok(None),
                _ => {}
            }
        }
    }

    /// Reads on to the end of the current sheet.
    fn skip_table(&mut self) -> Result<(), Issue> {
        let mut depth = 0usize;
        while self.in_table {
            match self.event()? {
                Event::Start(e) if e.name().as_ref() == "table:table" => depth += 1,
                Event::End(e) if e.name().as_ref() == "table:table" => {
                    if depth == 0 {
                        self.in_table = false;
                    } else {
                        depth -= 1;
                    }
                }
                Event::Eof => self.in_table = false,
                _ => {}
            }
        }
        Ok(())
    }

    /// The next row of the current sheet, empty rows included (with no
    /// cells); `None` at the sheet's end.
    fn next_row(&mut self, sheet: &str) -> Result<Option<XmlRow>, Issue> {
        if !self.in_table {
            return Ok(None);
        }
        loop {
            match self.event()? {
                Event::Start(e) if e.name().as_ref() == "table:table-row" => {
                    let repeats = attr(&e, "table:number-rows-repeated")
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1)
                        .max(1);
                    let number = self.next_row;
                    self.next_row = self.next_row.saturating_add(repeats);
                    let cells = self.read_row(sheet, number)?;
                    return Ok(Some(XmlRow {
                        number,
                        repeats,
                        cells,
                    }));
                }
                // A sheet nested in a cell (a sub-table) is not read.
                Event::End(e) if e.name().as_ref() == "table:table" => {
                    self.in_table = false;
                    return Ok(None);
                }
                Event::Eof => {
                    self.in_table = false;
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    /// The cells of the row whose start was just read, trailing blanks
    /// dropped.
    fn read_row(&mut self, sheet: &str, row: u64) -> Result<Vec<Cell>, Issue> {
        let mut cells: Vec<Cell> = Vec::new();
        let mut column: u64 = 0;
        let mut bytes: u64 = 0;
        loop {
            match self.event()? {
                Event::Start(e)
                    if matches!(
                        e.name().as_ref(),
                        "table:table-cell" | "table:covered-table-cell"
                    ) =>
                {
                    let repeats = attr(&e, "table:number-columns-repeated")
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1)
                        .max(1);
                    let value = self.read_cell(&e)?;
                    if !value.is_blank() {
                        let end = column.saturating_add(repeats);
                        if end > u64::from(MAX_SHEET_COLUMNS) || row >= u64::from(MAX_SHEET_ROWS) {
                            return Err(outside_sheet(sheet, row, end.saturating_sub(1)));
                        }
                        let size = value.size() as u64;
                        bytes = bytes.saturating_add(size.saturating_mul(repeats));
                        if bytes > super::MAX_ROW_BYTES as u64 {
                            return Err(super::row_too_large(sheet, row + 1));
                        }
                        self.repeat(sheet, repeats - 1, (repeats - 1).saturating_mul(size))?;
                        cells.resize(column as usize, Cell::Empty);
                        for _ in 0..repeats {
                            cells.push(value.clone());
                        }
                    }
                    column = column.saturating_add(repeats);
                }
                Event::End(e) if e.name().as_ref() == "table:table-row" => return Ok(cells),
                Event::Eof => return Err(unreadable("content.xml ends inside a row")),
                _ => {}
            }
        }
    }

    /// The value of the cell whose start is `e`, reading to its end.
    fn read_cell(&mut self, e: &BytesStart<'_>) -> Result<Cell, Issue> {
        let kind = attr(e, "office:value-type");
        let error = attr(e, "calcext:value-type").as_deref() == Some("error");
        let typed = match kind.as_deref() {
            Some("float" | "percentage" | "currency") => attr(e, "office:value")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|f| f.is_finite())
                .map(Cell::Float),
            Some("boolean") => attr(e, "office:boolean-value")
                .map(|v| Cell::Bool(v.trim().eq_ignore_ascii_case("true"))),
            Some("date") => attr(e, "office:date-value").map(|v| Cell::Date(v.replace('T', " "))),
            Some("time") => attr(e, "office:time-value").map(Cell::Date),
            Some("string") => attr(e, "office:string-value").map(Cell::Text),
            _ => None,
        };
        let text = self.cell_text()?;
        let cell = match typed {
            Some(cell) if !error => cell,
            _ if error => Cell::Error(text.trim().to_string()),
            // A string cell (or one without a type) holds its text.
            _ if text.trim().is_empty() => Cell::Empty,
            _ => Cell::Text(text),
        };
        Ok(cell)
    }

    /// The text of the cell being read: its paragraphs joined by line
    /// breaks, with `text:s`, `text:tab` and `text:line-break` expanded;
    /// annotations and layout whitespace outside paragraphs left out.
    fn cell_text(&mut self) -> Result<String, Issue> {
        let mut text = String::new();
        let mut paragraphs = 0usize;
        let mut in_paragraph = 0usize;
        let mut depth = 0usize;
        loop {
            match self.event()? {
                Event::Start(e) => {
                    depth += 1;
                    match e.name().as_ref() {
                        "office:annotation" => {
                            self.skip_element("office:annotation")?;
                            depth -= 1;
                        }
                        "text:p" | "text:h" => {
                            if paragraphs > 0 && in_paragraph == 0 {
                                text.push('\n');
                            }
                            paragraphs += 1;
                            in_paragraph += 1;
                        }
                        "text:s" if in_paragraph > 0 => {
                            let count = attr(&e, "text:c")
                                .and_then(|c| c.parse::<usize>().ok())
                                .unwrap_or(1)
                                .min(crate::model::MAX_LEN + 1);
                            text.extend(std::iter::repeat_n(' ', count));
                        }
                        "text:tab" if in_paragraph > 0 => text.push('\t'),
                        "text:line-break" if in_paragraph > 0 => text.push('\n'),
                        _ => {}
                    }
                }
                Event::End(e) => {
                    if depth == 0 {
                        // The cell's own end.
                        return Ok(text);
                    }
                    depth -= 1;
                    if matches!(e.name().as_ref(), "text:p" | "text:h") {
                        in_paragraph = in_paragraph.saturating_sub(1);
                    }
                }
                Event::Text(t) if in_paragraph > 0 => text.push_str(&t.xml10_content()),
                Event::GeneralRef(r) if in_paragraph > 0 => push_entity(&r, &mut text),
                Event::Eof => return Err(unreadable("content.xml ends inside a cell")),
                _ => {}
            }
        }
    }

    fn skip_element(&mut self, name: &str) -> Result<(), Issue> {
        let mut depth = 0usize;
        loop {
            match self.event()? {
                Event::Start(e) if e.name().as_ref() == name => depth += 1,
                Event::End(e) if e.name().as_ref() == name => {
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                Event::Eof => return Err(unreadable("content.xml ends inside a comment")),
                _ => {}
            }
        }
    }
}

fn outside_sheet(sheet: &str, row: u64, col: u64) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!(
            "sheet \"{sheet}\" has a cell at row {} column {}, outside the {MAX_SHEET_ROWS} rows \
             and {MAX_SHEET_COLUMNS} columns a sheet can have; the file is damaged or forged — \
             save the stock list again from the spreadsheet program",
            row + 1,
            col + 1
        ),
    )
    .at(Place {
        sheet: Some(sheet.to_string()),
        ..Place::default()
    })
}

/// An attribute's unescaped value.
fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name).ok().flatten().and_then(|a| {
        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .ok()
            .map(|v| v.into_owned())
    })
}

/// An entity or character reference (`&amp;`, `&#xA0;`) as text.
fn push_entity(r: &BytesRef<'_>, text: &mut String) {
    let name = r.xml10_content();
    match name.as_ref() {
        "amp" => text.push('&'),
        "lt" => text.push('<'),
        "gt" => text.push('>'),
        "quot" => text.push('"'),
        "apos" => text.push('\''),
        _ => {
            if let Ok(Some(c)) = r.resolve_char_ref() {
                text.push(c);
            }
        }
    }
}

/// One sheet's rows, from the shared pass.
struct SheetRows<'a> {
    pass: Rc<RefCell<Pass<'a>>>,
    /// 0-based position of the sheet in the document.
    index: usize,
    name: String,
    /// A non-empty row still to be yielded again: (next number, copies
    /// left, cells).
    repeat: Option<(u64, u64, Vec<Cell>)>,
    done: bool,
}

impl SheetRows<'_> {
    fn next_row(&mut self) -> Result<Option<Row>, Issue> {
        if let Some((number, left, cells)) = self.repeat.take() {
            let bytes = cells.iter().map(|c| c.size() as u64).sum();
            self.pass
                .borrow_mut()
                .repeat(&self.name, cells.len() as u64, bytes)?;
            if left > 1 {
                self.repeat = Some((number + 1, left - 1, cells.clone()));
            }
            return Ok(Some(Row {
                number: number + 1,
                cells,
                pointers: None,
            }));
        }
        let mut pass = self.pass.borrow_mut();
        let here = pass.in_table && pass.tables_started == self.index + 1;
        if !here {
            if pass.tables_started > self.index {
                // A later sheet was read first: start over.
                pass.restart();
            }
            while pass.tables_started < self.index + 1 {
                if pass.next_table()?.is_none() {
                    return Ok(None);
                }
            }
        }
        while let Some(row) = pass.next_row(&self.name)? {
            if row.cells.is_empty() {
                continue;
            }
            if row.repeats > 1 {
                self.repeat = Some((row.number + 1, row.repeats - 1, row.cells.clone()));
            }
            return Ok(Some(Row {
                number: row.number + 1,
                cells: row.cells,
                pointers: None,
            }));
        }
        Ok(None)
    }
}

impl Iterator for SheetRows<'_> {
    type Item = Result<Row, Issue>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_row() {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(issue) => {
                self.done = true;
                Some(Err(issue.at(Place {
                    sheet: Some(self.name.clone()),
                    ..Place::default()
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::io::Write;

    /// An `.ods` package around `body` (the inside of office:body).
    fn ods(styles: &str, body: &str) -> Vec<u8> {
        let content = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
  xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
  xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
  xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0">
  <office:automatic-styles>{styles}</office:automatic-styles>
  <office:body>
    <office:spreadsheet>
{body}
    </office:spreadsheet>
  </office:body>
</office:document-content>"#
        );
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("mimetype", stored).unwrap();
        zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
            .unwrap();
        let deflated = zip::write::SimpleFileOptions::default();
        zip.start_file("content.xml", deflated).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    }

    fn tables(bytes: &[u8]) -> Vec<(Option<String>, Vec<Row>)> {
        let config = Config::defaults();
        let members = container::inspect(bytes, &config.rules).unwrap();
        assert_eq!(
            container::kind(bytes, &members).unwrap(),
            container::Kind::Ods
        );
        let parsed = parse(bytes, &members, &config.rules).unwrap();
        parsed
            .tables
            .into_iter()
            .map(|t| (t.sheet, t.rows.map(Result::unwrap).collect()))
            .collect()
    }

    /// The rows a table gives before it stops, and the error it stops at.
    fn rows_until_refused(table: Table<'_>) -> (u64, Option<Issue>) {
        let mut rows = 0u64;
        for row in table.rows {
            match row {
                Ok(_) => rows += 1,
                Err(issue) => return (rows, Some(issue)),
            }
        }
        (rows, None)
    }

    fn texts(row: &Row) -> Vec<String> {
        row.cells.iter().map(Cell::to_text).collect()
    }

    #[test]
    fn layout_whitespace_repeats_and_text_runs_are_read_as_a_spreadsheet_shows_them() {
        let bytes = ods(
            r#"<style:style style:name="hidden" style:family="table">
                 <style:table-properties table:display="false"/>
               </style:style>"#,
            r#"
      <table:table table:name="Stock">
        <table:table-column table:number-columns-repeated="3"/>
        <table:table-row>
          <table:table-cell office:value-type="string">
            <text:p>sku</text:p>
          </table:table-cell>
          <table:table-cell office:value-type="string">
            <text:p>qty</text:p>
          </table:table-cell>
        </table:table-row>
        <table:table-row table:number-rows-repeated="2">
          <table:table-cell office:value-type="string">
            <text:p>A<text:s text:c="2"/>B</text:p>
            <office:annotation><text:p>a comment</text:p></office:annotation>
          </table:table-cell>
          <table:table-cell office:value-type="float" office:value="5"><text:p>5</text:p></table:table-cell>
        </table:table-row>
        <table:table-row table:number-rows-repeated="1048000">
          <table:table-cell table:number-columns-repeated="1024"/>
        </table:table-row>
        <table:table-row>
          <table:table-cell table:number-columns-repeated="2"/>
          <table:table-cell office:value-type="string"><text:p>x &amp; y</text:p></table:table-cell>
          <table:table-cell office:value-type="boolean" office:boolean-value="true"/>
        </table:table-row>
      </table:table>
      <table:table table:name="Secret" table:style-name="hidden">
        <table:table-row><table:table-cell office:value-type="string"><text:p>no</text:p></table:table-cell></table:table-row>
      </table:table>
      <table:table table:name="Empty">
        <table:table-row table:number-rows-repeated="5"><table:table-cell/></table:table-row>
      </table:table>"#,
        );
        let tables = tables(&bytes);
        assert_eq!(
            tables.len(),
            1,
            "the hidden and the empty sheet are skipped"
        );
        let (sheet, rows) = &tables[0];
        assert_eq!(sheet.as_deref(), Some("Stock"));
        let numbers: Vec<u64> = rows.iter().map(|r| r.number).collect();
        assert_eq!(numbers, [1, 2, 3, 1_048_004]);
        assert_eq!(texts(&rows[0]), ["sku", "qty"]);
        assert_eq!(texts(&rows[1]), ["A  B", "5"]);
        assert_eq!(rows[2].cells, rows[1].cells);
        assert_eq!(texts(&rows[3]), ["", "", "x & y", "TRUE"]);
    }

    #[test]
    fn sheets_read_out_of_order_restart_the_pass() {
        let bytes = ods(
            "",
            r#"<table:table table:name="One"><table:table-row><table:table-cell office:value-type="string"><text:p>1</text:p></table:table-cell></table:table-row></table:table>
               <table:table table:name="Two"><table:table-row><table:table-cell office:value-type="string"><text:p>2</text:p></table:table-cell></table:table-row></table:table>"#,
        );
        let config = Config::defaults();
        let members = container::inspect(&bytes, &config.rules).unwrap();
        let mut parsed = parse(&bytes, &members, &config.rules).unwrap();
        let second: Vec<Row> = parsed.tables.remove(1).rows.map(Result::unwrap).collect();
        let first: Vec<Row> = parsed.tables.remove(0).rows.map(Result::unwrap).collect();
        assert_eq!(texts(&first[0]), ["1"]);
        assert_eq!(texts(&second[0]), ["2"]);
    }

    #[test]
    fn repeating_cells_with_values_is_bounded() {
        // A few hundred bytes asking for 16,000 cells in each of 100,000
        // rows: refused once 10 million copies are made, not read for a
        // minute.
        let body = |rows: u64, columns: u64| {
            format!(
                r#"<table:table table:name="Wide">
                 <table:table-row><table:table-cell office:value-type="string"><text:p>sku</text:p></table:table-cell></table:table-row>
                 <table:table-row table:number-rows-repeated="{rows}">
                 <table:table-cell table:number-columns-repeated="{columns}" office:value-type="float" office:value="1"><text:p>1</text:p></table:table-cell>
               </table:table-row></table:table>"#
            )
        };
        let bytes = ods("", &body(100_000, 16_000));
        let config = Config::defaults();
        let members = container::inspect(&bytes, &config.rules).unwrap();
        let parsed = parse(&bytes, &members, &config.rules).unwrap();
        let table = parsed.tables.into_iter().next().unwrap();
        let (rows, refused) = rows_until_refused(table);
        let issue = refused.expect("refused");
        assert_eq!(issue.code, Code::UnreadableFile);
        assert!(
            issue.message.contains("repeats cells with values")
                && issue.message.contains("sheet \"Wide\" went past it"),
            "{}",
            issue.message
        );
        assert_eq!(issue.place.sheet.as_deref(), Some("Wide"));
        // The header, then as many copies as fit in the budget.
        assert_eq!(rows, 1 + MAX_REPEATED_CELLS / 16_000, "{rows}");
        // Repeats a real list has are read in full.
        let bytes = ods("", &body(1_000, 12));
        let tables = tables(&bytes);
        assert_eq!(tables[0].1.len(), 1_001);
        assert_eq!(texts(&tables[0].1[1000]), vec!["1"; 12]);
    }

    /// `n` letters that compress about as little as real text, so that a
    /// package of them passes the 100:1 ratio.
    fn noise(n: usize, seed: u64) -> String {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from(b'a' + ((x >> 33) % 26) as u8)
            })
            .collect()
    }

    #[test]
    fn long_text_repeated_is_bounded_by_its_bytes() {
        let long = noise(100_000, 1);
        // Across a row: the row holds more text than a record may.
        let across = ods(
            "",
            &format!(
                r#"<table:table table:name="Wide"><table:table-row>
                 <table:table-cell table:number-columns-repeated="20" office:value-type="string"><text:p>{long}</text:p></table:table-cell>
               </table:table-row></table:table>"#
            ),
        );
        let config = Config::defaults();
        let members = container::inspect(&across, &config.rules).unwrap();
        let err = match parse(&across, &members, &config.rules) {
            Ok(parsed) => parsed
                .tables
                .into_iter()
                .flat_map(|t| t.rows)
                .find_map(Result::err)
                .expect("refused"),
            Err(issue) => issue,
        };
        assert!(
            err.message.contains("more than 1 MiB of text"),
            "{}",
            err.message
        );
        // Down the sheet: rows of one long cell, copied until 256 MiB.
        let down = ods(
            "",
            &format!(
                r#"<table:table table:name="Tall"><table:table-row table:number-rows-repeated="100000">
                 <table:table-cell office:value-type="string"><text:p>{long}</text:p></table:table-cell>
               </table:table-row></table:table>"#
            ),
        );
        let members = container::inspect(&down, &config.rules).unwrap();
        let parsed = parse(&down, &members, &config.rules).unwrap();
        let table = parsed.tables.into_iter().next().unwrap();
        let (rows, refused) = rows_until_refused(table);
        assert!(refused.expect("refused").message.contains("256 MiB"));
        assert_eq!(rows, 1 + MAX_REPEATED_BYTES / 100_000);
    }

    #[test]
    fn a_workbook_of_more_sheets_than_are_read_is_refused() {
        let body: String = (0..=super::super::MAX_SHEETS as u64)
            .map(|i| {
                format!(
                    r#"<table:table table:name="{}"><table:table-row><table:table-cell office:value-type="string"><text:p>{}</text:p></table:table-cell></table:table-row></table:table>"#,
                    noise(12, i),
                    noise(40, i + 7)
                )
            })
            .collect();
        let bytes = ods("", &body);
        let config = Config::defaults();
        let members = container::inspect(&bytes, &config.rules).unwrap();
        let err = parse(&bytes, &members, &config.rules)
            .err()
            .expect("refused");
        assert_eq!(err.code, Code::FileTooLarge);
        assert!(err.message.contains("at most 1024"), "{}", err.message);
    }

    #[test]
    fn a_cell_past_the_last_column_is_refused() {
        let bytes = ods(
            "",
            r#"<table:table table:name="Wide"><table:table-row>
                 <table:table-cell table:number-columns-repeated="16384"/>
                 <table:table-cell office:value-type="string"><text:p>far</text:p></table:table-cell>
               </table:table-row></table:table>"#,
        );
        let config = Config::defaults();
        let members = container::inspect(&bytes, &config.rules).unwrap();
        let err = parse(&bytes, &members, &config.rules)
            .err()
            .expect("refused");
        assert_eq!(err.code, Code::UnreadableFile);
        assert!(err.message.contains("16384 columns"), "{}", err.message);
    }
}
