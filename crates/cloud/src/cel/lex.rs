//! Lexing: expression text to tokens, each with the byte offset it starts
//! at. Identifiers, integers (decimal and hex; unsigned refused), doubles,
//! strings in every CEL quoting (single, double, triple, raw) with CEL's
//! escapes, and punctuation; `//` comments and whitespace are skipped.
//! Bytes literals are refused. Any odd byte is an error at its offset,
//! never a panic: the text may come from a world file or an API caller.

use super::error::{Fail, fail};

/// A token's kind and content.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Int(i64),
    Double(f64),
    Str(String),
    Punct(&'static str),
    Eof,
}

/// A token and the byte offset it starts at.
pub(super) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

const PUNCTS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",",
    "(", ")", "[", "]", "{", "}",
];

/// Words CEL reserves; no identifier may be one.
pub(super) const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The tokens of `src`, ending with [`Tok::Eof`] at `src.len()`.
pub(super) fn lex(src: &str) -> Result<Vec<Token>, Fail> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0c) {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        // String literals, with optional r/R (raw) prefix.
        let (raw, q) = match (c, b.get(i + 1)) {
            (b'r' | b'R', Some(&q @ (b'\'' | b'"'))) => (true, Some(q)),
            (b'b' | b'B', Some(b'\'' | b'"')) => {
                return fail(start, "bytes literals are not supported");
            }
            (b'\'' | b'"', _) => (false, Some(c)),
            _ => (false, None),
        };
        if let Some(q) = q {
            if raw {
                i += 1;
            }
            let (s, next) = lex_string(src, i, q, raw, start)?;
            out.push(Token {
                tok: Tok::Str(s),
                pos: start,
            });
            i = next;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(src[start..i].to_string()),
                pos: start,
            });
            continue;
        }
        if c.is_ascii_digit() {
            let (tok, next) = lex_number(src, i)?;
            out.push(Token { tok, pos: start });
            i = next;
            continue;
        }
        if let Some(p) = PUNCTS.iter().find(|p| b[i..].starts_with(p.as_bytes())) {
            out.push(Token {
                tok: Tok::Punct(p),
                pos: start,
            });
            i += p.len();
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('?');
        return fail(
            start,
            format!("unexpected character `{}`", ch.escape_default()),
        );
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(out)
}

fn lex_number(src: &str, start: usize) -> Result<(Tok, usize), Fail> {
    let b = src.as_bytes();
    let mut i = start;
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        let ds = i;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        let v = i64::from_str_radix(&src[ds..i], 16);
        return match v {
            Ok(v) if i > ds => Ok((Tok::Int(v), check_uint_suffix(b, i)?)),
            _ => fail(start, "invalid hexadecimal integer literal"),
        };
    }
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut double = false;
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        double = true;
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            double = true;
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let text = &src[start..i];
    if double {
        return match text.parse::<f64>() {
            Ok(v) => Ok((Tok::Double(v), i)),
            Err(_) => fail(start, "invalid number literal"),
        };
    }
    match text.parse::<i64>() {
        Ok(v) => Ok((Tok::Int(v), check_uint_suffix(b, i)?)),
        Err(_) => fail(start, "integer literal out of range"),
    }
}

fn check_uint_suffix(b: &[u8], i: usize) -> Result<usize, Fail> {
    if matches!(b.get(i), Some(b'u' | b'U')) {
        return fail(i, "unsigned integer literals are not supported");
    }
    Ok(i)
}

