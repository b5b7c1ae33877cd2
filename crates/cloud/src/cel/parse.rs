//! Parsing: tokens to a syntax tree by recursive descent, one function per
//! CEL precedence level (`?:`, `||`, `&&`, relations and `in`, `+ -`,
//! `* / %`, unary `! -`, member access and calls, primaries). Macros
//! (`all`, `exists`, `exists_one`, `filter`, `map`) and `has()` become their
//! own nodes here, so the checker and evaluator never see them as calls.
//! The descent counts its own recursion and every node its depth, both
//! bounded by [`MAX_DEPTH`]; list and map literals by [`MAX_LIST`].

use super::ast::{BinOp, Kind, Macro, Node};
use super::error::{Fail, fail};
use super::lex::{RESERVED, Tok, Token, describe, lex};
use super::limits::{MAX_DEPTH, MAX_LIST};
use super::value::Value;

/// The syntax tree of `src`: all of it must be one expression.
pub(super) fn parse(src: &str) -> Result<Node, Fail> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        at: 0,
        nest: 0,
    };
    let root = p.expr()?;
    if !matches!(p.peek(), Tok::Eof) {
        return fail(
            p.pos(),
            format!("unexpected {} after the expression", describe(p.peek())),
        );
    }
    Ok(root)
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    /// Recursion depth of the descent itself.
    nest: u32,
}

/// Recognises the operators `ops` by their symbols (`in` is a word).
fn binary(ops: &'static [BinOp]) -> impl Fn(&Tok) -> Option<BinOp> {
    move |t| {
        let word = match t {
            Tok::Punct(p) => *p,
            Tok::Ident(w) => w.as_str(),
            _ => return None,
        };
        ops.iter().copied().find(|o| o.symbol() == word)
    }
}

