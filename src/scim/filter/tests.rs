use proptest::prelude::*;

use super::*;

fn path(text: &str) -> AttrPath {
    AttrPath::parse(text).unwrap()
}

fn eq(attr: &str, value: &str) -> Filter {
    Filter::Compare {
        path: path(attr),
        op: CompareOp::Eq,
        value: Value::String(value.into()),
    }
}

#[test]
fn every_example_of_rfc_7644_parses() {
    let examples = [
        r#"userName Eq "john""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];
    for example in examples {
        let parsed = parse(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        assert_eq!(parse(&parsed.to_string()).unwrap(), parsed, "{example}");
    }
}

#[test]
fn okta_and_entra_filters_parse_as_meant() {
    assert_eq!(
        parse(r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#).unwrap(),
        eq("userName", "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081")
    );
    assert_eq!(
        parse(r#"externalId eq "00u1abcd""#).unwrap(),
        eq("externalId", "00u1abcd")
    );
    assert_eq!(
        parse(r#"displayName eq "Group A""#).unwrap(),
        eq("displayName", "Group A")
    );
    assert_eq!(
        parse(r#"members[value eq "2819c223"]"#).unwrap(),
        Filter::ValuePath {
            path: path("members"),
            filter: Box::new(eq("value", "2819c223"))
        }
    );
    // Entra without its feature flag sends booleans as strings; the parser keeps the string
    // and the attribute's type decides later.
    assert_eq!(
        parse(r#"roles[primary eq "True"]"#).unwrap(),
        Filter::ValuePath {
            path: path("roles"),
            filter: Box::new(eq("primary", "True"))
        }
    );
    let department =
        parse(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#)
            .unwrap();
    let Filter::Compare { path, .. } = department else {
        panic!()
    };
    assert_eq!(
        path.uri.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(path.name, "department");
    assert_eq!(path.sub, None);
}

#[test]
fn and_binds_tighter_than_or_and_keywords_ignore_case() {
    let f = parse(r#"a eq "1" OR b eq "2" AnD c eq "3""#).unwrap();
    assert_eq!(
        f,
        Filter::Or(
            Box::new(eq("a", "1")),
            Box::new(Filter::And(Box::new(eq("b", "2")), Box::new(eq("c", "3"))))
        )
    );
    let f = parse(r#"(a eq "1" or b eq "2") and c eq "3""#).unwrap();
    assert!(matches!(f, Filter::And(..)));
    let f = parse(r#"NOT (active eq true)"#).unwrap();
    assert_eq!(
        f,
        Filter::Not(Box::new(Filter::Compare {
            path: path("active"),
            op: CompareOp::Eq,
            value: Value::Bool(true)
        }))
    );
}

#[test]
fn values_are_json() {
    let f = parse(r#"displayName eq "a\"b\\c\u00e9\n""#).unwrap();
    assert_eq!(f, eq("displayName", "a\"b\\cé\n"));
    let f = parse("age ge -1.5e3").unwrap();
    let Filter::Compare {
        value: Value::Number(n),
        ..
    } = f
    else {
        panic!()
    };
    assert_eq!(n.as_f64(), Some(-1500.0));
    assert!(matches!(
        parse("manager eq null").unwrap(),
        Filter::Compare {
            value: Value::Null,
            ..
        }
    ));
    assert!(matches!(
        parse("active eq false").unwrap(),
        Filter::Compare {
            value: Value::Bool(false),
            ..
        }
    ));
    // JSON literals are lower-case; anything else is not a value.
    assert!(parse("active eq True").is_err());
}

#[test]
fn bad_filters_say_what_and_where() {
    let cases = [
        ("", "empty filter", 0),
        ("userName eq", "expected a value", 11),
        (r#"userName like "x""#, "expected an operator", 9),
        (r#"userName eq "unterminated"#, "unterminated string", 12),
        (r#"(userName eq "x""#, r#"expected ")""#, 16),
        (r#"emails[type eq "work""#, r#"expected "]""#, 21),
        (
            r#"emails[type[value eq "x"]]"#,
            "value filters cannot nest",
            11,
        ),
        (
            r#"userName eq "x" extra"#,
            "unexpected text after the filter",
            16,
        ),
        (r#"1abc eq "x""#, "expected an attribute name", 0),
        (
            r#"userName eq "x"; DROP TABLE users"#,
            "unexpected character ';'",
            15,
        ),
        (r#"userName eq "\q""#, "malformed string escape", 12),
        (r#"bad:attr eq "x""#, "is not an attribute path", 0),
        (r#"userName eq "x" and"#, "expected an attribute name", 19),
    ];
    for (filter, message, position) in cases {
        let err = parse(filter).expect_err(filter);
        assert!(err.message.contains(message), "{filter:?}: {err}");
        assert_eq!(err.position, position, "{filter:?}: {err}");
    }
}

#[test]
fn size_and_depth_are_capped() {
    let long = format!(r#"userName eq "{}""#, "x".repeat(MAX_LENGTH));
    assert!(parse(&long).unwrap_err().message.contains("longer than"));
    let deep = format!(
        "{}a eq 1{}",
        "(".repeat(MAX_DEPTH + 5),
        ")".repeat(MAX_DEPTH + 5)
    );
    assert!(parse(&deep).unwrap_err().message.contains("nests deeper"));
    let nots = format!(
        "{}a eq 1{}",
        "not (".repeat(MAX_DEPTH + 5),
        ")".repeat(MAX_DEPTH + 5)
    );
    assert!(parse(&nots).unwrap_err().message.contains("nests deeper"));
    let ok = format!("{}a eq 1{}", "(".repeat(10), ")".repeat(10));
    assert!(parse(&ok).is_ok());
}

fn attr_path() -> impl Strategy<Value = AttrPath> {
    let name = "[a-zA-Z][a-zA-Z0-9_-]{0,8}";
    (
        prop::option::of(prop::sample::select(vec![
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ])),
        name,
        prop::option::of(name),
    )
        .prop_filter("not a keyword", |(_, n, _)| {
            !["and", "or", "not", "pr", "true", "false", "null"]
                .contains(&n.to_ascii_lowercase().as_str())
        })
        .prop_map(|(uri, name, sub)| AttrPath {
            uri: uri.map(str::to_string),
            name,
            sub,
        })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<String>().prop_map(Value::String),
    ]
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Lt,
        CompareOp::Ge,
        CompareOp::Le,
    ])
}

/// Filters whose value paths do not nest, as the grammar requires.
fn filter(allow_value_path: bool) -> BoxedStrategy<Filter> {
    let leaf = prop_oneof![
        (attr_path(), op(), value()).prop_map(|(path, op, value)| Filter::Compare {
            path,
            op,
            value
        }),
        attr_path().prop_map(Filter::Present),
    ];
    leaf.prop_recursive(4, 24, 2, move |inner| {
        let mut options = vec![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b)))
                .boxed(),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b)))
                .boxed(),
            inner.clone().prop_map(|f| Filter::Not(Box::new(f))).boxed(),
        ];
        if allow_value_path {
            options.push(
                (attr_path(), filter(false))
                    .prop_map(|(path, f)| Filter::ValuePath {
                        path,
                        filter: Box::new(f),
                    })
                    .boxed(),
            );
        }
        prop::strategy::Union::new(options)
    })
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever arrives, the parser answers: a tree or an error, never a panic.
    #[test]
    fn never_panics_on_any_input(input in any::<String>()) {
        let _ = parse(&input);
    }

    /// Nor on inputs made of the filter language's own pieces, which reach deeper.
    #[test]
    fn never_panics_on_filter_like_input(parts in prop::collection::vec(prop::sample::select(vec![
        "(", ")", "[", "]", "not", "and", "or", "pr", "eq", "co", "\"x\"", "\"", "\\", "1", "-", "1e", "true",
        "null", "userName", "emails", "urn:a:b:c", ".", ":", " ", "name.givenName", "]]", "[[",
    ]), 0..40)) {
        let _ = parse(&parts.concat());
        let _ = parse(&parts.join(" "));
    }

    /// Printing a filter and parsing it back gives the same filter.
    #[test]
    fn printing_round_trips(f in filter(true)) {
        let printed = f.to_string();
        prop_assert_eq!(parse(&printed).map_err(|e| format!("{printed}: {e}")), Ok(f));
    }
}
