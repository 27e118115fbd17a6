//! Human output helpers: sizes in binary units, plain-text tables, and the one place that
//! chooses between `--json` and text.

use super::CliError;
use serde::Serialize;

/// Prints `report` as pretty JSON (`--json`) or as the text `human` renders from it.
pub fn emit<T: Serialize>(
    json: bool,
    report: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<(), CliError> {
    if json {
        let text =
            serde_json::to_string_pretty(report).map_err(|e| CliError::BadInput(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", human(report));
    }
    Ok(())
}

/// Bytes in binary units with one decimal: `1.5 GiB`, `128.0 MiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A plain-text table: columns padded to their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(128 << 20), "128.0 MiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn tables_align() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "  a    bb\n  xxx  y\n");
    }
}
