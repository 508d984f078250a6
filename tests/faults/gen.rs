//! Files for the fault scenarios, made here so CI needs nothing but cargo:
//! stock files in the shape of a merged multi-store export (the shape of
//! `bench`'s generator: 50 interleaved locations, ~1% repeated items, some
//! location names needing CSV quotes, UPCs with leading zeros), seeded byte
//! mutations of the samples, and the archives an attacker sends.

use std::fmt::Write as _;
use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;

/// A small xorshift generator: the seed is printed with the figures, so a
/// run can be replayed (`STOCKDROP_FAULTS_SEED`).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seed of this run: `STOCKDROP_FAULTS_SEED`, else the clock.
pub fn seed() -> u64 {
    seed_or(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1,
    )
}

/// `STOCKDROP_FAULTS_SEED`, else `default`.
pub fn seed_or(default: u64) -> u64 {
    std::env::var("STOCKDROP_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// Stock files.

pub const LOCATIONS: usize = 50;

/// The name of location `i` (a few need CSV quoting).
pub fn location(i: usize) -> String {
    const CITIES: [&str; 10] = [
        "Boston", "Austin", "Denver", "Seattle", "Portland", "Chicago", "Atlanta", "Phoenix",
        "Dallas", "Miami",
    ];
    const KINDS: [&str; 5] = ["Store", "Warehouse", "Outlet", "DC", "Pop-Up"];
    let city = CITIES[i % CITIES.len()];
    let kind = KINDS[(i / CITIES.len() + i) % KINDS.len()];
    if i % 17 == 5 {
        format!("{city}, {kind} #{}", i + 1)
    } else {
        format!("{kind} {city} {:03}", i + 1)
    }
}

/// The sku of catalog item `k` (unique for `k` < 1,000,003).
pub fn sku(k: usize) -> String {
    format!("SKU-{:07}", (k * 7919 + 13) % 1_000_003)
}

fn upc(k: usize) -> String {
    // ~10% start with a zero; a correct GS1 check digit.
    let body = format!("{:011}", (k as u64 * 104_729 + 7) % 100_000_000_000);
    let total: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - total % 10) % 10)
}

/// One row of a stock file: where, which catalog item, how many.
#[derive(Debug, Clone)]
pub struct StockRow {
    pub location: usize,
    pub item: usize,
    pub quantity: i64,
}

/// The rows of a big export: row `i` is location `i % 50`, catalog item
/// `i / 50`, except ~1% that repeat an earlier item of the same location.
/// Quantities come from `quantity` (the caller makes them unique, so every
/// item changes its record).
pub fn export_rows(n: usize, rng: &mut Rng, mut quantity: impl FnMut() -> i64) -> Vec<StockRow> {
    (0..n)
        .map(|i| {
            let mut item = i / LOCATIONS;
            if item > 0 && rng.chance(1) {
                item = rng.below(item as u64) as usize;
            }
            StockRow {
                location: i % LOCATIONS,
                item,
                quantity: quantity(),
            }
        })
        .collect()
}

/// The CSV of a big export, all twelve Inventory Refresh columns.
pub fn export_csv(rows: &[StockRow]) -> Vec<u8> {
    let mut out = String::from(
        "locationName,partNumber,upc,sku,binID,quantity,ltd,floor,safetyStock,currencyID,retailPrice,attributes\n",
    );
    for r in rows {
        let loc = location(r.location);
        let loc = if loc.contains(',') {
            format!("\"{loc}\"")
        } else {
            loc
        };
        let k = r.item;
        let _ = writeln!(
            out,
            "{loc},P{k:06}-A{},{},{},{},{},{},{},{},840,{}.{:02},red;M;cotton",
            k % 10,
            upc(k),
            sku(k),
            1000 + k % 9000,
            r.quantity,
            k % 22,
            k % 6,
            k % 26,
            1 + k % 300,
            k % 100
        );
    }
    out.into_bytes()
}

/// A small `location,sku,quantity` file; `quantity` as written (an adjust
/// file writes `+3`).
pub fn small_csv(rows: &[(String, String, String)]) -> Vec<u8> {
    let mut out = String::from("location,sku,quantity\n");
    for (l, s, q) in rows {
        let l = if l.contains(',') {
            format!("\"{l}\"")
        } else {
            l.clone()
        };
        let _ = writeln!(out, "{l},{s},{q}");
    }
    out.into_bytes()
}

// ---------------------------------------------------------------------------
// Mutations.

