//! Workload Identity Federation attribute mapping and attribute condition:
//! the part of a pool provider that turns an external credential (an AWS
//! `GetCallerIdentity` answer, a JWT's claims) into `google.subject`,
//! `google.groups` and `attribute.NAME`, then decides with a CEL condition
//! whether the credential is accepted at all.
//!
//! The expressions are the Common Expression Language subset people write in
//! providers: literals, lists, maps, field and index access, comparisons,
//! `&&`/`||`/`!` with CEL's error-absorbing short-circuit, `in`, arithmetic
//! and concatenation, `?:`, `has()`, the `exists`/`all`/`exists_one`/
//! `filter`/`map` macros, `size`, `string`/`int`/`double`, the string
//! methods `startsWith`, `endsWith`, `contains`, `matches` (RE2 syntax,
//! linear-time engine), `lowerAscii`, `upperAscii`, `split`, and Google's
//! `extract('prefix{name}suffix')`.
//!
//! Google's documented limits apply: a mapping expression is at most 2048
//! characters, a condition at most 4096, `google.subject` at most 127 bytes,
//! at most 50 custom attributes named `[a-z0-9_]{1,100}`, and all mapped
//! values together at most 8 KB. Beyond them, the evaluator bounds its own
//! work (nesting depth, produced string and list sizes, a step budget), so a
//! hostile expression or assertion cannot exhaust the stack or hang.
//!
//! Pure: no IO, no clock. Error messages name the expression and the column
//! but never echo assertion values (they come from a subject token).

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// The result of applying an attribute mapping to an assertion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapped {
    pub subject: String,
    pub groups: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

/// A mapping or condition expression that does not parse or evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    /// The expression (shortened when very long).
    pub expression: String,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in `{}`", self.message, self.expression)
    }
}

impl std::error::Error for ExprError {}

/// Longest attribute mapping expression Google accepts.
pub const MAX_MAPPING_EXPR: usize = 2048;
/// Longest attribute condition Google accepts.
pub const MAX_CONDITION_EXPR: usize = 4096;
/// Longest mapped `google.subject`, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 127;
/// Most custom attributes a provider may map.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 50;
/// Longest custom attribute name.
pub const MAX_ATTRIBUTE_NAME: usize = 100;
/// Largest total size of all mapped values.
pub const MAX_MAPPED_BYTES: usize = 8 * 1024;

/// Deepest expression tree accepted (parenthesised, chained or nested).
const MAX_DEPTH: u32 = 100;
/// Largest string an expression may produce (concatenation, case mapping).
const MAX_STRING: usize = 64 * 1024;
/// Largest list an expression may produce (literal, concatenation, split, map).
const MAX_LIST: usize = 4096;
/// Evaluation steps (nodes visited, comprehension iterations) per expression.
const MAX_STEPS: u64 = 200_000;
/// Compiled-regex size bound for `matches`.
const MAX_REGEX_NFA: usize = 1 << 20;

const SUBJECT: &str = "google.subject";
const GROUPS: &str = "google.groups";
const ATTRIBUTE_PREFIX: &str = "attribute.";

/// Google's default mapping for an AWS provider without an explicit one:
/// the caller's ARN is the subject, and `attribute.aws_role` is the role ARN
/// (the assumed-role ARN without its session name) or the ARN itself.
pub fn default_aws_mapping() -> BTreeMap<String, String> {
    BTreeMap::from([
        (SUBJECT.to_string(), "assertion.arn".to_string()),
        (
            "attribute.aws_role".to_string(),
            "assertion.arn.contains('assumed-role') \
             ? assertion.arn.extract('{account_arn}assumed-role/') + 'assumed-role/' \
             + assertion.arn.extract('assumed-role/{role_name}/') \
             : assertion.arn"
                .to_string(),
        ),
    ])
}

/// The usual OIDC mapping (Google requires OIDC providers to state one;
/// this is the one the console proposes): the token's `sub` is the subject.
pub fn default_oidc_mapping() -> BTreeMap<String, String> {
    BTreeMap::from([(SUBJECT.to_string(), "assertion.sub".to_string())])
}

/// Validates a mapping at world-load time: targets well-formed,
/// `google.subject` present, expressions within size and parse, referring
/// only to `assertion` and to known functions.
pub fn validate_mapping(mapping: &BTreeMap<String, String>) -> Result<(), ExprError> {
    check_targets(mapping)?;
    for (target, expr) in mapping {
        compile(expr, MAX_MAPPING_EXPR, &["assertion"]).map_err(|e| in_target(e, target))?;
    }
    Ok(())
}

/// Validates an attribute condition: size, syntax, known functions, and
/// only the `assertion`, `attribute` and `google` variables.
pub fn validate_condition(expr: &str) -> Result<(), ExprError> {
    compile(expr, MAX_CONDITION_EXPR, CONDITION_VARS).map(|_| ())
}

const CONDITION_VARS: &[&str] = &["assertion", "attribute", "google"];

/// Applies the mapping to the assertion. Fails if `google.subject` is
/// missing, empty, not a string or longer than 127 bytes, if a value has
/// the wrong type, or if an expression fails.
pub fn map_attributes(
    mapping: &BTreeMap<String, String>,
    assertion: &serde_json::Value,
) -> Result<Mapped, ExprError> {
    check_targets(mapping)?;
    let roots = vec![("assertion", from_json(assertion))];
    let mut mapped = Mapped::default();
    let mut total = 0usize;
    for (target, text) in mapping {
        let program =
            compile(text, MAX_MAPPING_EXPR, &["assertion"]).map_err(|e| in_target(e, target))?;
        let value = program.run(&roots).map_err(|e| in_target(e, target))?;
        let fail = |message: String| in_target(err(text, message), target);
        if target == SUBJECT {
            let Value::Str(s) = &value else {
                return Err(fail(format!(
                    "google.subject must be a string, the expression gave {}",
                    value.type_name()
                )));
            };
            if s.is_empty() {
                return Err(fail("google.subject is empty".into()));
            }
            if s.len() > MAX_SUBJECT_BYTES {
                return Err(fail(format!(
                    "google.subject is {} bytes, more than the {MAX_SUBJECT_BYTES} allowed",
                    s.len()
                )));
            }
            total += s.len();
            mapped.subject = s.to_string();
        } else if target == GROUPS {
            match &value {
                Value::Null => {}
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let Value::Str(g) = item else {
                            return Err(fail(format!(
                                "google.groups must be a list of strings, element {i} is {}",
                                item.type_name()
                            )));
                        };
                        total += g.len();
                        mapped.groups.push(g.to_string());
                    }
                }
                other => {
                    return Err(fail(format!(
                        "google.groups must be a list of strings, the expression gave {}",
                        other.type_name()
                    )));
                }
            }
        } else if let Some(name) = target.strip_prefix(ATTRIBUTE_PREFIX) {
            match &value {
                // A claim that maps to null leaves the attribute unset.
                Value::Null => {}
                Value::Str(s) => {
                    total += s.len();
                    mapped.attributes.insert(name.to_string(), s.to_string());
                }
                other => {
                    return Err(fail(format!(
                        "{target} must be a string, the expression gave {} (convert it with string())",
                        other.type_name()
                    )));
                }
            }
        }
        if total > MAX_MAPPED_BYTES {
            return Err(fail(format!(
                "the mapped attributes exceed {MAX_MAPPED_BYTES} bytes in total"
            )));
        }
    }
    if !mapping.contains_key(SUBJECT) {
        return Err(err(
            "",
            "the attribute mapping has no google.subject".into(),
        ));
    }
    Ok(mapped)
}

/// Evaluates an attribute condition over `assertion`, `attribute` (the
/// mapped custom attributes) and `google` (`subject`, `groups`).
/// `Ok(false)` when it evaluates to false; an error when it fails or gives
/// something other than a bool (both reject the credential).
pub fn condition_holds(
    expr: &str,
    assertion: &serde_json::Value,
    mapped: &Mapped,
) -> Result<bool, ExprError> {
    let program = compile(expr, MAX_CONDITION_EXPR, CONDITION_VARS)?;
    let google = BTreeMap::from([
        (
            "subject".to_string(),
            Value::Str(mapped.subject.as_str().into()),
        ),
        (
            "groups".to_string(),
            Value::List(Rc::new(
                mapped
                    .groups
                    .iter()
                    .map(|g| Value::Str(g.as_str().into()))
                    .collect(),
            )),
        ),
    ]);
    let attribute = mapped
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::Str(v.as_str().into())))
        .collect();
    let roots = vec![
        ("assertion", from_json(assertion)),
        ("attribute", Value::Map(Rc::new(attribute))),
        ("google", Value::Map(Rc::new(google))),
    ];
    match program.run(&roots)? {
        Value::Bool(b) => Ok(b),
        other => Err(err(
            expr,
            format!(
                "the attribute condition must evaluate to a bool, it gave {}",
                other.type_name()
            ),
        )),
    }
}

