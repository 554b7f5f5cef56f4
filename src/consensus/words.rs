//! Open-word answers ("one word for today's topic"): normalisation and counting.
//!
//! An answer holds a few short words or phrases. Each is normalised so that the same word
//! written differently counts once: NFKC (full-width Ｌａｔｉｎ and digits become ASCII, ﬁ
//! ligatures split), lower case, runs of white space collapsed to one space, and punctuation
//! or symbols at either end stripped ("乡村振兴！" and "#乡村振兴" are "乡村振兴"). Chinese has no
//! spaces, so a phrase is never split further; the word cloud counts whole entries, as Slido's
//! does. A phrase counts once per identity, however often the answer repeats it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::consult::text::{TextError, normalize_line};

/// Longest word or phrase, in characters (after normalisation).
pub const MAX_WORD_CHARS: usize = 24;

/// Most distinct words one poll tracks. Later new words are counted together as "other", so an
/// answer is never refused because the table is full and a flood of unique strings costs a
/// bounded amount of memory.
pub const MAX_DISTINCT_WORDS: usize = 5_000;

/// How many words a tally lists.
pub const TOP_WORDS: usize = 30;

/// One word and how many identities gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordCount {
    /// The normalised word.
    pub word: String,
    /// Identities whose standing answer holds it.
    pub count: u32,
}

/// Normalises one open-word entry (see the module doc).
pub fn normalize_word(raw: &str) -> Result<String, TextError> {
    // Refuse control characters, bidi overrides and absurd lengths first.
    let line = normalize_line(raw, MAX_WORD_CHARS * 2)?;
    let folded: String = line.nfkc().flat_map(char::to_lowercase).collect();
    let mut out = String::with_capacity(folded.len());
    for (i, w) in folded.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    let word = out.trim_matches(|c: char| !c.is_alphanumeric());
    if word.is_empty() {
        return Err(TextError::Empty);
    }
    if word.chars().count() > MAX_WORD_CHARS {
        return Err(TextError::TooLong(MAX_WORD_CHARS));
    }
    Ok(word.to_owned())
}

/// Sentinel id of the "other" bucket.
pub(crate) const OTHER: u32 = u32::MAX;

/// The distinct words of one poll and their counts.
#[derive(Clone, Debug, Default)]
pub(crate) struct WordTable {
    ids: HashMap<String, u32>,
    words: Vec<String>,
    counts: Vec<u32>,
    hidden: Vec<bool>,
    other: u32,
}

impl WordTable {
    /// The id of `word`, adding it if there is room, else [`OTHER`].
    pub fn intern(&mut self, word: String) -> u32 {
        if let Some(id) = self.ids.get(&word) {
            return *id;
        }
        if self.words.len() >= MAX_DISTINCT_WORDS {
            return OTHER;
        }
        let id = self.words.len() as u32;
        self.ids.insert(word.clone(), id);
        self.words.push(word);
        self.counts.push(0);
        self.hidden.push(false);
        id
    }

    pub fn add(&mut self, id: u32) {
        match id {
            OTHER => self.other += 1,
            i => self.counts[i as usize] += 1,
        }
    }

    pub fn remove(&mut self, id: u32) {
        match id {
            OTHER => self.other -= 1,
            i => self.counts[i as usize] -= 1,
        }
    }

    /// Hides a word from the published list (an insult in the word cloud); it stays counted.
    /// Returns whether the word is known.
    pub fn hide(&mut self, word: &str) -> bool {
        match self.ids.get(word) {
            Some(id) => {
                self.hidden[*id as usize] = true;
                true
            }
            None => false,
        }
    }

    /// The most given visible words, most first, then in code point order; and the count of
    /// "other" entries.
    pub fn top(&self, n: usize) -> (Vec<WordCount>, u32) {
        let mut v: Vec<usize> = (0..self.words.len())
            .filter(|i| self.counts[*i] > 0 && !self.hidden[*i])
            .collect();
        v.sort_unstable_by(|a, b| {
            self.counts[*b].cmp(&self.counts[*a]).then_with(|| self.words[*a].cmp(&self.words[*b]))
        });
        let top = v
            .into_iter()
            .take(n)
            .map(|i| WordCount { word: self.words[i].clone(), count: self.counts[i] })
            .collect();
        (top, self.other)
    }

    /// How many hidden words have standing entries.
    pub fn hidden_count(&self) -> usize {
        (0..self.words.len()).filter(|i| self.hidden[*i] && self.counts[*i] > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_word_written_differently_normalises_to_one() {
        for raw in ["乡村振兴", " 乡村振兴！", "#乡村振兴", "「乡村振兴」"] {
            assert_eq!(normalize_word(raw).unwrap(), "乡村振兴", "{raw}");
        }
        assert_eq!(normalize_word("Ｒｕｒａｌ   Ｒｅｖｉｖａｌ").unwrap(), "rural revival");
        assert_eq!(normalize_word("AI!").unwrap(), "ai");
        assert_eq!(normalize_word("5G").unwrap(), "5g");
    }

    #[test]
    fn empty_long_and_control_words_are_refused() {
        assert_eq!(normalize_word("！！！"), Err(TextError::Empty));
        assert_eq!(normalize_word("   "), Err(TextError::Empty));
        assert_eq!(normalize_word(&"字".repeat(25)), Err(TextError::TooLong(MAX_WORD_CHARS)));
        assert_eq!(normalize_word("a\u{202E}b"), Err(TextError::Control));
    }

    #[test]
    fn a_full_table_counts_new_words_as_other() {
        let mut t = WordTable::default();
        for i in 0..MAX_DISTINCT_WORDS {
            let id = t.intern(format!("w{i}"));
            t.add(id);
        }
        let id = t.intern("one more".into());
        assert_eq!(id, OTHER);
        t.add(id);
        assert_eq!(t.intern("w3".into()), 3);
        let (top, other) = t.top(2);
        assert_eq!(other, 1);
        assert_eq!(top.len(), 2);
        assert!(t.hide("w0"));
        assert!(!t.top(TOP_WORDS).0.iter().any(|w| w.word == "w0"));
        assert_eq!(t.hidden_count(), 1);
    }
}