/// Lexes a quoted string starting at `i` (the opening quote). Handles
/// triple quotes and CEL's escapes (unless raw).
fn lex_string(
    src: &str,
    i: usize,
    q: u8,
    raw: bool,
    start: usize,
) -> Result<(String, usize), Fail> {
    let b = src.as_bytes();
    let triple = b.len() >= i + 3 && b[i + 1] == q && b[i + 2] == q;
    let mut j = if triple { i + 3 } else { i + 1 };
    let mut out = String::new();
    loop {
        let Some(&c) = b.get(j) else {
            return fail(start, "unterminated string literal");
        };
        if c == q {
            if !triple {
                return Ok((out, j + 1));
            }
            if b.get(j + 1) == Some(&q) && b.get(j + 2) == Some(&q) {
                return Ok((out, j + 3));
            }
        }
        if !triple && (c == b'\n' || c == b'\r') {
            return fail(start, "unterminated string literal (newline inside quotes)");
        }
        if c == b'\\' && !raw {
            let (ch, next) = lex_escape(src, j)?;
            out.push(ch);
            j = next;
            continue;
        }
        if c == b'\\' && raw {
            // A raw string still cannot end on an escaped quote.
            out.push('\\');
            j += 1;
            continue;
        }
        let ch = src[j..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        j += ch.len_utf8();
    }
}

fn lex_escape(src: &str, j: usize) -> Result<(char, usize), Fail> {
    let b = src.as_bytes();
    let Some(&e) = b.get(j + 1) else {
        return fail(j, "unterminated escape sequence");
    };
    let simple = match e {
        b'\\' => Some('\\'),
        b'\'' => Some('\''),
        b'"' => Some('"'),
        b'`' => Some('`'),
        b'?' => Some('?'),
        b'a' => Some('\u{7}'),
        b'b' => Some('\u{8}'),
        b'f' => Some('\u{c}'),
        b'n' => Some('\n'),
        b'r' => Some('\r'),
        b't' => Some('\t'),
        b'v' => Some('\u{b}'),
        _ => None,
    };
    if let Some(ch) = simple {
        return Ok((ch, j + 2));
    }
    let (digits, radix, skip) = match e {
        b'x' | b'X' => (2, 16, 2),
        b'u' => (4, 16, 2),
        b'U' => (8, 16, 2),
        b'0'..=b'3' => (3, 8, 1),
        _ => {
            return fail(
                j,
                format!(
                    "invalid escape sequence `\\{}`",
                    (e as char).escape_default()
                ),
            );
        }
    };
    let from = j + skip;
    let to = from + digits;
    let text = src.get(from..to).unwrap_or("");
    let code = (text.len() == digits)
        .then(|| u32::from_str_radix(text, radix).ok())
        .flatten();
    match code.and_then(char::from_u32) {
        Some(ch) => Ok((ch, to)),
        None => fail(j, "invalid escape sequence"),
    }
}

/// A token as an error message names it (never a string's content).
pub(super) fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Int(i) => format!("`{i}`"),
        Tok::Double(d) => format!("`{d}`"),
        Tok::Str(_) => "a string".into(),
        Tok::Punct(p) => format!("`{p}`"),
        Tok::Eof => "the end of the expression".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cel::testing::{holds, message, program};
    use serde_json::json;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens_carry_their_byte_offsets() {
        let t = lex("a.b>=0x1f // c\n  'é'!").unwrap();
        let got: Vec<(Tok, usize)> = t.into_iter().map(|t| (t.tok, t.pos)).collect();
        assert_eq!(
            got,
            [
                (Tok::Ident("a".into()), 0),
                (Tok::Punct("."), 1),
                (Tok::Ident("b".into()), 2),
                (Tok::Punct(">="), 3),
                (Tok::Int(31), 5),
                (Tok::Str("é".into()), 17),
                (Tok::Punct("!"), 21),
                (Tok::Eof, 22),
            ]
        );
    }

    #[test]
    fn numbers_are_int_unless_they_have_a_fraction_or_exponent() {
        assert_eq!(
            toks("7 1.5 2e3 4E-1 1.x"),
            [
                Tok::Int(7),
                Tok::Double(1.5),
                Tok::Double(2000.0),
                Tok::Double(0.4),
                Tok::Int(1),
                Tok::Punct("."),
                Tok::Ident("x".into()),
                Tok::Eof,
            ]
        );
        assert!(matches!(
            lex("9223372036854775808"),
            Err(Fail::At { pos: 0, msg }) if msg == "integer literal out of range"
        ));
    }

    #[test]
    fn strings_decode_every_quoting_and_escape() {
        assert_eq!(
            toks(r#"'a\'b' "q\"" '''x'y''' r'\d' R"\n" '\x41\101\u00e9\U0001F600\a'"#),
            [
                Tok::Str("a'b".into()),
                Tok::Str("q\"".into()),
                Tok::Str("x'y".into()),
                Tok::Str("\\d".into()),
                Tok::Str("\\n".into()),
                Tok::Str("AAé😀\u{7}".into()),
                Tok::Eof,
            ]
        );
        assert!(matches!(
            lex("'a\nb'"),
            Err(Fail::At { pos: 0, msg }) if msg == "unterminated string literal (newline inside quotes)"
        ));
        assert_eq!(toks("'''a\nb'''"), [Tok::Str("a\nb".into()), Tok::Eof]);
    }

    #[test]
    fn strings_escape_and_quote() {
        let a = json!({"s": "it's \"q\"\n"});
        assert!(holds(r#"assertion.s == 'it\'s "q"\n'"#, a.clone()).unwrap());
        assert!(holds(r#"assertion.s == "it's \"q\"\x0a""#, a.clone()).unwrap());
        assert!(
            holds(
                r"'\u00e9' == 'é' && r'\d' == '\\d' && '''a'b''' == 'a\'b'",
                a
            )
            .unwrap()
        );
        assert!(holds("'ABC'.lowerAscii() == 'abc' && 'abc'.upperAscii() == 'ABC' && 'a.b.c'.split('.') == ['a','b','c']", json!({})).unwrap());
    }

    #[test]
    fn lexical_errors_name_the_column() {
        assert_eq!(
            message("'é' == é"),
            "unexpected character `\\u{e9}` at column 8"
        );
        assert_eq!(message("'open"), "unterminated string literal at column 1");
    }

    #[test]
    fn odd_bytes_are_errors_not_panics() {
        for src in ["'\\", "'\\u12", "0x", "'\\400'", "1u", "b'x'", "\u{0}"] {
            assert!(lex(src).is_err(), "{src}");
            assert!(program(src).is_err(), "{src}");
        }
    }
}