fn check_targets(mapping: &BTreeMap<String, String>) -> Result<(), ExprError> {
    let mut custom = 0;
    for target in mapping.keys() {
        if target == SUBJECT || target == GROUPS {
            continue;
        }
        let Some(name) = target.strip_prefix(ATTRIBUTE_PREFIX) else {
            return Err(err(
                "",
                format!(
                    "attribute mapping target `{}` is not google.subject, google.groups or attribute.NAME",
                    shorten(target)
                ),
            ));
        };
        if name.is_empty()
            || name.len() > MAX_ATTRIBUTE_NAME
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(err(
                "",
                format!(
                    "attribute mapping target `{}`: the name after `attribute.` must be 1 to {MAX_ATTRIBUTE_NAME} characters of [a-z0-9_]",
                    shorten(target)
                ),
            ));
        }
        custom += 1;
    }
    if custom > MAX_CUSTOM_ATTRIBUTES {
        return Err(err(
            "",
            format!(
                "the attribute mapping has {custom} custom attributes, more than the {MAX_CUSTOM_ATTRIBUTES} allowed"
            ),
        ));
    }
    if !mapping.contains_key(SUBJECT) {
        return Err(err(
            "",
            "the attribute mapping has no google.subject".into(),
        ));
    }
    Ok(())
}

fn in_target(mut e: ExprError, target: &str) -> ExprError {
    e.message = format!("attribute mapping for {target}: {}", e.message);
    e
}

fn shorten(s: &str) -> String {
    const KEEP: usize = 200;
    if s.chars().count() <= KEEP {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(KEEP).collect();
        out.push('…');
        out
    }
}

fn err(expr: &str, message: String) -> ExprError {
    ExprError {
        expression: shorten(expr),
        message,
    }
}

// ---------------------------------------------------------------- values

#[derive(Debug, Clone)]
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Rc<str>),
    List(Rc<Vec<Value>>),
    Map(Rc<BTreeMap<String, Value>>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

/// JSON to CEL. Integers that fit stay `int` (so `assertion.n == 3` works as
/// written); other numbers are `double`. serde_json bounds nesting at parse.
fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Str(s.as_str().into()),
        serde_json::Value::Array(a) => Value::List(Rc::new(a.iter().map(from_json).collect())),
        serde_json::Value::Object(o) => Value::Map(Rc::new(
            o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect(),
        )),
    }
}

fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Double(x), Value::Double(y)) => x == y,
        (Value::Int(x), Value::Double(y)) | (Value::Double(y), Value::Int(x)) => {
            (*x as f64) == *y && y.fract() == 0.0 && (*y as i64) == *x
        }
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equals(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equals(v, w)))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Double(f64),
    Str(String),
    Punct(&'static str),
    Eof,
}

struct Token {
    tok: Tok,
    pos: usize,
}

/// A parse or evaluation failure at a byte offset of the expression.
struct Fail {
    pos: usize,
    msg: String,
}

fn fail<T>(pos: usize, msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        pos,
        msg: msg.into(),
    })
}

const PUNCTS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",",
    "(", ")", "[", "]", "{", "}",
];

