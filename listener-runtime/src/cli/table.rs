//! Small aligned tables for the tools' human output: columns padded to their widest cell
//! (two spaces apart), the last column unpadded.

/// `rows` under `header`, one line each.
pub(super) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(cell.chars().count())
                    + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["printer".to_owned(), "READY".to_owned(), "0".to_owned()],
            vec!["m".to_owned(), "FAILED: x".to_owned(), "12".to_owned()],
        ];
        assert_eq!(
            super::render(&["MODULE", "STATE", "FAILED"], &rows),
            "MODULE   STATE      FAILED\nprinter  READY      0\nm        FAILED: x  12\n"
        );
    }
}
