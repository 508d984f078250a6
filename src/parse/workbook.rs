//! Workbooks through calamine: every visible sheet (or those in
//! `sheet.names`), each a table numbered as the spreadsheet numbers its rows
//! and columns. Formulas give their cached values; dates, booleans and
//! errors keep their kind so validation can say what a cell held.
//!
//! Memory never follows a sheet's dimensions (SPEC §4.5): a sheet with
//! cells in `A1` and `XFD1048576` is a few kilobytes, and calamine's dense
//! `Range` of it would ask for half a terabyte.
//! - `.xlsx`/`.xlsm`/`.xlsb` are read cell by cell through calamine's
//!   streaming cell readers, one row at a time, never as a range; each
//!   sheet opens its own reader when its first row is asked for, so only
//!   one sheet is being read at a time.
//! - `.xls` is parsed whole by calamine when it is opened, into dense
//!   ranges: its sheets' declared and implied dimensions are checked first
//!   by walking the BIFF records of its `Workbook` stream ([`xls_limits`]).
//! - `.ods` is read by [`super::ods`], also a row at a time.

use std::io::{Cursor, Read};

use calamine::{Data, DataRef, Reader, SheetVisible, Xls, Xlsb, Xlsx, XlsxCellReader};
use ouroboros::self_referencing;

use super::{container, Cell, Format, Parsed, Row, Table};
use crate::config::ImportRules;
use crate::issue::{Code, Issue, Place};

/// The most rows and columns a sheet can have (Excel 2007 and later).
pub const MAX_SHEET_ROWS: u32 = 1_048_576;
pub const MAX_SHEET_COLUMNS: u32 = 16_384;
/// The most cells an `.xls` sheet may span (declared or implied): calamine
/// holds such a sheet as a dense range, twice while it is handed over
/// (64 MiB each at this size).
pub const MAX_DENSE_CELLS: u64 = 2_097_152;
/// The most cells all of an `.xls`'s sheets may span together: calamine
/// holds every sheet's range at once.
pub const MAX_DENSE_CELLS_IN_ALL: u64 = 2 * MAX_DENSE_CELLS;
/// The most shared-strings table a workbook's sheets may have read in all
/// (the table's size times the sheets with data): 50 sheets of a 20 MB
/// table took a minute.
pub const MAX_SHARED_STRINGS_REREAD: u64 = 1 << 30;

fn unopenable(format: Format, e: impl std::fmt::Display) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!(
            "the {} workbook could not be opened ({e}); open it in the spreadsheet program, \
             save it again and drop it again",
            format.as_str()
        ),
    )
}

fn sheet_place(name: &str) -> Place {
    Place {
        sheet: Some(name.to_string()),
        ..Place::default()
    }
}

fn unreadable_sheet(name: &str, e: impl std::fmt::Display) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!("sheet \"{name}\" could not be read ({e}); save the workbook again"),
    )
    .at(sheet_place(name))
}

/// A cell outside what any spreadsheet can hold: a forged file.
fn outside_sheet(name: &str, row: u32, col: u32) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!(
            "sheet \"{name}\" has a cell at row {} column {}, outside the {MAX_SHEET_ROWS} rows \
             and {MAX_SHEET_COLUMNS} columns a sheet can have; the file is damaged or forged — \
             save the stock list again from the spreadsheet program",
            u64::from(row) + 1,
            u64::from(col) + 1
        ),
    )
    .at(sheet_place(name))
}

/// The sheets to read: the visible ones, or those `sheet.names` lists (a
/// warning for each listed one that is missing).
fn chosen_sheets(
    metadata: &[calamine::Sheet],
    rules: &ImportRules,
    warnings: &mut Vec<Issue>,
) -> Vec<String> {
    if rules.sheet_names.is_empty() {
        return metadata
            .iter()
            .filter(|s| s.visible == SheetVisible::Visible)
            .map(|s| s.name.clone())
            .collect();
    }
    let present: Vec<String> = metadata.iter().map(|s| s.name.clone()).collect();
    for wanted in &rules.sheet_names {
        if !present.contains(wanted) {
            warnings.push(Issue::new(
                Code::NoHeader,
                format!(
                    "sheet \"{wanted}\" (sheet.names) is not in the workbook; it has: {}",
                    present.join(", ")
                ),
            ));
        }
    }
    rules
        .sheet_names
        .iter()
        .filter(|name| present.contains(name))
        .cloned()
        .collect()
}