const RESERVED: &[&str] = &[
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

fn lex(src: &str) -> Result<Vec<Token>, Fail> {
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

// ---------------------------------------------------------------- syntax

#[derive(Debug, Clone, Copy, PartialEq)]
enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Macro {
    All,
    Exists,
    ExistsOne,
    Filter,
    Map,
}

#[derive(Debug)]
enum Kind {
    Lit(Value),
    Ident(String),
    Select(Box<Node>, String),
    Has(Box<Node>, String),
    Index(Box<Node>, Box<Node>),
    Call(Option<Box<Node>>, String, Vec<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    List(Vec<Node>),
    MapLit(Vec<(Node, Node)>),
    Comprehension {
        kind: Macro,
        range: Box<Node>,
        var: String,
        body: Box<Node>,
        /// `map(x, filter, transform)`: the filter.
        filter: Option<Box<Node>>,
    },
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    pos: usize,
    depth: u32,
}

impl Node {
    fn new(kind: Kind, pos: usize) -> Result<Node, Fail> {
        let children: Vec<&Node> = match &kind {
            Kind::Lit(_) | Kind::Ident(_) => vec![],
            Kind::Select(a, _) | Kind::Has(a, _) | Kind::Not(a) | Kind::Neg(a) => vec![a],
            Kind::Index(a, b) | Kind::Binary(_, a, b) | Kind::And(a, b) | Kind::Or(a, b) => {
                vec![a, b]
            }
            Kind::Call(t, _, args) => t.iter().map(|b| &**b).chain(args.iter()).collect(),
            Kind::Cond(a, b, c) => vec![a, b, c],
            Kind::List(items) => items.iter().collect(),
            Kind::MapLit(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
            Kind::Comprehension {
                range,
                body,
                filter,
                ..
            } => {
                let mut v: Vec<&Node> = vec![range, body];
                v.extend(filter.iter().map(|b| &**b));
                v
            }
        };
        let depth = 1 + children.iter().map(|c| c.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return fail(
                pos,
                format!("expression nests deeper than {MAX_DEPTH} levels"),
            );
        }
        Ok(Node { kind, pos, depth })
    }
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    /// Recursion depth of the descent itself.
    nest: u32,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at.min(self.toks.len() - 1)].tok
    }
    fn pos(&self) -> usize {
        self.toks[self.at.min(self.toks.len() - 1)].pos
    }
    fn bump(&mut self) -> (Tok, usize) {
        let t = &self.toks[self.at.min(self.toks.len() - 1)];
        let r = (t.tok.clone(), t.pos);
        if self.at < self.toks.len() - 1 {
            self.at += 1;
        }
        r
    }
    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Tok::Punct(q) if *q == p) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<usize, Fail> {
        let pos = self.pos();
        if self.eat(p) {
            Ok(pos)
        } else {
            fail(
                pos,
                format!("expected `{p}`, found {}", describe(self.peek())),
            )
        }
    }

    fn enter(&mut self) -> Result<(), Fail> {
        self.nest += 1;
        if self.nest > MAX_DEPTH {
            return fail(
                self.pos(),
                format!("expression nests deeper than {MAX_DEPTH} levels"),
            );
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Node, Fail> {
        self.enter()?;
        let cond = self.or()?;
        let r = if matches!(self.peek(), Tok::Punct("?")) {
            let (_, pos) = self.bump();
            let a = self.or()?;
            self.expect(":")?;
            let b = self.expr()?;
            Node::new(Kind::Cond(Box::new(cond), Box::new(a), Box::new(b)), pos)
        } else {
            Ok(cond)
        };
        self.nest -= 1;
        r
    }

    fn or(&mut self) -> Result<Node, Fail> {
        let mut left = self.and()?;
        while matches!(self.peek(), Tok::Punct("||")) {
            let (_, pos) = self.bump();
            let right = self.and()?;
            left = Node::new(Kind::Or(Box::new(left), Box::new(right)), pos)?;
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, Fail> {
        let mut left = self.relation()?;
        while matches!(self.peek(), Tok::Punct("&&")) {
            let (_, pos) = self.bump();
            let right = self.relation()?;
            left = Node::new(Kind::And(Box::new(left), Box::new(right)), pos)?;
        }
        Ok(left)
    }

    fn relation(&mut self) -> Result<Node, Fail> {
        let mut left = self.addition()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("==") => BinOp::Eq,
                Tok::Punct("!=") => BinOp::Ne,
                Tok::Punct("<") => BinOp::Lt,
                Tok::Punct("<=") => BinOp::Le,
                Tok::Punct(">") => BinOp::Gt,
                Tok::Punct(">=") => BinOp::Ge,
                Tok::Ident(w) if w == "in" => BinOp::In,
                _ => return Ok(left),
            };
            let (_, pos) = self.bump();
            let right = self.addition()?;
            left = Node::new(Kind::Binary(op, Box::new(left), Box::new(right)), pos)?;
        }
    }

    fn addition(&mut self) -> Result<Node, Fail> {
        let mut left = self.multiplication()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("+") => BinOp::Add,
                Tok::Punct("-") => BinOp::Sub,
                _ => return Ok(left),
            };
            let (_, pos) = self.bump();
            let right = self.multiplication()?;
            left = Node::new(Kind::Binary(op, Box::new(left), Box::new(right)), pos)?;
        }
    }

    fn multiplication(&mut self) -> Result<Node, Fail> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("*") => BinOp::Mul,
                Tok::Punct("/") => BinOp::Div,
                Tok::Punct("%") => BinOp::Rem,
                _ => return Ok(left),
            };
            let (_, pos) = self.bump();
            let right = self.unary()?;
            left = Node::new(Kind::Binary(op, Box::new(left), Box::new(right)), pos)?;
        }
    }

    fn unary(&mut self) -> Result<Node, Fail> {
        match self.peek() {
            Tok::Punct("!") => {
                let (_, pos) = self.bump();
                self.enter()?;
                let inner = self.unary()?;
                self.nest -= 1;
                Node::new(Kind::Not(Box::new(inner)), pos)
            }
            Tok::Punct("-") => {
                let (_, pos) = self.bump();
                // Fold `-` into a numeric literal so i64::MIN is writable.
                match self.peek().clone() {
                    Tok::Int(_) | Tok::Double(_) if !self.followed_by_member() => {
                        let (t, _) = self.bump();
                        let v = match t {
                            Tok::Int(i) => Value::Int(-i),
                            Tok::Double(d) => Value::Double(-d),
                            _ => Value::Null,
                        };
                        Node::new(Kind::Lit(v), pos)
                    }
                    _ => {
                        self.enter()?;
                        let inner = self.unary()?;
                        self.nest -= 1;
                        Node::new(Kind::Neg(Box::new(inner)), pos)
                    }
                }
            }
            _ => self.member(),
        }
    }

    fn followed_by_member(&self) -> bool {
        matches!(
            self.toks.get(self.at + 1).map(|t| &t.tok),
            Some(Tok::Punct("." | "["))
        )
    }

    fn member(&mut self) -> Result<Node, Fail> {
        let mut node = self.primary()?;
        loop {
            match self.peek() {
                Tok::Punct(".") => {
                    self.bump();
                    let (t, pos) = self.bump();
                    let Tok::Ident(name) = t else {
                        return fail(
                            pos,
                            format!(
                                "expected a field or method name after `.`, found {}",
                                describe(&t)
                            ),
                        );
                    };
                    if matches!(self.peek(), Tok::Punct("(")) {
                        self.bump();
                        let args = self.args(")")?;
                        node = self.method(node, name, args, pos)?;
                    } else {
                        node = Node::new(Kind::Select(Box::new(node), name), pos)?;
                    }
                }
                Tok::Punct("[") => {
                    let (_, pos) = self.bump();
                    let index = self.expr()?;
                    self.expect("]")?;
                    node = Node::new(Kind::Index(Box::new(node), Box::new(index)), pos)?;
                }
                _ => return Ok(node),
            }
        }
    }

    fn method(
        &mut self,
        target: Node,
        name: String,
        mut args: Vec<Node>,
        pos: usize,
    ) -> Result<Node, Fail> {
        let kind = match name.as_str() {
            "all" => Some(Macro::All),
            "exists" => Some(Macro::Exists),
            "exists_one" => Some(Macro::ExistsOne),
            "filter" => Some(Macro::Filter),
            "map" => Some(Macro::Map),
            _ => None,
        };
        let Some(kind) = kind else {
            return Node::new(Kind::Call(Some(Box::new(target)), name, args), pos);
        };
        let arity_ok = args.len() == 2 || (kind == Macro::Map && args.len() == 3);
        if !arity_ok {
            return fail(
                pos,
                format!("{name}() takes a variable and a predicate, as in {name}(x, x == 'a')"),
            );
        }
        let var = match &args[0].kind {
            Kind::Ident(v) => v.clone(),
            _ => {
                return fail(
                    args[0].pos,
                    format!("the first argument of {name}() must be a variable name"),
                );
            }
        };
        let body = args.pop().map(Box::new);
        let filter = if args.len() == 2 {
            args.pop().map(Box::new)
        } else {
            None
        };
        let Some(body) = body else {
            return fail(pos, "macro without a body");
        };
        Node::new(
            Kind::Comprehension {
                kind,
                range: Box::new(target),
                var,
                body,
                filter,
            },
            pos,
        )
    }

    fn args(&mut self, close: &str) -> Result<Vec<Node>, Fail> {
        let mut args = Vec::new();
        if self.eat(close) {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat(close) {
                return Ok(args);
            }
            self.expect(",")?;
            if self.eat(close) {
                return Ok(args); // trailing comma
            }
            if args.len() >= MAX_LIST {
                return fail(self.pos(), format!("more than {MAX_LIST} elements"));
            }
        }
    }

    fn primary(&mut self) -> Result<Node, Fail> {
        let (t, pos) = self.bump();
        match t {
            Tok::Int(i) => Node::new(Kind::Lit(Value::Int(i)), pos),
            Tok::Double(d) => Node::new(Kind::Lit(Value::Double(d)), pos),
            Tok::Str(s) => Node::new(Kind::Lit(Value::Str(s.into())), pos),
            Tok::Punct("(") => {
                let inner = self.expr()?;
                self.expect(")")?;
                Ok(inner)
            }
            Tok::Punct("[") => {
                self.enter()?;
                let items = self.args("]")?;
                self.nest -= 1;
                Node::new(Kind::List(items), pos)
            }
            Tok::Punct("{") => {
                self.enter()?;
                let mut entries = Vec::new();
                if !self.eat("}") {
                    loop {
                        let k = self.expr()?;
                        self.expect(":")?;
                        let v = self.expr()?;
                        entries.push((k, v));
                        if self.eat("}") {
                            break;
                        }
                        self.expect(",")?;
                        if self.eat("}") {
                            break;
                        }
                        if entries.len() >= MAX_LIST {
                            return fail(self.pos(), format!("more than {MAX_LIST} map entries"));
                        }
                    }
                }
                self.nest -= 1;
                Node::new(Kind::MapLit(entries), pos)
            }
            Tok::Punct(".") => fail(pos, "leading `.` (absolute names) is not supported"),
            Tok::Ident(name) => match name.as_str() {
                "true" => Node::new(Kind::Lit(Value::Bool(true)), pos),
                "false" => Node::new(Kind::Lit(Value::Bool(false)), pos),
                "null" => Node::new(Kind::Lit(Value::Null), pos),
                "in" => fail(pos, "unexpected `in`"),
                w if RESERVED.contains(&w) => fail(pos, format!("`{w}` is a reserved word")),
                _ => {
                    if matches!(self.peek(), Tok::Punct("(")) {
                        self.bump();
                        let mut args = self.args(")")?;
                        if name == "has" {
                            if args.len() != 1 {
                                return fail(
                                    pos,
                                    "has() takes one field selection, as in has(assertion.email)",
                                );
                            }
                            let arg = args.remove(0);
                            return match arg.kind {
                                Kind::Select(operand, field) => {
                                    Node::new(Kind::Has(operand, field), pos)
                                }
                                _ => fail(
                                    arg.pos,
                                    "the argument of has() must be a field selection, as in has(assertion.email)",
                                ),
                            };
                        }
                        Node::new(Kind::Call(None, name, args), pos)
                    } else {
                        Node::new(Kind::Ident(name), pos)
                    }
                }
            },
            Tok::Eof => fail(pos, "unexpected end of expression"),
            other => fail(pos, format!("unexpected {}", describe(&other))),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Int(i) => format!("`{i}`"),
        Tok::Double(d) => format!("`{d}`"),
        Tok::Str(_) => "a string".into(),
        Tok::Punct(p) => format!("`{p}`"),
        Tok::Eof => "the end of the expression".into(),
    }
}

/// Functions and methods: (name, receiver style, arities).
/// `Global` is `f(x)`, `Method` is `x.f()`, `Both` accepts either.
#[derive(Clone, Copy, PartialEq)]
enum Style {
    Global,
    Method,
    Both,
}

const FUNCTIONS: &[(&str, Style, &[usize])] = &[
    ("size", Style::Both, &[0, 1]),
    ("startsWith", Style::Method, &[1]),
    ("endsWith", Style::Method, &[1]),
    ("contains", Style::Method, &[1]),
    ("matches", Style::Both, &[1, 2]),
    ("lowerAscii", Style::Method, &[0]),
    ("upperAscii", Style::Method, &[0]),
    ("split", Style::Method, &[1]),
    ("extract", Style::Method, &[1]),
    ("string", Style::Global, &[1]),
    ("int", Style::Global, &[1]),
    ("double", Style::Global, &[1]),
];

