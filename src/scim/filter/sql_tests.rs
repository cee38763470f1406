//! The compiler in `store::scim_query`, fed by this parser: what each filter becomes in SQL.

use super::parse;
use crate::store::scim_query::*;

fn sqlite(filter: &str) -> Sql {
    compile(
        &parse(filter).unwrap(),
        Resource::User,
        Dialect::Sqlite,
        "r",
    )
    .unwrap()
}

#[test]
fn user_name_uses_the_lowered_column_and_binds_the_value() {
    let sql = sqlite(r#"userName eq "Alice@Example.com""#);
    assert_eq!(sql.text, "r.user_name_normalized = $1");
    assert_eq!(sql.binds, vec![Bind::Str("alice@example.com".into())]);
}

#[test]
fn external_id_is_case_exact() {
    let sql = sqlite(r#"externalId eq "AbC""#);
    assert_eq!(sql.text, "r.external_id = $1");
    assert_eq!(sql.binds, vec![Bind::Str("AbC".into())]);
}

#[test]
fn value_filters_become_exists_over_json_elements() {
    let sql = sqlite(r#"emails[type eq "work" and value co "@example.com"]"#);
    assert!(sql
        .text
        .starts_with("EXISTS (SELECT 1 FROM json_each(r.attributes, $1) e"));
    assert_eq!(sql.binds[0], Bind::Str("$.\"emails\"".into()));
    let pg = compile(
        &parse(r#"emails[type eq "work"]"#).unwrap(),
        Resource::User,
        Dialect::Postgres,
        "r",
    )
    .unwrap();
    assert!(pg.text.contains("jsonb_array_elements"), "{}", pg.text);
    assert_eq!(pg.binds[0], Bind::Str("{\"emails\"}".into()));
}

#[test]
fn only_a_negation_makes_its_operand_two_valued() {
    let sql = sqlite(r#"not (externalId eq "x")"#);
    assert_eq!(sql.text, "(NOT COALESCE(r.external_id = $1, FALSE))");
}

#[test]
fn hostile_input_stays_in_binds() {
    let sql = sqlite(r#"displayName eq "x' OR 1=1 --""#);
    assert!(!sql.text.contains("OR 1=1"));
    assert_eq!(sql.binds, vec![Bind::Str("x' or 1=1 --".into())]);
}

#[test]
fn unknown_attributes_and_bad_values_are_refused() {
    for bad in [
        r#"password eq "x""#,
        r#"urn:example:params:Foo:bar eq "x""#,
        r#"meta.lastModified gt "yesterday""#,
        r#"active gt true"#,
        r#"emails[primary eq "maybe"]"#,
    ] {
        let parsed = parse(bad).unwrap();
        assert!(
            compile(&parsed, Resource::User, Dialect::Sqlite, "r").is_err(),
            "{bad} compiled"
        );
    }
}

#[test]
fn string_booleans_are_read_as_booleans() {
    let sql = sqlite(r#"roles[primary eq "True"]"#);
    assert!(sql.binds.contains(&Bind::Bool(true)), "{:?}", sql.binds);
}

#[test]
fn sorting_is_allowed_on_columns_only() {
    assert_eq!(
        sort_column(Resource::User, "userName"),
        Some("user_name_normalized")
    );
    assert_eq!(
        sort_column(Resource::User, "meta.lastModified"),
        Some("updated_at")
    );
    assert_eq!(sort_column(Resource::User, "title"), None);
}
