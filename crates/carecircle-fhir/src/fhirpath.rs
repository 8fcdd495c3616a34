//! A small FHIRPath subset, enough to evaluate every official R4 SearchParameter expression,
//! and the index extraction built on it.
//!
//! Supported: path navigation (`Patient.name.given`), choice elements (`Observation.value` finds
//! `valueQuantity`, `valueString`, ...), unions (`a | b`), parentheses, indexers (`[0]`),
//! `where(...)`, `ofType(T)`, `exists()`, `resolve()`, `is T`, `=`, `!=`, `and`, `or`, string and
//! boolean literals. A path's leading type name (`Patient.`, `Resource.`, `DomainResource.`)
//! selects the resource only when it is of that type, so a union such as
//! `Patient.name | Practitioner.name` only applies its matching branch.
//!
//! Every expression is compiled once per (resource type, parameter) into a tree whose navigation
//! steps are already resolved against the R4 element definitions: each step knows the JSON keys
//! to read and the FHIR type of what it finds, so evaluation never consults the definitions and
//! conversion to an [`IndexValue`] knows whether a value is a HumanName, a Coding, a Period, ...
//!
//! Indexing rules worth knowing:
//! - `_id`, `_lastUpdated` and `_source` are not indexed: they are served from storage columns
//!   (`_source` is the custodian, which the server itself writes into `meta.source`).
//! - composite and special parameters, and parameters without an expression, are not indexed.
//! - quantity parameters index Quantity, Age, Duration, Count, Distance, SimpleQuantity and Money
//!   (whose `currency` is the code), using `code` or else `unit`.
//! - values with no sound index form for their parameter type are skipped: Range and
//!   SampledData (quantity, number, date parameters), an Age or free text given as a date
//!   (`Procedure.performed`, `Condition.onset`), an Attachment as a reference
//!   (`Consent.source`), a Reference with only an `identifier`, and `#contained` references.
//! - a `urn:uuid:` reference, and a canonical or uri in a reference parameter, are indexed with
//!   their URL only (no target type or id).
//! - a Bundle's `composition`/`message` (`Bundle.entry[0].resource`) index the first entry's
//!   resource as the reference `Type/id`.
//! - contained resources and primitive extensions (`_birthDate`) are never indexed.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::date::{parse_date_range, DateRange};
use crate::definitions::{definitions, SearchParamDef, SearchParamType};
use crate::index::{IndexEntry, IndexValue};
use crate::text::normalize_for_search;

// ---------------------------------------------------------------------------------------------
// Tokens and parsing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Dot,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Pipe,
    Eq,
    NotEq,
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '.' => tokens.push(Token::Dot),
            '(' => tokens.push(Token::LParen),
            ')' => tokens.push(Token::RParen),
            '[' => tokens.push(Token::LBracket),
            ']' => tokens.push(Token::RBracket),
            ',' => tokens.push(Token::Comma),
            '|' => tokens.push(Token::Pipe),
            '=' => tokens.push(Token::Eq),
            '!' => match chars.next() {
                Some((_, '=')) => tokens.push(Token::NotEq),
                _ => return Err(format!("expected '=' after '!' at {pos}")),
            },
            '\'' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated string starting at {pos}")),
                        Some((_, '\'')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => text.push('\n'),
                            Some((_, 't')) => text.push('\t'),
                            Some((_, 'r')) => text.push('\r'),
                            Some((_, other)) => text.push(other),
                            None => return Err(format!("unterminated string starting at {pos}")),
                        },
                        Some((_, other)) => text.push(other),
                    }
                }
                tokens.push(Token::Str(text));
            }
            '`' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated identifier starting at {pos}")),
                        Some((_, '`')) => break,
                        Some((_, other)) => name.push(other),
                    }
                }
                tokens.push(Token::Ident(name));
            }
            c if c.is_ascii_digit() => {
                let mut value = i64::from(c as u8 - b'0');
                while let Some(&(_, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(i64::from(d as u8 - b'0')))
                        .ok_or_else(|| format!("number too large at {pos}"))?;
                    chars.next();
                }
                tokens.push(Token::Int(value));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                let mut name = String::from(c);
                while let Some(&(_, d)) = chars.peek() {
                    if !(d.is_ascii_alphanumeric() || d == '_') {
                        break;
                    }
                    name.push(d);
                    chars.next();
                }
                tokens.push(Token::Ident(name));
            }
            other => return Err(format!("unexpected character '{other}' at {pos}")),
        }
    }
    Ok(tokens)
}

/// The parsed form of an expression.
#[derive(Debug, Clone, PartialEq)]
enum Ast {
    /// An identifier: an element name, or a type name at the start of a path.
    Ident(String),
    /// A function call `name(args)`.
    Call(String, Vec<Ast>),
    Str(String),
    Bool(bool),
    Int(i64),
    /// `lhs.rhs` where `rhs` is an `Ident` or a `Call`.
    Dot(Box<Ast>, Box<Ast>),
    /// `lhs[index]`.
    Index(Box<Ast>, Box<Ast>),
    Union(Box<Ast>, Box<Ast>),
    Is(Box<Ast>, String),
    /// `lhs = rhs` (`false`) or `lhs != rhs` (`true`).
    Equals(Box<Ast>, Box<Ast>, bool),
    And(Box<Ast>, Box<Ast>),
    Or(Box<Ast>, Box<Ast>),
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn parse(input: &str) -> Result<Ast, String> {
        let mut parser = Parser { tokens: tokenize(input)?, pos: 0 };
        let ast = parser.or_expr()?;
        match parser.peek() {
            None => Ok(ast),
            Some(token) => Err(format!("unexpected {token:?} after the expression")),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn consume(&mut self, expected: &Token) -> Result<(), String> {
        match self.next() {
            Some(ref token) if token == expected => Ok(()),
            other => Err(format!("expected {expected:?}, found {other:?}")),
        }
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(name)) if name == keyword)
    }

    // Precedence, loosest first: or, and, equality, union, is, postfix.
    fn or_expr(&mut self) -> Result<Ast, String> {
        let mut lhs = self.and_expr()?;
        while self.peek_keyword("or") {
            self.pos += 1;
            lhs = Ast::Or(Box::new(lhs), Box::new(self.and_expr()?));
        }
        Ok(lhs)
    }

    fn and_expr(&mut self) -> Result<Ast, String> {
        let mut lhs = self.equality()?;
        while self.peek_keyword("and") {
            self.pos += 1;
            lhs = Ast::And(Box::new(lhs), Box::new(self.equality()?));
        }
        Ok(lhs)
    }

    fn equality(&mut self) -> Result<Ast, String> {
        let mut lhs = self.union()?;
        loop {
            let negated = match self.peek() {
                Some(Token::Eq) => false,
                Some(Token::NotEq) => true,
                _ => return Ok(lhs),
            };
            self.pos += 1;
            lhs = Ast::Equals(Box::new(lhs), Box::new(self.union()?), negated);
        }
    }

    fn union(&mut self) -> Result<Ast, String> {
        let mut lhs = self.type_expr()?;
        while self.peek() == Some(&Token::Pipe) {
            self.pos += 1;
            lhs = Ast::Union(Box::new(lhs), Box::new(self.type_expr()?));
        }
        Ok(lhs)
    }

    fn type_expr(&mut self) -> Result<Ast, String> {
        let mut lhs = self.postfix()?;
        while self.peek_keyword("is") {
            self.pos += 1;
            lhs = Ast::Is(Box::new(lhs), self.type_name()?);
        }
        Ok(lhs)
    }

    fn type_name(&mut self) -> Result<String, String> {
        let mut name = match self.next() {
            Some(Token::Ident(name)) => name,
            other => return Err(format!("expected a type name, found {other:?}")),
        };
        // Qualified names (`FHIR.Patient`, `System.String`).
        while self.peek() == Some(&Token::Dot) {
            self.pos += 1;
            match self.next() {
                Some(Token::Ident(part)) => {
                    name.push('.');
                    name.push_str(&part);
                }
                other => return Err(format!("expected a type name, found {other:?}")),
            }
        }
        Ok(name.strip_prefix("FHIR.").map(str::to_string).unwrap_or(name))
    }

