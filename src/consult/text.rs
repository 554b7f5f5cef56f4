//! Validation of user-written text (comments, questions, names).

use shangliang_signaling::ErrorCode;
use unicode_normalization::UnicodeNormalization;

/// Why a text was refused; maps one-to-one to a wire [`ErrorCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing left after trimming.
    #[error("the text is empty")]
    Empty,
    /// More characters than allowed after normalisation.
    #[error("the text is longer than {0} characters")]
    TooLong(usize),
    /// Holds a control character (other than none; line breaks are not allowed either).
    #[error("the text holds control characters")]
    Control,
}

impl TextError {
    /// The wire error code for this refusal.
    pub fn code(self) -> ErrorCode {
        match self {
            TextError::Empty => ErrorCode::TextEmpty,
            TextError::TooLong(_) => ErrorCode::TextTooLong,
            TextError::Control => ErrorCode::TextInvalid,
        }
    }
}

/// Normalises a single-line text: NFC, trimmed of white space at both ends; refuses it when
/// empty, longer than `max_chars` Unicode scalar values, or holding a control character
/// (Unicode category Cc, which includes line breaks and tabs) or a bidi override (U+202A..U+202E,
/// U+2066..U+2069), which could disguise what other viewers read.
pub fn normalize_line(raw: &str, max_chars: usize) -> Result<String, TextError> {
    // Refuse absurd inputs before doing Unicode work on them.
    if raw.len() > max_chars * 4 + 64 {
        return Err(TextError::TooLong(max_chars));
    }
    let text: String = raw.nfc().collect();
    let text = text.trim();
    if text.chars().all(|c| c.is_whitespace() || invisible(c)) {
        return Err(TextError::Empty);
    }
    if text
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
    {
        return Err(TextError::Control);
    }
    if text.chars().count() > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    Ok(text.to_owned())
}

/// Characters that render as nothing: zero-width spaces and joiners, direction marks, the BOM,
/// invisible operators, fillers, variation selectors, tags (Unicode's Default_Ignorable_Code_Point
/// set, by range, plus the Hangul and braille blanks). A text made only of these and white space
/// counts as empty. Hand-listed: the crates that expose the property (`unicode-properties`) do
/// not include Default_Ignorable_Code_Point; the list is the derived property's ranges of
/// Unicode 15.
pub fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_nfc_normalised() {
        // "e" + combining acute becomes the single precomposed character.
        assert_eq!(normalize_line("  cafe\u{301}  ", 10).unwrap(), "caf\u{e9}");
        assert_eq!(normalize_line("城乡融合", 4).unwrap(), "城乡融合");
    }

    #[test]
    fn a_text_of_invisible_characters_only_is_empty() {
        for t in ["\u{200B}", "\u{FEFF}\u{FEFF}", "\u{200E}", " \u{200B}\u{200C}\u{200D} ", "\u{2060}\u{3164}", "\u{E0041}\u{FE0F}"] {
            assert_eq!(normalize_line(t, 10), Err(TextError::Empty), "{t:?}");
        }
        // Visible text with invisible characters in it stays (an emoji's variation selector, a
        // joiner inside a word).
        assert_eq!(normalize_line("\u{2764}\u{FE0F}", 10).unwrap(), "\u{2764}\u{FE0F}");
        assert!(normalize_line("a\u{200D}b", 10).is_ok());
    }

    #[test]
    fn empty_long_and_control_texts_are_refused() {
        assert_eq!(normalize_line(" \u{3000}\t ", 10), Err(TextError::Empty));
        assert_eq!(normalize_line("一二三四五", 4), Err(TextError::TooLong(4)));
        assert_eq!(normalize_line("a\nb", 10), Err(TextError::Control));
        assert_eq!(normalize_line("a\u{0}b", 10), Err(TextError::Control));
        assert_eq!(normalize_line("a\u{202E}b", 10), Err(TextError::Control));
        assert_eq!(
            normalize_line(&"x".repeat(10_000), 500),
            Err(TextError::TooLong(500))
        );
    }
}
