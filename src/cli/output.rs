//! Printing for the listing commands: JSON for scripts, aligned text
//! columns for people.

use std::io::{self, Write};

use serde::Serialize;

use super::Failure;

/// Prints `value` as one JSON document on stdout, written as it is made.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), Failure> {
    write_json(value, |out, value| serde_json::to_writer_pretty(out, value))
}

/// Prints `value` as one line of JSON, written as it is made (a report's
/// job list is read from the store as it goes), treating a closed pipe as
/// the end of output.
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> Result<(), Failure> {
    write_json(value, |out, value| serde_json::to_writer(out, value))
}

/// `value` through `write` and a newline to stdout, a closed pipe ending
/// the output.
fn write_json<T: Serialize + ?Sized>(
    value: &T,
    write: impl FnOnce(&mut io::BufWriter<io::StdoutLock<'static>>, &T) -> serde_json::Result<()>,
) -> Result<(), Failure> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = write(&mut out, value)
        .map_err(io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::Io(e.to_string())),
        _ => Ok(()),
    }
}

/// The JSON line of a file that has no report (it could not be read at
/// all), so `import --json` and `validate --json` answer for every file.
pub fn file_failure(file: &std::path::Path, error: &str, exit: super::Exit) -> Result<(), Failure> {
    let line = serde_json::json!({
        "file": file.display().to_string(),
        "error": error,
        "exit_code": exit as u8,
    });
    println_or_fail(&line.to_string())
}

/// Prints a line, treating a closed pipe (`| head`) as the end of output.
pub fn println_or_fail(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::Io(e.to_string())),
        _ => Ok(()),
    }
}

/// A text table with a header row and left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map_or(String::new(), ToString::to_string)
}