    fn postfix(&mut self) -> Result<Ast, String> {
        let mut lhs = self.term()?;
        loop {
            match self.peek() {
                Some(Token::Dot) => {
                    self.pos += 1;
                    let invocation = self.invocation()?;
                    lhs = Ast::Dot(Box::new(lhs), Box::new(invocation));
                }
                Some(Token::LBracket) => {
                    self.pos += 1;
                    let index = self.or_expr()?;
                    self.consume(&Token::RBracket)?;
                    lhs = Ast::Index(Box::new(lhs), Box::new(index));
                }
                _ => return Ok(lhs),
            }
        }
    }

    fn term(&mut self) -> Result<Ast, String> {
        match self.peek() {
            Some(Token::LParen) => {
                self.pos += 1;
                let inner = self.or_expr()?;
                self.consume(&Token::RParen)?;
                Ok(inner)
            }
            Some(Token::Str(_)) | Some(Token::Int(_)) => match self.next() {
                Some(Token::Str(text)) => Ok(Ast::Str(text)),
                Some(Token::Int(value)) => Ok(Ast::Int(value)),
                other => Err(format!("expected a literal, found {other:?}")),
            },
            Some(Token::Ident(name)) if name == "true" || name == "false" => {
                let value = name == "true";
                self.pos += 1;
                Ok(Ast::Bool(value))
            }
            _ => self.invocation(),
        }
    }

    fn invocation(&mut self) -> Result<Ast, String> {
        let name = match self.next() {
            Some(Token::Ident(name)) => name,
            other => return Err(format!("expected an identifier, found {other:?}")),
        };
        if self.peek() != Some(&Token::LParen) {
            return Ok(Ast::Ident(name));
        }
        self.pos += 1;
        let mut args = Vec::new();
        if self.peek() == Some(&Token::RParen) {
            self.pos += 1;
            return Ok(Ast::Call(name, args));
        }
        loop {
            args.push(self.or_expr()?);
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::RParen) => return Ok(Ast::Call(name, args)),
                other => return Err(format!("expected ',' or ')' in {name}(), found {other:?}")),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compilation against the element definitions
// ---------------------------------------------------------------------------------------------

/// How a FHIR type converts to index values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeKind {
    /// string, markdown, code, id, System.String and similar textual primitives.
    Text,
    /// uri, url, canonical, oid, uuid.
    Uri,
    Boolean,
    /// date, dateTime, instant.
    DateTime,
    /// integer, decimal, positiveInt, unsignedInt.
    Number,
    HumanName,
    Address,
    ContactPoint,
    Identifier,
    Coding,
    CodeableConcept,
    /// Quantity and its profiles (Age, Duration, Count, Distance, SimpleQuantity).
    Quantity,
    Money,
    Period,
    Timing,
    Reference,
    /// A resource (the root, or an element of type `Resource`).
    Resource,
    /// Anything else: backbone elements and data types not indexed directly.
    Other,
}

fn type_kind(type_code: &str) -> TypeKind {
    match type_code {
        "string" | "markdown" | "code" | "id" | "System.String" | "xhtml" | "base64Binary" => TypeKind::Text,
        "uri" | "url" | "canonical" | "oid" | "uuid" => TypeKind::Uri,
        "boolean" | "System.Boolean" => TypeKind::Boolean,
        "date" | "dateTime" | "instant" | "System.Date" | "System.DateTime" => TypeKind::DateTime,
        "integer" | "decimal" | "positiveInt" | "unsignedInt" | "System.Integer" | "System.Decimal" => TypeKind::Number,
        "HumanName" => TypeKind::HumanName,
        "Address" => TypeKind::Address,
        "ContactPoint" => TypeKind::ContactPoint,
        "Identifier" => TypeKind::Identifier,
        "Coding" => TypeKind::Coding,
        "CodeableConcept" => TypeKind::CodeableConcept,
        "Quantity" | "Age" | "Duration" | "Count" | "Distance" | "SimpleQuantity" => TypeKind::Quantity,
        "Money" => TypeKind::Money,
        "Period" => TypeKind::Period,
        "Timing" => TypeKind::Timing,
        "Reference" => TypeKind::Reference,
        "Resource" => TypeKind::Resource,
        other if definitions().is_resource_type(other) => TypeKind::Resource,
        _ => TypeKind::Other,
    }
}

/// The static type of a node: the definition path its children are looked up under and its
/// FHIR type code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ctx {
    /// `Patient`, `Patient.contact`, `HumanName`, `Questionnaire.item`.
    path: String,
    /// `Patient`, `BackboneElement`, `HumanName`, `code`.
    type_code: String,
    kind: TypeKind,
}

type CtxId = u32;

/// One navigation alternative: from a node of type `from`, JSON key `key` holds nodes of type
/// `to`.
#[derive(Debug, Clone)]
struct NavRule {
    from: CtxId,
    key: String,
    to: CtxId,
}

/// A compiled expression, evaluated against a focus collection.
#[derive(Debug, Clone)]
enum Node {
    /// The focus itself.
    This,
    /// Nothing (a union branch for another resource type).
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    Child {
        src: Box<Node>,
        rules: Vec<NavRule>,
    },
    Index {
        src: Box<Node>,
        index: Box<Node>,
    },
    Where {
        src: Box<Node>,
        cond: Box<Node>,
    },
    /// Keep the nodes whose static type is one of `ctxs`, or (for resources and resolved
    /// references) whose runtime type is `type_name`.
    OfType {
        src: Box<Node>,
        ctxs: Vec<CtxId>,
        type_name: String,
    },
    Exists(Box<Node>),
    Resolve(Box<Node>),
    Is {
        src: Box<Node>,
        type_name: String,
    },
    Union(Vec<Node>),
    Equals {
        lhs: Box<Node>,
        rhs: Box<Node>,
        negated: bool,
    },
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

/// One search parameter of one resource type, ready to evaluate.
#[derive(Debug)]
pub(crate) struct CompiledParam {
    code: String,
    kind: SearchParamType,
    root: Node,
    ctxs: Vec<Ctx>,
    /// The static types of the values the expression yields (empty for a boolean result).
    #[cfg_attr(not(test), allow(dead_code))]
    out_ctxs: Vec<CtxId>,
}

struct Compiler<'d> {
    resource_type: &'d str,
    ctxs: Vec<Ctx>,
}