fn empty_sheet(name: &str) -> Issue {
    Issue::new(
        Code::EmptySheet,
        format!("sheet \"{name}\" is empty and was skipped"),
    )
    .at(sheet_place(name))
}

fn no_sheet_with_data() -> Issue {
    Issue::new(
        Code::MissingColumn,
        "the workbook has no visible sheet with data; put the stock list on a visible sheet",
    )
}

// ---------------------------------------------------------------------------
// Office Open XML, text (.xlsx, .xlsm) and binary (.xlsb): streamed.

/// One sheet's cells, one at a time, as (row, column, cell), 0-based.
trait CellSource {
    fn next_cell(&mut self) -> Result<Option<(u32, u32, Cell)>, String>;
}

#[self_referencing]
struct XlsxSheet<'a> {
    book: Xlsx<Cursor<&'a [u8]>>,
    #[borrows(mut book)]
    #[not_covariant]
    cells: XlsxCellReader<'this, Cursor<&'a [u8]>>,
}

impl CellSource for XlsxSheet<'_> {
    fn next_cell(&mut self) -> Result<Option<(u32, u32, Cell)>, String> {
        self.with_cells_mut(|cells| match cells.next_cell() {
            Ok(Some(c)) => {
                let (row, col) = c.get_position();
                Ok(Some((row, col, cell_ref(c.get_value()))))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        })
    }
}

type Opener<'a> = Box<dyn FnOnce() -> Result<Box<dyn CellSource + 'a>, String> + 'a>;

/// A sheet's rows assembled from its cell stream: consecutive cells of one
/// row make a row; cells keep their sheet columns; blank rows are skipped.
/// The source is opened on the first call.
struct StreamedRows<'a> {
    sheet: String,
    open: Option<Opener<'a>>,
    source: Option<Box<dyn CellSource + 'a>>,
    /// The first cell of the next row, read while finishing the last one.
    pending: Option<(u32, u32, Cell)>,
    /// The cells the rows so far span (see [`super::MAX_SHEET_SPAN`]).
    spanned: u64,
    done: bool,
}

impl<'a> StreamedRows<'a> {
    fn new(sheet: String, open: Opener<'a>) -> StreamedRows<'a> {
        StreamedRows {
            sheet,
            open: Some(open),
            source: None,
            pending: None,
            spanned: 0,
            done: false,
        }
    }

    fn pull(&mut self) -> Result<Option<(u32, u32, Cell)>, Issue> {
        if let Some(cell) = self.pending.take() {
            return Ok(Some(cell));
        }
        let Some(source) = self.source.as_mut() else {
            return Ok(None);
        };
        match source.next_cell() {
            Ok(Some((row, col, _))) if row >= MAX_SHEET_ROWS || col >= MAX_SHEET_COLUMNS => {
                Err(outside_sheet(&self.sheet, row, col))
            }
            Ok(Some(cell)) => Ok(Some(cell)),
            Ok(None) => {
                // The end of the sheet: the reader must not be asked again.
                self.source = None;
                Ok(None)
            }
            Err(e) => Err(unreadable_sheet(&self.sheet, e)),
        }
    }

    fn next_row(&mut self) -> Result<Option<Row>, Issue> {
        if let Some(open) = self.open.take() {
            self.source = Some(open().map_err(|e| unreadable_sheet(&self.sheet, e))?);
        }
        loop {
            let Some((row, col, cell)) = self.pull()? else {
                return Ok(None);
            };
            let number = u64::from(row) + 1;
            let mut cells: Vec<Cell> = Vec::new();
            let mut bytes = cell.size();
            place(&mut cells, col, cell);
            loop {
                match self.pull()? {
                    Some((r, c, cell)) if r == row => {
                        bytes += cell.size();
                        if bytes > super::MAX_ROW_BYTES {
                            return Err(super::row_too_large(&self.sheet, number));
                        }
                        place(&mut cells, c, cell);
                    }
                    Some(other) => {
                        self.pending = Some(other);
                        break;
                    }
                    None => break,
                }
            }
            self.spanned += cells.len() as u64;
            if self.spanned > super::MAX_SHEET_SPAN {
                return Err(super::sheet_too_wide(&self.sheet, number));
            }
            while matches!(cells.last(), Some(c) if c.is_blank()) {
                cells.pop();
            }
            if !cells.is_empty() {
                return Ok(Some(Row {
                    number,
                    cells,
                    pointers: None,
                }));
            }
        }
    }
}

/// Puts a cell in its column; a blank cell allocates nothing.
fn place(cells: &mut Vec<Cell>, col: u32, cell: Cell) {
    if cell.is_blank() {
        return;
    }
    let col = col as usize;
    if cells.len() <= col {
        cells.resize(col + 1, Cell::Empty);
    }
    cells[col] = cell;
}

impl Iterator for StreamedRows<'_> {
    type Item = Result<Row, Issue>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_row() {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => {
                self.done = true;
                self.source = None;
                None
            }
            Err(issue) => {
                self.done = true;
                self.source = None;
                Some(Err(issue))
            }
        }
    }
}

