//! SCIM filters as the store takes them (a typed syntax tree, which the SCIM front door
//! parses from text), compiled here to SQL.
//!
//! Every attribute a filter names is looked up in an allow-list ([`Resource::resolve`]);
//! anything else is `invalidFilter`. Values, and even the JSON paths into stored
//! attributes, are bound as parameters: the SQL text is assembled only from constants.
//! The indexed attributes (userName, externalId, displayName, id) are columns, so the
//! lookups Okta and Entra make before every create use an index on both backends.

use std::fmt;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attr op value`
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
    /// `attr pr`
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some element of a multi-valued attribute matches `filter`, whose
    /// paths are relative to the element (e.g. `emails[type eq "work"]`).
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// `urn:…:User:name.givenName` → uri `urn:…:User`, name `name`, sub `givenName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub uri: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

impl CompareOp {
    pub fn from_word(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "lt" => CompareOp::Lt,
            "ge" => CompareOp::Ge,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Lt => "lt",
            CompareOp::Ge => "ge",
            CompareOp::Le => "le",
        }
    }
}

impl AttrPath {
    /// Parses `[URI ":"] ATTRNAME ["." ATTRNAME]`. The URI is everything up to the last
    /// colon (schema URNs contain dots, as in `…:enterprise:2.0:User`).
    pub fn parse(text: &str) -> Option<AttrPath> {
        let (uri, rest) = match text.rfind(':') {
            Some(i) => (Some(&text[..i]), &text[i + 1..]),
            None => (None, text),
        };
        if let Some(uri) = uri {
            let ok = uri.len() > 4
                && uri.to_ascii_lowercase().starts_with("urn:")
                && uri
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":.-_".contains(&b));
            if !ok {
                return None;
            }
        }
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        let valid = |n: &str| {
            let mut bytes = n.bytes();
            matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'$')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !valid(name) || !sub.is_none_or(valid) {
            return None;
        }
        Some(AttrPath {
            uri: uri.map(str::to_string),
            name: name.to_string(),
            sub: sub.map(str::to_string),
        })
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        write!(f, "{}", self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
        }
    }
}

/// Prints a filter in the RFC's syntax, fully parenthesised, so it parses back to itself.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(a, b) => write!(f, "({a} and {b})"),
            Filter::Or(a, b) => write!(f, "({a} or {b})"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Str(String),
    Int(i64),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// A WHERE fragment with `$n` placeholders (both backends read them) and what to bind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    User,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `lowered`: the column holds the lower-cased value already.
    Str {
        case_exact: bool,
        lowered: bool,
    },
    Bool,
    Time,
}

const CI: Kind = Kind::Str {
    case_exact: false,
    lowered: false,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Column(&'static str, Kind),
    /// A scalar inside the `attributes` JSON column.
    Json(Vec<String>, Kind),
    /// A multi-valued attribute inside `attributes` (emails, phoneNumbers…); filters on it
    /// hold when some element matches.
    Multi(Vec<String>),
    /// A group's members (the member table).
    Members,
    /// A user's groups (the member table, the other way).
    UserGroups,
}

/// Sub-attributes of multi-valued elements, and their kind.
fn element_kind(sub: &str) -> Option<(&'static str, Kind)> {
    Some(match sub.to_ascii_lowercase().as_str() {
        "value" => ("value", CI),
        "type" => ("type", CI),
        "display" => ("display", CI),
        "primary" => ("primary", Kind::Bool),
        _ => return None,
    })
}

fn strip_core_uri(path: &AttrPath, core: &str) -> Option<Option<String>> {
    match &path.uri {
        None => Some(None),
        Some(uri) if uri.eq_ignore_ascii_case(core) => Some(None),
        Some(uri) if uri.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) => {
            Some(Some(ENTERPRISE_SCHEMA.to_string()))
        }
        Some(_) => None,
    }
}

/// The User schema's attributes in their canonical spelling, one list each, shared by the
/// filter allow-list, the User parser and `/Schemas`.
///
/// Scalar string attributes that live in JSON.
pub(crate) const USER_JSON_SCALARS: &[&str] = &[
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
];
/// Multi-valued attributes.
pub(crate) const USER_MULTI: &[&str] = &[
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "entitlements",
    "roles",
    "x509Certificates",
];
/// Sub-attributes of `name`.
pub(crate) const NAME_SUBS: &[&str] = &[
    "formatted",
    "familyName",
    "givenName",
    "middleName",
    "honorificPrefix",
    "honorificSuffix",
];
/// The enterprise extension's string attributes (`manager` is complex).
pub(crate) const ENTERPRISE_SCALARS: &[&str] = &[
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
];