impl Compiler<'_> {
    fn intern(&mut self, path: &str, type_code: &str) -> CtxId {
        if let Some(pos) = self.ctxs.iter().position(|c| c.path == path && c.type_code == type_code) {
            return pos as CtxId;
        }
        self.ctxs.push(Ctx { path: path.to_string(), type_code: type_code.to_string(), kind: type_kind(type_code) });
        (self.ctxs.len() - 1) as CtxId
    }

    /// The context of a child of `path` declared with `types`, read from JSON key `key`.
    fn child_ctx(&mut self, child_path: &str, type_code: &str) -> CtxId {
        if let Some(reused) = type_code.strip_prefix('@') {
            self.intern(reused, "BackboneElement")
        } else if type_code == "BackboneElement" || type_code == "Element" {
            self.intern(child_path, type_code)
        } else {
            self.intern(type_code, type_code)
        }
    }

    /// Navigation rules for element `name` from each of `inputs`.
    fn nav_rules(&mut self, inputs: &[CtxId], name: &str) -> Result<Vec<NavRule>, String> {
        let defs = definitions();
        let mut rules = Vec::new();
        for &from in inputs {
            let ctx = &self.ctxs[from as usize];
            if matches!(
                ctx.kind,
                TypeKind::Text | TypeKind::Uri | TypeKind::Boolean | TypeKind::DateTime | TypeKind::Number
            ) {
                continue;
            }
            let child_path = format!("{}.{}", ctx.path, name);
            if let Some(types) = defs.element_types(&child_path) {
                for type_code in types {
                    let to = self.child_ctx(&child_path, type_code);
                    rules.push(NavRule { from, key: name.to_string(), to });
                }
            } else if let Some(types) = defs.element_types(&format!("{child_path}[x]")) {
                for type_code in types {
                    let to = self.child_ctx(&child_path, type_code);
                    rules.push(NavRule { from, key: choice_key(name, type_code), to });
                }
            }
        }
        if rules.is_empty() {
            let from: Vec<&str> = inputs.iter().map(|&c| self.ctxs[c as usize].path.as_str()).collect();
            return Err(format!("no element '{name}' in {from:?}"));
        }
        Ok(rules)
    }

    /// Compiles `ast` evaluated against a focus of types `focus`; `at_root` when the focus is
    /// the resource itself at the start of the expression. Returns the node and the static types
    /// of the nodes it can yield.
    fn compile(&mut self, ast: &Ast, focus: &[CtxId], at_root: bool) -> Result<(Node, Vec<CtxId>), String> {
        match ast {
            Ast::Ident(_) | Ast::Call(..) => self.invocation(Node::This, focus, at_root, ast),
            Ast::Dot(lhs, rhs) => {
                let (src, src_ctxs) = self.compile(lhs, focus, at_root)?;
                self.invocation(src, &src_ctxs, false, rhs)
            }
            Ast::Str(text) => Ok((Node::Str(text.clone()), Vec::new())),
            Ast::Bool(value) => Ok((Node::Bool(*value), Vec::new())),
            Ast::Int(value) => Ok((Node::Int(*value), Vec::new())),
            Ast::Index(lhs, index) => {
                let (src, src_ctxs) = self.compile(lhs, focus, at_root)?;
                let (index, _) = self.compile(index, focus, at_root)?;
                Ok((Node::Index { src: Box::new(src), index: Box::new(index) }, src_ctxs))
            }
            Ast::Union(lhs, rhs) => {
                let (lhs, mut ctxs) = self.compile(lhs, focus, at_root)?;
                let (rhs, rhs_ctxs) = self.compile(rhs, focus, at_root)?;
                for ctx in rhs_ctxs {
                    if !ctxs.contains(&ctx) {
                        ctxs.push(ctx);
                    }
                }
                let mut branches = Vec::new();
                for branch in [lhs, rhs] {
                    match branch {
                        Node::Empty => {}
                        Node::Union(inner) => branches.extend(inner),
                        other => branches.push(other),
                    }
                }
                let node = match branches.len() {
                    0 => Node::Empty,
                    1 => branches.pop().unwrap_or(Node::Empty),
                    _ => Node::Union(branches),
                };
                Ok((node, ctxs))
            }
            Ast::Is(lhs, type_name) => {
                let (src, _) = self.compile(lhs, focus, at_root)?;
                Ok((Node::Is { src: Box::new(src), type_name: type_name.clone() }, Vec::new()))
            }
            Ast::Equals(lhs, rhs, negated) => {
                let (lhs, _) = self.compile(lhs, focus, at_root)?;
                let (rhs, _) = self.compile(rhs, focus, at_root)?;
                Ok((Node::Equals { lhs: Box::new(lhs), rhs: Box::new(rhs), negated: *negated }, Vec::new()))
            }
            Ast::And(lhs, rhs) | Ast::Or(lhs, rhs) => {
                let (l, _) = self.compile(lhs, focus, at_root)?;
                let (r, _) = self.compile(rhs, focus, at_root)?;
                let node = if matches!(ast, Ast::And(..)) {
                    Node::And(Box::new(l), Box::new(r))
                } else {
                    Node::Or(Box::new(l), Box::new(r))
                };
                Ok((node, Vec::new()))
            }
        }
    }

    /// Compiles the invocation `inv` (an identifier or a function call) applied to `src`.
    fn invocation(
        &mut self,
        src: Node,
        src_ctxs: &[CtxId],
        at_root: bool,
        inv: &Ast,
    ) -> Result<(Node, Vec<CtxId>), String> {
        match inv {
            Ast::Ident(name) if name == "$this" => Ok((src, src_ctxs.to_vec())),
            Ast::Ident(name) if at_root && name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                // A leading type name: the resource, when it is of that type.
                if name == self.resource_type || name == "Resource" || name == "DomainResource" {
                    Ok((src, src_ctxs.to_vec()))
                } else if definitions().is_resource_type(name) {
                    Ok((Node::Empty, Vec::new()))
                } else {
                    Err(format!("unknown type '{name}' at the start of a path"))
                }
            }
            Ast::Ident(name) => {
                if matches!(src, Node::Empty) {
                    return Ok((Node::Empty, Vec::new()));
                }
                let rules = self.nav_rules(src_ctxs, name)?;
                let mut ctxs: Vec<CtxId> = Vec::new();
                for rule in &rules {
                    if !ctxs.contains(&rule.to) {
                        ctxs.push(rule.to);
                    }
                }
                Ok((Node::Child { src: Box::new(src), rules }, ctxs))
            }
            Ast::Call(name, args) => {
                if matches!(src, Node::Empty) {
                    return Ok((Node::Empty, Vec::new()));
                }
                match (name.as_str(), args.as_slice()) {
                    ("where", [cond]) => {
                        let (cond, _) = self.compile(cond, src_ctxs, false)?;
                        Ok((Node::Where { src: Box::new(src), cond: Box::new(cond) }, src_ctxs.to_vec()))
                    }
                    ("ofType", [Ast::Ident(type_name)]) | ("as", [Ast::Ident(type_name)]) => {
                        let ctxs: Vec<CtxId> = src_ctxs
                            .iter()
                            .copied()
                            .filter(|&c| self.ctxs[c as usize].type_code == *type_name)
                            .collect();
                        let dynamic = src_ctxs.iter().any(|&c| self.ctxs[c as usize].kind == TypeKind::Resource);
                        if ctxs.is_empty() && !dynamic {
                            return Err(format!("ofType({type_name}) never matches here"));
                        }
                        let node =
                            Node::OfType { src: Box::new(src), ctxs: ctxs.clone(), type_name: type_name.clone() };
                        Ok((node, ctxs))
                    }
                    ("exists", []) => Ok((Node::Exists(Box::new(src)), Vec::new())),
                    ("resolve", []) => Ok((Node::Resolve(Box::new(src)), Vec::new())),
                    _ => Err(format!("unsupported function {name}() with {} argument(s)", args.len())),
                }
            }
            other => Err(format!("expected an identifier or a function call, found {other:?}")),
        }
    }
}

/// The JSON key of choice element `name` of type `type_code`: `value` + `Quantity`.
fn choice_key(name: &str, type_code: &str) -> String {
    let mut key = String::with_capacity(name.len() + type_code.len());
    key.push_str(name);
    let mut chars = type_code.chars();
    if let Some(first) = chars.next() {
        key.extend(first.to_uppercase());
        key.push_str(chars.as_str());
    }
    key
}

/// Compiles the expression of `param` for resources of type `resource_type`.
pub(crate) fn compile_param(resource_type: &str, param: &SearchParamDef) -> Result<CompiledParam, String> {
    let expression = param.expression.as_deref().unwrap_or_default();
    let ast = Parser::parse(expression)?;
    let mut compiler = Compiler { resource_type, ctxs: Vec::new() };
    let root_ctx = compiler.intern(resource_type, resource_type);
    let (root, out_ctxs) = compiler.compile(&ast, &[root_ctx], true)?;
    Ok(CompiledParam { code: param.code.clone(), kind: param.kind, root, ctxs: compiler.ctxs, out_ctxs })
}

/// Whether a parameter is indexed by [`extract`] at all.
fn is_indexed(param: &SearchParamDef) -> bool {
    param.kind.is_supported()
        && param.expression.as_deref().is_some_and(|e| !e.trim().is_empty())
        && param.code != "_id"
        && param.code != "_lastUpdated"
        && param.code != "_source"
}

static COMPILED: OnceLock<HashMap<String, Vec<CompiledParam>>> = OnceLock::new();

