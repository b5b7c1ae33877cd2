//! The syntax tree the parser builds and the checker and evaluator walk:
//! literals, variables, field selection, `has()`, indexing, calls (global
//! or method), the operators, `?:`, list and map literals, and the
//! comprehension macros. Every node records its byte offset (for error
//! positions) and its depth, and refuses to exist deeper than
//! [`MAX_DEPTH`], so no later recursion over a tree can exhaust the stack.

use super::error::{Fail, fail};
use super::limits::MAX_DEPTH;
use super::value::Value;

/// A binary operator other than `&&` and `||` (which short-circuit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum BinOp {
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

impl BinOp {
    /// The operator as written in an expression.
    pub(super) fn symbol(self) -> &'static str {
        match self {
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

/// A comprehension macro.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Macro {
    All,
    Exists,
    ExistsOne,
    Filter,
    Map,
}

/// What a node is.
#[derive(Debug)]
pub(super) enum Kind {
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

/// A node of the tree.
#[derive(Debug)]
pub(super) struct Node {
    pub kind: Kind,
    /// Byte offset of the token the node starts at.
    pub pos: usize,
    /// 1 for a leaf, else one more than the deepest child.
    pub depth: u32,
}

impl Node {
    /// A node over `kind`; fails when it would nest deeper than [`MAX_DEPTH`].
    pub fn new(kind: Kind, pos: usize) -> Result<Node, Fail> {
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