/// `name` in its canonical spelling, when the list has it (names are case-insensitive).
pub(crate) fn canonical(list: &[&'static str], name: &str) -> Option<&'static str> {
    list.iter().copied().find(|n| n.eq_ignore_ascii_case(name))
}

impl Resource {
    fn core_schema(self) -> &'static str {
        match self {
            Resource::User => USER_SCHEMA,
            Resource::Group => GROUP_SCHEMA,
        }
    }

    /// The allow-list: where an attribute path lives, or `None` when filters may not use it.
    pub fn resolve(self, path: &AttrPath) -> Option<Target> {
        let extension = strip_core_uri(path, self.core_schema())?;
        let name = path.name.to_ascii_lowercase();
        let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
        let sub = sub.as_deref();
        if let Some(uri) = extension {
            if self != Resource::User {
                return None;
            }
            if name == "manager" && matches!(sub, None | Some("value")) {
                // The manager's id: compared exactly, like every id.
                return Some(Target::Json(
                    vec![uri, "manager".into(), "value".into()],
                    Kind::Str {
                        case_exact: true,
                        lowered: false,
                    },
                ));
            }
            let attr = canonical(ENTERPRISE_SCALARS, &name).filter(|_| sub.is_none())?;
            return Some(Target::Json(vec![uri, attr.into()], CI));
        }
        // What every resource has.
        let common = match (name.as_str(), sub) {
            ("meta", Some("created")) => Some(Target::Column("created_at", Kind::Time)),
            ("meta", Some("lastmodified")) => Some(Target::Column("updated_at", Kind::Time)),
            // The opaque SCIM id, compared exactly like every id.
            ("id", None) => Some(Target::Column(
                "scim_id",
                Kind::Str {
                    case_exact: true,
                    lowered: false,
                },
            )),
            ("externalid", None) => Some(Target::Column(
                "external_id",
                Kind::Str {
                    case_exact: true,
                    lowered: false,
                },
            )),
            _ => None,
        };
        if common.is_some() {
            return common;
        }
        match self {
            Resource::Group => match (name.as_str(), sub) {
                ("displayname", None) => Some(Target::Column(
                    "display_name_normalized",
                    Kind::Str {
                        case_exact: false,
                        lowered: true,
                    },
                )),
                ("members", None | Some("value")) => Some(Target::Members),
                _ => None,
            },
            Resource::User => match (name.as_str(), sub) {
                ("username", None) => Some(Target::Column(
                    "user_name_normalized",
                    Kind::Str {
                        case_exact: false,
                        lowered: true,
                    },
                )),
                ("displayname", None) => Some(Target::Column("display_name", CI)),
                ("active", None) => Some(Target::Column("active", Kind::Bool)),
                ("name", Some("givenname")) => Some(Target::Column("given_name", CI)),
                ("name", Some("familyname")) => Some(Target::Column("family_name", CI)),
                ("name", Some(sub)) => {
                    let sub = canonical(NAME_SUBS, sub)?;
                    Some(Target::Json(vec!["name".into(), sub.into()], CI))
                }
                ("groups", None | Some("value")) => Some(Target::UserGroups),
                (name, sub) => {
                    if let Some(attr) = canonical(USER_MULTI, name) {
                        // The sub-attribute is checked against the element's when compiled.
                        return Some(Target::Multi(vec![attr.into()]));
                    }
                    let attr = canonical(USER_JSON_SCALARS, name).filter(|_| sub.is_none())?;
                    Some(Target::Json(vec![attr.into()], CI))
                }
            },
        }
    }
}

/// Why a filter cannot be compiled; reported as `invalidFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError(pub String);

struct Compiler {
    dialect: Dialect,
    resource: Resource,
    /// The table alias of the resource (`r`).
    alias: &'static str,
    out: Sql,
}

fn err(message: impl Into<String>) -> CompileError {
    CompileError(message.into())
}

impl Compiler {
    fn bind(&mut self, bind: Bind) -> String {
        self.out.binds.push(bind);
        format!("${}", self.out.binds.len())
    }

    fn json_path(&mut self, path: &[String]) -> String {
        match self.dialect {
            Dialect::Sqlite => {
                let mut text = String::from("$");
                for segment in path {
                    text.push_str(".\"");
                    text.push_str(&segment.replace('"', "\\\""));
                    text.push('"');
                }
                self.bind(Bind::Str(text))
            }
            Dialect::Postgres => {
                // A text[] literal; the segments come from the allow-list, and are bound
                // all the same.
                let quoted: Vec<String> = path
                    .iter()
                    .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
                    .collect();
                let p = self.bind(Bind::Str(format!("{{{}}}", quoted.join(","))));
                format!("CAST({p} AS text[])")
            }
        }
    }

    /// A scalar JSON value as SQL text (SQLite gives its native type).
    fn json_scalar(&mut self, source: &str, path: &[String]) -> String {
        let p = self.json_path(path);
        match self.dialect {
            Dialect::Sqlite => format!("json_extract({source}, {p})"),
            Dialect::Postgres => format!("({source} #>> {p})"),
        }
    }

    fn filter(&mut self, filter: &Filter) -> Result<String, CompileError> {
        Ok(match filter {
            Filter::And(a, b) => format!("({} AND {})", self.filter(a)?, self.filter(b)?),
            Filter::Or(a, b) => format!("({} OR {})", self.filter(a)?, self.filter(b)?),
            // SQL's NULL would make `not (externalId eq "x")` false for a User without an
            // externalId; SCIM's logic has two values. Only NOT tells NULL from FALSE (AND,
            // OR and WHERE treat them alike), so only NOT's operand is made two-valued; a
            // COALESCE around every comparison would keep the indexes from being used.
            Filter::Not(a) => format!("(NOT COALESCE({}, FALSE))", self.filter(a)?),
            Filter::Present(path) => {
                let target = self.target(path)?;
                self.present(target, path)?
            }
            Filter::Compare { path, op, value } => {
                let target = self.target(path)?;
                self.compare_target(target, path, *op, value)?
            }
            Filter::ValuePath { path, filter } => {
                let target = self.target(path)?;
                match target {
                    Target::Multi(array) => self.exists_element(&array, filter)?,
                    Target::Members | Target::UserGroups => {
                        // `members[value eq "…"]`: only `value` can be asked of a member.
                        self.membership(&target, filter)?
                    }
                    _ => return Err(err(format!("{path} is not multi-valued"))),
                }
            }
        })
    }

    fn target(&self, path: &AttrPath) -> Result<Target, CompileError> {
        self.resource
            .resolve(path)
            .ok_or_else(|| err(format!("filtering on {path} is not supported")))
    }

    fn column(&self, column: &str) -> String {
        format!("{}.{column}", self.alias)
    }

    fn attributes(&self) -> String {
        self.column("attributes")
    }

    fn present(&mut self, target: Target, path: &AttrPath) -> Result<String, CompileError> {
        Ok(match target {
            Target::Column(column, Kind::Str { .. }) => {
                let c = self.column(column);
                format!("({c} IS NOT NULL AND {c} <> '')")
            }
            Target::Column(column, _) => format!("{} IS NOT NULL", self.column(column)),
            Target::Json(json, _) => {
                let source = self.attributes();
                let e = self.json_scalar(&source, &json);
                format!("({e} IS NOT NULL AND {e} <> '')")
            }
            Target::Multi(array) => {
                let inner = Filter::Present(AttrPath {
                    uri: None,
                    name: path.sub.clone().unwrap_or_else(|| "value".into()),
                    sub: None,
                });
                self.exists_element(&array, &inner)?
            }
            Target::Members | Target::UserGroups => self.membership_exists(&target, None)?,
        })
    }

    fn compare_target(
        &mut self,
        target: Target,
        path: &AttrPath,
        op: CompareOp,
        value: &Value,
    ) -> Result<String, CompileError> {
        match target {
            Target::Column(column, kind) => {
                let expr = self.column(column);
                self.compare(&expr, kind, op, value, false)
            }
            Target::Json(json, kind) => {
                let source = self.attributes();
                let expr = self.json_scalar(&source, &json);
                self.compare(&expr, kind, op, value, true)
            }
            Target::Multi(array) => {
                // `emails co "x"` and `emails.value co "x"`: some element's sub-attribute.
                let inner = Filter::Compare {
                    path: AttrPath {
                        uri: None,
                        name: path.sub.clone().unwrap_or_else(|| "value".into()),
                        sub: None,
                    },
                    op,
                    value: value.clone(),
                };
                self.exists_element(&array, &inner)
            }
            Target::Members | Target::UserGroups => {
                let inner = Filter::Compare {
                    path: AttrPath {
                        uri: None,
                        name: "value".into(),
                        sub: None,
                    },
                    op,
                    value: value.clone(),
                };
                self.membership(&target, &inner)
            }
        }
    }

    /// `EXISTS` over the elements of a JSON array, with `filter` relative to an element.
    fn exists_element(
        &mut self,
        array: &[String],
        filter: &Filter,
    ) -> Result<String, CompileError> {
        let source = self.attributes();
        let path = self.json_path(array);
        let from = match self.dialect {
            Dialect::Sqlite => format!("json_each({source}, {path}) e"),
            Dialect::Postgres => format!(
                "jsonb_array_elements(CASE WHEN jsonb_typeof({source} #> {path}) = 'array' THEN {source} #> {path} ELSE '[]'::jsonb END) AS e(value)"
            ),
        };
        let condition = self.element(filter)?;
        Ok(format!("EXISTS (SELECT 1 FROM {from} WHERE {condition})"))
    }

    fn element(&mut self, filter: &Filter) -> Result<String, CompileError> {
        Ok(match filter {
            Filter::And(a, b) => format!("({} AND {})", self.element(a)?, self.element(b)?),
            Filter::Or(a, b) => format!("({} OR {})", self.element(a)?, self.element(b)?),
            Filter::Not(a) => format!("(NOT COALESCE({}, FALSE))", self.element(a)?),
            Filter::ValuePath { path, .. } => {
                return Err(err(format!("{path}: value filters do not nest")))
            }
            Filter::Present(path) => {
                let (sub, _) = self.element_sub(path)?;
                let e = self.json_scalar("e.value", &[sub.to_string()]);
                format!("({e} IS NOT NULL AND {e} <> '')")
            }
            Filter::Compare { path, op, value } => {
                let (sub, kind) = self.element_sub(path)?;
                let e = self.json_scalar("e.value", &[sub.to_string()]);
                self.compare(&e, kind, *op, value, true)?
            }
        })
    }

    fn element_sub(&self, path: &AttrPath) -> Result<(&'static str, Kind), CompileError> {
        if path.uri.is_some() || path.sub.is_some() {
            return Err(err(format!("{path} is not a sub-attribute")));
        }
        element_kind(&path.name).ok_or_else(|| err(format!("filtering on {path} is not supported")))
    }

    /// Membership filters only ask about the member's id (`value`).
    fn membership(&mut self, target: &Target, filter: &Filter) -> Result<String, CompileError> {
        match filter {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Value::String(id),
            } if path.name.eq_ignore_ascii_case("value") && path.sub.is_none() => {
                self.membership_exists(target, Some(id))
            }
            Filter::Present(path) if path.name.eq_ignore_ascii_case("value") => {
                self.membership_exists(target, None)
            }
            _ => Err(err(
                "members and groups can only be filtered by value eq \"id\" or pr",
            )),
        }
    }

    fn membership_exists(
        &mut self,
        target: &Target,
        id: Option<&str>,
    ) -> Result<String, CompileError> {
        // The other side is named by its SCIM id.
        let (own, other, other_table) = match target {
            Target::Members => ("group_id", "scim_user_id", "scim_users"),
            _ => ("scim_user_id", "group_id", "scim_groups"),
        };
        let me = self.column("id");
        let mut sql = format!("EXISTS (SELECT 1 FROM scim_group_members gm WHERE gm.{own} = {me}");
        if let Some(id) = id {
            let p = self.bind(Bind::Str(id.to_string()));
            sql.push_str(&format!(
                " AND gm.{other} IN (SELECT o.id FROM {other_table} o WHERE o.scim_id = {p})"
            ));
        }
        sql.push(')');
        Ok(sql)
    }

    /// `expr op value` for an attribute of `kind`. `json`: `expr` is a JSON extraction
    /// (text on PostgreSQL, native on SQLite).
    fn compare(
        &mut self,
        expr: &str,
        kind: Kind,
        op: CompareOp,
        value: &Value,
        json: bool,
    ) -> Result<String, CompileError> {
        if matches!(value, Value::Null) {
            return match op {
                CompareOp::Eq => Ok(format!("{expr} IS NULL")),
                CompareOp::Ne => Ok(format!("{expr} IS NOT NULL")),
                _ => Err(err(format!("{} cannot compare with null", op.as_str()))),
            };
        }
        match kind {
            Kind::Bool => {
                let wanted = match value {
                    Value::Bool(b) => *b,
                    // Entra sends booleans as strings ("True") in filters too.
                    Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                    Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                    other => return Err(err(format!("{other} is not a boolean"))),
                };
                let (negate, sql_op) = match op {
                    CompareOp::Eq => (false, "="),
                    CompareOp::Ne => (true, "="),
                    other => {
                        return Err(err(format!(
                            "{} does not apply to a boolean",
                            other.as_str()
                        )))
                    }
                };
                let test = if json && self.dialect == Dialect::Postgres {
                    let p = self.bind(Bind::Str(wanted.to_string()));
                    format!("COALESCE({expr}, 'false') {sql_op} {p}")
                } else if json {
                    let p = self.bind(Bind::Bool(wanted));
                    format!("COALESCE({expr}, 0) {sql_op} {p}")
                } else {
                    let p = self.bind(Bind::Bool(wanted));
                    format!("{expr} {sql_op} {p}")
                };
                Ok(if negate {
                    format!("(NOT {test})")
                } else {
                    test
                })
            }
            Kind::Time => {
                let Value::String(text) = value else {
                    return Err(err(format!("{value} is not a date-time")));
                };
                let at = DateTime::parse_from_rfc3339(text)
                    .map_err(|_| err(format!("{text:?} is not an RFC 3339 date-time")))?
                    .with_timezone(&Utc);
                let sql_op = ordering(op)
                    .ok_or_else(|| err(format!("{} does not apply to a date", op.as_str())))?;
                let p = self.bind(Bind::Time(at));
                Ok(format!("{expr} {sql_op} {p}"))
            }
            Kind::Str {
                case_exact,
                lowered,
            } => {
                if let Value::Bool(_) = value {
                    return Err(err(format!("{value} is not a string")));
                }
                let text = scalar_text(value);
                let (expr, text) = if case_exact {
                    (expr.to_string(), text)
                } else if lowered {
                    (expr.to_string(), text.to_lowercase())
                } else {
                    (format!("LOWER({expr})"), text.to_lowercase())
                };
                self.compare_text(&expr, op, text)
            }
        }
    }

    fn compare_text(
        &mut self,
        expr: &str,
        op: CompareOp,
        text: String,
    ) -> Result<String, CompileError> {
        let p = self.bind(Bind::Str(text));
        Ok(match op {
            CompareOp::Eq => format!("{expr} = {p}"),
            // A missing attribute is not equal to anything.
            CompareOp::Ne => format!("({expr} IS NULL OR {expr} <> {p})"),
            // Substring tests without LIKE: SQLite's LIKE ignores ASCII case, PostgreSQL's
            // does not, and neither should decide case sensitivity here.
            CompareOp::Co => match self.dialect {
                Dialect::Sqlite => format!("instr({expr}, {p}) > 0"),
                Dialect::Postgres => format!("strpos({expr}, {p}) > 0"),
            },
            CompareOp::Sw => format!("substr({expr}, 1, length({p})) = {p}"),
            CompareOp::Ew => format!(
                "(length({expr}) >= length({p}) AND substr({expr}, length({expr}) - length({p}) + 1) = {p})"
            ),
            other => {
                let sql_op = ordering(other).expect("the remaining operators order");
                format!("{expr} {sql_op} {p}")
            }
        })
    }
}