/// The compiled indexed parameters of every resource type, compiled on first use. A parameter
/// whose expression does not compile is left out (the test suite checks that none does).
fn compiled() -> &'static HashMap<String, Vec<CompiledParam>> {
    COMPILED.get_or_init(|| {
        let defs = definitions();
        defs.resource_types()
            .map(|resource_type| {
                let params = defs
                    .search_params(resource_type)
                    .iter()
                    .filter(|p| is_indexed(p))
                    .filter_map(|p| compile_param(resource_type, p).ok())
                    .collect();
                (resource_type.to_string(), params)
            })
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// A value in a collection during evaluation.
#[derive(Debug, Clone, Copy)]
enum Item<'a> {
    /// A JSON node and its static type.
    Node(&'a Value, CtxId),
    Bool(bool),
    Str(&'a str),
    Int(i64),
    /// The result of `resolve()`: only the referenced resource's type is known.
    Resolved(&'a str),
}

impl<'a> CompiledParam {
    fn eval(&'a self, node: &'a Node, focus: &[Item<'a>], out: &mut Vec<Item<'a>>) {
        match node {
            Node::This => out.extend_from_slice(focus),
            Node::Empty => {}
            Node::Str(text) => out.push(Item::Str(text)),
            Node::Bool(value) => out.push(Item::Bool(*value)),
            Node::Int(value) => out.push(Item::Int(*value)),
            Node::Child { src, rules } => {
                let mut input = Vec::new();
                let items = self.source(src, focus, &mut input);
                for item in items {
                    let Item::Node(Value::Object(map), ctx) = *item else {
                        continue;
                    };
                    for rule in rules.iter().filter(|r| r.from == ctx) {
                        match field_of(map, &rule.key) {
                            Some(Value::Array(values)) => {
                                out.extend(values.iter().filter(|v| !v.is_null()).map(|v| Item::Node(v, rule.to)));
                            }
                            Some(Value::Null) | None => {}
                            Some(value) => out.push(Item::Node(value, rule.to)),
                        }
                    }
                }
            }
            Node::Index { src, index } => {
                let mut idx = Vec::new();
                self.eval(index, focus, &mut idx);
                if let [Item::Int(i)] = idx.as_slice() {
                    let mut input = Vec::new();
                    let items = self.source(src, focus, &mut input);
                    if let Some(item) = usize::try_from(*i).ok().and_then(|i| items.get(i)) {
                        out.push(*item);
                    }
                }
            }
            Node::Where { src, cond } => {
                let mut input = Vec::new();
                let items = self.source(src, focus, &mut input);
                let mut result = Vec::new();
                for item in items {
                    result.clear();
                    self.eval(cond, std::slice::from_ref(item), &mut result);
                    if truth(&result) == Some(true) {
                        out.push(*item);
                    }
                }
            }
            Node::OfType { src, ctxs, type_name } => {
                let mut input = Vec::new();
                let items = self.source(src, focus, &mut input);
                out.extend(items.iter().filter(|item| match item {
                    Item::Node(value, ctx) => {
                        ctxs.contains(ctx)
                            || (self.ctxs[*ctx as usize].type_code == "Resource"
                                && value.get("resourceType").and_then(Value::as_str) == Some(type_name))
                    }
                    Item::Resolved(t) => t == type_name,
                    _ => false,
                }));
            }
            Node::Exists(src) => {
                let mut input = Vec::new();
                let items = self.source(src, focus, &mut input);
                out.push(Item::Bool(!items.is_empty()));
            }
            Node::Resolve(src) => {
                let mut input = Vec::new();
                let items = self.source(src, focus, &mut input);
                for item in items {
                    if let Item::Node(value, ctx) = item {
                        if let Some(t) = self.runtime_type(value, *ctx) {
                            out.push(Item::Resolved(t));
                        }
                    }
                }
            }
            Node::Is { src, type_name } => {
                let mut input = Vec::new();
                self.eval(src, focus, &mut input);
                if let [item] = input.as_slice() {
                    let is = match item {
                        Item::Resolved(t) => t == type_name,
                        Item::Node(value, ctx) => {
                            let ctx_info = &self.ctxs[*ctx as usize];
                            if ctx_info.kind == TypeKind::Resource {
                                value.get("resourceType").and_then(Value::as_str) == Some(type_name)
                            } else {
                                ctx_info.type_code == *type_name
                            }
                        }
                        Item::Bool(_) => type_name == "boolean" || type_name == "System.Boolean",
                        Item::Str(_) => type_name == "string" || type_name == "System.String",
                        Item::Int(_) => type_name == "integer" || type_name == "System.Integer",
                    };
                    out.push(Item::Bool(is));
                }
            }
            Node::Union(branches) => {
                let start = out.len();
                for branch in branches {
                    let before = out.len();
                    self.eval(branch, focus, out);
                    // Union removes duplicates (same JSON node reached twice).
                    let mut i = before;
                    while i < out.len() {
                        let duplicate = out[start..before].iter().any(|seen| same_item(seen, &out[i]));
                        if duplicate {
                            out.remove(i);
                        } else {
                            i += 1;
                        }
                    }
                }
            }
            Node::Equals { lhs, rhs, negated } => {
                let mut l = Vec::new();
                let mut r = Vec::new();
                self.eval(lhs, focus, &mut l);
                self.eval(rhs, focus, &mut r);
                if let ([a], [b]) = (l.as_slice(), r.as_slice()) {
                    out.push(Item::Bool(items_equal(a, b) != *negated));
                }
            }
            Node::And(lhs, rhs) | Node::Or(lhs, rhs) => {
                let mut l = Vec::new();
                let mut r = Vec::new();
                self.eval(lhs, focus, &mut l);
                self.eval(rhs, focus, &mut r);
                let (a, b) = (truth(&l), truth(&r));
                let result = if matches!(node, Node::And(..)) {
                    match (a, b) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    }
                } else {
                    match (a, b) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    }
                };
                if let Some(value) = result {
                    out.push(Item::Bool(value));
                }
            }
        }
    }

    /// Evaluates `src`, borrowing `focus` directly when `src` is the focus itself.
    fn source<'s>(&'a self, src: &'a Node, focus: &'s [Item<'a>], buffer: &'s mut Vec<Item<'a>>) -> &'s [Item<'a>] {
        if matches!(src, Node::This) {
            focus
        } else {
            self.eval(src, focus, buffer);
            buffer
        }
    }

    /// The resource type a node is or refers to: a resource's `resourceType`, a Reference's
    /// target type (from `Type/id`, an absolute URL ending in `Type/id`, or `Reference.type`).
    fn runtime_type(&self, value: &'a Value, ctx: CtxId) -> Option<&'a str> {
        match self.ctxs[ctx as usize].kind {
            TypeKind::Resource => value.get("resourceType").and_then(Value::as_str),
            TypeKind::Reference => str_field(value, "reference")
                .and_then(split_reference)
                .map(|(t, _)| t)
                .or_else(|| str_field(value, "type")),
            TypeKind::Uri | TypeKind::Text => value.as_str().and_then(split_reference).map(|(t, _)| t),
            _ => None,
        }
    }
}

fn same_item(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a, b) {
        (Item::Node(x, cx), Item::Node(y, cy)) => std::ptr::eq(*x, *y) && cx == cy,
        (Item::Bool(x), Item::Bool(y)) => x == y,
        (Item::Str(x), Item::Str(y)) | (Item::Resolved(x), Item::Resolved(y)) => x == y,
        (Item::Int(x), Item::Int(y)) => x == y,
        _ => false,
    }
}

/// FHIRPath equality of two singletons: values of different types are unequal.
fn items_equal(a: &Item<'_>, b: &Item<'_>) -> bool {
    fn primitive<'v>(item: &Item<'v>) -> Option<Item<'v>> {
        match item {
            Item::Node(Value::String(s), _) => Some(Item::Str(s)),
            Item::Node(Value::Bool(b), _) => Some(Item::Bool(*b)),
            Item::Node(Value::Number(n), _) => n.as_i64().map(Item::Int),
            Item::Node(..) => None,
            other => Some(*other),
        }
    }
    match (primitive(a), primitive(b)) {
        (Some(Item::Node(x, _)), Some(Item::Node(y, _))) => x == y,
        (Some(x), Some(y)) => same_item(&x, &y),
        (None, None) => match (a, b) {
            (Item::Node(x, _), Item::Node(y, _)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

/// The boolean value of a collection: empty is unknown, a single boolean is itself, any other
/// single item is true.
fn truth(items: &[Item<'_>]) -> Option<bool> {
    match items {
        [] => None,
        [Item::Bool(b)] | [Item::Node(Value::Bool(b), _)] => Some(*b),
        [_] => Some(true),
        _ => None,
    }
}

/// Splits a reference into `(type, id)` when it is `Type/id` or a URL ending in `Type/id`
/// (optionally followed by `/_history/n`) and `Type` is an R4 resource type.
fn split_reference(reference: &str) -> Option<(&str, &str)> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let path = reference.split(['?', '#']).next().unwrap_or(reference);
    let mut segments = path.rsplit('/');
    let (mut last, mut before) = (segments.next()?, segments.next()?);
    if before == "_history" {
        last = segments.next()?;
        before = segments.next()?;
    }
    (!last.is_empty() && definitions().is_resource_type(before)).then_some((before, last))
}

// ---------------------------------------------------------------------------------------------
// Conversion to index values
// ---------------------------------------------------------------------------------------------

/// `map[key]`: a linear scan for the small objects FHIR data is mostly made of (cheaper than
/// hashing the key), a hash lookup for larger ones.
fn field_of<'v>(map: &'v serde_json::Map<String, Value>, key: &str) -> Option<&'v Value> {
    if map.len() <= 12 {
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

fn field<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    value.as_object().and_then(|map| field_of(map, key))
}

fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    field(value, key).and_then(Value::as_str)
}

fn push_string(out: &mut Vec<IndexValue>, text: &str) {
    let normalized = normalize_for_search(text);
    if !normalized.is_empty() {
        out.push(IndexValue::String { normalized, exact: text.to_string() });
    }
}

/// Each string of `value[key]`, whether it holds one string or an array of them.
fn strings<'v>(value: &'v Value, key: &str) -> impl Iterator<Item = &'v str> {
    strings_in(field(value, key))
}

/// Each string of a value holding one string or an array of them.
fn strings_in(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let single = value.and_then(Value::as_str);
    let many = value.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
    single.into_iter().chain(many)
}

/// Each string of the fields `keys` of an object, in document order.
fn push_strings_of(out: &mut Vec<IndexValue>, value: &Value, keys: &[&str]) {
    let Some(map) = value.as_object() else { return };
    for (key, part) in map {
        if keys.contains(&key.as_str()) {
            for text in strings_in(Some(part)) {
                push_string(out, text);
            }
        }
    }
}

fn coding_token(coding: &Value) -> Option<IndexValue> {
    let code = str_field(coding, "code")?;
    Some(IndexValue::Token { system: str_field(coding, "system").map(str::to_string), code: code.to_string() })
}

fn plain_token(code: &str) -> IndexValue {
    IndexValue::Token { system: None, code: code.to_string() }
}

fn reference_value(url: &str) -> IndexValue {
    let (target_type, target_id) = match split_reference(url) {
        Some((t, id)) => (Some(t.to_string()), Some(id.to_string())),
        None => (None, None),
    };
    IndexValue::Reference { target_type, target_id, url: url.to_string() }
}

fn number(value: &Value) -> Option<f64> {
    value.as_f64().filter(|n| n.is_finite())
}

fn period_range(period: &Value) -> Option<DateRange> {
    let start = match str_field(period, "start") {
        Some(text) => parse_date_range(text).ok()?.start,
        None => i64::MIN,
    };
    let end = match str_field(period, "end") {
        Some(text) => parse_date_range(text).ok()?.end,
        None => i64::MAX,
    };
    (start != i64::MIN || end != i64::MAX).then_some(DateRange { start, end })
}

fn timing_range(timing: &Value) -> Option<DateRange> {
    let events = strings(timing, "event").filter_map(|e| parse_date_range(e).ok()).reduce(DateRange::union);
    events.or_else(|| field(timing, "repeat").and_then(|r| field(r, "boundsPeriod")).and_then(period_range))
}

/// Converts one evaluation result to the index values of a parameter of type `kind`.
fn convert(kind: SearchParamType, item: &Item<'_>, ctxs: &[Ctx], out: &mut Vec<IndexValue>) {
    let (value, type_kind) = match item {
        Item::Node(value, ctx) => (*value, ctxs[*ctx as usize].kind),
        Item::Bool(b) => {
            if kind == SearchParamType::Token {
                out.push(plain_token(if *b { "true" } else { "false" }));
            }
            return;
        }
        _ => return,
    };
    match kind {
        SearchParamType::String => match type_kind {
            TypeKind::Text | TypeKind::Uri => {
                if let Some(text) = value.as_str() {
                    push_string(out, text);
                }
            }
            TypeKind::HumanName => {
                push_strings_of(out, value, &["text", "family", "given", "prefix", "suffix"]);
            }
            TypeKind::Address => {
                let keys = ["line", "city", "district", "state", "postalCode", "country", "text"];
                push_strings_of(out, value, &keys);
            }
            _ => {}
        },
        SearchParamType::Token => match type_kind {
            TypeKind::Text | TypeKind::Uri => {
                if let Some(code) = value.as_str().filter(|c| !c.is_empty()) {
                    out.push(plain_token(code));
                }
            }
            TypeKind::Boolean => {
                if let Some(b) = value.as_bool() {
                    out.push(plain_token(if b { "true" } else { "false" }));
                }
            }
            TypeKind::Coding => out.extend(coding_token(value)),
            TypeKind::CodeableConcept => {
                if let Some(codings) = field(value, "coding").and_then(Value::as_array) {
                    out.extend(codings.iter().filter_map(coding_token));
                }
            }
            TypeKind::Identifier => {
                if let Some(code) = str_field(value, "value") {
                    out.push(IndexValue::Token {
                        system: str_field(value, "system").map(str::to_string),
                        code: code.to_string(),
                    });
                }
            }
            TypeKind::ContactPoint => {
                if let Some(code) = str_field(value, "value") {
                    out.push(plain_token(code));
                }
            }
            _ => {}
        },
        SearchParamType::Reference => match type_kind {
            TypeKind::Reference => {
                if let Some(url) = str_field(value, "reference").filter(|r| !r.is_empty() && !r.starts_with('#')) {
                    out.push(reference_value(url));
                }
            }
            TypeKind::Uri | TypeKind::Text => {
                if let Some(url) = value.as_str().filter(|u| !u.is_empty()) {
                    out.push(IndexValue::Reference { target_type: None, target_id: None, url: url.to_string() });
                }
            }
            TypeKind::Resource => {
                if let (Some(t), Some(id)) = (str_field(value, "resourceType"), str_field(value, "id")) {
                    out.push(IndexValue::Reference {
                        target_type: Some(t.to_string()),
                        target_id: Some(id.to_string()),
                        url: format!("{t}/{id}"),
                    });
                }
            }
            _ => {}
        },
        SearchParamType::Date => {
            let range = match type_kind {
                TypeKind::DateTime => value.as_str().and_then(|d| parse_date_range(d).ok()),
                TypeKind::Period => period_range(value),
                TypeKind::Timing => timing_range(value),
                _ => None,
            };
            out.extend(range.map(IndexValue::Date));
        }
        SearchParamType::Number => {
            if type_kind == TypeKind::Number {
                out.extend(number(value).map(IndexValue::Number));
            }
        }
        SearchParamType::Quantity => {
            let code_key = match type_kind {
                TypeKind::Quantity => "code",
                TypeKind::Money => "currency",
                _ => return,
            };
            if let Some(amount) = field(value, "value").and_then(number) {
                out.push(IndexValue::Quantity {
                    value: amount,
                    system: str_field(value, "system").map(str::to_string),
                    code: str_field(value, code_key).or_else(|| str_field(value, "unit")).map(str::to_string),
                });
            }
        }
        SearchParamType::Uri => {
            if matches!(type_kind, TypeKind::Uri | TypeKind::Text) {
                if let Some(uri) = value.as_str().filter(|u| !u.is_empty()) {
                    out.push(IndexValue::Uri(uri.to_string()));
                }
            }
        }
        SearchParamType::Composite | SearchParamType::Special => {}
    }
}

/// Every index entry of `resource` (see [`crate::index::extract_index`]): the indexed
/// parameters of its type in definition order, each parameter's values in document order
/// without duplicates.
pub(crate) fn extract(resource: &Value) -> Vec<IndexEntry> {
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return Vec::new();
    };
    let Some(params) = compiled().get(resource_type) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    let mut items = Vec::new();
    let mut values = Vec::new();
    let focus = [Item::Node(resource, 0)];
    for param in params {
        items.clear();
        values.clear();
        param.eval(&param.root, &focus, &mut items);
        for item in &items {
            convert(param.kind, item, &param.ctxs, &mut values);
        }
        let start = entries.len();
        for value in values.drain(..) {
            if !entries[start..].iter().any(|e: &IndexEntry| e.value == value) {
                entries.push(IndexEntry { param: param.code.clone(), value });
            }
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date::format_instant;
    use serde_json::json;

    const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-r4-examples");

    fn example(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{EXAMPLES}/{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn values<'e>(entries: &'e [IndexEntry], param: &str) -> Vec<&'e IndexValue> {
        entries.iter().filter(|e| e.param == param).map(|e| &e.value).collect()
    }

    fn normalized(entries: &[IndexEntry], param: &str) -> Vec<String> {
        values(entries, param)
            .into_iter()
            .filter_map(|v| match v {
                IndexValue::String { normalized, .. } => Some(normalized.clone()),
                _ => None,
            })
            .collect()
    }

    fn token(system: Option<&str>, code: &str) -> IndexValue {
        IndexValue::Token { system: system.map(str::to_string), code: code.to_string() }
    }

    fn reference(target_type: &str, target_id: &str, url: &str) -> IndexValue {
        IndexValue::Reference {
            target_type: Some(target_type.to_string()),
            target_id: Some(target_id.to_string()),
            url: url.to_string(),
        }
    }

    fn date(value: &IndexValue) -> (String, String) {
        match value {
            IndexValue::Date(range) => (format_instant(range.start), format_instant(range.end)),
            other => panic!("not a date: {other:?}"),
        }
    }

    /// Whether [`convert`] produces values for a static result type, by parameter type.
    fn converts(kind: SearchParamType, type_kind: TypeKind) -> bool {
        use TypeKind as T;
        match kind {
            SearchParamType::String => {
                matches!(type_kind, T::Text | T::Uri | T::HumanName | T::Address)
            }
            SearchParamType::Token => matches!(
                type_kind,
                T::Text | T::Uri | T::Boolean | T::Coding | T::CodeableConcept | T::Identifier | T::ContactPoint
            ),
            SearchParamType::Reference => {
                matches!(type_kind, T::Reference | T::Uri | T::Text | T::Resource)
            }
            SearchParamType::Date => matches!(type_kind, T::DateTime | T::Period | T::Timing),
            SearchParamType::Number => type_kind == T::Number,
            SearchParamType::Quantity => matches!(type_kind, T::Quantity | T::Money),
            SearchParamType::Uri => matches!(type_kind, T::Uri | T::Text),
            SearchParamType::Composite | SearchParamType::Special => false,
        }
    }

    #[test]
    fn every_r4_expression_parses_and_compiles_for_every_base_type() {
        let defs = definitions();
        let all: Vec<SearchParamDef> = serde_json::from_str(include_str!("../data/search-parameters.json")).unwrap();
        assert_eq!(all.len(), 1378);
        let mut failures = Vec::new();
        let mut compiled_count = 0;
        for param in &all {
            let Some(expression) = param.expression.as_deref() else {
                assert!(
                    ["_text", "_content", "_query"].contains(&param.code.as_str()),
                    "{} has no expression",
                    param.code
                );
                continue;
            };
            assert!(Parser::parse(expression).is_ok(), "{} does not parse: {expression}", param.url);
            let bases: Vec<&str> = if param.base.iter().any(|b| b == "Resource" || b == "DomainResource") {
                defs.resource_types().collect()
            } else {
                param.base.iter().map(String::as_str).collect()
            };
            for base in bases {
                match compile_param(base, param) {
                    Ok(compiled) => {
                        compiled_count += 1;
                        // Every parameter yields something for its own base type.
                        assert!(!matches!(compiled.root, Node::Empty), "{} is empty for {base}", param.url);
                    }
                    Err(error) => failures.push(format!("{base} {}: {error} ({expression})", param.code)),
                }
            }
        }
        assert!(failures.is_empty(), "expressions that do not compile:\n{}", failures.join("\n"));
        assert!(compiled_count > 2_500, "compiled {compiled_count}");
        // And the shared cache holds every indexed parameter of every type.
        for resource_type in defs.resource_types() {
            let expected = defs.search_params(resource_type).iter().filter(|p| is_indexed(p)).count();
            assert_eq!(compiled()[resource_type].len(), expected, "{resource_type}");
        }
    }

    #[test]
    fn every_result_type_converts_except_the_documented_ones() {
        let defs = definitions();
        let mut unconverted = std::collections::BTreeSet::new();
        for resource_type in defs.resource_types() {
            for param in defs.search_params(resource_type).iter().filter(|p| is_indexed(p)) {
                let compiled = compile_param(resource_type, param).unwrap();
                if compiled.out_ctxs.is_empty() {
                    // Boolean results (Patient.deceased) are tokens.
                    assert_eq!(param.kind, SearchParamType::Token, "{resource_type} {}", param.code);
                }
                for &ctx in &compiled.out_ctxs {
                    let ctx = &compiled.ctxs[ctx as usize];
                    if !converts(param.kind, ctx.kind) {
                        unconverted.insert((param.kind.code(), ctx.type_code.clone()));
                    }
                }
            }
        }
        // Range, SampledData, Attachment, an Age as a date and a free-text string as a date
        // have no sound index value of the parameter's type; everything else converts.
        let documented: std::collections::BTreeSet<(&str, String)> = [
            ("date", "Age"),
            ("date", "Range"),
            ("date", "string"),
            ("number", "Range"),
            ("quantity", "Range"),
            ("quantity", "SampledData"),
            ("reference", "Attachment"),
        ]
        .into_iter()
        .map(|(k, t)| (k, t.to_string()))
        .collect();
        assert_eq!(unconverted, documented);
    }

    #[test]
    fn every_official_example_extracts() {
        let mut files: Vec<_> = std::fs::read_dir(EXAMPLES).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let json_files: Vec<_> = files.iter().filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
        assert_eq!(json_files.len(), 590);
        let mut total = 0;
        let mut empty = Vec::new();
        for path in json_files {
            let resource: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let entries = extract(&resource);
            let resource_type = resource["resourceType"].as_str().unwrap();
            for entry in &entries {
                let param = definitions().search_param(resource_type, &entry.param).unwrap();
                assert!(param.kind.is_supported() && entry.param != "_id" && entry.param != "_lastUpdated");
                let kind_matches = matches!(
                    (&entry.value, param.kind),
                    (IndexValue::String { .. }, SearchParamType::String)
                        | (IndexValue::Token { .. }, SearchParamType::Token)
                        | (IndexValue::Reference { .. }, SearchParamType::Reference)
                        | (IndexValue::Date(_), SearchParamType::Date)
                        | (IndexValue::Number(_), SearchParamType::Number)
                        | (IndexValue::Quantity { .. }, SearchParamType::Quantity)
                        | (IndexValue::Uri(_), SearchParamType::Uri)
                );
                assert!(kind_matches, "{}: {entry:?} for a {} parameter", path.display(), param.kind.code());
                if let IndexValue::Date(range) = &entry.value {
                    assert!(range.start <= range.end, "{}: {entry:?}", path.display());
                }
            }
            if entries.is_empty() {
                empty.push(path.file_name().unwrap().to_string_lossy().to_string());
            }
            total += entries.len();
        }
        // Nearly every example carries the HTEST tag or some indexed element.
        assert!(empty.len() < 10, "examples without any index entry: {empty:?}");
        assert!(total > 5_000, "only {total} entries");
    }

    #[test]
    fn patient_example() {
        let entries = extract(&example("patient-example.json"));
        assert_eq!(normalized(&entries, "family"), ["chalmers", "windsor"]);
        assert_eq!(normalized(&entries, "given"), ["peter", "james", "jim"]);
        let name = normalized(&entries, "name");
        assert!(name.contains(&"chalmers".to_string()) && name.contains(&"jim".to_string()), "{name:?}");
        assert!(values(&entries, "family")
            .contains(&&IndexValue::String { normalized: "chalmers".into(), exact: "Chalmers".into() }));
        let birthdate = values(&entries, "birthdate");
        assert_eq!(birthdate.len(), 1);
        assert_eq!(date(birthdate[0]), ("1974-12-25T00:00:00.000Z".into(), "1974-12-25T23:59:59.999Z".into()));
        assert_eq!(values(&entries, "identifier"), [&token(Some("urn:oid:1.2.36.146.595.217.0.1"), "12345")]);
        assert_eq!(values(&entries, "gender"), [&token(None, "male")]);
        assert_eq!(values(&entries, "active"), [&token(None, "true")]);
        assert_eq!(values(&entries, "deceased"), [&token(None, "false")]);
        assert!(values(&entries, "death-date").is_empty());
        assert_eq!(
            values(&entries, "phone"),
            [&token(None, "(03) 5555 6473"), &token(None, "(03) 3410 5613"), &token(None, "(03) 5555 8834")]
        );
        assert!(values(&entries, "email").is_empty());
        // `telecom` includes every ContactPoint with a value.
        assert_eq!(values(&entries, "telecom").len(), 3);
        assert_eq!(normalized(&entries, "address-city"), ["pleasantville"]);
        assert_eq!(normalized(&entries, "address-postalcode"), ["3999"]);
        assert!(normalized(&entries, "address").contains(&"534 erewhon st".to_string()));
        assert_eq!(values(&entries, "organization"), [&reference("Organization", "1", "Organization/1")]);
        assert_eq!(
            values(&entries, "_tag"),
            [&token(Some("http://terminology.hl7.org/CodeSystem/v3-ActReason"), "HTEST")]
        );
        // Served from storage columns, not indexed.
        assert!(values(&entries, "_id").is_empty() && values(&entries, "_lastUpdated").is_empty());
        // The contact's name is not the patient's name; primitive extensions are ignored.
        assert!(!normalized(&entries, "name").iter().any(|n| n.contains("marche")));
    }

    #[test]
    fn observation_example() {
        let entries = extract(&example("observation-example.json"));
        assert_eq!(values(&entries, "subject"), [&reference("Patient", "example", "Patient/example")]);
        assert_eq!(values(&entries, "patient"), [&reference("Patient", "example", "Patient/example")]);
        assert_eq!(values(&entries, "encounter"), [&reference("Encounter", "example", "Encounter/example")]);
        let code = values(&entries, "code");
        assert_eq!(code.len(), 4);
        assert_eq!(code[0], &token(Some("http://loinc.org"), "29463-7"));
        assert_eq!(code[2], &token(Some("http://snomed.info/sct"), "27113001"));
        let quantity = IndexValue::Quantity {
            value: 185.0,
            system: Some("http://unitsofmeasure.org".into()),
            code: Some("[lb_av]".into()),
        };
        assert_eq!(values(&entries, "value-quantity"), [&quantity]);
        assert_eq!(values(&entries, "combo-value-quantity"), [&quantity]);
        assert!(values(&entries, "value-concept").is_empty() && values(&entries, "value-string").is_empty());
        let dates = values(&entries, "date");
        assert_eq!(dates.len(), 1);
        assert_eq!(date(dates[0]), ("2016-03-28T00:00:00.000Z".into(), "2016-03-28T23:59:59.999Z".into()));
        assert_eq!(
            values(&entries, "category"),
            [&token(Some("http://terminology.hl7.org/CodeSystem/observation-category"), "vital-signs")]
        );
        assert_eq!(values(&entries, "status"), [&token(None, "final")]);
    }

    #[test]
    fn observation_components_and_profiles() {
        let entries = extract(&example("observation-example-bloodpressure.json"));
        let component = values(&entries, "component-value-quantity");
        assert_eq!(component.len(), 2);
        assert!(
            matches!(component[0], IndexValue::Quantity { value, code: Some(code), .. } if *value == 107.0 && code == "mm[Hg]")
        );
        assert!(values(&entries, "value-quantity").is_empty());
        assert_eq!(
            values(&entries, "_profile"),
            [&IndexValue::Uri("http://hl7.org/fhir/StructureDefinition/vitalsigns".into())]
        );
        // `basedOn` holds only an identifier: nothing to index as a reference.
        assert!(values(&entries, "based-on").is_empty());
        assert!(values(&entries, "component-code").contains(&&token(Some("http://loinc.org"), "8480-6")));
    }

    #[test]
    fn periods_cover_their_bounds() {
        let entries = extract(&example("encounter-example-home.json"));
        let dates = values(&entries, "date");
        assert_eq!(dates.len(), 1);
        assert_eq!(date(dates[0]), ("2015-01-17T06:00:00.000Z".into(), "2015-01-17T06:30:00.999Z".into()));
        // The contained Location is not indexed, and `#home` is not a searchable reference.
        assert!(values(&entries, "location").is_empty());
        assert_eq!(values(&entries, "practitioner"), [&reference("Practitioner", "example", "Practitioner/example")]);

        let account = extract(&example("account-example.json"));
        let period = values(&account, "period");
        assert_eq!(date(period[0]), ("2016-01-01T00:00:00.000Z".into(), "2016-06-30T23:59:59.999Z".into()));

        let open = extract(&json!({"resourceType": "Encounter", "period": {"start": "2020"}}));
        assert_eq!(values(&open, "date"), [&IndexValue::Date(DateRange { start: 1_577_836_800_000, end: i64::MAX })]);
        let open = extract(&json!({"resourceType": "Encounter", "period": {"end": "2021"}}));
        assert_eq!(values(&open, "date"), [&IndexValue::Date(DateRange { start: i64::MIN, end: 1_640_995_199_999 })]);
        let bad = extract(&json!({"resourceType": "Encounter", "period": {"start": "soon"}}));
        assert!(values(&bad, "date").is_empty());
    }

    #[test]
    fn timings_index_events_or_bounds() {
        let request = json!({
            "resourceType": "MedicationRequest",
            "dosageInstruction": [
                {"timing": {"event": ["2021-01-01", "2021-03-04T10:00:00Z"]}},
                {"timing": {"repeat": {"boundsPeriod": {"start": "2022-05-01"}}}}
            ]
        });
        let entries = extract(&request);
        // MedicationRequest.date is `dosageInstruction.timing.event`: dateTime values.
        let dates: Vec<_> = values(&entries, "date").into_iter().map(date).collect();
        assert_eq!(dates.len(), 2);
        assert_eq!(dates[1], ("2021-03-04T10:00:00.000Z".into(), "2021-03-04T10:00:00.999Z".into()));

        let procedure = json!({"resourceType": "CarePlan", "activity": [{"detail": {"scheduledTiming": {"event": ["2021-01-01", "2021-03-04"]}}}, {"detail": {"scheduledTiming": {"repeat": {"boundsPeriod": {"start": "2022-05-01", "end": "2022-05-02"}}}}}]});
        let entries = extract(&procedure);
        let dates: Vec<_> = values(&entries, "activity-date").into_iter().map(date).collect();
        assert_eq!(
            dates,
            [
                ("2021-01-01T00:00:00.000Z".to_string(), "2021-03-04T23:59:59.999Z".to_string()),
                ("2022-05-01T00:00:00.000Z".to_string(), "2022-05-02T23:59:59.999Z".to_string())
            ]
        );
    }

    #[test]
    fn resolve_is_filters_references_by_target_type() {
        let account = extract(&example("account-example.json"));
        assert_eq!(values(&account, "patient"), [&reference("Patient", "example", "Patient/example")]);
        assert_eq!(values(&account, "owner"), [&reference("Organization", "hl7", "Organization/hl7")]);

        let provenance = extract(&example("provenance-example.json"));
        assert!(values(&provenance, "patient").is_empty());
        assert_eq!(values(&provenance, "target"), [&reference("Procedure", "example", "Procedure/example/_history/1")]);
        assert_eq!(
            values(&provenance, "agent"),
            [
                &reference("Practitioner", "xcda-author", "Practitioner/xcda-author"),
                &reference("Device", "software", "Device/software")
            ]
        );

        let condition = json!({
            "resourceType": "Condition",
            "subject": {"reference": "Group/g1"},
            "asserter": {"reference": "https://example.org/fhir/Patient/p9/_history/3"}
        });
        let entries = extract(&condition);
        assert!(values(&entries, "patient").is_empty());
        assert_eq!(values(&entries, "subject"), [&reference("Group", "g1", "Group/g1")]);
        assert_eq!(
            values(&entries, "asserter"),
            [&reference("Patient", "p9", "https://example.org/fhir/Patient/p9/_history/3")]
        );

        // A reference whose type is only known from Reference.type still resolves.
        let typed = json!({"resourceType": "Provenance", "target": [{"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", "type": "Patient"}]});
        let entries = extract(&typed);
        let unresolved = IndexValue::Reference {
            target_type: None,
            target_id: None,
            url: "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0".into(),
        };
        assert_eq!(values(&entries, "patient"), [&unresolved]);
        assert_eq!(values(&entries, "target"), [&unresolved]);
    }

    #[test]
    fn where_system_selects_contact_points() {
        let entries = extract(&example("practitionerrole-example.json"));
        assert_eq!(values(&entries, "email"), [&token(None, "adam.southern@example.org")]);
        assert_eq!(values(&entries, "phone"), [&token(None, "(03) 5555 6473")]);
        assert_eq!(values(&entries, "telecom").len(), 2);
        assert_eq!(values(&entries, "practitioner"), [&reference("Practitioner", "example", "Practitioner/example")]);

        let practitioner = json!({"resourceType": "Practitioner", "telecom": [
            {"system": "email", "value": "a@example.org"},
            {"system": "phone", "value": "555"},
            {"system": "email"}
        ]});
        let entries = extract(&practitioner);
        assert_eq!(values(&entries, "email"), [&token(None, "a@example.org")]);
        assert_eq!(values(&entries, "phone"), [&token(None, "555")]);
    }

    #[test]
    fn choice_types_and_of_type() {
        let condition = extract(&example("condition-example.json"));
        let onset = values(&condition, "onset-date");
        assert_eq!(date(onset[0]), ("2012-05-24T00:00:00.000Z".into(), "2012-05-24T23:59:59.999Z".into()));
        assert!(values(&condition, "onset-info").is_empty());

        let text_onset = extract(&json!({"resourceType": "Condition", "onsetString": "Since childhood"}));
        assert_eq!(normalized(&text_onset, "onset-info"), ["since childhood"]);
        assert!(values(&text_onset, "onset-date").is_empty());

        let observation = extract(&json!({
            "resourceType": "Observation",
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}], "text": "Negative"}
        }));
        assert_eq!(values(&observation, "value-concept"), [&token(Some("http://snomed.info/sct"), "260385009")]);
        // `(Observation.value.ofType(CodeableConcept)).text`
        assert_eq!(normalized(&observation, "value-string"), ["negative"]);
        assert!(values(&observation, "value-quantity").is_empty());

        let dead = extract(&json!({"resourceType": "Patient", "deceasedDateTime": "2015-02-14T13:42:00+10:00"}));
        assert_eq!(values(&dead, "deceased"), [&token(None, "true")]);
        assert_eq!(values(&dead, "death-date").len(), 1);
        let alive = extract(&json!({"resourceType": "Patient"}));
        assert_eq!(values(&alive, "deceased"), [&token(None, "false")]);
        let dead = extract(&json!({"resourceType": "Patient", "deceasedBoolean": true}));
        assert_eq!(values(&dead, "deceased"), [&token(None, "true")]);
    }

    #[test]
    fn relation_types_canonicals_and_money() {
        let library = extract(&json!({
            "resourceType": "Library",
            "url": "http://example.org/Library/lib|1.0",
            "relatedArtifact": [
                {"type": "depends-on", "resource": "http://example.org/Library/dep"},
                {"type": "composed-of", "resource": "http://example.org/Library/part"}
            ]
        }));
        let canonical = |url: &str| IndexValue::Reference { target_type: None, target_id: None, url: url.into() };
        assert_eq!(values(&library, "depends-on"), [&canonical("http://example.org/Library/dep")]);
        assert_eq!(values(&library, "composed-of"), [&canonical("http://example.org/Library/part")]);
        assert_eq!(values(&library, "url"), [&IndexValue::Uri("http://example.org/Library/lib|1.0".into())]);

        let claim =
            extract(&json!({"resourceType": "ChargeItem", "priceOverride": {"value": 12.5, "currency": "EUR"}}));
        assert_eq!(
            values(&claim, "price-override"),
            [&IndexValue::Quantity { value: 12.5, system: None, code: Some("EUR".into()) }]
        );
        let risk = extract(&json!({"resourceType": "RiskAssessment", "prediction": [{"probabilityDecimal": 0.25}]}));
        assert_eq!(values(&risk, "probability"), [&IndexValue::Number(0.25)]);
    }

    #[test]
    fn bundles_index_their_first_entry_and_not_their_content() {
        let bundle = extract(&example("bundle-example.json"));
        assert_eq!(values(&bundle, "type"), [&token(None, "searchset")]);
        // Only Bundle parameters: nothing from the entries' own parameters.
        assert!(bundle.iter().all(|e| definitions().search_param("Bundle", &e.param).is_some()));
        let document = extract(&json!({
            "resourceType": "Bundle",
            "type": "document",
            "entry": [{"resource": {"resourceType": "Composition", "id": "c1"}}, {"resource": {"resourceType": "Patient", "id": "p1"}}]
        }));
        assert_eq!(values(&document, "composition"), [&reference("Composition", "c1", "Composition/c1")]);
    }

    #[test]
    fn references_are_parsed_or_kept_whole() {
        assert_eq!(split_reference("Patient/123"), Some(("Patient", "123")));
        assert_eq!(split_reference("Patient/123/_history/2"), Some(("Patient", "123")));
        assert_eq!(split_reference("http://x/fhir/Patient/123"), Some(("Patient", "123")));
        assert_eq!(split_reference("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"), None);
        assert_eq!(split_reference("#contained"), None);
        assert_eq!(split_reference("Unknown/123"), None);
        assert_eq!(split_reference("Patient/"), None);
        let entries = extract(
            &json!({"resourceType": "Observation", "subject": {"identifier": {"value": "x"}}, "performer": [{"reference": "#p"}, {"reference": "Practitioner/1"}, {"reference": "Practitioner/1"}]}),
        );
        assert!(values(&entries, "subject").is_empty());
        // Duplicates of one parameter are indexed once.
        assert_eq!(values(&entries, "performer"), [&reference("Practitioner", "1", "Practitioner/1")]);
    }

    #[test]
    fn non_resources_yield_nothing() {
        assert!(extract(&json!(null)).is_empty());
        assert!(extract(&json!({"resourceType": "NotAType", "id": "x"})).is_empty());
        assert!(extract(&json!({"id": "x"})).is_empty());
        // Malformed elements are skipped; only `deceased` (always true or false) remains.
        let malformed =
            extract(&json!({"resourceType": "Patient", "name": "not an object", "birthDate": 12, "gender": {}}));
        assert_eq!(malformed, [IndexEntry { param: "deceased".into(), value: token(None, "false") }]);
    }

    #[test]
    fn output_order_follows_definition_then_document_order() {
        let entries = extract(&example("patient-example.json"));
        let params = definitions().search_params("Patient");
        let positions: Vec<usize> =
            entries.iter().map(|e| params.iter().position(|p| p.code == e.param).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(extract(&example("patient-example.json")), entries);
    }

    #[test]
    fn parser_follows_fhirpath_precedence_and_rejects_junk() {
        let ast = Parser::parse("a.b | c.d is X and e != false").unwrap();
        let Ast::And(lhs, rhs) = ast else { panic!("and is loosest") };
        assert!(matches!(*lhs, Ast::Union(_, ref r) if matches!(**r, Ast::Is(..))));
        assert!(matches!(*rhs, Ast::Equals(_, ref r, true) if **r == Ast::Bool(false)));
        let condition = Ast::Equals(Box::new(Ast::Ident("system".into())), Box::new(Ast::Str("e'mail".into())), false);
        let expected = Ast::Dot(Box::new(Ast::Ident("x".into())), Box::new(Ast::Call("where".into(), vec![condition])));
        assert_eq!(Parser::parse("x.where(system='e\\'mail')").unwrap(), expected);
        assert!(
            matches!(Parser::parse("Bundle.entry[0].resource").unwrap(), Ast::Dot(ref l, _) if matches!(**l, Ast::Index(..)))
        );
        for bad in ["", "a.", "a.where(", "(a", "a | ", "'open", "a ! b", "a # b", "a.b)"] {
            assert!(Parser::parse(bad).is_err(), "{bad:?} should not parse");
        }
        let param = |expression: &str| SearchParamDef {
            url: String::new(),
            code: "x".into(),
            base: vec!["Patient".into()],
            kind: SearchParamType::Token,
            expression: Some(expression.into()),
            targets: Vec::new(),
        };
        assert!(compile_param("Patient", &param("Patient.nonsense")).is_err());
        assert!(compile_param("Patient", &param("Patient.name.frobnicate()")).is_err());
        assert!(compile_param("Patient", &param("Patient.gender.ofType(Quantity)")).is_err());
        assert!(matches!(compile_param("Patient", &param("Observation.code")).unwrap().root, Node::Empty));
    }
}
