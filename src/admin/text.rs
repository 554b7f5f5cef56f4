//! Validation of organiser-written text: single lines (titles, names) through the consult
//! domain's [`normalize_line`], and multi-line descriptions here.

use unicode_normalization::UnicodeNormalization;

use super::error::AdminError;
use crate::consult::text::{TextError, normalize_line};

/// A single line: NFC, trimmed, 1 to `max` characters, no control or bidi-override characters.
pub(crate) fn line(field: &'static str, raw: &str, max: usize) -> Result<String, AdminError> {
    normalize_line(raw, max).map_err(|e| match e {
        TextError::Empty => AdminError::invalid(field, "must not be empty"),
        TextError::TooLong(n) => AdminError::invalid(field, format!("at most {n} characters")),
        TextError::Control => AdminError::invalid(field, "holds control or bidi-override characters"),
    })
}

/// A multi-line text: NFC, `\r\n` and `\r` made `\n`, trimmed at both ends, at most `max`
/// characters and `max_lines` lines; line breaks are the only control characters allowed.
/// Empty is allowed (a description is optional).
pub(crate) fn block(
    field: &'static str,
    raw: &str,
    max: usize,
    max_lines: usize,
) -> Result<String, AdminError> {
    if raw.len() > max * 4 + 64 {
        return Err(AdminError::invalid(field, format!("at most {max} characters")));
    }
    let text: String = raw.replace("\r\n", "\n").replace('\r', "\n").nfc().collect();
    let text = text.trim();
    if text
        .chars()
        .any(|c| (c.is_control() && c != '\n') || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
    {
        return Err(AdminError::invalid(field, "holds control or bidi-override characters"));
    }
    if text.chars().count() > max {
        return Err(AdminError::invalid(field, format!("at most {max} characters")));
    }
    if text.lines().count() > max_lines {
        return Err(AdminError::invalid(field, format!("at most {max_lines} lines")));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_line_breaks_and_refuse_other_controls() {
        assert_eq!(block("d", " 一\r\n二\r三 ", 10, 5).unwrap(), "一\n二\n三");
        assert_eq!(block("d", "", 10, 5).unwrap(), "");
        assert_eq!(block("d", "a\tb", 10, 5).unwrap_err().code(), "invalid");
        assert!(block("d", "a\n\n\n\n\nb", 100, 5).is_err());
        assert!(block("d", &"字".repeat(11), 10, 5).is_err());
    }

    #[test]
    fn lines_name_the_field_in_the_refusal() {
        let e = line("title", "  ", 10).unwrap_err();
        assert_eq!(e.to_string(), "title: must not be empty");
    }
}
