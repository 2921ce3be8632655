//! What is banned: whole words, compared case-insensitively.

use common::events::CommentStatus;

/// The course's example.
pub const DEFAULT_BANNED: &str = "orange";

/// Banned words, lower-case. A comment containing one of them as a whole word (letters
/// and digits between non-alphanumeric characters) is rejected: with `orange` banned,
/// "Orange!" is rejected, "oranges" and "orangeade" are approved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BannedWords(Vec<String>);

impl BannedWords {
    /// Comma-separated words; blanks around them are ignored. Each must be a single word
    /// (it could never match otherwise).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut words = Vec::new();
        for word in raw.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if !word.chars().all(char::is_alphanumeric) {
                return Err(format!("{word:?} is not a single word (letters and digits only)"));
            }
            words.push(word.to_lowercase());
        }
        words.sort();
        words.dedup();
        Ok(Self(words))
    }

    pub fn words(&self) -> &[String] {
        &self.0
    }

    /// `rejected` when `content` contains a banned word, `approved` otherwise.
    pub fn judge(&self, content: &str) -> CommentStatus {
        let banned = content
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .any(|w| self.0.iter().any(|b| *b == w.to_lowercase()));
        if banned { CommentStatus::Rejected } else { CommentStatus::Approved }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_banned_word_rejects_whatever_its_case_and_punctuation() {
        let banned = BannedWords::parse(DEFAULT_BANNED).unwrap();
        for content in ["orange", "I like ORANGE.", "Orange!", "apple,orange,pear", "(oRaNgE)"] {
            assert_eq!(banned.judge(content), CommentStatus::Rejected, "{content}");
        }
    }

    #[test]
    fn only_whole_words_count() {
        let banned = BannedWords::parse(DEFAULT_BANNED).unwrap();
        for content in ["oranges", "orangeade", "blood-oranges", "apple", "or ange", ""] {
            assert_eq!(banned.judge(content), CommentStatus::Approved, "{content}");
        }
    }

    #[test]
    fn the_list_is_comma_separated_trimmed_and_lower_cased() {
        let banned = BannedWords::parse(" Orange , kiwi,,Kiwi ").unwrap();
        assert_eq!(banned.words(), ["kiwi", "orange"]);
        assert_eq!(banned.judge("a KIWI"), CommentStatus::Rejected);
        assert!(BannedWords::parse("two words").is_err());
        assert!(BannedWords::parse("").unwrap().words().is_empty());
    }

    #[test]
    fn words_in_other_scripts_are_words_too() {
        let banned = BannedWords::parse("Äpfel").unwrap();
        assert_eq!(banned.judge("keine äpfel!"), CommentStatus::Rejected);
    }
}