/// One `.xlsb` sheet's next cell. calamine does not export the type of its
/// `.xlsb` cell reader, so the reader is kept inside this closure.
type NextCell<'t> = Box<dyn FnMut() -> Result<Option<(u32, u32, Cell)>, String> + 't>;

#[self_referencing]
struct XlsbSheet<'a> {
    book: Xlsb<Cursor<&'a [u8]>>,
    #[borrows(mut book)]
    #[not_covariant]
    cells: NextCell<'this>,
}

impl CellSource for XlsbSheet<'_> {
    fn next_cell(&mut self) -> Result<Option<(u32, u32, Cell)>, String> {
        self.with_cells_mut(|next| next())
    }
}

/// `.xlsx` and `.xlsm` (`binary` false) and `.xlsb` (`binary` true),
/// streamed, the package's `members` listed by `container::inspect`. What
/// calamine reads whole when it opens the workbook (the shared strings,
/// the cell styles) is measured first.
pub fn parse_ooxml<'a>(
    bytes: &'a [u8],
    members: &[container::Member],
    format: Format,
    binary: bool,
    rules: &ImportRules,
) -> Result<Parsed<'a>, Issue> {
    if !binary {
        super::styles::check(bytes, members)?;
    }
    let shared_strings_bytes = super::shared_strings::check(bytes, members, binary)?;
    let mut warnings = Vec::new();
    // Listed once, with one workbook: the sheets, and which have a cell
    // with a value (a sheet without one gets `empty-sheet`).
    let mut chosen: Vec<(String, bool)> = Vec::new();
    // The workbook opened to list the sheets reads the first sheet with
    // data: opening one again reads its shared-strings table (and styles)
    // whole once more, and a workbook saved by Excel keeps every text there.
    let mut listed_xlsb: Option<Xlsb<Cursor<&'a [u8]>>> = None;
    let mut listed_xlsx: Option<Xlsx<Cursor<&'a [u8]>>> = None;
    if binary {
        let mut book: Xlsb<_> = Xlsb::new(Cursor::new(bytes)).map_err(|e| unopenable(format, e))?;
        if book.sheets_metadata().len() > super::MAX_SHEETS {
            return Err(super::too_many_sheets(Some(book.sheets_metadata().len())));
        }
        let names = chosen_sheets(book.sheets_metadata(), rules, &mut warnings);
        for name in names {
            let mut cells = book
                .worksheet_cells_reader(&name)
                .map_err(|e| unreadable_sheet(&name, e))?;
            let has_data = first_value(|| cells.next_cell().map_err(|e| e.to_string()))
                .map_err(|e| unreadable_sheet(&name, e))?;
            chosen.push((name, has_data));
        }
        listed_xlsb = Some(book);
    } else {
        let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|e| unopenable(format, e))?;
        if book.sheets_metadata().len() > super::MAX_SHEETS {
            return Err(super::too_many_sheets(Some(book.sheets_metadata().len())));
        }
        let names = chosen_sheets(book.sheets_metadata(), rules, &mut warnings);
        for name in names {
            let mut cells = book
                .worksheet_cells_reader(&name)
                .map_err(|e| unreadable_sheet(&name, e))?;
            let has_data = first_value(|| cells.next_cell().map_err(|e| e.to_string()))
                .map_err(|e| unreadable_sheet(&name, e))?;
            chosen.push((name, has_data));
        }
        listed_xlsx = Some(book);
    }
    // Each sheet after the first opens the workbook again, and calamine
    // reads the whole shared-strings table each time.
    let read = chosen.iter().filter(|c| c.1).count() as u64;
    if read.saturating_mul(shared_strings_bytes) > MAX_SHARED_STRINGS_REREAD {
        return Err(Issue::new(
            Code::FileTooLarge,
            format!(
                "the workbook's {read} sheets would have its shared-strings table ({} MB) read \
                 once each, {} MB in all; save each sheet as a CSV file, or make workbooks of \
                 fewer sheets, and drop them again",
                shared_strings_bytes / 1_000_000,
                read.saturating_mul(shared_strings_bytes) / 1_000_000
            ),
        ));
    }
    let mut tables = Vec::new();
    for (name, has_data) in chosen {
        if !has_data {
            warnings.push(empty_sheet(&name));
            continue;
        }
        let sheet = name.clone();
        let open: Opener<'a> = if binary {
            let listed = listed_xlsb.take();
            Box::new(move || {
                let book = match listed {
                    Some(book) => book,
                    None => Xlsb::new(Cursor::new(bytes)).map_err(|e| e.to_string())?,
                };
                let source = XlsbSheetTryBuilder {
                    book,
                    cells_builder: |book| {
                        let mut reader = book.worksheet_cells_reader(&sheet)?;
                        let next: NextCell<'_> = Box::new(move || match reader.next_cell() {
                            Ok(Some(c)) => {
                                let (row, col) = c.get_position();
                                Ok(Some((row, col, cell_ref(c.get_value()))))
                            }
                            Ok(None) => Ok(None),
                            Err(e) => Err(e.to_string()),
                        });
                        Ok::<_, calamine::XlsbError>(next)
                    },
                }
                .try_build()
                .map_err(|e| e.to_string())?;
                Ok(Box::new(source) as Box<dyn CellSource + 'a>)
            })
        } else {
            let listed = listed_xlsx.take();
            Box::new(move || {
                let book = match listed {
                    Some(book) => book,
                    None => Xlsx::new(Cursor::new(bytes)).map_err(|e| e.to_string())?,
                };
                let source = XlsxSheetTryBuilder {
                    book,
                    cells_builder: |book| book.worksheet_cells_reader(&sheet),
                }
                .try_build()
                .map_err(|e| e.to_string())?;
                Ok(Box::new(source) as Box<dyn CellSource + 'a>)
            })
        };
        tables.push(Table {
            sheet: Some(name.clone()),
            decimal_comma: super::DecimalComma::Never,
            rows: Box::new(StreamedRows::new(name, open)),
        });
    }
    if tables.is_empty() {
        return Err(no_sheet_with_data());
    }
    Ok(Parsed {
        format,
        tables,
        warnings,
    })
}