/// Static checks: known functions with the right arity, free variables
/// among `vars`, literal `extract` templates well-formed.
fn check(node: &Node, vars: &[&str], locals: &mut Vec<String>) -> Result<(), Fail> {
    match &node.kind {
        Kind::Lit(_) => Ok(()),
        Kind::Ident(name) => {
            if locals.iter().any(|l| l == name) || vars.contains(&name.as_str()) {
                Ok(())
            } else {
                fail(
                    node.pos,
                    format!(
                        "undeclared reference to `{name}` (expected one of: {})",
                        vars.join(", ")
                    ),
                )
            }
        }
        Kind::Select(a, _) | Kind::Has(a, _) | Kind::Not(a) | Kind::Neg(a) => {
            check(a, vars, locals)
        }
        Kind::Index(a, b) | Kind::Binary(_, a, b) | Kind::And(a, b) | Kind::Or(a, b) => {
            check(a, vars, locals)?;
            check(b, vars, locals)
        }
        Kind::Cond(a, b, c) => {
            check(a, vars, locals)?;
            check(b, vars, locals)?;
            check(c, vars, locals)
        }
        Kind::List(items) => items.iter().try_for_each(|i| check(i, vars, locals)),
        Kind::MapLit(entries) => entries.iter().try_for_each(|(k, v)| {
            check(k, vars, locals)?;
            check(v, vars, locals)
        }),
        Kind::Call(target, name, args) => {
            let Some((_, style, arities)) = FUNCTIONS.iter().find(|(n, ..)| n == name) else {
                return fail(node.pos, format!("unknown function `{name}`"));
            };
            let argc = args.len() + usize::from(target.is_some());
            let style_ok = match style {
                Style::Global => target.is_none(),
                Style::Method => target.is_some(),
                Style::Both => true,
            };
            let arity_ok = match style {
                Style::Both => arities.contains(&argc) && argc >= 1,
                _ => arities.contains(&args.len()),
            };
            if !style_ok || !arity_ok {
                let shape = match style {
                    Style::Global => format!("{name}(x)"),
                    Style::Method => format!("x.{name}(…) with {} argument(s)", arities[0]),
                    Style::Both => format!("{name}(x…) or x.{name}(…)"),
                };
                return fail(
                    node.pos,
                    format!("wrong use of `{name}`: it is called as {shape}"),
                );
            }
            if name == "extract"
                && let Some(Node {
                    kind: Kind::Lit(Value::Str(t)),
                    pos,
                    ..
                }) = args.first()
            {
                parse_template(t).map_err(|m| Fail { pos: *pos, msg: m })?;
            }
            if let Some(t) = target {
                check(t, vars, locals)?;
            }
            args.iter().try_for_each(|a| check(a, vars, locals))
        }
        Kind::Comprehension {
            range,
            var,
            body,
            filter,
            ..
        } => {
            check(range, vars, locals)?;
            locals.push(var.clone());
            let r = check(body, vars, locals)
                .and_then(|()| filter.as_ref().map_or(Ok(()), |f| check(f, vars, locals)));
            locals.pop();
            r
        }
    }
}

struct Program<'a> {
    text: &'a str,
    root: Node,
}

fn compile<'a>(text: &'a str, max_len: usize, vars: &[&str]) -> Result<Program<'a>, ExprError> {
    let chars = text.chars().count();
    if chars > max_len {
        return Err(err(
            text,
            format!("the expression is {chars} characters, more than the {max_len} allowed"),
        ));
    }
    let located = |f: Fail| err(text, format!("{} at column {}", f.msg, column(text, f.pos)));
    let toks = lex(text).map_err(located)?;
    let mut p = Parser {
        toks,
        at: 0,
        nest: 0,
    };
    let root = p.expr().map_err(located)?;
    if !matches!(p.peek(), Tok::Eof) {
        let pos = p.pos();
        return Err(located(Fail {
            pos,
            msg: format!("unexpected {} after the expression", describe(p.peek())),
        }));
    }
    check(&root, vars, &mut Vec::new()).map_err(located)?;
    Ok(Program { text, root })
}

fn column(text: &str, pos: usize) -> usize {
    text.get(..pos).map_or(pos, |s| s.chars().count()) + 1
}

// ---------------------------------------------------------------- evaluation

struct Env<'a> {
    roots: &'a [(&'static str, Value)],
    locals: Vec<(String, Value)>,
    steps: u64,
}

impl Program<'_> {
    fn run(&self, roots: &[(&'static str, Value)]) -> Result<Value, ExprError> {
        let mut env = Env {
            roots,
            locals: Vec::new(),
            steps: 0,
        };
        eval(&self.root, &mut env).map_err(|f| {
            err(
                self.text,
                format!("{} at column {}", f.msg, column(self.text, f.pos)),
            )
        })
    }
}

fn eval(node: &Node, env: &mut Env) -> Result<Value, Fail> {
    env.steps += 1;
    if env.steps > MAX_STEPS {
        return fail(node.pos, "evaluation exceeds the work limit");
    }
    let pos = node.pos;
    match &node.kind {
        Kind::Lit(v) => Ok(v.clone()),
        Kind::Ident(name) => {
            if let Some((_, v)) = env.locals.iter().rev().find(|(n, _)| n == name) {
                return Ok(v.clone());
            }
            match env.roots.iter().find(|(n, _)| n == name) {
                Some((_, v)) => Ok(v.clone()),
                None => fail(pos, format!("undeclared reference to `{name}`")),
            }
        }
        Kind::Select(operand, field) => {
            let v = eval(operand, env)?;
            match v {
                Value::Map(m) => match m.get(field) {
                    Some(x) => Ok(x.clone()),
                    None => fail(pos, format!("no such key: `{field}`")),
                },
                other => fail(
                    pos,
                    format!("cannot select field `{field}` from a {}", other.type_name()),
                ),
            }
        }
        Kind::Has(operand, field) => match eval(operand, env)? {
            Value::Map(m) => Ok(Value::Bool(m.contains_key(field))),
            other => fail(
                pos,
                format!(
                    "has() cannot test field `{field}` of a {}",
                    other.type_name()
                ),
            ),
        },
        Kind::Index(operand, index) => {
            let v = eval(operand, env)?;
            let i = eval(index, env)?;
            match (&v, &i) {
                (Value::List(l), Value::Int(n)) => {
                    match usize::try_from(*n).ok().and_then(|n| l.get(n)) {
                        Some(x) => Ok(x.clone()),
                        None => fail(
                            pos,
                            format!("index {n} out of range for a list of {}", l.len()),
                        ),
                    }
                }
                (Value::List(l), Value::Double(d))
                    if d.fract() == 0.0 && *d >= 0.0 && (*d as usize) < l.len() =>
                {
                    Ok(l[*d as usize].clone())
                }
                (Value::Map(m), Value::Str(k)) => match m.get(&**k) {
                    Some(x) => Ok(x.clone()),
                    // Name the key only when the expression spells it out:
                    // a computed key may come from the subject token.
                    None if matches!(index.kind, Kind::Lit(_)) => {
                        fail(pos, format!("no such key: `{}`", shorten(k)))
                    }
                    None => fail(pos, "no such key (computed string key)"),
                },
                (Value::Map(_), other) => {
                    fail(pos, format!("no such key of type {}", other.type_name()))
                }
                _ => fail(
                    pos,
                    format!("cannot index a {} with a {}", v.type_name(), i.type_name()),
                ),
            }
        }
        Kind::Not(a) => match eval(a, env)? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            other => fail(pos, format!("no such overload: !{}", other.type_name())),
        },
        Kind::Neg(a) => match eval(a, env)? {
            Value::Int(i) => match i.checked_neg() {
                Some(n) => Ok(Value::Int(n)),
                None => fail(pos, "integer overflow"),
            },
            Value::Double(d) => Ok(Value::Double(-d)),
            other => fail(pos, format!("no such overload: -{}", other.type_name())),
        },
        // CEL's logical operators are commutative over errors: a decisive
        // operand on either side wins over an error or a non-bool on the other.
        Kind::And(a, b) => logic(a, b, env, false),
        Kind::Or(a, b) => logic(a, b, env, true),
        Kind::Cond(c, a, b) => match eval(c, env)? {
            Value::Bool(true) => eval(a, env),
            Value::Bool(false) => eval(b, env),
            other => fail(
                c.pos,
                format!(
                    "the condition of `?:` must be a bool, it is a {}",
                    other.type_name()
                ),
            ),
        },
        Kind::Binary(op, a, b) => {
            let x = eval(a, env)?;
            let y = eval(b, env)?;
            binary(*op, x, y, pos)
        }
        Kind::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(eval(i, env)?);
            }
            Ok(Value::List(Rc::new(out)))
        }
        Kind::MapLit(entries) => {
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let key = match eval(k, env)? {
                    Value::Str(s) => s.to_string(),
                    other => {
                        return fail(
                            k.pos,
                            format!("map keys must be strings here, not {}", other.type_name()),
                        );
                    }
                };
                let val = eval(v, env)?;
                if out.insert(key, val).is_some() {
                    return fail(k.pos, "duplicate map key");
                }
            }
            Ok(Value::Map(Rc::new(out)))
        }
        Kind::Call(target, name, args) => {
            let mut vals = Vec::with_capacity(args.len() + 1);
            if let Some(t) = target {
                vals.push(eval(t, env)?);
            }
            for a in args {
                vals.push(eval(a, env)?);
            }
            call(name, target.is_some(), vals, pos)
        }
        Kind::Comprehension {
            kind,
            range,
            var,
            body,
            filter,
        } => comprehension(*kind, range, var, body, filter.as_deref(), env, pos),
    }
}

