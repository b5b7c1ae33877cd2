//! How the language fails: one typed [`Error`] for every stage (too long,
//! syntax, check, evaluation, work limit) carrying the position it points at,
//! and the internal [`Fail`] each stage raises at a byte offset before the
//! compiler or evaluator locates it in the text. Kept apart so the lexer,
//! parser, checker and evaluator share one error shape without importing one
//! another.
//!
//! An error names the expression (shortened) and a column, never a value the
//! evaluation saw: values come from a subject token.

use std::fmt;

/// Which stage refused the expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Longer than the caller's limit; nothing was read.
    TooLong,
    /// The lexer or the parser (including nesting deeper than the limit).
    Syntax,
    /// The checker: an undeclared variable, an unknown function, a wrong
    /// arity, a malformed literal `extract` template.
    Check,
    /// Evaluation failed: no such key, no such overload, overflow, a result
    /// too large, a bad regular expression.
    Evaluation,
    /// Evaluation spent its step budget.
    WorkLimit,
}

/// Where in the expression an error points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset into the expression.
    pub offset: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// An expression that does not compile or evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// What is wrong, without the position.
    pub detail: String,
    /// `None` when the error is about the whole expression (its length).
    pub position: Option<Position>,
    /// The expression, shortened when very long.
    pub expression: String,
}

impl Error {
    /// The detail followed by `at column N` when the error has a position.
    pub fn message(&self) -> String {
        match self.position {
            Some(p) => format!("{} at column {}", self.detail, p.column),
            None => self.detail.clone(),
        }
    }

    /// An expression fails the same way every time it is tried.
    pub fn is_transient(&self) -> bool {
        false
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in `{}`", self.message(), self.expression)
    }
}

impl std::error::Error for Error {}

/// A failure at a byte offset of the expression, before it is located.
/// (Kept to 32 bytes: every parser frame holds several.)
#[derive(Debug)]
pub(super) enum Fail {
    /// What is wrong, at a byte offset.
    At { pos: usize, msg: String },
    /// The step budget is spent, at a byte offset: nothing absorbs this one.
    Exhausted { pos: usize },
}

pub(super) fn fail<T>(pos: usize, msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::At {
        pos,
        msg: msg.into(),
    })
}

/// What a spent step budget says.
const WORK_LIMIT: &str = "evaluation exceeds the work limit";

impl Fail {
    /// Locates the failure in `text` as an error of `kind` (a spent budget
    /// is always [`ErrorKind::WorkLimit`]).
    pub fn locate(self, text: &str, kind: ErrorKind) -> Error {
        let (kind, pos, detail) = match self {
            Fail::At { pos, msg } => (kind, pos, msg),
            Fail::Exhausted { pos } => (ErrorKind::WorkLimit, pos, WORK_LIMIT.to_string()),
        };
        Error {
            kind,
            detail,
            position: Some(Position {
                offset: pos,
                column: column(text, pos),
            }),
            expression: shorten(text),
        }
    }
}

fn column(text: &str, pos: usize) -> usize {
    text.get(..pos).map_or(pos, |s| s.chars().count()) + 1
}

/// `s` cut to 200 characters (and an ellipsis), for quoting in messages.
pub fn shorten(s: &str) -> String {
    const KEEP: usize = 200;
    if s.chars().count() <= KEEP {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(KEEP).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_located_by_character_column() {
        let text = "'é' == é";
        let e = Fail::At {
            pos: 8,
            msg: "unexpected character".into(),
        }
        .locate(text, ErrorKind::Syntax);
        assert_eq!(e.kind, ErrorKind::Syntax);
        assert_eq!(
            e.position,
            Some(Position {
                offset: 8,
                column: 8
            })
        );
        assert_eq!(e.message(), "unexpected character at column 8");
        assert_eq!(
            e.to_string(),
            "unexpected character at column 8 in `'é' == é`"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn a_spent_budget_is_a_work_limit_whatever_the_stage() {
        let e = Fail::Exhausted { pos: 0 }.locate("true", ErrorKind::Evaluation);
        assert_eq!(e.kind, ErrorKind::WorkLimit);
        assert_eq!(e.message(), "evaluation exceeds the work limit at column 1");
    }

    #[test]
    fn long_text_is_shortened_to_200_characters() {
        assert_eq!(shorten("abc"), "abc");
        let s = shorten(&"é".repeat(300));
        assert_eq!(s.chars().count(), 201);
        assert!(s.ends_with('…'));
    }
}