/// Recognises the one operator `p`.
fn punct(p: &'static str) -> impl Fn(&Tok) -> Option<()> {
    move |t| matches!(t, Tok::Punct(q) if *q == p).then_some(())
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

    /// A left-associative chain of what `operand` parses, joined by the
    /// operators `op` recognises, each built into a node by `join`.
    fn chain<O>(
        &mut self,
        operand: fn(&mut Self) -> Result<Node, Fail>,
        op: impl Fn(&Tok) -> Option<O>,
        join: fn(O, Box<Node>, Box<Node>) -> Kind,
    ) -> Result<Node, Fail> {
        let mut left = operand(self)?;
        while let Some(o) = op(self.peek()) {
            let (_, pos) = self.bump();
            let right = operand(self)?;
            left = Node::new(join(o, Box::new(left), Box::new(right)), pos)?;
        }
        Ok(left)
    }

    fn or(&mut self) -> Result<Node, Fail> {
        self.chain(Self::and, punct("||"), |_, l, r| Kind::Or(l, r))
    }

    fn and(&mut self) -> Result<Node, Fail> {
        self.chain(Self::relation, punct("&&"), |_, l, r| Kind::And(l, r))
    }

    fn relation(&mut self) -> Result<Node, Fail> {
        use BinOp::*;
        self.chain(
            Self::addition,
            binary(&[Eq, Ne, Lt, Le, Gt, Ge, In]),
            Kind::Binary,
        )
    }

    fn addition(&mut self) -> Result<Node, Fail> {
        self.chain(
            Self::multiplication,
            binary(&[BinOp::Add, BinOp::Sub]),
            Kind::Binary,
        )
    }

    fn multiplication(&mut self) -> Result<Node, Fail> {
        use BinOp::*;
        self.chain(Self::unary, binary(&[Mul, Div, Rem]), Kind::Binary)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cel::ErrorKind;
    use crate::cel::testing::{message, program};

    /// The tree as a compact string, to compare shapes.
    fn shape(n: &Node) -> String {
        let b = |n: &Node| shape(n);
        match &n.kind {
            Kind::Lit(v) => format!("{v:?}"),
            Kind::Ident(s) => s.clone(),
            Kind::Select(a, f) => format!("{}.{f}", b(a)),
            Kind::Has(a, f) => format!("has({}.{f})", b(a)),
            Kind::Index(a, i) => format!("{}[{}]", b(a), b(i)),
            Kind::Call(t, name, args) => {
                let args: Vec<String> = args.iter().map(b).collect();
                match t {
                    Some(t) => format!("{}.{name}({})", b(t), args.join(", ")),
                    None => format!("{name}({})", args.join(", ")),
                }
            }
            Kind::Not(a) => format!("!{}", b(a)),
            Kind::Neg(a) => format!("-{}", b(a)),
            Kind::Binary(op, x, y) => format!("({} {op:?} {})", b(x), b(y)),
            Kind::And(x, y) => format!("({} && {})", b(x), b(y)),
            Kind::Or(x, y) => format!("({} || {})", b(x), b(y)),
            Kind::Cond(c, x, y) => format!("({} ? {} : {})", b(c), b(x), b(y)),
            Kind::List(items) => {
                format!("[{}]", items.iter().map(b).collect::<Vec<_>>().join(", "))
            }
            Kind::MapLit(e) => format!(
                "{{{}}}",
                e.iter()
                    .map(|(k, v)| format!("{}: {}", b(k), b(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Kind::Comprehension {
                kind,
                range,
                var,
                body,
                filter,
            } => match filter {
                Some(f) => format!("{}.{kind:?}({var}, {}, {})", b(range), b(f), b(body)),
                None => format!("{}.{kind:?}({var}, {})", b(range), b(body)),
            },
        }
    }

    fn tree(src: &str) -> String {
        shape(&parse(src).unwrap())
    }

    #[test]
    fn precedence_follows_cel() {
        assert_eq!(
            tree("1 + 2 * 3 == 7"),
            "((Int(1) Add (Int(2) Mul Int(3))) Eq Int(7))"
        );
        assert_eq!(tree("a || b && !c"), "(a || (b && !c))");
        assert_eq!(tree("a ? b : c ? d : e"), "(a ? b : (c ? d : e))");
        assert_eq!(tree("'x' in a.b[0]"), "(Str(\"x\") In a.b[Int(0)])");
        assert_eq!(tree("1 - 2 - 3"), "((Int(1) Sub Int(2)) Sub Int(3))");
        assert_eq!(tree("-1"), "Int(-1)");
        assert_eq!(tree("-1.x"), "-Int(1).x");
        assert_eq!(tree("--a"), "--a");
        assert_eq!(tree("[1, 2,]"), "[Int(1), Int(2)]");
        assert_eq!(tree("{'k': v,}"), "{Str(\"k\"): v}");
    }

    #[test]
    fn macros_and_has_are_their_own_nodes() {
        assert_eq!(tree("l.exists(x, x > 1)"), "l.Exists(x, (x Gt Int(1)))");
        assert_eq!(
            tree("l.map(x, x > 1, x * 2)"),
            "l.Map(x, (x Gt Int(1)), (x Mul Int(2)))"
        );
        assert_eq!(tree("has(a.b)"), "has(a.b)");
        assert_eq!(tree("a.size() + size(a)"), "(a.size() Add size(a))");
    }

    #[test]
    fn parse_errors_name_the_column() {
        assert_eq!(
            message("assertion.a == "),
            "unexpected end of expression at column 16"
        );
        assert_eq!(
            message("(a"),
            "expected `)`, found the end of the expression at column 3"
        );
        assert_eq!(
            message("(assertion"),
            "expected `)`, found the end of the expression at column 11"
        );
        assert_eq!(
            message("assertion.x )"),
            "unexpected `)` after the expression at column 13"
        );
        assert_eq!(
            message("has(assertion)"),
            "the argument of has() must be a field selection, as in has(assertion.email) at column 5"
        );
        assert!(message("[1].exists(1, true)").contains("must be a variable name"));
        assert_eq!(
            program("for").err().map(|e| (e.kind, e.message())),
            Some((
                ErrorKind::Syntax,
                "`for` is a reserved word at column 1".into()
            ))
        );
    }

    #[test]
    fn nesting_is_bounded() {
        // Deep nesting, by parentheses, by operators, by member chains, by `!`.
        let deep_parens = format!("{}true{}", "(".repeat(3000), ")".repeat(3000));
        let e = program(&deep_parens[..4000]).unwrap_err();
        assert!(e.message().contains("nests deeper than 100"), "{e}");
        assert!(e.expression.chars().count() <= 201);
        let e = program(&format!("{}true", "!".repeat(1000))).unwrap_err();
        assert!(e.message().contains("nests deeper"), "{e}");
        let chain = format!("assertion{}", ".a".repeat(1000));
        assert!(
            program(&chain)
                .unwrap_err()
                .message()
                .contains("nests deeper")
        );
        let sum = vec!["1"; 1000].join("+");
        assert!(
            program(&sum)
                .unwrap_err()
                .message()
                .contains("nests deeper")
        );
        // The last level that fits.
        assert_eq!(parse(&format!("{}1", "!".repeat(99))).unwrap().depth, 100);
        assert!(parse(&format!("{}1", "!".repeat(100))).is_err());
    }

    #[test]
    fn unfinished_input_is_an_error_not_a_panic() {
        for src in ["1e", "a.", "[1,", "{'a':", "x ? y", "", ")", "a[", "f(1,"] {
            assert!(lex(src).is_ok(), "{src}");
            assert!(parse(src).is_err(), "{src}");
            assert!(program(src).is_err(), "{src}");
        }
    }
}