/// Whether a cell stream holds a cell with a value, reading no further
/// than the first one.
fn first_value<'d>(
    mut next: impl FnMut() -> Result<Option<calamine::Cell<DataRef<'d>>>, String>,
) -> Result<bool, String> {
    while let Some(cell) = next()? {
        if !cell_ref(cell.get_value()).is_blank() {
            return Ok(true);
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------
// Excel 97–2003 (.xls): dimensions checked from the records, then calamine.

pub fn parse_xls<'a>(bytes: &'a [u8], rules: &ImportRules) -> Result<Parsed<'a>, Issue> {
    if let Some(issue) = xls_limits(bytes) {
        return Err(issue);
    }
    let mut book: Xls<_> = Xls::new(Cursor::new(bytes)).map_err(|e| unopenable(Format::Xls, e))?;
    let mut warnings = Vec::new();
    let names = chosen_sheets(book.sheets_metadata(), rules, &mut warnings);
    let mut tables = Vec::new();
    for name in names {
        let range = book
            .worksheet_range(&name)
            .map_err(|e| unreadable_sheet(&name, e))?;
        if !range.used_cells().any(|(_, _, d)| !cell(d).is_blank()) {
            warnings.push(empty_sheet(&name));
            continue;
        }
        tables.push(Table {
            sheet: Some(name),
            decimal_comma: super::DecimalComma::Never,
            rows: Box::new(RangeRows { range, next: 0 }),
        });
    }
    if tables.is_empty() {
        return Err(no_sheet_with_data());
    }
    Ok(Parsed {
        format: Format::Xls,
        tables,
        warnings,
    })
}

/// The rows of a range calamine already holds, one at a time (never a
/// second copy of the sheet).
struct RangeRows {
    range: calamine::Range<Data>,
    next: u32,
}

impl Iterator for RangeRows {
    type Item = Result<Row, Issue>;

    fn next(&mut self) -> Option<Self::Item> {
        let (first_row, first_col) = self.range.start()?;
        let (rows, width) = self.range.get_size();
        while (self.next as usize) < rows {
            let i = self.next;
            self.next += 1;
            // Cells keep their sheet columns: a range starting at C still
            // names its first cell C, not A.
            let mut cells: Vec<Cell> = vec![Cell::Empty; first_col as usize];
            cells.extend(
                (0..width).map(|c| self.range.get((i as usize, c)).map_or(Cell::Empty, cell)),
            );
            while matches!(cells.last(), Some(c) if c.is_blank()) {
                cells.pop();
            }
            if !cells.is_empty() {
                return Some(Ok(Row {
                    number: u64::from(first_row) + u64::from(i) + 1,
                    cells,
                    pointers: None,
                }));
            }
        }
        None
    }
}

/// Walks the BIFF records of an `.xls` file's workbook stream and says
/// whether a sheet declares (DIMENSIONS) or implies (its cells' positions)
/// more than [`MAX_DENSE_CELLS`] cells, before calamine allocates them.
/// `None` also when the file cannot be walked: calamine then says why.
fn damaged_xls() -> Issue {
    Issue::new(
        Code::UnreadableFile,
        "the .xls file is damaged (its internal structure is broken); open it in the program \
         that made it, save it again (or save it as .xlsx or CSV) and drop it again",
    )
}

pub fn xls_limits(bytes: &[u8]) -> Option<Issue> {
    // The `cfb` crate checks the compound file's sector chains (loops,
    // sectors past the end) where calamine 0.38 does not: calamine follows
    // a looping chain until allocation fails, which aborts the process, so
    // a file `cfb` cannot read is refused here, before calamine sees it.
    let Ok(mut file) = cfb::CompoundFile::open(Cursor::new(bytes)) else {
        return Some(damaged_xls());
    };
    let stream = file
        .read_root_storage()
        .filter(|e| e.is_stream())
        .map(|e| e.path().to_path_buf())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.eq_ignore_ascii_case("workbook") || n.eq_ignore_ascii_case("book")
            })
        })?;
    let mut data = Vec::new();
    let read = file
        .open_stream(&stream)
        .and_then(|mut s| s.read_to_end(&mut data));
    if read.is_err() {
        return Some(damaged_xls());
    }
    let mut sheet = 0usize;
    let mut depth = 0usize;
    let mut bounds = Bounds::default();
    // Cell records outside any BOF…EOF pair: calamine reads a sheet from
    // the offset its BoundSheet record gives to the next EOF, so such
    // cells may still be read, and as one sheet.
    let mut outside = Bounds::default();
    // calamine holds every sheet's range at once.
    let mut all_sheets: u64 = 0;
    let mut at = 0usize;
    while let Some(head) = data.get(at..at + 4) {
        let typ = u16::from_le_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let Some(body) = data.get(at + 4..at + 4 + len) else {
            break;
        };
        at += 4 + len;
        match typ {
            0x0809 => {
                depth += 1;
                if depth == 1 {
                    sheet += 1;
                    bounds = Bounds::default();
                }
            }
            0x000A => {
                if depth == 1 {
                    if let Some(cells) = bounds.too_many() {
                        return Some(xls_too_large(sheet.saturating_sub(1), cells));
                    }
                    all_sheets = all_sheets.saturating_add(bounds.cells());
                }
                depth = depth.saturating_sub(1);
            }
            // SST: calamine makes room for the strings it declares first.
            0x00FC if body.len() >= 8 => {
                let unique = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                if !super::shared_strings::declared_fit(u64::from(unique)) {
                    return Some(xls_too_many_strings(unique));
                }
            }
            0x0200 if depth == 1 => bounds.declared = declared_cells(body),
            // Number, Label, RString, BoolErr, RK, LabelSST, Formula: row
            // and column first.
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 if body.len() >= 4 => {
                let row = u16::from_le_bytes([body[0], body[1]]);
                let col = u16::from_le_bytes([body[2], body[3]]);
                match depth {
                    1 => bounds.add(row, col),
                    _ => outside.add(row, col),
                }
            }
            // MulRk: row, first column, …, last column.
            0x00BD if body.len() >= 6 => {
                let row = u16::from_le_bytes([body[0], body[1]]);
                let first = u16::from_le_bytes([body[2], body[3]]);
                let last = u16::from_le_bytes([body[len - 2], body[len - 1]]);
                let b = if depth == 1 {
                    &mut bounds
                } else {
                    &mut outside
                };
                b.add(row, first);
                b.add(row, last);
            }
            _ => {}
        }
    }
    // A sheet the stream ends in, without its EOF.
    if depth >= 1 {
        if let Some(cells) = bounds.too_many() {
            return Some(xls_too_large(sheet.saturating_sub(1), cells));
        }
        all_sheets = all_sheets.saturating_add(bounds.cells());
    }
    if let Some(cells) = outside.too_many() {
        return Some(xls_too_large(sheet.max(1), cells));
    }
    (all_sheets > MAX_DENSE_CELLS_IN_ALL).then(|| xls_sheets_too_large(all_sheets))
}