/// `bytes` changed by one to four seeded edits: flipped, inserted, deleted
/// or repeated bytes, a truncation, NULs, 0xFF, a stray quote or newline.
pub fn mutate_bytes(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len().max(1) as u64;
        let at = rng.below(len) as usize;
        match rng.below(8) {
            0 => {
                if let Some(x) = b.get_mut(at) {
                    *x ^= 1 << rng.below(8);
                }
            }
            1 => {
                let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                b.splice(at.min(b.len())..at.min(b.len()), junk);
            }
            2 => {
                let end = (at + 1 + rng.below(64) as usize).min(b.len());
                b.drain(at.min(end)..end);
            }
            3 => {
                let end = (at + 1 + rng.below(256) as usize).min(b.len());
                let piece = b[at.min(end)..end].to_vec();
                for _ in 0..1 + rng.below(50) {
                    b.splice(end..end, piece.iter().copied());
                }
            }
            4 => b.truncate(at),
            5 => b.insert(at.min(b.len()), 0),
            6 => b.insert(at.min(b.len()), 0xFF),
            _ => {
                let c = [b'"', b'\n', b'\r', b',', b';', b'\t'][rng.below(6) as usize];
                b.insert(at.min(b.len()), c);
            }
        }
    }
    b
}

/// A ZIP-based file (workbook or archive) with one member's content
/// mutated and the archive rewritten, so the damage is past the ZIP layer;
/// `None` when `bytes` is not a readable ZIP.
pub fn mutate_zip_member(bytes: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let n = archive.len();
    if n == 0 {
        return None;
    }
    let victim = rng.below(n as u64) as usize;
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..n {
        let mut file = archive.by_index(i).ok()?;
        let name = file.name().ok()?.to_string();
        let mut content = Vec::new();
        file.read_to_end(&mut content).ok()?;
        if i == victim {
            content = mutate_bytes(&content, rng);
        }
        out.start_file(name, SimpleFileOptions::default()).ok()?;
        out.write_all(&content).ok()?;
    }
    Some(out.finish().ok()?.into_inner())
}

// ---------------------------------------------------------------------------
// Archives.

/// A ZIP of `(name, content)` members, deflated.
pub fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in members {
        out.start_file(*name, SimpleFileOptions::default())
            .expect("zip member");
        out.write_all(content).expect("zip write");
    }
    out.finish().expect("zip finish").into_inner()
}

/// A ZIP with one member of `size` bytes made of `unit` repeated (so it
/// deflates about 1000:1), written as `name`.
pub fn zip_repeated(name: &str, head: &[u8], unit: &[u8], size: usize, tail: &[u8]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().large_file(size > u32::MAX as usize / 2);
    out.start_file(name, options).expect("zip member");
    out.write_all(head).expect("zip write");
    let chunk: Vec<u8> = unit
        .iter()
        .copied()
        .cycle()
        .take((1 << 20) / unit.len() * unit.len())
        .collect();
    let mut written = head.len();
    while written + chunk.len() <= size {
        out.write_all(&chunk).expect("zip write");
        written += chunk.len();
    }
    out.write_all(tail).expect("zip write");
    out.finish().expect("zip finish").into_inner()
}

/// `copies` members, each a raw copy of the single member of `one` (no
/// recompression), named `m0001.csv`, … — an archive far bigger inflated
/// than any one member lets on.
pub fn zip_many(one: &[u8], copies: usize) -> Vec<u8> {
    let mut source = zip::ZipArchive::new(Cursor::new(one)).expect("zip");
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..copies {
        let member = source.by_index_raw(0).expect("member");
        out.raw_copy_file_rename(member, format!("m{i:04}.csv"))
            .expect("raw copy");
    }
    out.finish().expect("zip finish").into_inner()
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#;
const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="stock" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#;
pub const SHEET_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#;
pub const SHEET_TAIL: &str = "</sheetData></worksheet>";

/// A minimal `.xlsx` (the parts Excel writes, inline strings) whose sheet
/// is `sheet_xml`.
pub fn xlsx_with_sheet(sheet_xml: &[u8]) -> Vec<u8> {
    zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("_rels/.rels", RELS.as_bytes()),
        ("xl/workbook.xml", WORKBOOK.as_bytes()),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
        ("xl/worksheets/sheet1.xml", sheet_xml),
    ])
}

/// A `.xlsx` whose sheet XML inflates to about `size` bytes of rows
/// (deflated about 1000:1).
pub fn xlsx_bomb(size: usize) -> Vec<u8> {
    let row = br#"<row><c t="inlineStr"><is><t>11</t></is></c><c t="inlineStr"><is><t>S1</t></is></c><c><v>1</v></c></row>"#;
    let head = format!(
        r#"{SHEET_HEAD}<row><c t="inlineStr"><is><t>location</t></is></c><c t="inlineStr"><is><t>sku</t></is></c><c t="inlineStr"><is><t>quantity</t></is></c></row>"#
    );
    let sheet = zip_repeated(
        "xl/worksheets/sheet1.xml",
        head.as_bytes(),
        row,
        size,
        SHEET_TAIL.as_bytes(),
    );
    let mut source = zip::ZipArchive::new(Cursor::new(sheet)).expect("zip");
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", RELS),
        ("xl/workbook.xml", WORKBOOK),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
    ] {
        out.start_file(name, SimpleFileOptions::default())
            .expect("zip member");
        out.write_all(content.as_bytes()).expect("zip write");
    }
    out.raw_copy_file(source.by_index_raw(0).expect("member"))
        .expect("raw copy");
    out.finish().expect("zip finish").into_inner()
}
