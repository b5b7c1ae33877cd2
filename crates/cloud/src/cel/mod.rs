//! The Common Expression Language subset that Google evaluates in Workload
//! Identity Federation (attribute mappings and attribute conditions), as a
//! language of its own: [`compile`] checks an expression once against the
//! caller's [`Limits`] and declared variables, and [`Program::evaluate`]
//! runs it over a [`Context`] within a step budget. Errors are one typed
//! [`Error`] with the stage and the column.
//!
//! What it covers: literals (int, double, string in every quoting, bool,
//! null), lists, maps, field and index access, comparisons, `&&`/`||`/`!`
//! with CEL's error-absorbing short-circuit, `in`, arithmetic and
//! concatenation, `?:`, `has()`, the `exists`/`all`/`exists_one`/`filter`/
//! `map` macros, `size`, `string`/`int`/`double`, the string methods
//! `startsWith`, `endsWith`, `contains`, `matches` (RE2 syntax, linear-time
//! engine), `lowerAscii`, `upperAscii`, `split`, and Google's
//! `extract('prefix{name}suffix')`. No bytes, unsigned ints, timestamps,
//! durations or protobuf messages: Google's mappings see JSON.
//!
//! Hostile text or input cannot exhaust the stack, memory or the clock:
//! nesting, produced strings and lists, regex size and evaluation steps are
//! bounded ([`limits`]). Written here rather than taken from a crate: see
//! ARCHITECTURE.md ("The condition language").
//!
//! The stages, each a file: `lex` → `parse` (building the `ast`) → `check`
//! at compile time; `eval` (calling `functions`) at run time.
//! Pure: no IO, no clock.

mod ast;
mod check;
mod error;
mod eval;
mod functions;
mod lex;
pub mod limits;
mod parse;
#[cfg(test)]
mod testing;
mod value;

pub use error::{Error, ErrorKind, Position, shorten};
pub use eval::Context;
pub use limits::Limits;
pub use value::Value;

/// A checked expression, ready to evaluate any number of times.
#[derive(Debug)]
pub struct Program<'a> {
    text: &'a str,
    root: ast::Node,
    limits: Limits,
}

/// Compiles `text`: at most `limits.max_chars` characters, syntax, known
/// functions with their arities, and free variables among `vars` only.
pub fn compile<'a>(text: &'a str, limits: Limits, vars: &[&str]) -> Result<Program<'a>, Error> {
    let chars = text.chars().count();
    if chars > limits.max_chars {
        return Err(Error {
            kind: ErrorKind::TooLong,
            detail: format!(
                "the expression is {chars} characters, more than the {} allowed",
                limits.max_chars
            ),
            position: None,
            expression: shorten(text),
        });
    }
    let root = parse::parse(text).map_err(|f| f.locate(text, ErrorKind::Syntax))?;
    check::check(&root, vars, &mut Vec::new()).map_err(|f| f.locate(text, ErrorKind::Check))?;
    Ok(Program { text, root, limits })
}

impl Program<'_> {
    /// The value of the expression over `ctx`, within the step budget of
    /// the program's [`Limits`].
    pub fn evaluate(&self, ctx: &Context) -> Result<Value, Error> {
        eval::evaluate(&self.root, ctx, self.limits.max_steps)
            .map_err(|f| f.locate(self.text, ErrorKind::Evaluation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_states_the_length_limit() {
        let e = compile("1 == 1", Limits::new(5), &[]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLong);
        assert_eq!(e.position, None);
        assert_eq!(
            e.message(),
            "the expression is 6 characters, more than the 5 allowed"
        );
        assert_eq!(
            e.to_string(),
            "the expression is 6 characters, more than the 5 allowed in `1 == 1`"
        );
        // Characters, not bytes.
        compile("'éé' == 'é'", Limits::new(11), &[]).unwrap();
    }

    #[test]
    fn the_caller_states_the_step_budget() {
        // `1 + 1 == 2` visits five nodes.
        let five = Limits {
            max_chars: 100,
            max_steps: 5,
        };
        let p = compile("1 + 1 == 2", five, &[]).unwrap();
        assert!(matches!(p.evaluate(&Context::new()), Ok(Value::Bool(true))));
        let four = Limits {
            max_steps: 4,
            ..five
        };
        let e = compile("1 + 1 == 2", four, &[])
            .unwrap()
            .evaluate(&Context::new())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::WorkLimit);
        assert_eq!(
            e.message(),
            "evaluation exceeds the work limit at column 10"
        );
    }

    #[test]
    fn a_program_evaluates_against_any_context() {
        let p = compile("v.size() > 1", Limits::new(100), &["v"]).unwrap();
        let over = |v: &str| p.evaluate(&Context::new().with("v", Value::Str(v.into())));
        assert!(matches!(over("ab"), Ok(Value::Bool(true))));
        assert!(matches!(over("a"), Ok(Value::Bool(false))));
        let rebound = Context::new()
            .with("v", Value::Int(1))
            .with("v", Value::Str("abc".into()));
        assert!(matches!(p.evaluate(&rebound), Ok(Value::Bool(true))));
        let e = p.evaluate(&Context::new()).unwrap_err();
        assert_eq!(e.message(), "undeclared reference to `v` at column 1");
        assert_eq!(e.kind, ErrorKind::Evaluation);
    }
}