/// The cells one sheet's substream declares and spans.
#[derive(Default)]
struct Bounds {
    declared: u64,
    rows: Option<(u16, u16)>,
    cols: Option<(u16, u16)>,
}

impl Bounds {
    fn add(&mut self, row: u16, col: u16) {
        let widen = |span: Option<(u16, u16)>, v: u16| match span {
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            None => Some((v, v)),
        };
        self.rows = widen(self.rows, row);
        self.cols = widen(self.cols, col);
    }

    /// The cells calamine's range of the sheet takes.
    fn cells(&self) -> u64 {
        let span = |s: Option<(u16, u16)>| s.map_or(0, |(lo, hi)| u64::from(hi - lo) + 1);
        let implied = span(self.rows) * span(self.cols);
        implied.max(self.declared)
    }

    fn too_many(&self) -> Option<u64> {
        let most = self.cells();
        (most > MAX_DENSE_CELLS).then_some(most)
    }
}

/// What a DIMENSIONS record declares, read as calamine reads it.
fn declared_cells(r: &[u8]) -> u64 {
    let (first_row, last_row, mut first_col, last_col) = match r.len() {
        10 => (
            u64::from(u16::from_le_bytes([r[0], r[1]])),
            u64::from(u16::from_le_bytes([r[2], r[3]])),
            u64::from(u16::from_le_bytes([r[4], r[5]])),
            u64::from(u16::from_le_bytes([r[6], r[7]])),
        ),
        14 | 16 => (
            u64::from(u32::from_le_bytes([r[0], r[1], r[2], r[3]])),
            u64::from(u32::from_le_bytes([r[4], r[5], r[6], r[7]])),
            u64::from(u16::from_le_bytes([r[8], r[9]])),
            u64::from(u16::from_le_bytes([r[10], r[11]])),
        ),
        _ => return 0,
    };
    if first_col > 0xFF || last_col < first_col {
        first_col = 0;
    }
    if last_row == 0 || last_col == 0 {
        return 1;
    }
    last_row.saturating_sub(first_row).max(1) * last_col.saturating_sub(first_col).max(1)
}