fn ordering(op: CompareOp) -> Option<&'static str> {
    Some(match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        _ => return None,
    })
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
    }
}

/// Compiles `filter` on `resource` (table alias `alias`) to a WHERE fragment whose
/// placeholders start at `$1`.
pub fn compile(
    filter: &Filter,
    resource: Resource,
    dialect: Dialect,
    alias: &'static str,
) -> Result<Sql, CompileError> {
    let mut compiler = Compiler {
        dialect,
        resource,
        alias,
        out: Sql::default(),
    };
    let text = compiler.filter(filter)?;
    compiler.out.text = text;
    Ok(compiler.out)
}

/// The column a list may be sorted by: only indexed or plain columns, never JSON.
/// Whether `filter` names only allow-listed attributes of `resource`, as [`compile`] needs.
pub fn check(filter: &Filter, resource: Resource) -> Result<(), CompileError> {
    compile(filter, resource, Dialect::Sqlite, "r").map(drop)
}

pub fn sort_column(resource: Resource, attribute: &str) -> Option<&'static str> {
    let path = AttrPath::parse(attribute)?;
    match resource.resolve(&path)? {
        // Sorted by id, resources come in the order they were made: the internal key's.
        Target::Column("scim_id", _) => Some("id"),
        Target::Column(column, _) => Some(column),
        _ => None,
    }
}