fn logic(a: &Node, b: &Node, env: &mut Env, is_or: bool) -> Result<Value, Fail> {
    let decisive = is_or; // `true` decides `||`, `false` decides `&&`
    let op = if is_or { "||" } else { "&&" };
    let left = match eval(a, env) {
        Ok(Value::Bool(x)) if x == decisive => return Ok(Value::Bool(decisive)),
        Ok(Value::Bool(_)) => Ok(()),
        Ok(other) => Err(Fail {
            pos: a.pos,
            msg: format!("no such overload: {} {op} …", other.type_name()),
        }),
        Err(e) if e.msg.contains("work limit") => return Err(e),
        Err(e) => Err(e),
    };
    match eval(b, env) {
        Ok(Value::Bool(x)) if x == decisive => Ok(Value::Bool(decisive)),
        Ok(Value::Bool(x)) => left.map(|()| Value::Bool(x)),
        Ok(other) => {
            left?;
            fail(
                b.pos,
                format!("no such overload: … {op} {}", other.type_name()),
            )
        }
        Err(e) => {
            left?;
            Err(e)
        }
    }
}

fn binary(op: BinOp, x: Value, y: Value, pos: usize) -> Result<Value, Fail> {
    use std::cmp::Ordering;
    let overload = |x: &Value, y: &Value, sym: &str| -> Result<Value, Fail> {
        fail(
            pos,
            format!(
                "no such overload: {} {sym} {}",
                x.type_name(),
                y.type_name()
            ),
        )
    };
    match op {
        BinOp::Eq => Ok(Value::Bool(equals(&x, &y))),
        BinOp::Ne => Ok(Value::Bool(!equals(&x, &y))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let sym = match op {
                BinOp::Lt => "<",
                BinOp::Le => "<=",
                BinOp::Gt => ">",
                _ => ">=",
            };
            let ord: Option<Ordering> = match (&x, &y) {
                (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
                (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
                (Value::Int(a), Value::Double(b)) => (*a as f64).partial_cmp(b),
                (Value::Double(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
                (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
                (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
                _ => return overload(&x, &y, sym),
            };
            let r = match ord {
                None => false, // NaN
                Some(o) => match op {
                    BinOp::Lt => o == Ordering::Less,
                    BinOp::Le => o != Ordering::Greater,
                    BinOp::Gt => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                },
            };
            Ok(Value::Bool(r))
        }
        BinOp::In => match &y {
            Value::List(l) => Ok(Value::Bool(l.iter().any(|e| equals(&x, e)))),
            Value::Map(m) => Ok(Value::Bool(
                matches!(&x, Value::Str(k) if m.contains_key(&**k)),
            )),
            _ => overload(&x, &y, "in"),
        },
        BinOp::Add => match (&x, &y) {
            (Value::Int(a), Value::Int(b)) => a.checked_add(*b).map(Value::Int).ok_or(Fail {
                pos,
                msg: "integer overflow".into(),
            }),
            (Value::Double(a), Value::Double(b)) => Ok(Value::Double(a + b)),
            (Value::Str(a), Value::Str(b)) => {
                if a.len() + b.len() > MAX_STRING {
                    return fail(
                        pos,
                        format!("string concatenation exceeds {MAX_STRING} bytes"),
                    );
                }
                Ok(Value::Str(format!("{a}{b}").into()))
            }
            (Value::List(a), Value::List(b)) => {
                if a.len() + b.len() > MAX_LIST {
                    return fail(
                        pos,
                        format!("list concatenation exceeds {MAX_LIST} elements"),
                    );
                }
                Ok(Value::List(Rc::new(
                    a.iter().chain(b.iter()).cloned().collect(),
                )))
            }
            _ => overload(&x, &y, "+"),
        },
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
            let sym = match op {
                BinOp::Sub => "-",
                BinOp::Mul => "*",
                BinOp::Div => "/",
                _ => "%",
            };
            match (&x, &y) {
                (Value::Int(a), Value::Int(b)) => {
                    if matches!(op, BinOp::Div | BinOp::Rem) && *b == 0 {
                        return fail(
                            pos,
                            if op == BinOp::Div {
                                "division by zero"
                            } else {
                                "modulus by zero"
                            },
                        );
                    }
                    let r = match op {
                        BinOp::Sub => a.checked_sub(*b),
                        BinOp::Mul => a.checked_mul(*b),
                        BinOp::Div => a.checked_div(*b),
                        _ => a.checked_rem(*b),
                    };
                    r.map(Value::Int).ok_or(Fail {
                        pos,
                        msg: "integer overflow".into(),
                    })
                }
                (Value::Double(a), Value::Double(b)) if op != BinOp::Rem => {
                    Ok(Value::Double(match op {
                        BinOp::Sub => a - b,
                        BinOp::Mul => a * b,
                        _ => a / b,
                    }))
                }
                _ => overload(&x, &y, sym),
            }
        }
    }
}

fn comprehension(
    kind: Macro,
    range: &Node,
    var: &str,
    body: &Node,
    filter: Option<&Node>,
    env: &mut Env,
    pos: usize,
) -> Result<Value, Fail> {
    let items: Vec<Value> = match eval(range, env)? {
        Value::List(l) => l.iter().cloned().collect(),
        Value::Map(m) => m.keys().map(|k| Value::Str(k.as_str().into())).collect(),
        other => return fail(pos, format!("cannot iterate over a {}", other.type_name())),
    };
    let name = match kind {
        Macro::All => "all",
        Macro::Exists => "exists",
        Macro::ExistsOne => "exists_one",
        Macro::Filter => "filter",
        Macro::Map => "map",
    };
    let run = |env: &mut Env, item: Value, node: &Node| -> Result<Value, Fail> {
        env.steps += 1;
        if env.steps > MAX_STEPS {
            return fail(pos, "evaluation exceeds the work limit");
        }
        env.locals.push((var.to_string(), item));
        let r = eval(node, env);
        env.locals.pop();
        r
    };
    let as_bool = |v: Result<Value, Fail>, node: &Node| -> Result<bool, Fail> {
        match v? {
            Value::Bool(b) => Ok(b),
            other => fail(
                node.pos,
                format!(
                    "the predicate of {name}() must be a bool, it is a {}",
                    other.type_name()
                ),
            ),
        }
    };
    match kind {
        Macro::All | Macro::Exists => {
            // Like `&&`/`||`: a decisive element wins over errors elsewhere.
            let decisive = kind == Macro::Exists;
            let mut first_err = None;
            for item in items {
                match as_bool(run(env, item, body), body) {
                    Ok(b) if b == decisive => return Ok(Value::Bool(decisive)),
                    Ok(_) => {}
                    Err(e) if e.msg.contains("work limit") => return Err(e),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(Value::Bool(!decisive)),
            }
        }
        Macro::ExistsOne => {
            let mut n = 0usize;
            for item in items {
                if as_bool(run(env, item, body), body)? {
                    n += 1;
                }
            }
            Ok(Value::Bool(n == 1))
        }
        Macro::Filter => {
            let mut out = Vec::new();
            for item in items {
                if as_bool(run(env, item.clone(), body), body)? {
                    out.push(item);
                }
            }
            Ok(Value::List(Rc::new(out)))
        }
        Macro::Map => {
            let mut out = Vec::new();
            for item in items {
                if let Some(f) = filter
                    && !as_bool(run(env, item.clone(), f), f)?
                {
                    continue;
                }
                out.push(run(env, item, body)?);
            }
            Ok(Value::List(Rc::new(out)))
        }
    }
}

fn call(name: &str, method: bool, mut vals: Vec<Value>, pos: usize) -> Result<Value, Fail> {
    let types = || vals_types(&vals);
    let no_overload = |t: String| -> Result<Value, Fail> {
        let shape = if method {
            format!("{{{t}}}.{name}()")
        } else {
            format!("{name}({t})")
        };
        fail(pos, format!("no such overload: {shape}"))
    };
    match (name, vals.as_slice()) {
        ("size", [v]) => match v {
            Value::Str(s) => Ok(Value::Int(s.chars().count() as i64)),
            Value::List(l) => Ok(Value::Int(l.len() as i64)),
            Value::Map(m) => Ok(Value::Int(m.len() as i64)),
            _ => no_overload(types()),
        },
        ("startsWith", [Value::Str(s), Value::Str(p)]) => Ok(Value::Bool(s.starts_with(&**p))),
        ("endsWith", [Value::Str(s), Value::Str(p)]) => Ok(Value::Bool(s.ends_with(&**p))),
        ("contains", [Value::Str(s), Value::Str(p)]) => Ok(Value::Bool(s.contains(&**p))),
        ("matches", [Value::Str(s), Value::Str(re)]) => {
            let re = regex(re).map_err(|m| Fail { pos, msg: m })?;
            Ok(Value::Bool(re.is_match(s.as_bytes())))
        }
        ("lowerAscii", [Value::Str(s)]) => bounded(s.to_ascii_lowercase(), pos),
        ("upperAscii", [Value::Str(s)]) => bounded(s.to_ascii_uppercase(), pos),
        ("split", [Value::Str(s), Value::Str(sep)]) => {
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars()
                    .take(MAX_LIST + 1)
                    .map(|c| Value::Str(c.to_string().into()))
                    .collect()
            } else {
                s.split(&**sep)
                    .take(MAX_LIST + 1)
                    .map(|p| Value::Str(p.into()))
                    .collect()
            };
            if parts.len() > MAX_LIST {
                return fail(
                    pos,
                    format!("split() would produce more than {MAX_LIST} elements"),
                );
            }
            Ok(Value::List(Rc::new(parts)))
        }
        ("extract", [Value::Str(s), Value::Str(t)]) => {
            let (prefix, suffix) = parse_template(t).map_err(|m| Fail { pos, msg: m })?;
            Ok(Value::Str(extract(s, prefix, suffix).into()))
        }
        ("string", [v]) => match v {
            Value::Str(_) => Ok(vals.swap_remove(0)),
            Value::Int(i) => Ok(Value::Str(i.to_string().into())),
            Value::Double(d) => Ok(Value::Str(d.to_string().into())),
            Value::Bool(b) => Ok(Value::Str(b.to_string().into())),
            _ => no_overload(types()),
        },
        ("int", [v]) => match v {
            Value::Int(_) => Ok(vals.swap_remove(0)),
            Value::Str(s) => s
                .parse::<i64>()
                .map(Value::Int)
                .or_else(|_| fail(pos, "int() of a string that is not an integer")),
            Value::Double(d) => {
                if d.is_finite() && *d > -9.223_372_036_854_776e18 && *d < 9.223_372_036_854_776e18
                {
                    Ok(Value::Int(d.trunc() as i64))
                } else {
                    fail(pos, "int() of a double out of range")
                }
            }
            Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
            _ => no_overload(types()),
        },
        ("double", [v]) => match v {
            Value::Double(_) => Ok(vals.swap_remove(0)),
            Value::Int(i) => Ok(Value::Double(*i as f64)),
            Value::Str(s) => s
                .parse::<f64>()
                .map(Value::Double)
                .or_else(|_| fail(pos, "double() of a string that is not a number")),
            _ => no_overload(types()),
        },
        _ if FUNCTIONS.iter().any(|(n, ..)| *n == name) => no_overload(types()),
        _ => fail(pos, format!("unknown function `{name}`")),
    }
}

fn vals_types(vals: &[Value]) -> String {
    vals.iter()
        .map(Value::type_name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn bounded(s: String, pos: usize) -> Result<Value, Fail> {
    if s.len() > MAX_STRING {
        return fail(pos, format!("the result exceeds {MAX_STRING} bytes"));
    }
    Ok(Value::Str(s.into()))
}

/// Splits an `extract` template `prefix{name}suffix` into its literal parts.
fn parse_template(t: &str) -> Result<(&str, &str), String> {
    let bad = || {
        "the extract() template must hold exactly one `{name}` placeholder, as in 'assumed-role/{role}/'".to_string()
    };
    let open = t.find('{').ok_or_else(bad)?;
    let close = t[open..].find('}').map(|c| open + c).ok_or_else(bad)?;
    let name = &t[open + 1..close];
    let (prefix, suffix) = (&t[..open], &t[close + 1..]);
    if name.is_empty() || name.contains('{') || suffix.contains(['{', '}']) || prefix.contains('}')
    {
        return Err(bad());
    }
    Ok((prefix, suffix))
}

/// Google's `extract`: the text after the first occurrence of `prefix` up to
/// the next occurrence of `suffix` (the end of the string when `suffix` is
/// empty); the empty string when either is absent.
fn extract<'s>(s: &'s str, prefix: &str, suffix: &str) -> &'s str {
    let Some(at) = s.find(prefix) else {
        return "";
    };
    let rest = &s[at + prefix.len()..];
    if suffix.is_empty() {
        return rest;
    }
    match rest.find(suffix) {
        Some(end) => &rest[..end],
        None => "",
    }
}

fn regex(pattern: &str) -> Result<regex_automata::meta::Regex, String> {
    if pattern.len() > MAX_STRING {
        return Err(format!("the regular expression exceeds {MAX_STRING} bytes"));
    }
    regex_automata::meta::Regex::builder()
        .configure(
            regex_automata::meta::Regex::config()
                .nfa_size_limit(Some(MAX_REGEX_NFA))
                .onepass_size_limit(Some(MAX_REGEX_NFA))
                .hybrid_cache_capacity(2 * MAX_REGEX_NFA)
                .dfa_size_limit(Some(MAX_REGEX_NFA)),
        )
        .syntax(regex_automata::util::syntax::Config::new().nest_limit(64))
        .build(pattern)
        .map_err(|e| {
            let detail = e
                .syntax_error()
                .map_or_else(|| e.to_string(), |s| s.to_string());
            // The syntax error spans lines (it draws the pattern); keep the first.
            let first = detail
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or("too large or invalid");
            format!(
                "invalid regular expression: {}",
                first.trim_start_matches("error: ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Evaluates a condition over an assertion with an empty mapping result.
    fn cond(expr: &str, assertion: serde_json::Value) -> Result<bool, ExprError> {
        condition_holds(expr, &assertion, &Mapped::default())
    }

    fn aws_assertion(arn: &str) -> serde_json::Value {
        json!({"arn": arn, "account": "123456789012", "userid": "AROAEXAMPLE:session"})
    }

    #[test]
    fn aws_default_mapping_gives_role_arn_without_session() {
        let m = default_aws_mapping();
        validate_mapping(&m).unwrap();
        let arn = "arn:aws:sts::123456789012:assumed-role/ecs-task/7f3a9c";
        let mapped = map_attributes(&m, &aws_assertion(arn)).unwrap();
        assert_eq!(mapped.subject, arn);
        assert_eq!(
            mapped.attributes["aws_role"],
            "arn:aws:sts::123456789012:assumed-role/ecs-task"
        );
        assert!(mapped.groups.is_empty());
        let holds = |c: &str| condition_holds(c, &aws_assertion(arn), &mapped).unwrap();
        assert!(holds(
            "attribute.aws_role == 'arn:aws:sts::123456789012:assumed-role/ecs-task'"
        ));
        assert!(!holds(
            "attribute.aws_role == 'arn:aws:sts::123456789012:assumed-role/other'"
        ));
        assert!(holds(
            "assertion.arn.startsWith('arn:aws:sts::123456789012:assumed-role/')"
        ));
        assert!(holds(
            "google.subject.endsWith('/7f3a9c') && assertion.account == '123456789012'"
        ));
    }

    #[test]
    fn aws_default_mapping_keeps_a_user_arn_whole() {
        let arn = "arn:aws:iam::123456789012:user/alice";
        let mapped = map_attributes(&default_aws_mapping(), &aws_assertion(arn)).unwrap();
        assert_eq!(mapped.attributes["aws_role"], arn);
    }

    #[test]
    fn oidc_mapping_with_groups_and_custom_attributes() {
        let claims = json!({
            "sub": "repo:acme/api:ref:refs/heads/main",
            "repository": "acme/api",
            "groups": ["devs", "admins"],
            "org": {"team": "Platform"},
            "run_number": 42,
        });
        assert_eq!(
            map_attributes(&default_oidc_mapping(), &claims)
                .unwrap()
                .subject,
            claims["sub"]
        );
        let m = map(&[
            ("google.subject", "assertion.sub"),
            ("google.groups", "assertion.groups"),
            ("attribute.repository", "assertion.repository"),
            ("attribute.team", "assertion.org.team.lowerAscii()"),
            ("attribute.run", "string(assertion.run_number)"),
            ("attribute.owner", "assertion.repository.split('/')[0]"),
        ]);
        validate_mapping(&m).unwrap();
        let mapped = map_attributes(&m, &claims).unwrap();
        assert_eq!(mapped.groups, vec!["devs", "admins"]);
        assert_eq!(mapped.attributes["team"], "platform");
        assert_eq!(mapped.attributes["run"], "42");
        assert_eq!(mapped.attributes["owner"], "acme");
        let holds = |c: &str| condition_holds(c, &claims, &mapped).unwrap();
        assert!(holds("'admins' in google.groups"));
        assert!(!holds("'root' in google.groups"));
        assert!(holds(
            "attribute.repository == \"acme/api\" && assertion.run_number > 40"
        ));
        assert!(holds("google.groups.exists(g, g.startsWith('adm'))"));
        assert!(!holds("google.groups.all(g, g.startsWith('adm'))"));
        assert!(holds("has(assertion.org.team) && !has(assertion.org.lead)"));
        assert!(holds("'team' in assertion.org"));
        assert!(holds(
            "assertion.sub.matches('^repo:acme/[a-z]+:ref:refs/heads/main$')"
        ));
        assert!(holds(
            "size(assertion.groups) == 2 && assertion.groups.size() == 2"
        ));
    }

    #[test]
    fn extract_follows_googles_template_rule() {
        let e = |s: &str, t: &str| {
            let a = json!({ "s": s });
            let m = map(&[
                ("google.subject", "'x'"),
                ("attribute.v", &format!("assertion.s.extract('{t}')")),
            ]);
            map_attributes(&m, &a)
                .unwrap()
                .attributes
                .get("v")
                .cloned()
                .unwrap()
        };
        let arn = "arn:aws:sts::1:assumed-role/r1/s1";
        assert_eq!(e(arn, "assumed-role/{role}/"), "r1");
        assert_eq!(e(arn, "{account_arn}assumed-role/"), "arn:aws:sts::1:");
        assert_eq!(e(arn, "assumed-role/{rest}"), "r1/s1");
        assert_eq!(e(arn, "federated-user/{u}/"), "");
        assert_eq!(
            e("projects/p/buckets/b1/objects/o", "/buckets/{name}/"),
            "b1"
        );
        let bad = validate_mapping(&map(&[(
            "google.subject",
            "assertion.a.extract('no placeholder')",
        )]))
        .unwrap_err();
        assert!(
            bad.message.contains("placeholder") && bad.message.contains("column 21"),
            "{bad}"
        );
    }

    #[test]
    fn logical_operators_absorb_errors_like_cel() {
        let a = json!({"a": "x"});
        assert!(cond("true || assertion.missing == 'y'", a.clone()).unwrap());
        assert!(cond("assertion.missing == 'y' || true", a.clone()).unwrap());
        assert!(!cond("assertion.missing == 'y' && false", a.clone()).unwrap());
        assert!(!cond("false && assertion.missing", a.clone()).unwrap());
        let e = cond("assertion.missing == 'y' || false", a.clone()).unwrap_err();
        assert_eq!(e.message, "no such key: `missing` at column 11");
        assert_eq!(
            e.to_string(),
            "no such key: `missing` at column 11 in `assertion.missing == 'y' || false`"
        );
        assert!(
            cond(
                "[1, 2].exists(x, x == 2) && ['a'].all(x, x == 'a')",
                a.clone()
            )
            .unwrap()
        );
        assert!(
            cond(
                "{'k': 1}.k == 1 && [1,2][1] == 2 && (1 + 2) * 3 == 9 && 7 % 4 == 3",
                a.clone()
            )
            .unwrap()
        );
        assert!(cond("true ? 'a' + \"b\" == 'ab' : false", a.clone()).unwrap());
        assert!(
            cond(
                "[1] + [2] == [1, 2] && -3 < 0 && 1 == 1.0 && 'a' < 'b'",
                a.clone()
            )
            .unwrap()
        );
        assert!(
            cond(
                "[1,2,3].filter(x, x > 1) == [2,3] && [1,2].map(x, x * 2) == [2,4]",
                a.clone()
            )
            .unwrap()
        );
        assert!(
            cond(
                "[1,2,3].exists_one(x, x == 2) && int('12') == 12 && string(true) == 'true'",
                a
            )
            .unwrap()
        );
    }

    #[test]
    fn strings_escape_and_quote() {
        let a = json!({"s": "it's \"q\"\n"});
        assert!(cond(r#"assertion.s == 'it\'s "q"\n'"#, a.clone()).unwrap());
        assert!(cond(r#"assertion.s == "it's \"q\"\x0a""#, a.clone()).unwrap());
        assert!(
            cond(
                r"'\u00e9' == 'é' && r'\d' == '\\d' && '''a'b''' == 'a\'b'",
                a
            )
            .unwrap()
        );
        assert!(cond("'ABC'.lowerAscii() == 'abc' && 'abc'.upperAscii() == 'ABC' && 'a.b.c'.split('.') == ['a','b','c']", json!({})).unwrap());
    }

    #[test]
    fn conditions_reject_false_and_non_bool() {
        let mapped = Mapped {
            subject: "s".into(),
            ..Mapped::default()
        };
        assert!(!condition_holds("google.subject == 't'", &json!({}), &mapped).unwrap());
        let e = condition_holds("google.subject", &json!({}), &mapped).unwrap_err();
        assert!(e.message.contains("must evaluate to a bool"), "{e}");
        let e = condition_holds("attribute.nope == 'x'", &json!({}), &mapped).unwrap_err();
        assert!(e.message.starts_with("no such key: `nope`"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_column() {
        let col = |expr: &str| validate_condition(expr).unwrap_err().message;
        assert_eq!(
            col("assertion.a == "),
            "unexpected end of expression at column 16"
        );
        assert_eq!(
            col("assertion.a.frobnicate('x')"),
            "unknown function `frobnicate` at column 13"
        );
        assert_eq!(col("frob(1)"), "unknown function `frob` at column 1");
        assert_eq!(
            col("request.x == 1"),
            "undeclared reference to `request` (expected one of: assertion, attribute, google) at column 1"
        );
        assert_eq!(
            col("'é' == é"),
            "unexpected character `\\u{e9}` at column 8"
        );
        assert_eq!(col("'open"), "unterminated string literal at column 1");
        assert_eq!(
            col("(a"),
            "expected `)`, found the end of the expression at column 3"
        );
        assert_eq!(
            col("(a)"),
            "undeclared reference to `a` (expected one of: assertion, attribute, google) at column 2"
        );
        assert_eq!(
            col("(assertion"),
            "expected `)`, found the end of the expression at column 11"
        );
        assert_eq!(
            col("assertion.x )"),
            "unexpected `)` after the expression at column 13"
        );
        assert_eq!(
            col("has(assertion)"),
            "the argument of has() must be a field selection, as in has(assertion.email) at column 5"
        );
        assert_eq!(
            col("'a'.startsWith()"),
            "wrong use of `startsWith`: it is called as x.startsWith(…) with 1 argument(s) at column 5"
        );
        assert!(col("[1].exists(1, true)").contains("must be a variable name"));
        // Mapping expressions only see `assertion`.
        let e = validate_mapping(&map(&[("google.subject", "google.subject")])).unwrap_err();
        assert!(
            e.message.starts_with(
                "attribute mapping for google.subject: undeclared reference to `google`"
            ),
            "{e}"
        );
        assert_eq!(e.expression, "google.subject");
    }

    #[test]
    fn evaluation_errors_name_the_column_and_type() {
        let a = json!({"n": 3, "s": "x", "l": ["a"]});
        let e = |c: &str| cond(c, a.clone()).unwrap_err().message;
        assert_eq!(
            e("assertion.s + 1 == 'x1'"),
            "no such overload: string + int at column 13"
        );
        assert_eq!(
            e("assertion.l[3] == 'a'"),
            "index 3 out of range for a list of 1 at column 12"
        );
        assert_eq!(
            e("assertion.n.startsWith('x')"),
            "no such overload: {int, string}.startsWith() at column 13"
        );
        assert_eq!(
            e("assertion.s.x == 1"),
            "cannot select field `x` from a string at column 13"
        );
        assert_eq!(e("assertion.n / 0 == 1"), "division by zero at column 13");
        assert_eq!(
            e("9223372036854775807 + 1 > 0"),
            "integer overflow at column 21"
        );
        assert!(e("assertion.s.matches('(')").starts_with("invalid regular expression"));
    }

    #[test]
    fn mapping_targets_and_results_are_checked() {
        let assertion = json!({"sub": "abc", "n": 5, "long": "x".repeat(128), "g": "admins"});
        let bad = |m: &[(&str, &str)]| validate_mapping(&map(m)).unwrap_err().message;
        assert!(bad(&[("attribute.x", "assertion.sub")]).contains("no google.subject"));
        assert!(
            bad(&[
                ("google.subject", "assertion.sub"),
                ("attribute.Bad", "'x'")
            ])
            .contains("[a-z0-9_]")
        );
        assert!(
            bad(&[("google.subject", "assertion.sub"), ("attribute.", "'x'")])
                .contains("[a-z0-9_]")
        );
        let long_name = format!("attribute.{}", "a".repeat(101));
        assert!(
            bad(&[("google.subject", "assertion.sub"), (&long_name, "'x'")]).contains("1 to 100")
        );
        assert!(
            bad(&[("google.subject", "assertion.sub"), ("google.email", "'x'")])
                .contains("not google.subject")
        );
        let ok_name = format!("attribute.{}", "a_9".repeat(33));
        validate_mapping(&map(&[
            ("google.subject", "assertion.sub"),
            (&ok_name, "'x'"),
        ]))
        .unwrap();
        let too_many: BTreeMap<String, String> = (0..51)
            .map(|i| (format!("attribute.a{i}"), "'x'".to_string()))
            .chain([("google.subject".to_string(), "'s'".to_string())])
            .collect();
        assert!(
            validate_mapping(&too_many)
                .unwrap_err()
                .message
                .contains("51 custom attributes")
        );

        let run = |m: &[(&str, &str)]| map_attributes(&map(m), &assertion);
        let msg = |m: &[(&str, &str)]| run(m).unwrap_err().message;
        assert!(
            msg(&[("google.subject", "assertion.n")])
                .contains("must be a string, the expression gave int")
        );
        assert!(msg(&[("google.subject", "''")]).contains("google.subject is empty"));
        assert_eq!(
            msg(&[("google.subject", "assertion.long")]),
            "attribute mapping for google.subject: google.subject is 128 bytes, more than the 127 allowed"
        );
        assert!(
            msg(&[("google.subject", "assertion.missing")])
                .contains("no such key: `missing` at column 11")
        );
        assert!(
            msg(&[("google.subject", "'s'"), ("google.groups", "assertion.g")])
                .contains("list of strings")
        );
        assert!(
            msg(&[
                ("google.subject", "'s'"),
                ("google.groups", "[assertion.n]")
            ])
            .contains("element 0 is int")
        );
        assert!(
            msg(&[("google.subject", "'s'"), ("attribute.n", "assertion.n")])
                .contains("convert it with string()")
        );
        // A null value leaves the attribute out.
        let m = run(&[("google.subject", "'s'"), ("attribute.n", "null")]).unwrap();
        assert!(m.attributes.is_empty());
        // The 8 KB total.
        let big = json!({"v": "y".repeat(5000)});
        let m = map(&[
            ("google.subject", "'s'"),
            ("attribute.a", "assertion.v"),
            ("attribute.b", "assertion.v"),
        ]);
        assert!(
            map_attributes(&m, &big)
                .unwrap_err()
                .message
                .contains("8192 bytes")
        );
    }

    #[test]
    fn hostile_inputs_are_bounded() {
        // Deep nesting, by parentheses, by operators, by member chains, by `!`.
        let deep_parens = format!("{}true{}", "(".repeat(3000), ")".repeat(3000));
        let e = validate_condition(&deep_parens[..4000]).unwrap_err();
        assert!(e.message.contains("nests deeper than 100"), "{e}");
        assert!(e.expression.chars().count() <= 201);
        let e = validate_condition(&format!("{}true", "!".repeat(1000))).unwrap_err();
        assert!(e.message.contains("nests deeper"), "{e}");
        let chain = format!("assertion{}", ".a".repeat(1000));
        assert!(
            validate_condition(&chain)
                .unwrap_err()
                .message
                .contains("nests deeper")
        );
        let sum = vec!["1"; 1000].join("+");
        assert!(
            validate_condition(&sum)
                .unwrap_err()
                .message
                .contains("nests deeper")
        );
        // Just below the limit still evaluates (no stack trouble).
        let ok = format!("{}true{}", "(".repeat(90), ")".repeat(90));
        assert!(cond(&ok, json!({})).unwrap());
        let ors = vec!["assertion.a == 'z'"; 90].join(" || ");
        assert!(!cond(&ors, json!({"a": "y"})).unwrap());
        // Too long.
        let e = validate_condition(&"1".repeat(5000)).unwrap_err();
        assert!(
            e.message.contains("5000 characters, more than the 4096"),
            "{e}"
        );
        let e = validate_mapping(&map(&[(
            "google.subject",
            &format!("'{}'", "a".repeat(2100)),
        )]))
        .unwrap_err();
        assert!(e.message.contains("more than the 2048"), "{e}");
        // Exponential growth by doubling a string or list is cut off.
        let mut s = "assertion.s".to_string();
        for _ in 0..7 {
            s = format!("({s} + {s})");
        }
        let e = cond(&format!("size({s}) > 0"), json!({"s": "x".repeat(1000)})).unwrap_err();
        assert!(e.message.contains("exceeds 65536 bytes"), "{e}");
        // Nested comprehensions over a large list exhaust the step budget, not the clock.
        let list: Vec<i64> = (0..2000).collect();
        let e = cond(
            "assertion.l.exists(a, assertion.l.exists(b, assertion.l.exists(c, a + b + c < 0)))",
            json!({"l": list}),
        )
        .unwrap_err();
        assert!(e.message.contains("work limit"), "{e}");
        let e = cond(
            "size(assertion.s.split('')) > 0",
            json!({"s": "x".repeat(10000)}),
        )
        .unwrap_err();
        assert!(e.message.contains("more than 4096 elements"), "{e}");
        // A huge regex is refused, a pathological one runs in linear time.
        let e = cond("'a'.matches('(a{1000}){1000}')", json!({})).unwrap_err();
        assert!(e.message.starts_with("invalid regular expression"), "{e}");
        assert!(
            !cond(
                "assertion.s.matches('(a+)+$')",
                json!({"s": format!("{}b", "a".repeat(60000))})
            )
            .unwrap()
        );
        // Odd bytes never panic.
        for src in [
            "'\\", "'\\u12", "0x", "1e", "'\\400'", "a.", "[1,", "{'a':", "x ? y", "1u", "b'x'",
            "\u{0}",
        ] {
            assert!(validate_condition(src).is_err(), "{src}");
        }
    }

    #[test]
    fn error_messages_never_echo_assertion_values() {
        let secretish = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig";
        let a = json!({"tok": secretish, "n": 1});
        for c in [
            "assertion.tok + 1 == 2",
            "assertion.tok.x == 1",
            "int(assertion.tok) == 1",
            "assertion[assertion.tok] == 1",
            "assertion.tok",
        ] {
            let e = cond(c, a.clone()).unwrap_err();
            assert!(!e.to_string().contains(secretish), "{e}");
        }
        let m = map(&[(
            "google.subject",
            "assertion.tok + assertion.tok + assertion.tok + assertion.tok",
        )]);
        let e = map_attributes(&m, &a).unwrap_err();
        assert!(!e.to_string().contains(secretish), "{e}");
    }
}