fn xls_sheets_too_large(cells: u64) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!(
            "the .xls workbook's sheets span {cells} cells together, more than the \
             {MAX_DENSE_CELLS_IN_ALL} an .xls workbook is read with (the reader holds every sheet \
             at once); save the stock list as .xlsx or CSV, or as several workbooks, and drop it \
             again"
        ),
    )
}

fn xls_too_many_strings(unique: u32) -> Issue {
    Issue::new(
        Code::FileTooLarge,
        format!(
            "the .xls workbook declares {unique} distinct texts, more than its reader can hold \
             in {} MiB; save the stock list as CSV and drop it again",
            crate::parse::shared_strings::MAX_SHARED_STRINGS_MEMORY >> 20
        ),
    )
}

/// `sheet` is the worksheet's 1-based position.
fn xls_too_large(sheet: usize, cells: u64) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!(
            "sheet {} of the .xls workbook spans {cells} cells, more than the {MAX_DENSE_CELLS} an .xls \
             stock list is read with (a few used cells far apart make a huge sheet); delete the \
             stray cells far below or right of the list, or save the workbook as .xlsx or CSV",
            sheet
        ),
    )
}

// ---------------------------------------------------------------------------
// Cells.

fn date_text(dt: &calamine::ExcelDateTime) -> String {
    match dt.as_datetime() {
        Some(t) if t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => dt.to_string(),
    }
}

