//! A Java-properties parser (the format of `bootstrap.properties`): `#` and `!` comments,
//! `=`, `:` or whitespace between key and value, backslash line continuations, and the escapes
//! `\t \n \r \f \\ \uXXXX` (any other escaped character stands for itself). Every entry keeps
//! the line it started on, so errors can name it.

/// One `key = value` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped, leading whitespace removed.
    pub value: String,
    /// 1-based line the entry starts on.
    pub line: usize,
}

/// A line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses properties text into entries in file order (duplicates are kept; the caller decides).
/// Lines end at `\r\n`, `\n` or a lone `\r` (as in Java); a leading byte-order mark is
/// dropped.
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = split_lines(text);
    let mut entries = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let start = index + 1;
        let first = lines[index].trim_start_matches([' ', '\t', '\u{c}']);
        index += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes continues the line.
        let mut logical = String::from(first);
        while ends_with_continuation(&logical) {
            logical.pop();
            if index >= lines.len() {
                break;
            }
            logical.push_str(lines[index].trim_start_matches([' ', '\t', '\u{c}']));
            index += 1;
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key).map_err(|message| SyntaxError { line: start, message })?;
        let value = unescape(raw_value).map_err(|message| SyntaxError { line: start, message })?;
        entries.push(Entry { key, value, line: start });
    }
    Ok(entries)
}

/// The lines of `text`, ending at `\r\n`, `\n` or `\r`.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\r', '\n']) {
            None => {
                lines.push(rest);
                break;
            }
            Some(end) => {
                lines.push(&rest[..end]);
                let skip = if rest[end..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[end + skip..];
            }
        }
    }
    lines
}

fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or whitespace; the separator and the whitespace
/// around it are dropped.
fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let i = i.min(bytes.len());
    let key = &line[..i];
    let mut rest = line[i..].trim_start_matches([' ', '\t', '\u{c}']);
    if let Some(after) = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':')) {
        rest = after.trim_start_matches([' ', '\t', '\u{c}']);
    }
    (key, rest)
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .ok_or_else(|| format!("malformed \\uXXXX escape \"\\u{}\"", hex.escape_debug()))?;
                out.push(char::from_u32(code).ok_or_else(|| format!("\\u{hex} is not a character"))?);
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, usize)> {
        parse(text).unwrap().into_iter().map(|e| (e.key, e.value, e.line)).collect()
    }

    #[test]
    fn separators_and_comments() {
        let got = pairs("# comment\n! also\n\nA = 1\nB:2\nC 3\n  D\t=\t4  \nE=\nF\n");
        let want = [("A", "1", 4), ("B", "2", 5), ("C", "3", 6), ("D", "4  ", 7), ("E", "", 8), ("F", "", 9)];
        assert_eq!(got, want.iter().map(|(k, v, l)| (k.to_string(), v.to_string(), *l)).collect::<Vec<_>>());
    }

    #[test]
    fn continuations_and_escapes() {
        let got = pairs("List = a, \\\n       b, \\\n       c\nPath = C:\\\\dir\nKey\\ With\\=Sep = v\\u00e9\\t!\n");
        assert_eq!(got[0], ("List".into(), "a, b, c".into(), 1));
        assert_eq!(got[1], ("Path".into(), "C:\\dir".into(), 4));
        assert_eq!(got[2], ("Key With=Sep".into(), "vé\t!".into(), 5));
    }

    #[test]
    fn value_may_contain_separators() {
        let got = pairs("OpenStack.AuthURL = https://192.0.2.4:5000/v3\nX=a=b\n");
        assert_eq!(got[0].1, "https://192.0.2.4:5000/v3");
        assert_eq!(got[1].1, "a=b");
    }

    #[test]
    fn bad_unicode_escape_names_the_line() {
        let err = parse("\nA = \\u12G4\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: malformed \\uXXXX escape \"\\u12G4\"");
    }

    #[test]
    fn cr_only_and_crlf_line_endings_and_a_leading_bom() {
        let want = vec![("A".to_string(), "1".to_string(), 1), ("B".to_string(), "2".to_string(), 2)];
        assert_eq!(pairs("A = 1\rB = 2\r"), want);
        assert_eq!(pairs("A = 1\r\nB = 2\r\n"), want);
        assert_eq!(pairs("\u{feff}A = 1\nB = 2"), want);
        assert_eq!(pairs("A = x, \\\r  y\rB = 2"), vec![("A".into(), "x, y".into(), 1), ("B".into(), "2".into(), 3)]);
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let got = pairs("A = x\\\\\nB = y\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, "x\\");
    }
}
