//! `$filter` as 1C's standard interface reads it: comparisons (`eq ne gt ge lt le`), `and`,
//! `or`, `not`, parentheses, `substringof('text', Field)`, literals `'text'` (a quote doubled),
//! `guid'…'`, `datetime'…'`, numbers, `true`, `false`, `null`.
//!
//! Keywords are lower case; tokens are separated by spaces — a `+` is not a space (1C does not
//! read it as one), so a filter sent form-encoded fails to parse. A field the entity set does
//! not have, a malformed GUID, a GUID compared with text: a parse error, as 1C answers.

use serde_json::{Map, Value};

use super::schema::Edm;

/// A filter that could not be read: what 1C's answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FilterError {
    /// Code 14: the expression itself is malformed.
    Syntax(String),
    /// Code 6: a field the entity set does not have.
    UnknownField(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Guid(String),
    DateTime(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Guid(String),
    DateTime(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Field(String, Edm),
    Lit(Lit),
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Cmp(Operand, Op, Operand),
    Substring(String, String, Edm),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

fn syntax(detail: &str) -> FilterError {
    FilterError::Syntax(detail.to_string())
}

fn lex(s: &str) -> Result<Vec<Tok>, FilterError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let quoted = |i: &mut usize| -> Result<String, FilterError> {
        // At the opening quote.
        *i += 1;
        let mut text = String::new();
        loop {
            match chars.get(*i) {
                None => return Err(syntax("an unclosed quote")),
                Some('\'') if chars.get(*i + 1) == Some(&'\'') => {
                    text.push('\'');
                    *i += 2;
                }
                Some('\'') => {
                    *i += 1;
                    return Ok(text);
                }
                Some(c) => {
                    text.push(*c);
                    *i += 1;
                }
            }
        }
    };
    while let Some(&c) = chars.get(i) {
        match c {
            ' ' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '\'' => out.push(Tok::Str(quoted(&mut i)?)),
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(Tok::Num(text.parse().map_err(|_| syntax("a malformed number"))?));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'\'') && (word == "guid" || word == "datetime") {
                    let v = quoted(&mut i)?;
                    out.push(if word == "guid" { Tok::Guid(v) } else { Tok::DateTime(v) });
                } else {
                    out.push(Tok::Ident(word));
                }
            }
            _ => return Err(syntax("an unexpected character")),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    field: &'a dyn Fn(&str) -> Option<Edm>,
    depth: usize,
}

impl Parser<'_> {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Tok::Ident(x)) if x == w)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        self.depth += 1;
        if self.depth > 50 {
            return Err(syntax("nested too deep"));
        }
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.peek_word("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.toks.get(self.at) == Some(&Tok::LParen) {
            self.at += 1;
            let e = self.or()?;
            return match self.next() {
                Some(Tok::RParen) => Ok(e),
                _ => Err(syntax("a missing `)`")),
            };
        }
        if self.peek_word("substringof") {
            self.at += 1;
            let (Some(Tok::LParen), Some(Tok::Str(text)), Some(Tok::Comma), Some(Tok::Ident(f)), Some(Tok::RParen)) =
                (self.next(), self.next(), self.next(), self.next(), self.next())
            else {
                return Err(syntax("substringof('text', Field)"));
            };
            let edm = (self.field)(&f).ok_or(FilterError::UnknownField(f.clone()))?;
            return Ok(Expr::Substring(text, f, edm));
        }
        let left = self.operand()?;
        let op = match self.toks.get(self.at) {
            Some(Tok::Ident(w)) if ["eq", "ne", "gt", "ge", "lt", "le"].contains(&w.as_str()) => {
                let op = match w.as_str() {
                    "eq" => Op::Eq,
                    "ne" => Op::Ne,
                    "gt" => Op::Gt,
                    "ge" => Op::Ge,
                    "lt" => Op::Lt,
                    _ => Op::Le,
                };
                self.at += 1;
                op
            }
            // A bare boolean field (`DeletionMark`) is a comparison with true.
            Some(Tok::Ident(w)) if (w == "and" || w == "or") && matches!(left, Operand::Field(_, Edm::Boolean)) => {
                return Ok(Expr::Cmp(left, Op::Eq, Operand::Lit(Lit::Bool(true))));
            }
            None | Some(Tok::RParen) if matches!(left, Operand::Field(_, Edm::Boolean)) => {
                return Ok(Expr::Cmp(left, Op::Eq, Operand::Lit(Lit::Bool(true))));
            }
            Some(Tok::Ident(_)) => return Err(syntax("an unknown operator")),
            _ => return Err(syntax("a comparison without an operator")),
        };
        let right = self.operand()?;
        check_types(&left, &right)?;
        Ok(Expr::Cmp(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        Ok(match self.next() {
            Some(Tok::Ident(w)) => match w.as_str() {
                "true" => Operand::Lit(Lit::Bool(true)),
                "false" => Operand::Lit(Lit::Bool(false)),
                "null" => Operand::Lit(Lit::Null),
                _ => {
                    let edm = (self.field)(&w).ok_or(FilterError::UnknownField(w.clone()))?;
                    Operand::Field(w, edm)
                }
            },
            Some(Tok::Str(s)) => Operand::Lit(Lit::Str(s)),
            Some(Tok::Guid(g)) => {
                if !is_guid(&g) {
                    return Err(syntax("a malformed guid literal"));
                }
                Operand::Lit(Lit::Guid(g.to_ascii_lowercase()))
            }
            Some(Tok::DateTime(d)) => {
                if !is_datetime(&d) {
                    return Err(syntax("a malformed datetime literal"));
                }
                Operand::Lit(Lit::DateTime(d))
            }
            Some(Tok::Num(n)) => Operand::Lit(Lit::Num(n)),
            _ => return Err(syntax("an operand expected")),
        })
    }
}

fn kind_of(o: &Operand) -> Option<Edm> {
    match o {
        Operand::Field(_, e) => Some(*e),
        Operand::Lit(Lit::Str(_)) => Some(Edm::String),
        Operand::Lit(Lit::Guid(_)) => Some(Edm::Guid),
        Operand::Lit(Lit::DateTime(_)) => Some(Edm::DateTime),
        Operand::Lit(Lit::Num(_)) => Some(Edm::Int64),
        Operand::Lit(Lit::Bool(_)) => Some(Edm::Boolean),
        Operand::Lit(Lit::Null) => None,
    }
}

fn check_types(a: &Operand, b: &Operand) -> Result<(), FilterError> {
    match (kind_of(a), kind_of(b)) {
        (Some(x), Some(y)) if x != y => Err(syntax("operands of different types")),
        _ => Ok(()),
    }
}

pub(crate) fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_datetime(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Parses `text`; `field` names the entity set's fields and their types.
pub(crate) fn parse(text: &str, field: &dyn Fn(&str) -> Option<Edm>) -> Result<Expr, FilterError> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err(syntax("an empty filter"));
    }
    let mut p = Parser { toks, at: 0, field, depth: 0 };
    let e = p.or()?;
    if p.at != p.toks.len() {
        return Err(syntax("text after the expression"));
    }
    Ok(e)
}

fn value_of(record: &Map<String, Value>, name: &str, edm: Edm) -> Lit {
    match (record.get(name), edm) {
        (None | Some(Value::Null), _) => Lit::Null,
        (Some(Value::Bool(b)), _) => Lit::Bool(*b),
        (Some(Value::Number(n)), _) => Lit::Num(n.as_f64().unwrap_or(0.0)),
        (Some(Value::String(s)), Edm::Guid) => Lit::Guid(s.to_ascii_lowercase()),
        (Some(Value::String(s)), Edm::DateTime) => Lit::DateTime(s.clone()),
        (Some(Value::String(s)), Edm::Int64) => Lit::Num(s.parse().unwrap_or(0.0)),
        (Some(Value::String(s)), _) => Lit::Str(s.clone()),
        (Some(_), _) => Lit::Null,
    }
}

fn resolve(record: &Map<String, Value>, o: &Operand) -> Lit {
    match o {
        Operand::Field(name, edm) => value_of(record, name, *edm),
        Operand::Lit(l) => l.clone(),
    }
}

fn compare(a: &Lit, b: &Lit) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Lit::Str(x), Lit::Str(y)) | (Lit::Guid(x), Lit::Guid(y)) | (Lit::DateTime(x), Lit::DateTime(y)) => {
            Some(x.cmp(y))
        }
        (Lit::Num(x), Lit::Num(y)) => x.partial_cmp(y),
        (Lit::Bool(x), Lit::Bool(y)) => Some(x.cmp(y)),
        (Lit::Null, Lit::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

/// Whether `record` passes the filter.
pub(crate) fn eval(e: &Expr, record: &Map<String, Value>) -> bool {
    use std::cmp::Ordering::*;
    match e {
        Expr::And(a, b) => eval(a, record) && eval(b, record),
        Expr::Or(a, b) => eval(a, record) || eval(b, record),
        Expr::Not(a) => !eval(a, record),
        Expr::Substring(text, field, edm) => match value_of(record, field, *edm) {
            Lit::Str(s) => s.to_lowercase().contains(&text.to_lowercase()),
            _ => false,
        },
        Expr::Cmp(l, op, r) => {
            let ord = compare(&resolve(record, l), &resolve(record, r));
            match op {
                Op::Eq => ord == Some(Equal),
                Op::Ne => ord != Some(Equal),
                Op::Gt => ord == Some(Greater),
                Op::Ge => matches!(ord, Some(Greater | Equal)),
                Op::Lt => ord == Some(Less),
                Op::Le => matches!(ord, Some(Less | Equal)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(name: &str) -> Option<Edm> {
        match name {
            "Ref_Key" => Some(Edm::Guid),
            "DeletionMark" | "IsFolder" => Some(Edm::Boolean),
            "Description" | "Code" => Some(Edm::String),
            _ => None,
        }
    }

    #[test]
    fn filters_select_what_they_say() {
        let r = json!({"Ref_Key": "A103CB54-42EE-11EC-A7A0-F10AB59A067E", "DeletionMark": false, "Description": "ООО «Ромашка»", "Code": "0001"});
        let r = r.as_object().unwrap();
        for (f, want) in [
            ("DeletionMark eq false", true),
            ("DeletionMark eq false and Code eq '0001'", true),
            ("Code eq '0002' or Description eq 'ООО «Ромашка»'", true),
            ("not (Code ne '0001')", true),
            ("Ref_Key eq guid'a103cb54-42ee-11ec-a7a0-f10ab59a067e'", true),
            ("substringof('ромаш', Description)", true),
            ("Code gt '0000' and Code le '0001'", true),
            ("DeletionMark", false),
            ("not DeletionMark and Code eq '0001'", true),
            ("Code eq 'O''Brien'", false),
        ] {
            let e = parse(f, &fields).unwrap_or_else(|e| panic!("{f}: {e:?}"));
            assert_eq!(eval(&e, r), want, "{f}");
        }
    }

    #[test]
    fn bad_filters_are_refused_as_1c_refuses_them() {
        for f in [
            "DeletionMark+eq+false",
            "Code eq",
            "Code = '1'",
            "(Code eq '1'",
            "Code eq 'x",
            "Ref_Key eq guid'x'",
            "Ref_Key eq '1'",
            "",
        ] {
            assert!(matches!(parse(f, &fields), Err(FilterError::Syntax(_))), "{f}");
        }
        assert_eq!(parse("Nope eq 1", &fields), Err(FilterError::UnknownField("Nope".into())));
    }

    proptest::proptest! {
        /// Any text: a filter or a refusal, never a panic.
        #[test]
        fn any_text_parses_or_is_refused(s in "\\PC{0,80}") {
            if let Ok(e) = parse(&s, &fields) {
                let _ = eval(&e, &Map::new());
            }
        }
    }
}