pub(super) fn cell(data: &Data) -> Cell {
    match data {
        Data::Empty => Cell::Empty,
        Data::String(s) if s.trim().is_empty() => Cell::Empty,
        Data::String(s) => Cell::Text(s.clone()),
        Data::Int(i) => Cell::Int(*i),
        Data::Float(f) => Cell::Float(*f),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(dt) => Cell::Date(date_text(dt)),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Date(s.clone()),
        Data::Error(e) => Cell::Error(e.to_string()),
    }
}

fn cell_ref(data: &DataRef<'_>) -> Cell {
    match data {
        DataRef::Empty => Cell::Empty,
        DataRef::String(s) if s.trim().is_empty() => Cell::Empty,
        DataRef::SharedString(s) if s.trim().is_empty() => Cell::Empty,
        DataRef::String(s) => Cell::Text(s.clone()),
        DataRef::SharedString(s) => Cell::Text((*s).to_string()),
        DataRef::Int(i) => Cell::Int(*i),
        DataRef::Float(f) => Cell::Float(*f),
        DataRef::Bool(b) => Cell::Bool(*b),
        DataRef::DateTime(dt) => Cell::Date(date_text(dt)),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cell::Date(s.clone()),
        DataRef::Error(e) => Cell::Error(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn record(typ: u16, body: &[u8]) -> Vec<u8> {
        let mut r = typ.to_le_bytes().to_vec();
        r.extend_from_slice(&u16::try_from(body.len()).unwrap().to_le_bytes());
        r.extend_from_slice(body);
        r
    }

    /// A compound file whose `Workbook` stream holds the globals and one
    /// sheet with `sheet` records.
    fn xls(sheet: &[Vec<u8>]) -> Vec<u8> {
        let mut stream = Vec::new();
        stream.extend(record(0x0809, &[0; 16]));
        stream.extend(record(0x000A, &[]));
        stream.extend(record(0x0809, &[0; 16]));
        for r in sheet {
            stream.extend_from_slice(r);
        }
        stream.extend(record(0x000A, &[]));
        let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        file.create_stream("/Workbook")
            .unwrap()
            .write_all(&stream)
            .unwrap();
        file.flush().unwrap();
        file.into_inner().into_inner()
    }

    fn number(row: u16, col: u16) -> Vec<u8> {
        let mut body = row.to_le_bytes().to_vec();
        body.extend_from_slice(&col.to_le_bytes());
        body.extend_from_slice(&[0; 10]);
        record(0x0203, &body)
    }

    fn dimensions(rows: u32, cols: u16) -> Vec<u8> {
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend_from_slice(&rows.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&cols.to_le_bytes());
        body.extend_from_slice(&[0, 0]);
        record(0x0200, &body)
    }

    /// The first error the rows of `book`'s tables give.
    fn first_error(book: &mut rust_xlsxwriter::Workbook) -> Issue {
        let bytes = book.save_to_buffer().unwrap();
        let rules = crate::config::Config::defaults().rules;
        // As the directory lists them: these sheets of one repeated value
        // compress past the 100:1 `container::inspect` allows.
        let members = crate::parse::shared_strings::tests::members(&bytes);
        let parsed = match parse_ooxml(&bytes, &members, Format::Xlsx, false, &rules) {
            Ok(parsed) => parsed,
            Err(issue) => return issue,
        };
        // Bound first: the rows borrow `bytes`, which ends with this block.
        #[allow(clippy::let_and_return)]
        let issue = parsed
            .tables
            .into_iter()
            .flat_map(|t| t.rows)
            .find_map(Result::err)
            .expect("an error");
        issue
    }

    #[test]
    fn a_workbook_row_of_more_text_than_a_record_may_hold_is_refused() {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "sku").unwrap();
        let long = "x".repeat(30_000);
        for col in 0..40 {
            sheet.write_string(1, col, &long).unwrap();
        }
        let issue = first_error(&mut book);
        assert_eq!(issue.code, Code::UnreadableFile);
        assert_eq!(issue.place.row, Some(2));
        assert!(
            issue.message.contains("more than 1 MiB of text"),
            "{}",
            issue.message
        );
    }

    #[test]
    fn rows_reaching_far_to_the_right_are_refused_past_the_span() {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        let rows = (crate::parse::MAX_SHEET_SPAN / u64::from(MAX_SHEET_COLUMNS)) as u32 + 2;
        for row in 0..rows {
            sheet.write_number(row, 16_383, 1).unwrap();
        }
        let issue = first_error(&mut book);
        assert!(
            issue.message.contains("spans more than"),
            "{}",
            issue.message
        );
    }

    #[test]
    fn a_workbook_of_more_sheets_than_are_read_is_refused() {
        let mut book = rust_xlsxwriter::Workbook::new();
        for _ in 0..=crate::parse::MAX_SHEETS {
            book.add_worksheet().write_number(0, 0, 1).unwrap();
        }
        let issue = first_error(&mut book);
        assert_eq!(issue.code, Code::FileTooLarge);
        assert!(issue.message.contains("1025 sheets"), "{}", issue.message);
    }

    #[test]
    fn xls_cells_far_apart_are_refused_before_calamine() {
        let issue = xls_limits(&xls(&[number(0, 0), number(65_535, 255)])).expect("refused");
        assert_eq!(issue.code, Code::UnreadableFile);
        assert!(
            issue.message.contains("16777216 cells"),
            "{}",
            issue.message
        );
    }

    /// A `Workbook` stream of exactly `records`, in a compound file.
    fn xls_stream(records: &[Vec<u8>]) -> Vec<u8> {
        let stream: Vec<u8> = records.concat();
        let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        file.create_stream("/Workbook")
            .unwrap()
            .write_all(&stream)
            .unwrap();
        file.flush().unwrap();
        file.into_inner().into_inner()
    }

    #[test]
    fn xls_sheets_without_an_end_or_outside_any_sheet_are_measured() {
        let (bof, eof) = (record(0x0809, &[0; 16]), record(0x000A, &[]));
        // The stream ends inside the sheet, before its EOF.
        let no_end = xls_stream(&[
            bof.clone(),
            eof.clone(),
            bof.clone(),
            number(0, 0),
            number(65_535, 255),
        ]);
        assert!(xls_limits(&no_end)
            .expect("refused")
            .message
            .contains("16777216 cells"));
        // Cells after the last sheet's EOF.
        let outside = xls_stream(&[
            bof.clone(),
            eof.clone(),
            bof.clone(),
            eof.clone(),
            number(0, 0),
            number(65_535, 255),
        ]);
        assert!(xls_limits(&outside).is_some());
        // Sheets each within the limit, too many together.
        let mut many = vec![bof.clone(), eof.clone()];
        for _ in 0..3 {
            many.extend([bof.clone(), number(0, 0), number(9_999, 149), eof.clone()]);
        }
        let issue = xls_limits(&xls_stream(&many)).expect("refused");
        assert!(
            issue.message.contains("4500000 cells together"),
            "{}",
            issue.message
        );
        many.truncate(6);
        assert!(
            xls_limits(&xls_stream(&many)).is_none(),
            "one such sheet is read"
        );
    }

    #[test]
    fn an_xls_declaring_more_texts_than_memory_holds_is_refused() {
        let mut sst = 1u32.to_le_bytes().to_vec();
        sst.extend_from_slice(&u32::MAX.to_le_bytes());
        let file = xls(&[]);
        assert!(xls_limits(&file).is_none());
        let declaring = xls_stream(&[
            record(0x0809, &[0; 16]),
            record(0x00FC, &sst),
            record(0x000A, &[]),
        ]);
        let issue = xls_limits(&declaring).expect("refused");
        assert_eq!(issue.code, Code::FileTooLarge);
        assert!(
            issue.message.contains("4294967295 distinct texts"),
            "{}",
            issue.message
        );
    }

    #[test]
    fn xls_declared_dimensions_are_refused_before_calamine() {
        let issue = xls_limits(&xls(&[dimensions(u32::MAX, 255), number(0, 0)])).expect("refused");
        assert!(issue.message.contains("sheet 1"), "{}", issue.message);
    }

    #[test]
    fn xls_of_ordinary_size_passes() {
        assert!(xls_limits(&xls(&[dimensions(3, 4), number(0, 0), number(2, 3)])).is_none());
    }
}
