//! SCIM filters (RFC 7644 §3.4.2.2) parsed into a syntax tree.
//!
//! A filter is never spliced into SQL: it is parsed here, every attribute is later checked
//! against an allow-list, and values are bound as parameters. Parsing is total: any input
//! gives a tree or an error with its position, never a panic, and nesting and length are
//! capped so a hostile filter cannot exhaust the stack.
//!
//! Grammar (ABNF from the RFC; "and" binds tighter than "or"; keywords and operators are
//! case-insensitive):
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! compValue = false / null / true / number / string
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! ```

use std::fmt;

/// The syntax tree is the store's typed filter: the store compiles it to bound SQL.
pub use crate::store::scim_query::{AttrPath, CompareOp, Filter, Value};

/// Longer filters are refused: real IdP filters are a few dozen characters.
pub const MAX_LENGTH: usize = 2048;
/// Deeper nesting is refused, so recursion stays bounded.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    /// Byte offset in the filter where the problem was found.
    pub position: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.position + 1)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Word(String),
    String(String),
    Number(serde_json::Number),
}

fn error(message: impl Into<String>, position: usize) -> ParseError {
    ParseError {
        message: message.into(),
        position,
    }
}

fn tokenize(input: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => tokens.push((Token::Open, start)),
            b')' => tokens.push((Token::Close, start)),
            b'[' => tokens.push((Token::OpenBracket, start)),
            b']' => tokens.push((Token::CloseBracket, start)),
            b'"' => {
                // Find the closing quote, skipping escaped characters, then let a JSON
                // parser decode the escapes.
                let mut j = i + 1;
                loop {
                    match bytes.get(j) {
                        None => return Err(error("unterminated string", start)),
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                let text = input
                    .get(i..=j)
                    .ok_or_else(|| error("malformed string", start))?;
                let value: String = serde_json::from_str(text)
                    .map_err(|_| error("malformed string escape", start))?;
                tokens.push((Token::String(value), start));
                i = j + 1;
                continue;
            }
            b'-' | b'0'..=b'9' => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_digit() || b".eE+-".contains(&bytes[j]))
                {
                    j += 1;
                }
                let number: serde_json::Number = serde_json::from_str(&input[i..j])
                    .map_err(|_| error(format!("{:?} is not a number", &input[i..j]), start))?;
                tokens.push((Token::Number(number), start));
                i = j;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"$_:.-".contains(&b) => {
                let mut j = i + 1;
                while j < bytes.len()
                    && (bytes[j].is_ascii_alphanumeric() || b"$_:.-".contains(&bytes[j]))
                {
                    j += 1;
                }
                tokens.push((Token::Word(input[i..j].to_string()), start));
                i = j;
                continue;
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or('?');
                return Err(error(format!("unexpected character {ch:?}"), start));
            }
        }
        i += 1;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    next: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(t, _)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(_, p)| *p)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(&token) {
            self.next += 1;
            Ok(())
        } else {
            Err(error(format!("expected {what}"), self.position()))
        }
    }

    fn or(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        if depth > MAX_DEPTH {
            return Err(error(
                format!("filter nests deeper than {MAX_DEPTH} levels"),
                self.position(),
            ));
        }
        let mut left = self.and(depth, in_brackets)?;
        while self.keyword("or") {
            self.next += 1;
            let right = self.and(depth + 1, in_brackets)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        let mut left = self.unary(depth, in_brackets)?;
        while self.keyword("and") {
            self.next += 1;
            let right = self.unary(depth + 1, in_brackets)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        if depth > MAX_DEPTH {
            return Err(error(
                format!("filter nests deeper than {MAX_DEPTH} levels"),
                self.position(),
            ));
        }
        if self.keyword("not")
            && self.tokens.get(self.next + 1).map(|(t, _)| t) == Some(&Token::Open)
        {
            self.next += 2;
            let inner = self.or(depth + 1, in_brackets)?;
            self.expect(Token::Close, "\")\" to close \"not (\"")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.next += 1;
            let inner = self.or(depth + 1, in_brackets)?;
            self.expect(Token::Close, "\")\"")?;
            return Ok(inner);
        }
        self.attribute_expression(depth, in_brackets)
    }

    fn attribute_expression(
        &mut self,
        depth: usize,
        in_brackets: bool,
    ) -> Result<Filter, ParseError> {
        let at = self.position();
        let Some(Token::Word(word)) = self.peek().cloned() else {
            return Err(error("expected an attribute name", at));
        };
        let path = AttrPath::parse(&word)
            .ok_or_else(|| error(format!("{word:?} is not an attribute path"), at))?;
        self.next += 1;
        if self.peek() == Some(&Token::OpenBracket) {
            if in_brackets {
                return Err(error("value filters cannot nest", self.position()));
            }
            self.next += 1;
            let inner = self.or(depth + 1, true)?;
            self.expect(Token::CloseBracket, "\"]\"")?;
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        if self.keyword("pr") {
            self.next += 1;
            return Ok(Filter::Present(path));
        }
        let op_at = self.position();
        let op = match self.peek() {
            Some(Token::Word(w)) => CompareOp::from_word(w),
            _ => None,
        }
        .ok_or_else(|| {
            error(
                "expected an operator (eq, ne, co, sw, ew, gt, lt, ge, le or pr)",
                op_at,
            )
        })?;
        self.next += 1;
        let value_at = self.position();
        let value = match self.peek().cloned() {
            Some(Token::String(s)) => Value::String(s),
            Some(Token::Number(n)) => Value::Number(n),
            Some(Token::Word(w)) if w == "true" => Value::Bool(true),
            Some(Token::Word(w)) if w == "false" => Value::Bool(false),
            Some(Token::Word(w)) if w == "null" => Value::Null,
            _ => {
                return Err(error(
                    "expected a value: a string, number, true, false or null",
                    value_at,
                ))
            }
        };
        self.next += 1;
        Ok(Filter::Compare { path, op, value })
    }
}

/// Parses a filter; the error says what was wrong and where, for a 400 `invalidFilter`.
pub fn parse(input: &str) -> Result<Filter, ParseError> {
    if input.len() > MAX_LENGTH {
        return Err(error(
            format!("filter is longer than {MAX_LENGTH} characters"),
            MAX_LENGTH,
        ));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(error("empty filter", 0));
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        end: input.len(),
    };
    let filter = parser.or(0, false)?;
    if parser.next != parser.tokens.len() {
        return Err(error("unexpected text after the filter", parser.position()));
    }
    Ok(filter)
}

/// Whether one element of a multi-valued attribute (`{"type": "work", "value": …}`)
/// matches a value filter, as PATCH paths like `emails[type eq "work"].value` select them.
/// Strings compare case-insensitively, except `value` when `value_case_exact` (ids);
/// booleans also match their string spelling ("True", as Entra sends it).
pub fn element_matches(
    filter: &Filter,
    element: &serde_json::Value,
    value_case_exact: bool,
) -> bool {
    use serde_json::Value as J;
    let field = |path: &AttrPath| -> Option<&J> {
        let object = element.as_object()?;
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&path.name))
            .map(|(_, v)| v)
    };
    match filter {
        Filter::And(a, b) => {
            element_matches(a, element, value_case_exact)
                && element_matches(b, element, value_case_exact)
        }
        Filter::Or(a, b) => {
            element_matches(a, element, value_case_exact)
                || element_matches(b, element, value_case_exact)
        }
        Filter::Not(a) => !element_matches(a, element, value_case_exact),
        Filter::ValuePath { .. } => false,
        Filter::Present(path) => {
            field(path).is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
        }
        Filter::Compare { path, op, value } => {
            let actual = field(path);
            let exact = value_case_exact && path.name.eq_ignore_ascii_case("value");
            let ordering = match (actual, value) {
                (None | Some(J::Null), Value::Null) => Some(std::cmp::Ordering::Equal),
                (None | Some(J::Null), _) | (Some(_), Value::Null) => None,
                (Some(actual), Value::Bool(b)) => as_bool(actual).map(|a| a.cmp(b)),
                (Some(J::Bool(a)), Value::String(s)) => {
                    as_bool(&J::String(s.clone())).map(|b| a.cmp(&b))
                }
                (Some(J::Number(a)), Value::Number(b)) => a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(a, b)| a.partial_cmp(&b)),
                (Some(actual), Value::String(wanted)) => {
                    let text = match actual {
                        J::String(s) => s.clone(),
                        J::Number(n) => n.to_string(),
                        _ => return false,
                    };
                    let (a, w) = if exact {
                        (text, wanted.clone())
                    } else {
                        (text.to_lowercase(), wanted.to_lowercase())
                    };
                    return match op {
                        CompareOp::Co => a.contains(&w),
                        CompareOp::Sw => a.starts_with(&w),
                        CompareOp::Ew => a.ends_with(&w),
                        _ => compare_ordering(*op, a.cmp(&w)),
                    };
                }
                _ => None,
            };
            match ordering {
                Some(o) => compare_ordering(*op, o),
                None => *op == CompareOp::Ne,
            }
        }
    }
}

/// A boolean, also when sent as a string ("True", as Entra sends it).
pub fn as_bool(value: &serde_json::Value) -> Option<bool> {
    use serde_json::Value as J;
    match value {
        J::Bool(b) => Some(*b),
        J::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        J::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn compare_ordering(op: CompareOp, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CompareOp::Eq => ordering == Equal,
        CompareOp::Ne => ordering != Equal,
        CompareOp::Gt => ordering == Greater,
        CompareOp::Ge => ordering != Less,
        CompareOp::Lt => ordering == Less,
        CompareOp::Le => ordering != Greater,
        // Substring operators on non-strings match nothing.
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod sql_tests;
#[cfg(test)]
mod tests;
